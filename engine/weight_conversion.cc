#include "engine/weight_conversion.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace pkm {

uint16_t FloatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  const uint32_t sign = (x >> 16) & 0x8000;
  const uint32_t abs = x & 0x7FFFFFFF;
  if (abs >= 0x7F800000) {  // inf, or NaN (kept quiet)
    return static_cast<uint16_t>(sign | 0x7C00 | (abs > 0x7F800000 ? 0x200 : 0));
  }
  if (abs >= 0x477FF000) return static_cast<uint16_t>(sign | 0x7C00);  // >= 65520: rounds to inf
  if (abs < 0x38800000) {  // below 2^-14: a subnormal (or zero) of fp16
    float v;
    std::memcpy(&v, &abs, sizeof v);
    // v · 2^24 is exact and below 1024; nearbyint rounds to nearest even. 1024 is the smallest
    // normal's encoding, as it should be.
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(v * 16777216.0f)));
  }
  uint32_t h = (((abs >> 23) - 112) << 10) | ((abs & 0x7FFFFF) >> 13);
  const uint32_t rest = abs & 0x1FFF;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;  // a carry into the exponent is right
  return static_cast<uint16_t>(sign | h);
}

uint16_t FloatToBf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  if ((x & 0x7FFFFFFF) > 0x7F800000) return static_cast<uint16_t>((x >> 16) | 0x40);  // quiet NaN
  x += 0x7FFF + ((x >> 16) & 1);
  return static_cast<uint16_t>(x >> 16);
}

Int8Rows QuantizeRowsInt8(const float* w, size_t rows, size_t cols) {
  Int8Rows out;
  out.q.resize(rows * cols);
  out.scales.resize(rows);
  for (size_t r = 0; r < rows; ++r) {
    const float* row = w + r * cols;
    float absmax = 0.0f;
    for (size_t c = 0; c < cols; ++c) absmax = std::max(absmax, std::abs(row[c]));
    const float scale = absmax / 127.0f;
    out.scales[r] = scale;
    for (size_t c = 0; c < cols; ++c) {
      const float q = scale > 0.0f ? std::round(row[c] / scale) : 0.0f;
      out.q[r * cols + c] = static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f));
    }
  }
  return out;
}

}  // namespace pkm
