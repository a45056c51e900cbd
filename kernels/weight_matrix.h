// A weight matrix as a backend reads it: row-major [rows, cols] elements of one type. 16-bit
// weights are read as stored and widened to fp32 in registers (fp16 and bf16 widen exactly, so
// a kernel on 16-bit weights gives the same bits as on their fp32 widening). int8 weights
// carry one fp32 scale per row (absmax quantisation at load): element = q · scales[row].
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace pkm {

enum class WeightType : uint8_t { kF32, kF16, kBF16, kI8 };
inline constexpr int kWeightTypes = 4;

inline size_t WeightTypeBytes(WeightType t) {
  return t == WeightType::kF32 ? 4 : t == WeightType::kI8 ? 1 : 2;
}

inline const char* WeightTypeName(WeightType t) {
  switch (t) {
    case WeightType::kF32: return "float32";
    case WeightType::kF16: return "float16";
    case WeightType::kBF16: return "bfloat16";
    case WeightType::kI8: return "int8";
  }
  return "unknown";
}

struct WeightMatrix {
  const void* data = nullptr;
  WeightType type = WeightType::kF32;
  const float* scales = nullptr;  // kI8: one per row

  WeightMatrix() = default;
  // fp32 weights, as every buffer was before typed weights: existing fp32 callers convert.
  WeightMatrix(const float* f32) : data(f32) {}  // NOLINT(google-explicit-constructor)
  WeightMatrix(const void* bytes, WeightType t, const float* row_scales = nullptr)
      : data(bytes), type(t), scales(row_scales) {}

  const float* f32() const { return static_cast<const float*>(data); }
  explicit operator bool() const { return data != nullptr; }
};

// IEEE half -> float, exactly (subnormals, infinities and NaNs included).
inline float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exponent = (h >> 10) & 0x1F;
  uint32_t mantissa = h & 0x3FF;
  uint32_t bits;
  if (exponent == 0x1F) {
    bits = sign | 0x7F800000 | (mantissa << 13);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    exponent = 113;
    while ((mantissa & 0x400) == 0) {
      mantissa <<= 1;
      --exponent;
    }
    bits = sign | (exponent << 23) | ((mantissa & 0x3FF) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline float Bf16ToFloat(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Row `row` of `w` ([*, cols]) widened to fp32 into out[0, cols).
inline void WidenRow(const WeightMatrix& w, size_t row, int cols, float* out) {
  const size_t begin = row * static_cast<size_t>(cols);
  if (w.type == WeightType::kF32) {
    std::memcpy(out, w.f32() + begin, sizeof(float) * static_cast<size_t>(cols));
    return;
  }
  if (w.type == WeightType::kI8) {
    const int8_t* q = static_cast<const int8_t*>(w.data) + begin;
    for (int i = 0; i < cols; ++i) out[i] = static_cast<float>(q[i]) * w.scales[row];
    return;
  }
  const uint16_t* src = static_cast<const uint16_t*>(w.data) + begin;
  for (int i = 0; i < cols; ++i) {
    out[i] = w.type == WeightType::kF16 ? HalfToFloat(src[i]) : Bf16ToFloat(src[i]);
  }
}

}  // namespace pkm
