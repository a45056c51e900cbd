// Conversions of fp32 weights, at load, into the types the engine can hold them in
// (--weights-dtype, --pkm-values-dtype): fp16 and bf16 by rounding to nearest even, int8 by
// per-row absmax quantisation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pkm {

// Round to nearest, ties to even; beyond fp16's range to ±inf; NaN stays NaN.
uint16_t FloatToHalf(float f);
uint16_t FloatToBf16(float f);

// Row r of w ([rows, cols]) as q[r, :] · scales[r], scale = max|w[r, :]| / 127 and q the
// nearest integer of w / scale (ties away from zero) in [-127, 127]; an all-zero row has
// scale 0 and q 0.
struct Int8Rows {
  std::vector<int8_t> q;
  std::vector<float> scales;
};
Int8Rows QuantizeRowsInt8(const float* w, size_t rows, size_t cols);

}  // namespace pkm
