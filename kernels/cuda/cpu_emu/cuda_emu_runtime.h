// The CUDA runtime API as used by kernels/cuda, on HIP-CPU, with the launch checks a GPU
// makes: a launch beyond the device's limits fails with cudaErrorInvalidConfiguration instead
// of running, as it would on an sm_90 device. Included by cuda_emu.h.
#pragma once

#include <hip/hip_runtime.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "kernels/cuda/cpu_emu/include/library_types.h"

using cudaError_t = hipError_t;
using cudaStream_t = hipStream_t;
using cudaDeviceProp = hipDeviceProp_t;
using cudaMemcpyKind = hipMemcpyKind;

#define cudaSuccess hipSuccess
#define cudaErrorInvalidValue hipErrorInvalidValue
#define cudaErrorMemoryAllocation hipErrorOutOfMemory
#define cudaErrorInvalidConfiguration hipErrorInvalidConfiguration
#define cudaMemcpyHostToDevice hipMemcpyHostToDevice
#define cudaMemcpyDeviceToHost hipMemcpyDeviceToHost
#define cudaMemcpyDeviceToDevice hipMemcpyDeviceToDevice
#define cudaMemcpyDefault hipMemcpyDefault
#define cudaStreamNonBlocking hipStreamNonBlocking

#define cudaDeviceSynchronize hipDeviceSynchronize
#define cudaFree hipFree
#define cudaGetDeviceCount hipGetDeviceCount
#define cudaGetDeviceProperties hipGetDeviceProperties
#define cudaGetErrorString hipGetErrorString
#define cudaMalloc hipMalloc
#define cudaMemcpy hipMemcpy
#define cudaMemcpyAsync hipMemcpyAsync
#define cudaMemGetInfo hipMemGetInfo
#define cudaMemset hipMemset
#define cudaMemsetAsync hipMemsetAsync
#define cudaSetDevice hipSetDevice
#define cudaStreamCreateWithFlags hipStreamCreateWithFlags
#define cudaStreamDestroy hipStreamDestroy
#define cudaStreamSynchronize hipStreamSynchronize

// CUDA's cudaGetLastError resets the error; HIP-CPU's keeps it.
inline cudaError_t cudaGetLastError() noexcept {
  return hip::detail::Runtime::set_last_error(hipSuccess);
}
inline cudaError_t cudaPeekAtLastError() noexcept { return hip::detail::Runtime::last_error(); }

namespace pkm::cuda_emu {

// sm_90's limits (H100/H200): what a launch may ask for.
inline constexpr uint32_t kMaxThreadsPerBlock = 1024;
inline constexpr uint32_t kMaxBlockDimZ = 64;
inline constexpr uint32_t kMaxGridDimYZ = 65535;
inline constexpr size_t kDefaultDynamicSmem = 48 * 1024;  // without cudaFuncSetAttribute
inline constexpr size_t kMaxDynamicSmem = 227 * 1024;     // the opt-in maximum

// Dynamic shared memory limits raised by cudaFuncSetAttribute, by kernel name as written at the
// call (a launch may deduce a template's arguments, so it has no function pointer to give):
// one setting covers every instantiation of a template kernel.
struct KernelAttributes {
  std::mutex mu;
  std::unordered_map<std::string, size_t> max_dynamic_smem;
};
inline KernelAttributes& Attributes() {
  static KernelAttributes a;
  return a;
}

// Whether a launch fits the device; else records the error cudaGetLastError returns.
inline bool LaunchFits(const char* kernel, const dim3& grid, const dim3& block, size_t smem) {
  size_t smem_limit = kDefaultDynamicSmem;
  {
    KernelAttributes& a = Attributes();
    std::lock_guard<std::mutex> lock(a.mu);
    if (auto it = a.max_dynamic_smem.find(kernel); it != a.max_dynamic_smem.end()) {
      smem_limit = it->second;
    }
  }
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  const bool fits = threads >= 1 && threads <= kMaxThreadsPerBlock && block.z <= kMaxBlockDimZ &&
                    grid.x >= 1 && grid.y >= 1 && grid.z >= 1 && grid.y <= kMaxGridDimYZ &&
                    grid.z <= kMaxGridDimYZ && smem <= smem_limit;
  if (!fits) hip::detail::Runtime::set_last_error(hipErrorInvalidConfiguration);
  return fits;
}

enum FuncAttribute { kMaxDynamicSharedMemorySize = 8 };

// Raises a kernel's dynamic shared memory limit, up to the device's opt-in maximum.
inline cudaError_t SetAttribute(const char* kernel, FuncAttribute attribute, int value) {
  if (attribute != kMaxDynamicSharedMemorySize || value < 0 ||
      static_cast<size_t>(value) > kMaxDynamicSmem) {
    return cudaErrorInvalidValue;
  }
  KernelAttributes& a = Attributes();
  std::lock_guard<std::mutex> lock(a.mu);
  a.max_dynamic_smem[kernel] = static_cast<size_t>(value);
  return cudaSuccess;
}

}  // namespace pkm::cuda_emu

#define cudaFuncAttributeMaxDynamicSharedMemorySize \
  ::pkm::cuda_emu::FuncAttribute::kMaxDynamicSharedMemorySize
#define cudaFuncSetAttribute(kernel, attribute, value) \
  ::pkm::cuda_emu::SetAttribute(#kernel, attribute, value)

// What translate_cuda.py writes for `kernel<<<grid, block, smem, stream>>>(args...)`: a
// stream-ordered HIP-CPU launch, refused like a GPU refuses one beyond its limits.
#define PKM_EMU_LAUNCH(kernel, grid, block, smem, stream, ...)                                   \
  do {                                                                                         \
    const dim3 pkm_emu_grid_(grid), pkm_emu_block_(block);                                     \
    const size_t pkm_emu_smem_ = static_cast<size_t>(smem);                                    \
    if (::pkm::cuda_emu::LaunchFits(#kernel, pkm_emu_grid_, pkm_emu_block_, pkm_emu_smem_)) {  \
      ::hip::detail::launch(                                                                   \
          pkm_emu_grid_, pkm_emu_block_, static_cast<std::uint32_t>(pkm_emu_smem_), (stream), \
          [=](auto&&... pkm_emu_xs_) noexcept {                                                \
            kernel(std::forward<decltype(pkm_emu_xs_)>(pkm_emu_xs_)...);                       \
          },                                                                                   \
          std::make_tuple(__VA_ARGS__));                                                       \
    }                                                                                          \
  } while (0)
