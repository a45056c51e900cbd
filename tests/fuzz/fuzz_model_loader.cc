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
#include <filesystem>

#include "model_loader/model_loader.h"
#include "tests/model_loader/test_model_writer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const pkm::testing::TempDir* dir = new pkm::testing::TempDir();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find('\0');
  pkm::testing::WriteFile(dir->Join("config.json"), input.substr(0, split));
  if (split == std::string_view::npos) {
    std::error_code ec;
    std::filesystem::remove(dir->Join("model.safetensors"), ec);
  } else {
    pkm::testing::WriteFile(dir->Join("model.safetensors"), input.substr(split + 1));
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
