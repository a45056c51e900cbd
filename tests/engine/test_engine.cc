// The CPU engine against the PyTorch reference's golden vectors (tests/data/golden, written by
// training/golden.py from the bundled model), plus batch and chunk invariance and KV accounting.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/scoring.h"
#include "tests/engine/golden_fixture.h"

namespace pkm {
namespace {

// Logits at every position within 1e-4 of the reference, relative to the largest |logit|.
TEST_F(EngineTest, LogitsMatchReferenceGolden) {
  auto engine = MakeEngine({.record_pkm_lookups = true});
  ASSERT_NE(engine, nullptr);
  const int vocab = engine->config().vocab_size;
  const int n_seqs = NumGoldenSequences();
  ASSERT_GE(n_seqs, 3);
  for (int s = 0; s < n_seqs; ++s) {
    const std::string name = "seq" + std::to_string(s);
    std::vector<int32_t> tokens = GoldenInts(name + ".tokens");
    std::vector<float> ref = GoldenFloats(name + ".logits");
    ASSERT_EQ(ref.size(), tokens.size() * vocab);
    SeqChunk ch{.seq = s, .tokens = tokens, .all_logits = true};
    StepResult step;
    ASSERT_TRUE(engine->Step({&ch, 1}, &step).ok());
    ASSERT_EQ(step.logits.size(), ref.size());
    EXPECT_EQ(step.logits_row[0], 0);
    double max_diff = 0, max_ref = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      max_diff = std::max(max_diff, std::abs(double(step.logits[i]) - ref[i]));
      max_ref = std::max(max_ref, std::abs(double(ref[i])));
    }
    std::printf("%s: max |diff| %.3g, relative %.3g\n", name.c_str(), max_diff, max_diff / max_ref);
    EXPECT_LT(max_diff / max_ref, 1e-4) << name << ": max |diff| " << max_diff;
    for (size_t l = 0; l < engine->config().memory_layers().size(); ++l) {
      const int layer = engine->config().memory_layers()[l];
      std::vector<int32_t> ids = GoldenInts(name + ".layer" + std::to_string(layer) + ".pkm_ids");
      EXPECT_EQ(step.pkm_ids[l], ids) << name << " memory layer " << layer;
    }
    engine->Release(s);
  }
  EXPECT_EQ(engine->kv_cache().used_blocks(), 0);
}

// A sequence scored alone and inside a mixed batch of 8 (prefills and decodes of different
// lengths) gets the same log-probabilities.
TEST_F(EngineTest, ScoresAreBatchInvariant) {
  std::vector<int32_t> target = GoldenInts("seq2.tokens");
  auto alone_engine = MakeEngine();
  auto alone = ScoreTokens(*alone_engine, 1, target);
  ASSERT_TRUE(alone.ok()) << alone.status().ToString();

  auto engine = MakeEngine();
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> tok(3, engine->config().vocab_size - 1);
  // Seven companions: four already decoding (prefilled earlier), three prefilling now.
  std::vector<std::vector<int32_t>> others(7);
  for (int i = 0; i < 7; ++i) {
    others[i].resize(3 + 9 * i);
    for (auto& t : others[i]) t = tok(rng);
  }
  StepResult step;
  for (int i = 0; i < 4; ++i) {
    SeqChunk ch{.seq = 100 + i, .tokens = others[i]};
    ASSERT_TRUE(engine->Step({&ch, 1}, &step).ok());
  }
  std::vector<int32_t> decode_tokens = {tok(rng), tok(rng), tok(rng), tok(rng)};
  std::vector<SeqChunk> batch;
  for (int i = 0; i < 4; ++i) batch.push_back({.seq = 100 + i, .tokens = {&decode_tokens[i], 1}});
  for (int i = 4; i < 7; ++i) {
    batch.push_back({.seq = 100 + i, .tokens = others[i], .all_logits = i == 5});
  }
  const std::span<const int32_t> inputs(target.data(), target.size() - 1);
  const std::span<const int32_t> targets(target.data() + 1, target.size() - 1);
  batch.insert(batch.begin() + 3, SeqChunk{.seq = 1, .tokens = inputs, .targets = targets});
  ASSERT_TRUE(engine->Step(batch, &step).ok());
  const ChunkScores& batched = step.scores[3];
  ASSERT_EQ(batched.logprobs.size(), alone->logprobs.size());
  for (size_t i = 0; i < batched.logprobs.size(); ++i) {
    EXPECT_NEAR(batched.logprobs[i], alone->logprobs[i], 1e-6) << "position " << i;
  }
}

// Prefill in chunks of 1, 7 and the full length gives the same logits.
TEST_F(EngineTest, ChunkedPrefillMatchesFullPrefill) {
  std::vector<int32_t> tokens = GoldenInts("seq2.tokens");
  std::vector<std::vector<float>> scores;
  for (int chunk : {0, 1, 7}) {
    auto engine = MakeEngine();
    auto r = ScoreTokens(*engine, 5, tokens, {.top_n = 3, .chunk_tokens = chunk});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    scores.push_back(r->logprobs);
    ASSERT_EQ(r->top.size(), r->logprobs.size());
    EXPECT_EQ(r->top[0].size(), 3u);
  }
  for (size_t c = 1; c < scores.size(); ++c) {
    ASSERT_EQ(scores[c].size(), scores[0].size());
    for (size_t i = 0; i < scores[0].size(); ++i) {
      EXPECT_NEAR(scores[c][i], scores[0][i], 1e-6) << "chunking " << c << " position " << i;
    }
  }
}

// The usage windows follow the lookups the engine makes: coverage is the share of distinct
// slot ids among the window's last tokens, whatever the step boundaries; lookups are timed.
TEST_F(EngineTest, PkmUsageFollowsTheLookups) {
  const auto& c = model_->config();
  ASSERT_FALSE(c.memory_layers().empty());
  const int window = 50;
  auto engine = MakeEngine(
      {.record_pkm_lookups = true, .pkm_usage_window = window, .time_pkm_lookups = true});
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(engine->PkmUsage()[0].window_tokens, 0);
  const int per_token = c.memories[0].heads * c.memories[0].knn;
  const double slots = static_cast<double>(c.memories[0].slots());
  std::vector<std::vector<int32_t>> seen(c.memory_layers().size());  // every token's ids, in order
  std::vector<int32_t> tokens = GoldenInts("seq2.tokens");
  for (int step_tokens : {30, 1, 29}) {
    SeqChunk ch{.seq = 1, .tokens = std::span<const int32_t>(tokens).first(step_tokens)};
    StepResult step;
    ASSERT_TRUE(engine->Step({&ch, 1}, &step).ok());
    ASSERT_EQ(step.pkm_lookup_seconds.size(), c.memory_layers().size());
    for (size_t l = 0; l < c.memory_layers().size(); ++l) {
      EXPECT_GT(step.pkm_lookup_seconds[l], 0.0);
      seen[l].insert(seen[l].end(), step.pkm_ids[l].begin(), step.pkm_ids[l].end());
    }
    engine->Release(1);
  }
  const std::vector<PkmLayerUsage> usage = engine->PkmUsage();
  ASSERT_EQ(usage.size(), c.memory_layers().size());
  for (size_t l = 0; l < usage.size(); ++l) {
    EXPECT_EQ(usage[l].layer, c.memory_layers()[l]);
    EXPECT_EQ(usage[l].window_tokens, window);
    const std::set<int32_t> distinct(seen[l].end() - window * per_token, seen[l].end());
    EXPECT_DOUBLE_EQ(usage[l].coverage, static_cast<double>(distinct.size()) / slots);
    // Concentrated on at most window * per_token of the slots: KL >= log(slots / hits).
    EXPECT_GE(usage[l].kl_to_uniform, std::log(slots / (window * per_token)) - 1e-9);
    EXPECT_LE(usage[l].kl_to_uniform, std::log(slots));
  }
}

TEST_F(EngineTest, KvBlocksAreFreedAndExhaustionChangesNothing) {
  // Room for 4 blocks = 64 positions.
  const auto& c = model_->config();
  const size_t block_bytes =
      KvCache::BytesPerPosition(c.n_layers, c.attention.n_kv_heads, c.head_dim()) * KvCache::kBlockSize;
  auto engine = MakeEngine({.kv_cache_bytes = 4 * block_bytes});
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(engine->kv_cache().num_blocks(), 4);
  std::vector<int32_t> tokens(40, 5);
  SeqChunk a{.seq = 1, .tokens = tokens};
  StepResult step;
  ASSERT_TRUE(engine->Step({&a, 1}, &step).ok());
  EXPECT_EQ(engine->kv_cache().used_blocks(), 3);
  SeqChunk b{.seq = 2, .tokens = std::span<const int32_t>(tokens).first(17)};
  Status full = engine->Step({&b, 1}, &step);
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted) << full.ToString();
  EXPECT_EQ(engine->SequenceLength(2), 0);
  EXPECT_EQ(engine->kv_cache().used_blocks(), 3);
  engine->Release(1);
  EXPECT_EQ(engine->kv_cache().used_blocks(), 0);
  EXPECT_EQ(engine->SequenceLength(1), 0);
  ASSERT_TRUE(engine->Step({&b, 1}, &step).ok());
  EXPECT_EQ(engine->kv_cache().used_blocks(), 2);
}

TEST_F(EngineTest, BadStepsAreRefusedWithoutSideEffects) {
  auto engine = MakeEngine();
  StepResult step;
  std::vector<int32_t> bad = {1, engine->config().vocab_size};
  SeqChunk ch{.seq = 1, .tokens = bad};
  Status s = engine->Step({&ch, 1}, &step);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("outside the vocabulary"), std::string::npos) << s.ToString();
  std::vector<int32_t> ok = {1, 2};
  SeqChunk twice[2] = {{.seq = 1, .tokens = ok}, {.seq = 1, .tokens = ok}};
  EXPECT_EQ(engine->Step(twice, &step).code(), StatusCode::kInvalidArgument);
  SeqChunk empty{.seq = 3};
  EXPECT_EQ(engine->Step({&empty, 1}, &step).code(), StatusCode::kInvalidArgument);
  std::vector<int32_t> too_long(engine->config().max_seq_len + 1, 5);
  SeqChunk longer{.seq = 4, .tokens = too_long};
  s = engine->Step({&longer, 1}, &step);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("max_seq_len"), std::string::npos) << s.ToString();
  EXPECT_EQ(engine->kv_cache().used_blocks(), 0);
}

}  // namespace
}  // namespace pkm
