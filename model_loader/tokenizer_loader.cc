// LoadSentencePieceTokenizer: opens the SentencePiece plugin in its own symbol scope.
//
// Debian's libsentencepiece.so embeds protobuf-lite 3.14 and exports it. Linked into a process
// that also loads libprotobuf.so 3.21 (gRPC), one library's protobuf symbols interpose on the
// other's and the process aborts at start-up. libpkm_sentencepiece.so is therefore opened with
// RTLD_LOCAL (its symbols stay out of the global scope) and RTLD_DEEPBIND (it and
// libsentencepiece resolve their own symbols first). Sanitizer runtimes refuse RTLD_DEEPBIND;
// sanitizer builds do not link gRPC, so they link the implementation directly
// (PKMSERVE_TOKENIZER_DIRECT).
#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <filesystem>
#include <mutex>

#include "model_loader/tokenizer_sentencepiece.h"

namespace pkm {

#ifdef PKMSERVE_TOKENIZER_DIRECT

StatusOr<std::unique_ptr<Tokenizer>> LoadSentencePieceTokenizer(const std::string& path) {
  return internal_tokenizer::LoadSentencePieceDirect(path);
}

#else

namespace {

using LoadFn = Tokenizer* (*)(const std::string*, Status*);

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
      void* handle = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
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

#endif

}  // namespace pkm
