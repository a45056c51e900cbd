// The engine on the CUDA backend (the plugin libpkm_cuda.so) against the CPU engine, on the
// bundled model: logits within 1e-2 relative, the same greedy generations for 32 prompts,
// perplexity within 1e-3 relative, and a sequence's scores independent of its batch. Skipped,
// saying why, where the plugin cannot run (no GPU, no driver, or a build without CUDA).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/backend_loader.h"
#include "engine/engine.h"
#include "engine/scoring.h"
#include "tests/engine/golden_fixture.h"

namespace pkm {
namespace {

class CudaEngineTest : public EngineTest {
 protected:
  // The CUDA engine, or null with the reason in skip_.
  std::unique_ptr<Engine> MakeCudaEngine() {
    const std::string plugin = PKM_CUDA_PLUGIN;
    if (plugin.empty()) {
      skip_ = "this build has no CUDA plugin (configure with PKMSERVE_WITH_CUDA)";
      return nullptr;
    }
    StatusOr<std::unique_ptr<Backend>> backend = LoadCudaBackend(plugin, 0, nullptr);
    if (!backend.ok()) {
      skip_ = backend.status().message() + ": the CUDA engine tests run on a GPU machine";
      return nullptr;
    }
    auto engine = Engine::Create(*model_, std::move(*backend), {});
    EXPECT_TRUE(engine.ok()) << engine.status().ToString();
    return engine.ok() ? std::move(*engine) : nullptr;
  }
  std::string skip_;
};

// PKM_CUDA_MUST_RUN (the plugin built on HIP-CPU, which needs no GPU): not running is a failure.
#if PKM_CUDA_MUST_RUN
#define CUDA_ENGINE_OR_SKIP(name)                  \
  std::unique_ptr<Engine> name = MakeCudaEngine(); \
  if (!name) FAIL() << skip_
#else
#define CUDA_ENGINE_OR_SKIP(name)                  \
  std::unique_ptr<Engine> name = MakeCudaEngine(); \
  if (!name) GTEST_SKIP() << skip_
#endif

std::vector<int32_t> Greedy(Engine& engine, SeqId seq, const std::vector<int32_t>& prompt,
                            int new_tokens) {
  std::vector<int32_t> out;
  std::vector<int32_t> next = prompt;
  const int vocab = engine.config().vocab_size;
  for (int i = 0; i < new_tokens; ++i) {
    SeqChunk chunk{.seq = seq, .tokens = next};
    StepResult step;
    EXPECT_TRUE(engine.Step({&chunk, 1}, &step).ok());
    if (step.logits.size() < static_cast<size_t>(vocab)) return out;
    const auto row = step.logits.begin() + static_cast<long>(step.logits_row[0]) * vocab;
    const int32_t best = static_cast<int32_t>(std::max_element(row, row + vocab) - row);
    out.push_back(best);
    next = {best};
  }
  engine.Release(seq);
  return out;
}

TEST_F(CudaEngineTest, LogitsMatchTheCpuEngine) {
  CUDA_ENGINE_OR_SKIP(cuda);
  auto cpu = MakeEngine();
  const int vocab = cpu->config().vocab_size;
  for (int s = 0; s < NumGoldenSequences(); ++s) {
    std::vector<int32_t> tokens = GoldenInts("seq" + std::to_string(s) + ".tokens");
    SeqChunk chunk{.seq = s, .tokens = tokens, .all_logits = true};
    StepResult want, got;
    ASSERT_TRUE(cpu->Step({&chunk, 1}, &want).ok());
    ASSERT_TRUE(cuda->Step({&chunk, 1}, &got).ok());
    ASSERT_EQ(got.logits.size(), tokens.size() * vocab);
    double max_diff = 0, max_ref = 0;
    for (size_t i = 0; i < want.logits.size(); ++i) {
      max_diff = std::max(max_diff, std::abs(double(got.logits[i]) - want.logits[i]));
      max_ref = std::max(max_ref, std::abs(double(want.logits[i])));
    }
    EXPECT_LT(max_diff / max_ref, 1e-2) << "seq" << s << ": max |diff| " << max_diff;
    cpu->Release(s);
    cuda->Release(s);
  }
}

TEST_F(CudaEngineTest, GreedyGenerationsEqualTheCpuEngines) {
  CUDA_ENGINE_OR_SKIP(cuda);
  auto cpu = MakeEngine();
  std::mt19937 rng(11);
  std::uniform_int_distribution<int32_t> token(3, cpu->config().vocab_size - 1);
  std::uniform_int_distribution<int> length(1, 40);
  for (int p = 0; p < 32; ++p) {
    std::vector<int32_t> prompt(static_cast<size_t>(length(rng)));
    for (int32_t& t : prompt) t = token(rng);
    EXPECT_EQ(Greedy(*cuda, p, prompt, 16), Greedy(*cpu, p, prompt, 16)) << "prompt " << p;
  }
}

TEST_F(CudaEngineTest, PerplexityMatchesTheCpuEngine) {
  CUDA_ENGINE_OR_SKIP(cuda);
  auto cpu = MakeEngine();
  int scored = 0;
  for (int s = 0; s < NumGoldenSequences(); ++s) {
    std::vector<int32_t> tokens = GoldenInts("seq" + std::to_string(s) + ".tokens");
    if (tokens.size() < 2) continue;  // a one-token sequence has no target to score
    ++scored;
    auto want = ScoreTokens(*cpu, s, tokens);
    auto got = ScoreTokens(*cuda, s, tokens);
    ASSERT_TRUE(want.ok()) << "cpu: " << want.status().ToString();
    ASSERT_TRUE(got.ok()) << "cuda: " << got.status().ToString();
    double want_nll = 0, got_nll = 0;
    for (float v : want->logprobs) want_nll -= v;
    for (float v : got->logprobs) got_nll -= v;
    const double n = static_cast<double>(want->logprobs.size());
    EXPECT_NEAR(std::exp(got_nll / n), std::exp(want_nll / n), 1e-3 * std::exp(want_nll / n))
        << "seq" << s;
  }
  EXPECT_GT(scored, 0);
}

// A sequence scored alone and beside seven companions (decoding and prefilling) on the GPU.
TEST_F(CudaEngineTest, ScoresDoNotDependOnBatchCompanions) {
  CUDA_ENGINE_OR_SKIP(alone_engine);
  CUDA_ENGINE_OR_SKIP(engine);
  std::vector<int32_t> target = GoldenInts("seq2.tokens");
  auto alone = ScoreTokens(*alone_engine, 1, target);
  ASSERT_TRUE(alone.ok()) << alone.status().ToString();
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> tok(3, engine->config().vocab_size - 1);
  std::vector<std::vector<int32_t>> others(7);
  StepResult step;
  for (int i = 0; i < 7; ++i) {
    others[i].resize(static_cast<size_t>(3 + 9 * i));
    for (auto& t : others[i]) t = tok(rng);
    if (i < 4) {
      SeqChunk ch{.seq = 100 + i, .tokens = others[i]};
      ASSERT_TRUE(engine->Step({&ch, 1}, &step).ok());
    }
  }
  std::vector<int32_t> decode_tokens = {tok(rng), tok(rng), tok(rng), tok(rng)};
  std::vector<SeqChunk> batch;
  for (int i = 0; i < 4; ++i) batch.push_back({.seq = 100 + i, .tokens = {&decode_tokens[i], 1}});
  for (int i = 4; i < 7; ++i) batch.push_back({.seq = 100 + i, .tokens = others[i]});
  const std::span<const int32_t> inputs(target.data(), target.size() - 1);
  const std::span<const int32_t> targets(target.data() + 1, target.size() - 1);
  batch.insert(batch.begin() + 3, SeqChunk{.seq = 1, .tokens = inputs, .targets = targets});
  ASSERT_TRUE(engine->Step(batch, &step).ok());
  const ChunkScores& batched = step.scores[3];
  ASSERT_EQ(batched.logprobs.size(), alone->logprobs.size());
  for (size_t i = 0; i < batched.logprobs.size(); ++i) {
    EXPECT_NEAR(batched.logprobs[i], alone->logprobs[i], 1e-5) << "position " << i;
  }
}

TEST_F(CudaEngineTest, DeviceMemoryIsAccounted) {
  CUDA_ENGINE_OR_SKIP(cuda);
  EXPECT_GE(cuda->backend().allocated_bytes(), cuda->weight_bytes() + cuda->kv_cache_bytes());
  EXPECT_GT(cuda->backend().memory_total_bytes(), cuda->backend().allocated_bytes());
  const DeviceMemoryUse use = cuda->device_memory();
  const ModelConfig& c = cuda->config();
  EXPECT_EQ(use.pkm_values, c.memory_layers().size() * c.memories[0].slots() * c.memories[0].v_dim *
                                sizeof(float));
  EXPECT_EQ(use.kv_cache, cuda->kv_cache_bytes());
  EXPECT_EQ(use.total(), cuda->backend().allocated_bytes());
}

}  // namespace
}  // namespace pkm
