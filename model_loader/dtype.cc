#include "model_loader/dtype.h"

#include <bit>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace pkm {

static_assert(std::endian::native == std::endian::little,
              "tensor data is little-endian; a big-endian host would need byte swaps");

namespace {

struct DTypeInfo {
  DType dtype;
  std::string_view name;
  std::string_view config_name;
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::kF32, "F32", "float32", 4},    {DType::kF16, "F16", "float16", 2},
    {DType::kBF16, "BF16", "bfloat16", 2}, {DType::kI32, "I32", "", 4},
    {DType::kI64, "I64", "", 8},
};

const DTypeInfo& Info(DType dtype) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.dtype == dtype) return info;
  }
  std::fprintf(stderr, "pkm: invalid DType %d\n", static_cast<int>(dtype));
  std::abort();
}

template <typename T>
T Load(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

std::string_view DTypeName(DType dtype) { return Info(dtype).name; }
std::string_view DTypeConfigName(DType dtype) { return Info(dtype).config_name; }
size_t DTypeSize(DType dtype) { return Info(dtype).size; }
bool IsFloatDType(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16;
}

std::optional<DType> DTypeFromName(std::string_view safetensors_name) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.name == safetensors_name) return info.dtype;
  }
  return std::nullopt;
}

std::optional<DType> DTypeFromConfigName(std::string_view config_name) {
  for (const DTypeInfo& info : kDTypes) {
    if (!info.config_name.empty() && info.config_name == config_name) return info.dtype;
  }
  return std::nullopt;
}

float HalfToFloat(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  const uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0) {
    // Zero or subnormal: mantissa · 2^-24, exactly representable in float.
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  uint32_t out;
  if (exponent == 0x1f) {
    out = sign | 0x7f800000u | (mantissa << 13);  // inf, or NaN keeping its payload
  } else {
    out = sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13);  // rebias 15 -> 127
  }
  return std::bit_cast<float>(out);
}

float BFloat16ToFloat(uint16_t bits) {
  return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
}

void ConvertToFloat32(DType dtype, const std::byte* src, size_t count, float* dst) {
  if (count == 0) return;  // src or dst may be null then, which memcpy does not allow
  switch (dtype) {
    case DType::kF32:
      std::memcpy(dst, src, count * sizeof(float));
      return;
    case DType::kF16:
      for (size_t i = 0; i < count; ++i) dst[i] = HalfToFloat(Load<uint16_t>(src + 2 * i));
      return;
    case DType::kBF16:
      for (size_t i = 0; i < count; ++i) dst[i] = BFloat16ToFloat(Load<uint16_t>(src + 2 * i));
      return;
    case DType::kI32:
      for (size_t i = 0; i < count; ++i) dst[i] = static_cast<float>(Load<int32_t>(src + 4 * i));
      return;
    case DType::kI64:
      for (size_t i = 0; i < count; ++i) dst[i] = static_cast<float>(Load<int64_t>(src + 8 * i));
      return;
  }
}

void ToFloat32(const TensorView& t, float* out) {
  ConvertToFloat32(t.dtype, t.data, t.numel(), out);
}

std::vector<float> ToFloat32(const TensorView& t) {
  std::vector<float> out(t.numel());
  ToFloat32(t, out.data());
  return out;
}

std::vector<int64_t> ToInt64(const TensorView& t) {
  std::vector<int64_t> out(t.numel());
  if (t.dtype == DType::kI64) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = Load<int64_t>(t.data + 8 * i);
  } else if (t.dtype == DType::kI32) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = Load<int32_t>(t.data + 4 * i);
  } else {
    std::fprintf(stderr, "pkm::ToInt64: tensor '%s' has float dtype %s\n", t.name.c_str(),
                 std::string(DTypeName(t.dtype)).c_str());
    std::abort();
  }
  return out;
}

std::string ShapeToString(std::span<const int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ',';
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace pkm
