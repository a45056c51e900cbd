// Loads a model and generates text with the engine alone: no server, no gRPC.
// The smallest complete use of the engine API, for people who embed it.
//
//   build/bin/pkm-generate [--model DIR] [--max-tokens N] [--temperature T] [--seed S] "prompt"
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/generation.h"
#include "kernels/cpu/backend/cpu_backend.h"
#include "model_loader/model_loader.h"
#include "model_loader/tokenizer.h"
#include "model_loader/tokenizer_sentencepiece.h"

#ifndef PKMSERVE_DEFAULT_MODEL
#define PKMSERVE_DEFAULT_MODEL "models/pkm-small"
#endif

int main(int argc, char** argv) {
  std::string model_dir = PKMSERVE_DEFAULT_MODEL, prompt;
  pkm::GenerateOptions opt;
  opt.sampling.temperature = 0.8f;
  opt.sampling.top_p = 0.95f;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "pkm-generate: %s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--model") model_dir = value();
    else if (arg == "--max-tokens") opt.max_new_tokens = std::atoi(value().c_str());
    else if (arg == "--temperature") opt.sampling.temperature = std::strtof(value().c_str(), nullptr);
    else if (arg == "--seed") opt.sampling.seed = std::strtoull(value().c_str(), nullptr, 10);
    else if (arg == "--help" || arg == "-h") {
      std::printf("usage: pkm-generate [--model DIR] [--max-tokens N] [--temperature T] "
                  "[--seed S] \"prompt\"\n");
      return 0;
    } else prompt = arg;
  }
  auto model = pkm::LoadModel(model_dir);
  if (!model.ok()) {
    std::fprintf(stderr, "pkm-generate: %s\n", model.status().ToString().c_str());
    return 2;
  }
  auto tokenizer = pkm::LoadSentencePieceTokenizer(model_dir + "/tokenizer.model");
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "pkm-generate: %s\n", tokenizer.status().ToString().c_str());
    return 2;
  }
  auto engine = pkm::Engine::Create(*model, pkm::MakeCpuBackend(2), {});
  if (!engine.ok()) {
    std::fprintf(stderr, "pkm-generate: %s\n", engine.status().ToString().c_str());
    return 2;
  }
  std::vector<int32_t> ids = {model->config().bos_id};
  std::vector<int32_t> text_ids = (*tokenizer)->Encode(prompt);
  ids.insert(ids.end(), text_ids.begin(), text_ids.end());
  std::string validation = pkm::Validate(opt.sampling, model->config().vocab_size);
  if (!validation.empty()) {
    std::fprintf(stderr, "pkm-generate: %s\n", validation.c_str());
    return 2;
  }
  auto result = pkm::Generate(**engine, **tokenizer, /*seq=*/1, ids, opt);
  if (!result.ok()) {
    std::fprintf(stderr, "pkm-generate: %s\n", result.status().ToString().c_str());
    return 1;
  }
  std::printf("%s%s\n[%zu tokens, finish: %s]\n", prompt.c_str(), result->text.c_str(),
              result->tokens.size(), pkm::FinishReasonName(result->finish));
  return 0;
}
