// The C entry points of the plugin libpkm_cuda.so, looked up with dlsym by
// engine/backend_loader.cc. C linkage, so the names do not depend on C++ mangling; the
// Backend object crosses the boundary as a C++ object, so the plugin and the server are built
// together (the API version guards the rest).
#pragma once

#include <cstddef>

namespace pkm {
class Backend;
}

#define PKM_PLUGIN_EXPORT __attribute__((visibility("default")))

extern "C" {
// A new backend on `device`, owned by the caller (delete it); null with a message in `error`
// when the API versions differ or the device cannot be used (no driver, no GPU).
PKM_PLUGIN_EXPORT pkm::Backend* PkmCudaBackendCreate(int api_version, int device, char* error, size_t error_size);
using PkmCudaBackendCreateFn = pkm::Backend* (*)(int, int, char*, size_t);
inline constexpr const char* kPkmCudaBackendCreate = "PkmCudaBackendCreate";

// "NVIDIA H100 80GB HBM3, 79.1 GiB, compute capability 9.0" for the log.
PKM_PLUGIN_EXPORT void PkmCudaBackendDescribe(int device, char* out, size_t size);
using PkmCudaBackendDescribeFn = void (*)(int, char*, size_t);
inline constexpr const char* kPkmCudaBackendDescribe = "PkmCudaBackendDescribe";
}
