#include "engine/backend_loader.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "kernels/cpu/backend/cpu_backend.h"
#include "kernels/cuda/backend/cuda_backend_plugin.h"

namespace pkm {
namespace {

constexpr const char* kPluginName = "libpkm_cuda.so";

std::filesystem::path ExecutableDir() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path() : exe.parent_path();
}

}  // namespace

std::string DefaultCudaPluginPath() {
  if (const char* env = std::getenv("PKMSERVE_CUDA_PLUGIN"); env && *env) return env;
  const std::filesystem::path dir = ExecutableDir();
  if (!dir.empty()) {
    for (const std::filesystem::path& candidate : {dir / ".." / "lib" / kPluginName, dir / kPluginName}) {
      std::error_code ec;
      if (std::filesystem::exists(candidate, ec)) return candidate.lexically_normal().string();
    }
  }
  return kPluginName;
}

StatusOr<std::unique_ptr<Backend>> LoadCudaBackend(const std::string& plugin_path, int device,
                                                   std::string* description) {
  // Kept open for the life of the process: the backend's code lives in it.
  void* plugin = dlopen(plugin_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (plugin == nullptr) {
    const char* why = dlerror();
    return Status(StatusCode::kUnavailable,
                  "cannot load the CUDA backend " + plugin_path + ": " + (why ? why : "dlopen failed") +
                      " (build with CUDA, or set PKMSERVE_CUDA_PLUGIN to libpkm_cuda.so)");
  }
  auto create = reinterpret_cast<PkmCudaBackendCreateFn>(dlsym(plugin, kPkmCudaBackendCreate));
  auto describe = reinterpret_cast<PkmCudaBackendDescribeFn>(dlsym(plugin, kPkmCudaBackendDescribe));
  if (create == nullptr || describe == nullptr) {
    return Status(StatusCode::kUnavailable,
                  plugin_path + " is not a pkmserve CUDA backend (no " + kPkmCudaBackendCreate + ")");
  }
  char error[512] = "";
  std::unique_ptr<Backend> backend(create(kBackendApiVersion, device, error, sizeof(error)));
  if (backend == nullptr) return Status(StatusCode::kUnavailable, error);
  if (description) {
    char text[256] = "";
    describe(device, text, sizeof(text));
    *description = text;
  }
  return backend;
}

StatusOr<BackendChoice> MakeBackend(const std::string& device, int threads,
                                    const std::string& plugin_path) {
  if (device != "auto" && device != "cpu" && device != "cuda") {
    return Status(StatusCode::kInvalidArgument,
                  "--device must be auto, cpu or cuda, got '" + device + "'");
  }
  BackendChoice choice;
  if (device != "cpu") {
    std::string description;
    StatusOr<std::unique_ptr<Backend>> cuda = LoadCudaBackend(plugin_path, 0, &description);
    if (cuda.ok()) {
      choice.backend = std::move(*cuda);
      choice.device = "cuda";
      choice.description = "cuda: " + description;
      return choice;
    }
    if (device == "cuda") {
      return Status(StatusCode::kUnavailable, "--device=cuda: " + cuda.status().message());
    }
    choice.fallback = cuda.status().message();
  }
  choice.backend = MakeCpuBackend(threads);
  choice.device = "cpu";
  choice.description = "cpu: " + std::to_string(threads > 0 ? threads : static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN))) + " threads";
  return choice;
}

}  // namespace pkm
