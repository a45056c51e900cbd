// __nv_bfloat16 for the emulated CUDA build (HIP-CPU has none): the top half of an IEEE float,
// converted from float with round to nearest even like __float2bfloat16; NaN stays NaN.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/cuda/cpu_emu/cuda_emu.h"

struct __nv_bfloat16 {
  uint16_t bits;
};
static_assert(sizeof(__nv_bfloat16) == 2);

inline __nv_bfloat16 __float2bfloat16(float v) noexcept {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return {static_cast<uint16_t>((u >> 16) | 0x0040u)};
  u += 0x7FFFu + ((u >> 16) & 1u);
  return {static_cast<uint16_t>(u >> 16)};
}
inline float __bfloat162float(__nv_bfloat16 v) noexcept {
  const uint32_t u = uint32_t{v.bits} << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
