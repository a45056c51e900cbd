// Fuzzes what a model directory feeds the server: config.json and model.safetensors, read by
// LoadModel, then, for a model it accepts, the CPU engine built from it and one step run.
// A loader may refuse anything, but must never read outside the file, crash or hang, and
// what it accepts the engine must run.
//
// Input: config.json's bytes, a NUL, then model.safetensors's bytes (no NUL: no weights file).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "engine/engine.h"
#include "kernels/cpu/backend/cpu_backend.h"
#include "model_loader/model_loader.h"
#include "tests/fuzz/fuzz_files.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const pkm::fuzz::ScratchDir* dir = new pkm::fuzz::ScratchDir();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find('\0');
  dir->Write("config.json", input.substr(0, split));
  if (split == std::string_view::npos) {
    dir->Remove("model.safetensors");
  } else {
    dir->Write("model.safetensors", input.substr(split + 1));
  }

  pkm::StatusOr<pkm::LoadedModel> model = pkm::LoadModel(dir->path());
  if (!model.ok()) {
    if (model.status().message().empty()) std::abort();  // every refusal says why
    return 0;
  }
  auto engine = pkm::Engine::Create(*model, pkm::MakeCpuBackend(1),
                                    {.kv_cache_bytes = size_t{1} << 20});
  if (!engine.ok()) return 0;
  const int32_t vocab = model->config().vocab_size;
  const std::vector<int32_t> tokens = {0, vocab - 1};
  const pkm::SeqChunk chunk{.seq = 1, .tokens = tokens};
  pkm::StepResult result;
  if (!(*engine)->Step({&chunk, 1}, &result).ok()) return 0;
  if (result.logits.size() != static_cast<size_t>(vocab)) std::abort();
  return 0;
}
