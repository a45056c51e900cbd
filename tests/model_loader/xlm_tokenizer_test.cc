// XLM's dictionary and fastBPE codes on hand-made files small enough to work out by hand. The
// converted-model test (tests/training/test_convert_serving.py) checks the served encoding
// against the source project's on real text.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "model_loader/tokenizer_xlm.h"
#include "tests/common/status_testing.h"
#include "tests/model_loader/test_model_writer.h"

namespace pkm {
namespace {

using testing::IsError;
using Ids = std::vector<int32_t>;

// Ids 0-13 are XLM's specials; the words follow from 14.
const std::vector<std::string> kWords = {
    "<s>", "</s>", "<pad>", "<unk>", "<special0>", "<special1>", "<special2>", "<special3>",
    "<special4>", "<special5>", "<special6>", "<special7>", "<special8>", "<special9>",
    "the",    // 14
    "ca@@",   // 15
    "t",      // 16
    "low@@",  // 17
    "er",     // 18
    "low",    // 19
    "b@@",    // 20
    "a@@",    // 21
    "é@@",    // 22
    "té",     // 23
};

constexpr char kCodes[] =
    "t h 90\n"
    "th e</w> 80\n"
    "c a 70\n"
    "ca t</w> 60\n"  // "cat" is not a word: unmerged to ca@@ t
    "l o 50\n"
    "lo w</w> 40\n"
    "lo w 30\n"
    "e r</w> 20\n"
    "b a 10\n"
    "ba t</w> 9\n"   // neither "bat" nor "ba@@" is a word: b@@ a@@ t
    "t é</w> 8\n";

std::string Lines(const std::vector<std::string>& words) {
  std::string text;
  for (const std::string& w : words) text += w + "\n";
  return text;
}

class XlmTokenizerTest : public ::testing::Test {
 protected:
  StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& dictionary,
                                            const std::string* codes, int vocab) {
    testing::WriteFile(dictionary_path_, dictionary);
    if (codes != nullptr) testing::WriteFile(codes_path_, *codes);
    return LoadXlmTokenizer(dictionary_path_, codes != nullptr ? codes_path_ : "", vocab, 1, 1);
  }
  std::unique_ptr<Tokenizer> LoadOk(bool with_codes = true) {
    const std::string codes = kCodes;
    auto t = Load(Lines(kWords), with_codes ? &codes : nullptr, static_cast<int>(kWords.size()));
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? std::move(t).value() : nullptr;
  }

  testing::TempDir dir_;
  const std::string dictionary_path_ = dir_.Join("xlm_dictionary.txt");
  const std::string codes_path_ = dir_.Join("xlm_bpe_codes.txt");
};

TEST_F(XlmTokenizerTest, MergesByCodeRankAndMapsToDictionaryIds) {
  std::unique_ptr<Tokenizer> tok = LoadOk();
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("the"), (Ids{14}));
  // l o, then lo w (rank 6) before e r</w> (rank 7): low + er</w>.
  EXPECT_EQ(tok->Encode("lower"), (Ids{17, 18}));
  EXPECT_EQ(tok->Encode("low"), (Ids{19}));  // lo w</w>: the word-final code
  EXPECT_EQ(tok->Encode("  the\tlow\n lower \r\n"), (Ids{14, 19, 17, 18}));
  EXPECT_EQ(tok->Encode(""), Ids{});
}

TEST_F(XlmTokenizerTest, SplitsPiecesTheDictionaryLacksBackIntoTheirParts) {
  std::unique_ptr<Tokenizer> tok = LoadOk();
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("cat"), (Ids{15, 16}));      // cat</w> -> ca@@ t
  EXPECT_EQ(tok->Encode("bat"), (Ids{20, 21, 16}));  // bat</w> -> ba@@ t -> b@@ a@@ t
}

TEST_F(XlmTokenizerTest, WorksOnUtf8CharactersAndSendsUnknownPiecesToUnk) {
  std::unique_ptr<Tokenizer> tok = LoadOk();
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("été"), (Ids{22, 23}));  // é, té</w>: é@@ té
  // No code applies: z@@ z@@ z, none of them words.
  EXPECT_EQ(tok->Encode("zzz"), (Ids{3, 3, 3}));
  // "<s>" in text is characters, as fastBPE sees it, not the special.
  EXPECT_EQ(tok->Encode("<s>"), (Ids{3, 3, 3}));
}

