// LoadSentencePieceTokenizer: opens the SentencePiece plugin in its own symbol scope.
//
// Debian's libsentencepiece.so embeds protobuf-lite 3.14 and exports it. Linked into a process
// that also loads libprotobuf.so 3.21 (gRPC), one library's protobuf symbols interpose on the
// other's and the process aborts at start-up. libpkm_sentencepiece.so is therefore opened with
// RTLD_LOCAL (its symbols stay out of the global scope) and RTLD_DEEPBIND (it and
// libsentencepiece resolve their own symbols first).
//
// Sanitizer runtimes refuse RTLD_DEEPBIND in their dlopen interceptor, because a deep-bound
// library would find libc's malloc before the runtime's and mix the two heaps. In sanitizer
// builds the plugin is built with the same sanitizer, so the runtime is its first dependency and
// its deep-bound lookups find the runtime's malloc and operator new before libc's anyway; those
// builds call libc's own dlopen, past the interceptor (PKMSERVE_SANITIZED).
#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <filesystem>
#include <mutex>

#include "model_loader/tokenizer_sentencepiece.h"

namespace pkm {

namespace {

using LoadFn = Tokenizer* (*)(const std::string*, Status*);

void* OpenDeepBound(const char* path) {
  constexpr int kFlags = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
#ifdef PKMSERVE_SANITIZED
  using DlopenFn = void* (*)(const char*, int);
  static const DlopenFn libc_dlopen = [] {
    void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    return libc == nullptr ? nullptr : reinterpret_cast<DlopenFn>(dlsym(libc, "dlopen"));
  }();
  if (libc_dlopen == nullptr) return nullptr;  // dlerror() says why
  return libc_dlopen(path, kFlags);
#else
  return dlopen(path, kFlags);
#endif
}

// The plugin next to the running binary (build/bin or build/tests -> build/lib), else where
// the build put it.
std::vector<std::string> PluginCandidates() {
  std::vector<std::string> paths;
  if (const char* env = std::getenv("PKMSERVE_SENTENCEPIECE_PLUGIN")) paths.push_back(env);
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) paths.push_back((exe.parent_path().parent_path() / "lib" / PKMSERVE_SP_PLUGIN_NAME).string());
  paths.push_back(PKMSERVE_SP_PLUGIN_PATH);
  return paths;
}

StatusOr<LoadFn> OpenPlugin() {
  static std::once_flag once;
  static LoadFn load = nullptr;
  static std::string error;
  std::call_once(once, [] {
    for (const std::string& candidate : PluginCandidates()) {
      void* handle = OpenDeepBound(candidate.c_str());
      if (handle == nullptr) {
        error += std::string(error.empty() ? "" : "; ") + dlerror();
        continue;
      }
      load = reinterpret_cast<LoadFn>(dlsym(handle, "pkm_sentencepiece_load"));
      if (load != nullptr) return;
      error += "; " + candidate + " has no pkm_sentencepiece_load";
    }
  });
  if (load == nullptr) {
    return Status(StatusCode::kFailedPrecondition,
                  "cannot load the SentencePiece plugin " + std::string(PKMSERVE_SP_PLUGIN_NAME) +
                      " (" + error + "); rebuild with `make build` or set "
                      "PKMSERVE_SENTENCEPIECE_PLUGIN to its path");
  }
  return load;
}

}  // namespace

StatusOr<std::unique_ptr<Tokenizer>> LoadSentencePieceTokenizer(const std::string& path) {
  PKM_ASSIGN_OR_RETURN(LoadFn load, OpenPlugin());
  Status status;
  Tokenizer* tokenizer = load(&path, &status);
  if (tokenizer == nullptr) return status;
  return std::unique_ptr<Tokenizer>(tokenizer);
}

}  // namespace pkm
