// pkmserve: serves a PKM language model. This version loads and validates the model and its
// tokenizer, prints what it loaded, and exits: the gRPC service is not built yet.
//
// Exit codes: 0 loaded, 1 bad command line, 2 the model or tokenizer failed to load.
// Flags are parsed by hand until the server brings absl flags.
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "model_loader/model_loader.h"
#include "model_loader/tokenizer_sentencepiece.h"

namespace {

constexpr int kExitUsage = 1;
constexpr int kExitBadModel = 2;

void PrintUsage(std::FILE* out) {
  std::fprintf(out,
               "usage: pkmserve [--model DIR]\n"
               "\n"
               "  --model DIR  model directory: config.json, model.safetensors, tokenizer.model\n"
               "               (default: %s)\n"
               "  --help       this text\n"
               "\n"
               "Exit codes: 0 loaded, 1 bad command line, 2 the model failed to load.\n",
               PKMSERVE_DEFAULT_MODEL_DIR);
}

struct Flags {
  std::string model_dir = PKMSERVE_DEFAULT_MODEL_DIR;
  bool help = false;
};

// Accepts --model DIR, --model=DIR, --help and -h. Returns false (after printing why) otherwise.
bool ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      flags->help = true;
    } else if (arg == "--model") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "pkmserve: --model needs a directory\n");
        return false;
      }
      flags->model_dir = argv[++i];
    } else if (arg.starts_with("--model=")) {
      flags->model_dir = std::string(arg.substr(std::strlen("--model=")));
    } else {
      std::fprintf(stderr, "pkmserve: unknown argument '%s'\n", argv[i]);
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) {
    PrintUsage(stderr);
    return kExitUsage;
  }
  if (flags.help) {
    PrintUsage(stdout);
    return 0;
  }

  pkm::StatusOr<pkm::LoadedModel> model = pkm::LoadModel(flags.model_dir);
  if (!model.ok()) {
    std::fprintf(stderr, "pkmserve: %s\n", model.status().ToString().c_str());
    return kExitBadModel;
  }
  auto tokenizer = pkm::LoadSentencePieceTokenizer(model->tokenizer_path());
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "pkmserve: %s\n", tokenizer.status().ToString().c_str());
    return kExitBadModel;
  }
  const pkm::ModelConfig& config = model->config();
  const pkm::Tokenizer& tok = **tokenizer;
  if (tok.vocab_size() != config.vocab_size || tok.bos_id() != config.bos_id ||
      tok.eos_id() != config.eos_id) {
    std::fprintf(stderr,
                 "pkmserve: %s: tokenizer has vocab %d, bos %d, eos %d but config.json says "
                 "vocab_size %d, bos_id %d, eos_id %d; re-export with training/export.py\n",
                 model->tokenizer_path().c_str(), tok.vocab_size(), tok.bos_id(), tok.eos_id(),
                 config.vocab_size, config.bos_id, config.eos_id);
    return kExitBadModel;
  }

  std::printf("%s\n", model->Summary().c_str());
  std::printf("model loaded: %s (%d tokens in the tokenizer)\n", flags.model_dir.c_str(),
              tok.vocab_size());
  std::printf("the gRPC service is not built yet; exiting\n");
  return 0;
}
