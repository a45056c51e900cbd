// The tiktoken tokenizer on hand-made ranks files small enough to work out by hand. The match
// with the real tiktoken on cl100k_base is tests/model_loader/tiktoken_ref.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "model_loader/tokenizer_tiktoken.h"
#include "tests/common/status_testing.h"
#include "tests/model_loader/test_model_writer.h"

namespace pkm {
namespace {

using testing::IsError;
using Ids = std::vector<int32_t>;

// base64: a=YQ== b=Yg== c=Yw== " "=IA== \xFF=/w== ab=YWI= bc=YmM= abab=YWJhYg== aa=YWE=
constexpr char kRanks[] =
    "YQ== 0\n"
    "Yg== 1\n"
    "Yw== 2\n"
    "IA== 3\n"
    "YWI= 5\n"
    "YmM= 6\n"
    "YWJhYg== 7\n"
    "YWE= 8\n"
    "/w== 9\n";

class TiktokenTest : public ::testing::Test {
 protected:
  StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& ranks,
                                            const TiktokenOptions& options) {
    testing::WriteFile(path_, ranks);
    return LoadTiktokenTokenizer(path_, options);
  }
  std::unique_ptr<Tokenizer> LoadOk(const std::string& ranks = kRanks,
                                    TiktokenOptions options = Specials()) {
    StatusOr<std::unique_ptr<Tokenizer>> t = Load(ranks, options);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? std::move(t).value() : nullptr;
  }
  static TiktokenOptions Specials() {
    TiktokenOptions options;
    options.special_tokens = {{"<|eot|>", 100}, {"<|x", 101}, {"<|x|>", 102}};
    options.bos_id = 101;
    options.eos_id = 100;
    return options;
  }

  testing::TempDir dir_;
  const std::string path_ = dir_.Join("ranks.tiktoken");
};

TEST_F(TiktokenTest, MergesTheLowestRankedPairFirst) {
  std::unique_ptr<Tokenizer> tok = LoadOk();
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("abc"), (Ids{5, 2}));  // ab (5) before bc (6)
  // The same vocabulary with bc ranked first merges the other way.
  std::unique_ptr<Tokenizer> swapped = LoadOk("YQ== 0\nYg== 1\nYw== 2\nYmM= 4\nYWI= 5\n");
  ASSERT_NE(swapped, nullptr);
  EXPECT_EQ(swapped->Encode("abc"), (Ids{0, 4}));
}

TEST_F(TiktokenTest, MergesChainAndTiesGoLeft) {
  std::unique_ptr<Tokenizer> tok = LoadOk();
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("ababc"), (Ids{7, 2}));  // ab, ab, then abab
  EXPECT_EQ(tok->Encode("abab"), (Ids{7}));      // a whole piece in the vocabulary
  EXPECT_EQ(tok->Encode("aaa"), (Ids{8, 0}));    // two equal pairs: the left one merges
}

TEST_F(TiktokenTest, LongPiecesMergeLikeShortOnes) {
  std::unique_ptr<Tokenizer> tok = LoadOk();
  ASSERT_NE(tok, nullptr);
  // One regex piece of 200 kB: every "ab" merges, then every "abab" (a rescan per merge, as
  // tiktoken does, would take minutes here).
  std::string text;
  for (int i = 0; i < 50000; ++i) text += "abab";
  const Ids ids = tok->Encode(text + "c");
  ASSERT_EQ(ids.size(), 50001u);
  EXPECT_EQ(ids.front(), 7);
  EXPECT_EQ(ids[49999], 7);
  EXPECT_EQ(ids.back(), 2);
}

TEST_F(TiktokenTest, TheRegexSplitsPiecesBeforeMerging) {
  std::unique_ptr<Tokenizer> tok = LoadOk();
  ASSERT_NE(tok, nullptr);
  // cl100k keeps a leading space with the word: " ab" is one piece, merged to " " + "ab".
  EXPECT_EQ(tok->Encode("ab ab"), (Ids{5, 3, 5}));
  // The pattern is a parameter: with \S+|\s+ the space before a word is a piece of its own.
  TiktokenOptions options = Specials();
  options.pattern = R"(\S+|\s+)";
  std::unique_ptr<Tokenizer> words = LoadOk(kRanks, options);
  ASSERT_NE(words, nullptr);
  EXPECT_EQ(words->Encode("ab  ab"), (Ids{5, 3, 3, 5}));
  EXPECT_EQ(tok->Encode("ab  ab"), (Ids{5, 3, 3, 5}));  // cl100k: "ab", " ", " ab"
}

TEST_F(TiktokenTest, SpecialTokensInTheTextAreEncodedAsSpecials) {
  std::unique_ptr<Tokenizer> tok = LoadOk();
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("ab<|eot|>c"), (Ids{5, 100, 2}));
  EXPECT_EQ(tok->Encode("<|eot|><|eot|>"), (Ids{100, 100}));
  EXPECT_EQ(tok->Encode("a<|x|>b"), (Ids{0, 102, 1}));  // the longest special at one position
  EXPECT_EQ(tok->Encode("a<|xb"), (Ids{0, 101, 1}));
  EXPECT_EQ(tok->Encode("<|x|><|x<|eot|>c<|x|>"), (Ids{102, 101, 100, 2, 102}));
  EXPECT_EQ(tok->Encode("ab<|eot|"), (Ids{5}));  // not a special; its bytes have no tokens here
  EXPECT_EQ(tok->Decode(Ids{0, 102, 1}), "a<|x|>b");
  EXPECT_EQ(tok->bos_id(), 101);
  EXPECT_EQ(tok->eos_id(), 100);
}

