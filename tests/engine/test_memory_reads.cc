// A request may read the memory layers below their trained knn and heads (SeqChunk::memory):
// its logits are those of the smaller lookup whatever it is batched with, reading the trained
// values changes nothing, and out-of-range reads are refused naming the field.
#include <cstring>
#include <vector>

#include "tests/common/status_testing.h"
#include "tests/engine/golden_fixture.h"

namespace pkm {
namespace {

using testing::IsError;

// Logits of every token of `tokens` as sequence 1, with `reads`, beside `companions` (each a
// sequence of its own, read in full).
std::vector<float> Logits(Engine& engine, const std::vector<int32_t>& tokens, MemoryReads reads,
                          const std::vector<std::vector<int32_t>>& companions = {}) {
  std::vector<SeqChunk> batch;
  for (size_t i = 0; i < companions.size(); ++i) {
    batch.push_back({.seq = 100 + static_cast<SeqId>(i), .tokens = companions[i]});
  }
  batch.push_back({.seq = 1, .tokens = tokens, .all_logits = true, .memory = reads});
  StepResult step;
  EXPECT_TRUE(engine.Step(batch, &step).ok());
  for (const SeqChunk& c : batch) engine.Release(c.seq);
  const int vocab = engine.config().vocab_size;
  const int row = step.logits_row.back();
  const auto first = step.logits.begin() + static_cast<std::ptrdiff_t>(row) * vocab;
  return std::vector<float>(first, first + static_cast<std::ptrdiff_t>(tokens.size()) * vocab);
}

bool Same(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST_F(EngineTest, ReadingLessOfTheMemoryIsBatchInvariantAndChangesTheLogits) {
  auto engine = MakeEngine();
  ASSERT_NE(engine, nullptr);
  const MemorySpec& m = engine->config().memories[0];
  const std::vector<int32_t> tokens = GoldenInts("seq1.tokens");
  const std::vector<std::vector<int32_t>> companions = {GoldenInts("seq0.tokens"),
                                                        GoldenInts("seq2.tokens")};
  const std::vector<float> full = Logits(*engine, tokens, {});
  EXPECT_TRUE(Same(Logits(*engine, tokens, {.knn = m.knn, .heads = m.heads}), full));
  for (MemoryReads reads : {MemoryReads{.knn = m.knn / 4}, MemoryReads{.heads = 1},
                            MemoryReads{.knn = 1, .heads = 1}}) {
    const std::vector<float> alone = Logits(*engine, tokens, reads);
    EXPECT_FALSE(Same(alone, full)) << reads.knn << " " << reads.heads;
    EXPECT_TRUE(Same(Logits(*engine, tokens, reads, companions), alone)) << reads.knn;
  }
}

TEST_F(EngineTest, ReadsBeyondTheTrainedValuesAreRefused) {
  auto engine = MakeEngine();
  ASSERT_NE(engine, nullptr);
  const MemorySpec& m = engine->config().memories[0];
  auto check = [&](MemoryReads reads) {
    return CheckMemoryReads(reads, engine->config(), engine->backend());
  };
  EXPECT_TRUE(check({}).ok());
  EXPECT_TRUE(IsError(check({.knn = m.knn + 1}), StatusCode::kInvalidArgument,
                      {"memory_knn must be in [1, " + std::to_string(m.knn) + "]"}));
  EXPECT_TRUE(IsError(check({.heads = -1}), StatusCode::kInvalidArgument, {"memory_heads"}));
  const std::vector<int32_t> tokens = {1, 5, 9};
  SeqChunk chunk{.seq = 1, .tokens = tokens, .memory = {.knn = m.knn + 1}};
  StepResult step;
  EXPECT_EQ(engine->Step({&chunk, 1}, &step).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pkm