TEST_F(XlmTokenizerTest, DecodesJoiningContinuedPiecesAndDroppingSilentSpecials) {
  std::unique_ptr<Tokenizer> tok = LoadOk();
  ASSERT_NE(tok, nullptr);
  const Ids ids = {1, 14, 15, 16, 3, 2, 17, 18, 4, 19, 1};
  EXPECT_EQ(tok->Decode(ids), "the cat <unk> lower low");
  // Every prefix decodes to a prefix of the whole text (streaming relies on it), a trailing
  // "@@" dropped.
  const std::string whole = tok->Decode(ids);
  for (size_t n = 0; n <= ids.size(); ++n) {
    const std::string prefix = tok->Decode(std::vector<int32_t>(ids.begin(), ids.begin() + n));
    EXPECT_EQ(whole.compare(0, prefix.size(), prefix), 0) << n << ": " << prefix;
  }
  EXPECT_EQ(tok->Decode(Ids{14, 15}), "the ca");
  EXPECT_EQ(tok->Decode(Ids{-1, 14, 99}), "the");  // out of range: skipped
  EXPECT_EQ(tok->IdToPiece(15), "ca@@");
  EXPECT_EQ(tok->IdToPiece(99), "");
}

TEST_F(XlmTokenizerTest, DecodesWhatItEncodesOnTokenizedText) {
  std::unique_ptr<Tokenizer> tok = LoadOk();
  ASSERT_NE(tok, nullptr);
  const std::string text = "the cat lower low été bat";
  EXPECT_EQ(tok->Decode(tok->Encode(text)), text);
  EXPECT_EQ(tok->kind(), "xlm");
  EXPECT_EQ(tok->vocab_size(), static_cast<int32_t>(kWords.size()));
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 1);
  EXPECT_TRUE(tok->can_encode());
  EXPECT_TRUE(tok->can_decode());
}

TEST_F(XlmTokenizerTest, WithoutCodesDecodesButCannotEncode) {
  std::unique_ptr<Tokenizer> tok = LoadOk(/*with_codes=*/false);
  ASSERT_NE(tok, nullptr);
  EXPECT_FALSE(tok->can_encode());
  EXPECT_TRUE(tok->can_decode());
  EXPECT_NE(tok->missing_text_reason().find("xlm_bpe_codes.txt"), std::string_view::npos);
  EXPECT_EQ(tok->Encode("the"), Ids{});
  EXPECT_EQ(tok->Decode(Ids{14, 17, 18}), "the lower");
}

TEST_F(XlmTokenizerTest, RefusesMalformedFilesNamingTheLine) {
  const int n = static_cast<int>(kWords.size());
  std::vector<std::string> twice = kWords;
  twice.back() = "the";
  EXPECT_TRUE(IsError(Load(Lines(twice), nullptr, n).status(), StatusCode::kDataLoss,
                      {dictionary_path_ + ":24", "\"the\" is already id 14"}));
  std::vector<std::string> spaced = kWords;
  spaced[14] = "the cat";
  EXPECT_TRUE(IsError(Load(Lines(spaced), nullptr, n).status(), StatusCode::kDataLoss,
                      {dictionary_path_ + ":15", "one word"}));
  std::vector<std::string> no_unk = kWords;
  no_unk[3] = "unk";
  EXPECT_TRUE(IsError(Load(Lines(no_unk), nullptr, n).status(), StatusCode::kInvalidArgument,
                      {"no \"<unk>\""}));
  EXPECT_TRUE(IsError(Load(Lines(kWords), nullptr, n + 1).status(), StatusCode::kInvalidArgument,
                      {"24 words", "vocab_size is 25"}));
  const std::string bad_codes = "t h 3\nth e</w>\n";
  EXPECT_TRUE(IsError(Load(Lines(kWords), &bad_codes, n).status(), StatusCode::kDataLoss,
                      {codes_path_ + ":2", "left right count"}));
  EXPECT_TRUE(IsError(LoadXlmTokenizer(dir_.Join("absent.txt"), "", n, 1, 1).status(),
                      StatusCode::kNotFound, {"absent.txt"}));
}

}  // namespace
}  // namespace pkm