TEST_F(TiktokenTest, BytesOutsideTheVocabularyAreDroppedAndInvalidUtf8IsEncoded) {
  std::unique_ptr<Tokenizer> tok = LoadOk();
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("a\u00e9b"), (Ids{0, 1}));  // é has no token here
  // \xFF is not UTF-8 but is in the vocabulary: it survives the regex; decoded it is U+FFFD,
  // as text in the API's string fields must be UTF-8.
  EXPECT_EQ(tok->Encode("a\377b"), (Ids{0, 9, 1}));  // \377 is \xFF
  EXPECT_EQ(tok->Decode(tok->Encode("ab\377\377c")), "ab\uFFFD\uFFFDc");
}

TEST_F(TiktokenTest, DecodeAndPieces) {
  std::unique_ptr<Tokenizer> tok = LoadOk();
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->vocab_size(), 103);  // one past the largest special id
  EXPECT_EQ(tok->IdToPiece(5), "ab");
  EXPECT_EQ(tok->IdToPiece(9), "\uFFFD");  // the byte \xFF, shown as text
  EXPECT_EQ(tok->IdToPiece(100), "<|eot|>");
  EXPECT_EQ(tok->IdToPiece(4), "");  // a hole in the ranks
  EXPECT_EQ(tok->IdToPiece(-1), "");
  EXPECT_EQ(tok->IdToPiece(103), "");
  EXPECT_EQ(tok->Decode(Ids{5, -3, 4, 103, 2, 1 << 30}), "abc");
  EXPECT_EQ(tok->Encode(""), Ids{});
}

TEST_F(TiktokenTest, EncodesConcurrently) {
  std::unique_ptr<Tokenizer> tok = LoadOk();
  ASSERT_NE(tok, nullptr);
  // Each Encode has its own PCRE2 match data and JIT stack; the tokenizer itself is shared.
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "abc ab<|eot|>aaa \377";
  const Ids expected = tok->Encode(text);
  std::vector<Ids> results(4);
  std::vector<std::thread> threads;
  for (Ids& result : results) {
    threads.emplace_back([&tok, &text, &result] {
      for (int i = 0; i < 20; ++i) result = tok->Encode(text);
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const Ids& result : results) EXPECT_EQ(result, expected);
}

TEST_F(TiktokenTest, CrlfAndBlankLinesInTheFile) {
  std::unique_ptr<Tokenizer> tok = LoadOk("YQ== 0\r\n\r\nYg== 1\r\nYWI= 2\r\n", {});
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("abba"), (Ids{2, 1, 0}));
  EXPECT_EQ(tok->vocab_size(), 3);
  EXPECT_EQ(tok->bos_id(), -1);
}

TEST_F(TiktokenTest, MissingFile) {
  EXPECT_TRUE(IsError(LoadTiktokenTokenizer(path_, {}).status(), StatusCode::kNotFound,
                      {path_, "no such file"}));
}

TEST_F(TiktokenTest, MalformedLinesAreNamed) {
  struct Case {
    std::string ranks;
    std::string line;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"YQ== 0\nYg== 1\nYw==2\n", ":3:", "found no space"},
      {"YQ== 0\nY*== 1\n", ":2:", "'Y*==' is not base64"},
      {"YQ== 0\nYWI 1\n", ":2:", "'YWI' is not base64"},
      {"YQ== zero\n", ":1:", "rank 'zero' is not an integer"},
      {"YQ== -1\n", ":1:", "rank '-1'"},
      {"YQ== 1x\n", ":1:", "rank '1x'"},
      {"YQ== 99999999999\n", ":1:", "rank '99999999999'"},
      {"YQ== 0\n\nYg== 0\n", ":3:", "rank 0 was already given on line 1"},
      {"YQ== 0\nYQ== 1\n", ":2:", "token 'YQ==' appears twice"},
  };
  for (const Case& c : cases) {
    EXPECT_TRUE(
        IsError(Load(c.ranks, {}).status(), StatusCode::kDataLoss, {path_ + c.line, c.message}))
        << c.ranks;
  }
  EXPECT_TRUE(IsError(Load("\n\n", {}).status(), StatusCode::kDataLoss, {path_, "no ranks"}));
}

TEST_F(TiktokenTest, OptionsThatDoNotFitTheFile) {
  TiktokenOptions options;
  options.special_tokens = {{"<|eot|>", 5}};
  EXPECT_TRUE(IsError(Load(kRanks, options).status(), StatusCode::kInvalidArgument,
                      {path_, "'<|eot|>' has id 5, which is a rank of the file"}));
  options.special_tokens = {{"<|a|>", 50}, {"<|b|>", 50}};
  EXPECT_TRUE(
      IsError(Load(kRanks, options).status(), StatusCode::kInvalidArgument, {"share id 50"}));
  options.special_tokens = {{"<|a|>", 50}, {"<|a|>", 51}};
  EXPECT_TRUE(
      IsError(Load(kRanks, options).status(), StatusCode::kInvalidArgument, {"listed twice"}));
  options.special_tokens = {{"", 50}};
  EXPECT_TRUE(
      IsError(Load(kRanks, options).status(), StatusCode::kInvalidArgument, {"needs a text"}));
  options = {};
  options.eos_id = 4;
  EXPECT_TRUE(IsError(Load(kRanks, options).status(), StatusCode::kInvalidArgument,
                      {"eos id 4 is neither"}));
  options = {};
  options.pattern = "(unclosed";
  EXPECT_TRUE(IsError(Load(kRanks, options).status(), StatusCode::kInvalidArgument,
                      {"pattern does not compile"}));
}

TEST_F(TiktokenTest, Llama3PatternIsCl100ks) {
  EXPECT_STREQ(kLlama3Pattern, kCl100kPattern);
  EXPECT_EQ(TiktokenOptions{}.pattern, kCl100kPattern);
}

}  // namespace
}  // namespace pkm
