// Force-included into every translation unit of the emulated CUDA build (PKMSERVE_CUDA_ON_CPU):
// kernels/cuda compiled as host code, each block's threads run as fibers by HIP-CPU
// (third_party/hip-cpu). This header spells the CUDA names the kernels, the backend and the
// tests use in HIP-CPU's terms, and adds the launch that the build-time rewrite
// (translate_cuda.py) turns every `kernel<<<grid, block, smem, stream>>>(args)` into.
#pragma once

#include <hip/hip_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>

// ---- device-code spellings -----------------------------------------------------------------
// HIP-CPU's own meanings do not fit host code built with the project's warnings: an empty
// __forceinline__ breaks the ODR for header-defined device functions, and GCC's simd attribute
// warns on every struct parameter.
#undef __forceinline__
#define __forceinline__ inline
#undef __device__
#define __device__
#undef __global__
#define __global__
#define __align__(n) alignas(n)
using std::isnan;

inline uint32_t __float_as_uint(float x) noexcept {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}
inline float __uint_as_float(uint32_t u) noexcept {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}
inline int32_t __float_as_int(float x) noexcept { return static_cast<int32_t>(__float_as_uint(x)); }
inline float __int_as_float(int32_t i) noexcept { return __uint_as_float(static_cast<uint32_t>(i)); }

// Warp operations. HIP-CPU (patched) runs a warp's 32 lanes in turn and ignores masks: a wrong
// mask is not caught here, only on the GPU.
template <typename T>
inline T __shfl_sync(uint32_t, T var, int src_lane, int width = warpSize) noexcept {
  return __shfl(var, src_lane, width);
}
template <typename T>
inline T __shfl_down_sync(uint32_t, T var, uint32_t delta, int width = warpSize) noexcept {
  return __shfl_down(var, delta, width);
}
template <typename T>
inline T __shfl_up_sync(uint32_t, T var, uint32_t delta, int width = warpSize) noexcept {
  return __shfl_up(var, delta, width);
}
template <typename T>
inline T __shfl_xor_sync(uint32_t, T var, int lane_mask, int width = warpSize) noexcept {
  return __shfl_xor(var, lane_mask, width);
}
inline uint32_t __ballot_sync(uint32_t, int predicate) noexcept {
  return static_cast<uint32_t>(__ballot(predicate));
}
inline void __syncwarp(uint32_t = 0xFFFFFFFFu) noexcept {
  hip::detail::Tile::this_tile().warp_barrier();
}
inline uint32_t __activemask() noexcept { return 0xFFFFFFFFu; }

#include "kernels/cuda/cpu_emu/cuda_emu_runtime.h"
