// One table-driven parity test for every model family (tests/data/families, written by
// training/families.py from tiny random-weight models of the PyTorch reference): the C++
// engine's logits at every position within 1e-4 of the reference (relative to the largest
// |logit|), every memory's slot ids identical, and batch invariance and chunked prefill kept.
// Built twice: on the CPU backend, and on the CUDA backend built on HIP-CPU (PKM_CUDA_PLUGIN,
// test_families_cuda_emu), so every CUDA twin of the family ops runs a whole model too.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cctype>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend_loader.h"
#include "engine/engine.h"
#include "engine/scoring.h"
#include "kernels/cpu/backend/cpu_backend.h"
#include "model_loader/model_loader.h"
#include "model_loader/safetensors.h"
#include "tests/engine/golden_reader.h"

namespace pkm {
namespace {

// The committed families, or the directory in $PKM_FAMILIES_DIR: other tests (the checkpoint
// converters') write model directories with goldens in the same layout and run this binary on
// them.
std::string FamiliesDir() {
  const char* dir = std::getenv("PKM_FAMILIES_DIR");
  return dir != nullptr && *dir != '\0' ? dir : "tests/data/families";
}

std::vector<std::string> FamilyNames() {
  std::vector<std::string> names;
  if (!std::filesystem::is_directory(FamiliesDir())) return names;
  for (const auto& entry : std::filesystem::directory_iterator(FamiliesDir())) {
    if (entry.is_directory()) names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

class FamilyTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const std::string dir = FamiliesDir() + "/" + GetParam();
    auto model = LoadModel(dir);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::make_unique<LoadedModel>(std::move(*model));
    auto golden = SafetensorsFile::Open(dir + "/golden.safetensors");
    ASSERT_TRUE(golden.ok()) << golden.status();
    golden_ = std::make_unique<SafetensorsFile>(std::move(*golden));
  }

  std::unique_ptr<Engine> MakeEngine(EngineOptions options = {}) {
#ifdef PKM_CUDA_PLUGIN
    StatusOr<std::unique_ptr<Backend>> backend = LoadCudaBackend(PKM_CUDA_PLUGIN, 0, nullptr);
    EXPECT_TRUE(backend.ok()) << backend.status();
    if (!backend.ok()) return nullptr;
    auto engine = Engine::Create(*model_, std::move(*backend), options);
#else
    auto engine = Engine::Create(*model_, MakeCpuBackend(2), options);
#endif
    EXPECT_TRUE(engine.ok()) << engine.status();
    return engine.ok() ? std::move(*engine) : nullptr;
  }
  std::vector<int32_t> Ints(const std::string& name) const {
    return testing::GoldenInts(*golden_, name);
  }
  std::vector<float> Floats(const std::string& name) const {
    return testing::GoldenFloats(*golden_, name);
  }
  int NumSequences() const { return testing::GoldenSequences(*golden_); }

  std::unique_ptr<LoadedModel> model_;
  std::unique_ptr<SafetensorsFile> golden_;
};

TEST(Families, AtLeastEightAreCommitted) {
  if (std::getenv("PKM_FAMILIES_DIR") != nullptr) GTEST_SKIP() << "not the committed families";
  EXPECT_GE(FamilyNames().size(), 8u);
}

TEST_P(FamilyTest, LogitsAndSlotIdsMatchTheReference) {
  auto engine = MakeEngine({.record_pkm_lookups = true});
  ASSERT_NE(engine, nullptr);
  const ModelConfig& c = engine->config();
  const int n_seqs = NumSequences();
  ASSERT_GE(n_seqs, 2);
  for (int s = 0; s < n_seqs; ++s) {
    const std::string name = "seq" + std::to_string(s);
    const std::vector<int32_t> tokens = Ints(name + ".tokens");
    const std::vector<float> ref = Floats(name + ".logits");
    ASSERT_EQ(ref.size(), tokens.size() * c.vocab_size);
    SeqChunk ch{.seq = s, .tokens = tokens, .all_logits = true};
    StepResult step;
    ASSERT_TRUE(engine->Step({&ch, 1}, &step).ok());
    ASSERT_EQ(step.logits.size(), ref.size());
    double max_diff = 0, max_ref = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      max_diff = std::max(max_diff, std::abs(double(step.logits[i]) - ref[i]));
      max_ref = std::max(max_ref, std::abs(double(ref[i])));
    }
    std::printf("%s %s: %zu positions, max |diff| %.3g, relative %.3g\n", GetParam().c_str(),
                name.c_str(), tokens.size(), max_diff, max_diff / max_ref);
    EXPECT_LT(max_diff / max_ref, 1e-4) << GetParam() << " " << name << ": max |diff| " << max_diff;
    for (size_t m = 0; m < c.memories.size(); ++m) {
      const MemorySpec& mem = c.memories[m];
      const std::string key = name + ".layer" + std::to_string(mem.layer) + "." +
                              std::string(Name(mem.placement)) + ".pkm_ids";
      const std::vector<int32_t> want = Ints(key);
      EXPECT_EQ(want.size(), tokens.size() * mem.heads * mem.knn) << key;
      EXPECT_EQ(step.pkm_ids[m], want) << GetParam() << " " << key;
    }
    engine->Release(s);
  }
}

// The longest sequence scored alone, in chunks of 1 and 7, and beside two other sequences
// in one step: the same log-probabilities.
TEST_P(FamilyTest, ChunkedPrefillAndBatchingChangeNothing) {
  int longest = 0;
  for (int s = 1; s < NumSequences(); ++s) {
    if (Ints("seq" + std::to_string(s) + ".tokens").size() >
        Ints("seq" + std::to_string(longest) + ".tokens").size()) {
      longest = s;
    }
  }
  const std::vector<int32_t> tokens = Ints("seq" + std::to_string(longest) + ".tokens");
  ASSERT_GE(tokens.size(), 8u);
  std::vector<std::vector<float>> runs;
  for (int chunk : {0, 1, 7}) {
    auto engine = MakeEngine();
    auto r = ScoreTokens(*engine, 5, tokens, {.chunk_tokens = chunk});
    ASSERT_TRUE(r.ok()) << r.status();
    runs.push_back(r->logprobs);
  }
  auto engine = MakeEngine();
  std::vector<int32_t> other_a(tokens.rbegin(), tokens.rend()), other_b(tokens.begin(), tokens.begin() + 5);
  const std::span<const int32_t> inputs(tokens.data(), tokens.size() - 1);
  const std::span<const int32_t> targets(tokens.data() + 1, tokens.size() - 1);
  std::vector<SeqChunk> batch = {{.seq = 1, .tokens = other_a},
                                 {.seq = 2, .tokens = inputs, .targets = targets},
                                 {.seq = 3, .tokens = other_b, .all_logits = true}};
  StepResult step;
  ASSERT_TRUE(engine->Step(batch, &step).ok());
  runs.push_back(step.scores[1].logprobs);
  for (size_t r = 1; r < runs.size(); ++r) {
    ASSERT_EQ(runs[r].size(), runs[0].size());
    for (size_t i = 0; i < runs[0].size(); ++i) {
      EXPECT_NEAR(runs[r][i], runs[0][i], 1e-6) << GetParam() << " run " << r << " position " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Committed, FamilyTest, ::testing::ValuesIn(FamilyNames()),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           std::string name = param.param;
                           for (char& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(FamilyTest);

}  // namespace
}  // namespace pkm
