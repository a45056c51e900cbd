// Makes the backend --device asks for. The CUDA backend is the plugin libpkm_cuda.so, opened
// with dlopen only when asked for (never linked: cuBLAS's libraries loaded at start-up break
// the metrics exporter's threads, and the server must start on machines without CUDA).
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "kernels/backend.h"

namespace pkm {

// Where the CUDA plugin is looked for: $PKMSERVE_CUDA_PLUGIN when set, else
// <executable's dir>/../lib/libpkm_cuda.so, else <executable's dir>/libpkm_cuda.so (the first
// that exists), else the bare name (the dynamic loader's search path).
std::string DefaultCudaPluginPath();

// The CUDA backend on `device` from the plugin at `plugin_path`. kUnavailable, saying why,
// when the plugin cannot be opened or the device cannot be used (no driver, no GPU); the
// description names the device for the log.
StatusOr<std::unique_ptr<Backend>> LoadCudaBackend(const std::string& plugin_path, int device,
                                                   std::string* description);

struct BackendChoice {
  std::unique_ptr<Backend> backend;
  std::string device;       // "cpu" or "cuda": what runs
  std::string description;  // for the start-up log, e.g. "cuda: NVIDIA H100 ..., 79.1 GiB"
  std::string fallback;     // with --device=auto on the CPU: why not CUDA; else empty
};

// --device: "cpu"; "cuda" (an error, saying why, when CUDA cannot be used); "auto" (CUDA when
// it can be used, else the CPU with the reason in `fallback`). `threads` is the CPU backend's.
StatusOr<BackendChoice> MakeBackend(const std::string& device, int threads,
                                    const std::string& plugin_path = DefaultCudaPluginPath());

}  // namespace pkm
