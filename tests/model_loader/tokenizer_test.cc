#include "model_loader/tokenizer.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "model_loader/tokenizer_sentencepiece.h"
#include "tests/common/status_testing.h"
#include "tests/model_loader/test_model_writer.h"

namespace pkm {
namespace {

using testing::IsError;

constexpr char kTokenizerPath[] = "models/pkm-small/tokenizer.model";

std::unique_ptr<Tokenizer> LoadBundled() {
  StatusOr<std::unique_ptr<Tokenizer>> t = LoadSentencePieceTokenizer(kTokenizerPath);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(t).value() : nullptr;
}

TEST(SentencePieceTokenizerTest, BundledTokenizerRoundTrips) {
  std::unique_ptr<Tokenizer> tok = LoadBundled();
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->vocab_size(), 8000);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);

  const std::string text = "Call me Ishmael.";
  const std::vector<int32_t> ids = tok->Encode(text);
  ASSERT_FALSE(ids.empty());
  EXPECT_LT(ids.size(), text.size());  // pieces, not bytes
  for (int32_t id : ids) {
    EXPECT_GT(id, 2) << "Encode adds no <unk>, <s> or </s>";
    EXPECT_LT(id, 8000);
  }
  EXPECT_EQ(tok->Decode(ids), text);
}

TEST(SentencePieceTokenizerTest, ByteFallbackRoundTripsUnseenCharacters) {
  std::unique_ptr<Tokenizer> tok = LoadBundled();
  ASSERT_NE(tok, nullptr);
  const std::string text = "snow \xE2\x98\x83 and a whale \xF0\x9F\x90\xB3";
  EXPECT_EQ(tok->Decode(tok->Encode(text)), text);
}

TEST(SentencePieceTokenizerTest, PiecesOfSpecialIds) {
  std::unique_ptr<Tokenizer> tok = LoadBundled();
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->IdToPiece(0), "<unk>");
  EXPECT_EQ(tok->IdToPiece(1), "<s>");
  EXPECT_EQ(tok->IdToPiece(2), "</s>");
  EXPECT_EQ(tok->IdToPiece(-1), "");
  EXPECT_EQ(tok->IdToPiece(8000), "");
}

TEST(SentencePieceTokenizerTest, DecodeSkipsIdsOutsideTheVocabulary) {
  std::unique_ptr<Tokenizer> tok = LoadBundled();
  ASSERT_NE(tok, nullptr);
  std::vector<int32_t> ids = tok->Encode("Call me Ishmael.");
  ids.insert(ids.begin() + 1, {-5, 8000, 1 << 30});
  EXPECT_EQ(tok->Decode(ids), "Call me Ishmael.");
}

TEST(SentencePieceTokenizerTest, MissingFile) {
  testing::TempDir dir;
  const std::string path = dir.Join("tokenizer.model");
  EXPECT_TRUE(IsError(LoadSentencePieceTokenizer(path).status(), StatusCode::kNotFound,
                      {path, "no such file"}));
}

TEST(SentencePieceTokenizerTest, CorruptFile) {
  testing::TempDir dir;
  const std::string path = dir.Join("tokenizer.model");
  testing::WriteFile(path, "this is not a protobuf");
  EXPECT_TRUE(IsError(LoadSentencePieceTokenizer(path).status(), StatusCode::kDataLoss,
                      {path, "not a valid SentencePiece model"}));
}

}  // namespace
}  // namespace pkm
