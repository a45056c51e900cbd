// LoadModelTokenizer picks the tokenizer by the files a model directory holds, in the order
// model_tokenizer.h gives, and falls back to token ids only.
#include "model_loader/model_tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "tests/common/status_testing.h"
#include "tests/model_loader/test_model_writer.h"

namespace pkm {
namespace {

using testing::IsError;

class ModelTokenizerTest : public ::testing::Test {
 protected:
  ModelTokenizerTest() { model_.Write(dir_.path()); }

  StatusOr<std::unique_ptr<Tokenizer>> Load() {
    StatusOr<LoadedModel> loaded = LoadModel(dir_.path());
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    if (!loaded.ok()) return loaded.status();
    return LoadModelTokenizer(*loaded);
  }
  std::string Kind() {
    StatusOr<std::unique_ptr<Tokenizer>> t = Load();
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? std::string((*t)->kind()) : "";
  }
  // A dictionary of the model's vocabulary: XLM's first four specials, then words.
  void WriteXlmDictionary() {
    std::string words = "<s>\n</s>\n<pad>\n<unk>\n";
    for (int i = 4; i < model_.config.at("vocab_size").get<int>(); ++i) {
      // Appended piecewise: GCC 12 warns falsely (-Wrestrict) on "w" + std::to_string(i).
      words.append("w").append(std::to_string(i)).append("\n");
    }
    testing::WriteFile(dir_.Join("xlm_dictionary.txt"), words);
  }

  testing::TempDir dir_;
  testing::TestModel model_ = testing::TestModel::Tiny();
};

TEST_F(ModelTokenizerTest, NoTokenizerFilesServeTokenIds) {
  StatusOr<std::unique_ptr<Tokenizer>> t = Load();
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->kind(), "none");
  EXPECT_FALSE((*t)->can_encode());
  EXPECT_FALSE((*t)->can_decode());
  EXPECT_EQ((*t)->vocab_size(), model_.config.at("vocab_size").get<int>());
}

TEST_F(ModelTokenizerTest, AnXlmDictionaryDecodesAndItsCodesEncode) {
  WriteXlmDictionary();
  EXPECT_EQ(Kind(), "xlm");
  EXPECT_FALSE((*Load())->can_encode());
  testing::WriteFile(dir_.Join("xlm_bpe_codes.txt"), "w 4</w> 1\n");
  EXPECT_TRUE((*Load())->can_encode());
  EXPECT_EQ((*Load())->Encode("w4 w5"), (std::vector<int32_t>{4, 3, 3}));  // w@@ 5: unknown
}

TEST_F(ModelTokenizerTest, TiktokenNeedsItsJson) {
  testing::WriteFile(dir_.Join("tokenizer.tiktoken"), "YQ== 0\nYg== 1\nYw== 2\n");  // a b c
  EXPECT_TRUE(IsError(Load().status(), StatusCode::kNotFound, {"tiktoken.json"}));
  testing::WriteFile(dir_.Join("tiktoken.json"), R"({"pattern": "cl100k"})");
  EXPECT_EQ(Kind(), "tiktoken");
  WriteXlmDictionary();  // tiktoken comes first
  EXPECT_EQ(Kind(), "tiktoken");
}

TEST_F(ModelTokenizerTest, AFileThatIsNotWhatItsNameSaysIsAnError) {
  testing::WriteFile(dir_.Join("tokenizer.model"), "not a SentencePiece model");
  EXPECT_FALSE(Load().ok());
  testing::WriteFile(dir_.Join("xlm_dictionary.txt"), "only\nthree\nwords\n");
  std::filesystem::remove(dir_.Join("tokenizer.model"));
  EXPECT_TRUE(IsError(Load().status(), StatusCode::kInvalidArgument, {"3 words", "vocab_size"}));
}

}  // namespace
}  // namespace pkm
