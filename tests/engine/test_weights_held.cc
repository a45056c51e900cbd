// Weight matrices held as stored (the bundled model's fp16, read from the file's mapping) give
// the same logits, bit for bit, as the same weights widened to fp32, in less memory.
#include <cstring>
#include <vector>

#include "tests/engine/golden_fixture.h"

namespace pkm {
namespace {

std::vector<float> AllLogits(Engine& engine, const std::vector<int32_t>& tokens) {
  SeqChunk chunk{.seq = 1, .tokens = tokens, .all_logits = true};
  StepResult step;
  EXPECT_TRUE(engine.Step({&chunk, 1}, &step).ok());
  engine.Release(1);
  return step.logits;
}

TEST_F(EngineTest, WeightsAsStoredGiveTheBitsOfTheirFp32Widening) {
  auto stored = MakeEngine({});
  auto widened = MakeEngine({.held = {WeightsHeld::kF32, WeightsHeld::kF32}});
  ASSERT_NE(stored, nullptr);
  ASSERT_NE(widened, nullptr);
  for (int s = 0; s < NumGoldenSequences(); ++s) {
    const std::vector<int32_t> tokens = GoldenInts("seq" + std::to_string(s) + ".tokens");
    const std::vector<float> a = AllLogits(*stored, tokens), b = AllLogits(*widened, tokens);
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << "sequence " << s;
  }
}

TEST_F(EngineTest, WeightsAsStoredAreUsedFromTheMappingInHalfTheBytes) {
  auto stored = MakeEngine({});
  auto widened = MakeEngine({.held = {WeightsHeld::kF32, WeightsHeld::kF32}});
  ASSERT_NE(stored, nullptr);
  ASSERT_NE(widened, nullptr);
  const ModelWeights& s = stored->weights();
  const ModelWeights& w = widened->weights();
  const size_t f16 = s.bytes_of[static_cast<int>(WeightType::kF16)];
  // Every matrix of the fp16 model stays fp16 and is read from the file, none is copied.
  EXPECT_GT(f16, size_t{10} << 20);
  EXPECT_EQ(s.bytes_of[static_cast<int>(WeightType::kF32)], 0u);
  EXPECT_EQ(s.mapped_bytes, f16);
  EXPECT_EQ(w.mapped_bytes, 0u);
  EXPECT_EQ(w.bytes_of[static_cast<int>(WeightType::kF32)], 2 * f16);
  EXPECT_EQ(w.bytes - s.bytes, f16);
}

}  // namespace
}  // namespace pkm
