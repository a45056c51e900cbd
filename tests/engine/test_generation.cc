// Generation on the engine: greedy decoding equals the reference's, seeded sampling is
// reproducible, streamed text equals the one-shot decode.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/generation.h"
#include "model_loader/tokenizer.h"
#include "model_loader/tokenizer_sentencepiece.h"
#include "tests/engine/golden_fixture.h"

namespace pkm {
namespace {

using GenerationTest = EngineTest;

TEST_F(GenerationTest, GreedyGenerationMatchesReference) {
  auto engine = MakeEngine();
  ASSERT_NE(engine, nullptr);
  auto tokenizer = LoadSentencePieceTokenizer(std::string(kModelDir) + "/tokenizer.model");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
  for (int g = 0; golden_->Find("gen" + std::to_string(g) + ".prompt") != nullptr; ++g) {
    const std::string name = "gen" + std::to_string(g);
    std::vector<int32_t> prompt = GoldenInts(name + ".prompt");
    std::vector<int32_t> expected = GoldenInts(name + ".tokens");
    GenerateOptions opt;
    opt.sampling.temperature = 0;
    opt.max_new_tokens = static_cast<int>(expected.size());
    opt.ignore_eos = true;
    auto result = Generate(*engine, **tokenizer, g, prompt, opt, /*prefill_chunk=*/5);
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_EQ(result->tokens, expected) << name;
    EXPECT_EQ(result->finish, FinishReason::kLength);
    // The text streamed token by token equals the one-shot decode of the continuation.
    std::vector<int32_t> with_anchor = {prompt.back()};
    with_anchor.insert(with_anchor.end(), expected.begin(), expected.end());
    const std::string anchor = (*tokenizer)->Decode(std::vector<int32_t>{prompt.back()});
    EXPECT_EQ(result->text, (*tokenizer)->Decode(with_anchor).substr(anchor.size())) << name;
  }
}

TEST_F(GenerationTest, SeededSamplingIsReproducibleAndBatchIndependent) {
  auto tokenizer = LoadSentencePieceTokenizer(std::string(kModelDir) + "/tokenizer.model");
  ASSERT_TRUE(tokenizer.ok());
  std::vector<int32_t> prompt = GoldenInts("gen0.prompt");
  GenerateOptions opt;
  opt.sampling = {.temperature = 0.9f, .top_k = 50, .top_p = 0.95f, .seed = 42};
  opt.max_new_tokens = 16;
  opt.ignore_eos = true;
  auto engine = MakeEngine();
  auto first = Generate(*engine, **tokenizer, 1, prompt, opt);
  auto second = Generate(*engine, **tokenizer, 2, prompt, opt, /*prefill_chunk=*/3);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->tokens, second->tokens);
  EXPECT_EQ(first->text, second->text);
  opt.sampling.seed = 43;
  auto other = Generate(*engine, **tokenizer, 3, prompt, opt);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->tokens, first->tokens);
}

}  // namespace
}  // namespace pkm
