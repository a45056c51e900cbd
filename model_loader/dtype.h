// Tensor element types, TensorView (a typed, shaped view of a tensor's raw bytes) and the
// widening of fp16 / bf16 / fp32 data to fp32.
//
// Tensor bytes are little-endian (safetensors); pkmserve builds only for little-endian hosts.
// A TensorView's data is not aligned in general (safetensors does not promise alignment), so
// every reader here copies element by element with memcpy.
//
// Thread-safety: free functions are pure; TensorView is a plain value pointing at immutable
// bytes owned elsewhere (a SafetensorsFile), valid while that owner lives.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pkm {

enum class DType {
  kF32,
  kF16,
  kBF16,
  // Integer types appear only in test data (golden token ids), never in a model.
  kI32,
  kI64,
};

// safetensors spelling: "F32", "F16", "BF16", "I32", "I64".
std::string_view DTypeName(DType dtype);
std::optional<DType> DTypeFromName(std::string_view safetensors_name);
// config.json spelling of the float types: "float32", "float16", "bfloat16"; "" for integers.
std::string_view DTypeConfigName(DType dtype);
std::optional<DType> DTypeFromConfigName(std::string_view config_name);
// Bytes per element.
size_t DTypeSize(DType dtype);
bool IsFloatDType(DType dtype);

// IEEE 754 binary16 bits to float: exact for every value, subnormals, ±inf and NaN included.
float HalfToFloat(uint16_t bits);
// bfloat16 bits (the top half of a float32) to float: exact.
float BFloat16ToFloat(uint16_t bits);

// Widens `count` little-endian elements of `dtype` at `src` (any alignment) to fp32 in `dst`.
// Integer types convert by value (exact while |v| <= 2^24).
void ConvertToFloat32(DType dtype, const std::byte* src, size_t count, float* dst);

struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // outermost first; [] is a scalar
  const std::byte* data = nullptr;
  size_t nbytes = 0;  // numel() * DTypeSize(dtype), checked by the reader

  size_t numel() const { return nbytes / DTypeSize(dtype); }
};

// The tensor's elements as fp32: `out` has room for t.numel() floats.
void ToFloat32(const TensorView& t, float* out);
std::vector<float> ToFloat32(const TensorView& t);
// The elements of an integer tensor (I32 or I64) widened to int64. Aborts for a float tensor.
std::vector<int64_t> ToInt64(const TensorView& t);

// "[4,2,128,64]", the spelling used in every error message.
std::string ShapeToString(std::span<const int64_t> shape);

}  // namespace pkm
