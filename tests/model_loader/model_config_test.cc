#include "model_loader/model_config.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "tests/common/status_testing.h"
#include "tests/model_loader/test_model_writer.h"

namespace pkm {
namespace {

using ::nlohmann::json;
using testing::IsError;

constexpr char kPath[] = "models/tiny/config.json";

StatusOr<ModelConfig> ParseMutated(const std::function<void(json&)>& mutate) {
  json j = testing::TestModel::Tiny().config;
  mutate(j);
  return ParseModelConfig(j.dump(2), kPath);
}

Status ErrorOf(const std::function<void(json&)>& mutate) { return ParseMutated(mutate).status(); }

TEST(ModelConfigTest, ReadsVersion1AsTheVersion2ModelItAlwaysWas) {
  StatusOr<ModelConfig> c = ParseMutated([](json&) {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->format_version, 1);
  EXPECT_EQ(c->architecture, "pkm-transformer");
  EXPECT_EQ(c->family, "pkmserve");
  EXPECT_EQ(c->vocab_size, 32);
  EXPECT_EQ(c->d_model, 16);
  EXPECT_EQ(c->n_layers, 2);
  EXPECT_EQ(c->max_seq_len, 64);
  EXPECT_EQ(c->norm.kind, NormKind::kLayerNorm);
  EXPECT_EQ(c->norm.eps, 1e-5);
  EXPECT_TRUE(c->norm.bias);
  EXPECT_EQ(c->block, BlockOrder::kPreNorm);
  EXPECT_FALSE(c->embedding_norm);
  EXPECT_TRUE(c->final_norm);
  EXPECT_EQ(c->positions.kind, PositionKind::kRope);
  EXPECT_EQ(c->positions.rope_theta, 10000.0);
  EXPECT_EQ(c->attention.n_heads, 2);
  EXPECT_EQ(c->attention.n_kv_heads, 2);
  EXPECT_EQ(c->head_dim(), 8);
  EXPECT_TRUE(c->attention.bias);
  EXPECT_EQ(c->ffn.kind, FfnKind::kGelu);
  EXPECT_EQ(c->ffn.hidden, 32);
  EXPECT_TRUE(c->ffn.bias);
  EXPECT_TRUE(c->lm_head.tied);
  EXPECT_FALSE(c->lm_head.bias);
  EXPECT_EQ(c->bos_id, 1);
  EXPECT_EQ(c->eos_id, 2);
  ASSERT_EQ(c->memories.size(), 1u);
  const MemorySpec& m = c->memories[0];
  EXPECT_EQ(m.layer, 1);
  EXPECT_EQ(m.placement, MemoryPlacement::kReplace);
  EXPECT_EQ(m.heads, 2);
  EXPECT_EQ(m.knn, 2);
  EXPECT_EQ(m.n_keys, 4);
  EXPECT_EQ(m.k_dim, 8);
  EXPECT_EQ(m.v_dim, 16);
  EXPECT_EQ(m.slots(), 16);
  EXPECT_TRUE(m.query_bias);
  EXPECT_EQ(m.query_norm, QueryNorm::kNone);
  EXPECT_EQ(m.output, MemoryOutput::kSum);
  EXPECT_EQ(m.values, "layers.1.pkm.values");
  EXPECT_EQ(m.values_dtype, "float32");
  EXPECT_EQ(c->dtype, "float32");
  EXPECT_NE(c->BlockMemory(1), nullptr);
  EXPECT_EQ(c->BlockMemory(0), nullptr);
  EXPECT_EQ(c->AfterMemory(1), nullptr);
  EXPECT_TRUE(c->HasFfn(0));
  EXPECT_FALSE(c->HasFfn(1));
  EXPECT_EQ(c->memory_layers(), std::vector<int>{1});
  EXPECT_EQ(c->weight_dtype(), DType::kF32);
}

TEST(ModelConfigTest, AcceptsValidVariants) {
  StatusOr<ModelConfig> c = ParseMutated([](json& j) {
    j["pkm_mode"] = "parallel";
    j["rope_theta"] = 500000;  // an integer where a float is expected is fine
    j["dtype"] = "bfloat16";
  });
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->HasFfn(1));
  EXPECT_EQ(c->memories[0].placement, MemoryPlacement::kParallel);
  EXPECT_EQ(c->positions.rope_theta, 500000.0);
  EXPECT_EQ(c->weight_dtype(), DType::kBF16);
  EXPECT_EQ(c->memories[0].values_dtype, "bfloat16");
  StatusOr<ModelConfig> no_memory = ParseMutated([](json& j) { j["pkm_layers"] = json::array(); });
  ASSERT_TRUE(no_memory.ok()) << no_memory.status();
  EXPECT_TRUE(no_memory->memories.empty());
}

TEST(ModelConfigTest, LoadsFromFile) {
  testing::TempDir dir;
  testing::WriteFile(dir.Join("config.json"), testing::TestModel::Tiny().config.dump());
  StatusOr<ModelConfig> c = LoadModelConfig(dir.Join("config.json"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->d_model, 16);
}

TEST(ModelConfigTest, MissingFile) {
  testing::TempDir dir;
  const std::string path = dir.Join("config.json");
  EXPECT_TRUE(IsError(LoadModelConfig(path).status(), StatusCode::kNotFound,
                      {path, "no such file", "training/export.py"}));
}

TEST(ModelConfigTest, MalformedJsonGivesPosition) {
  testing::TempDir dir;
  const std::string path = dir.Join("config.json");
  testing::WriteFile(path, "{\n  \"format_version\": 1,\n  \"d_model\": ,\n}\n");
  EXPECT_TRUE(IsError(LoadModelConfig(path).status(), StatusCode::kInvalidArgument,
                      {path, "malformed JSON", "line 3, column"}));
}

// A number beyond a double's range is nlohmann's out_of_range, not a parse error; it once
// escaped the loader as an exception (found by fuzz_model_loader).
TEST(ModelConfigTest, NumberOverflowIsAnError) {
  EXPECT_TRUE(IsError(ParseModelConfig(R"({"format_version": 1, "d_model": 1e777})", kPath).status(),
                      StatusCode::kInvalidArgument,
                      {kPath, "malformed JSON", "number overflow parsing '1e777'"}));
}

TEST(ModelConfigTest, TopLevelMustBeAnObject) {
  EXPECT_TRUE(IsError(ParseModelConfig("[1, 2]", kPath).status(), StatusCode::kInvalidArgument,
                      {kPath, "JSON object", "array"}));
}

TEST(ModelConfigTest, UnknownField) {
  EXPECT_TRUE(IsError(ErrorOf([](json& j) { j["d_modle"] = 16; }), StatusCode::kInvalidArgument,
                      {kPath, "unknown field 'd_modle'", "docs/model-format.md"}));
}

TEST(ModelConfigTest, TrainingOnlyFieldIsUnknown) {
  EXPECT_TRUE(IsError(ErrorOf([](json& j) { j["pkm_query_batchnorm"] = true; }),
                      StatusCode::kInvalidArgument, {kPath, "'pkm_query_batchnorm'"}));
}

TEST(ModelConfigTest, MissingField) {
  EXPECT_TRUE(IsError(ErrorOf([](json& j) { j.erase("pkm_knn"); }), StatusCode::kInvalidArgument,
                      {kPath, "missing field 'pkm_knn'", "training/export.py"}));
}

TEST(ModelConfigTest, MissingFieldsAreAllNamed) {
  EXPECT_TRUE(IsError(ErrorOf([](json& j) {
                        j.erase("d_ff");
                        j.erase("dtype");
                      }),
                      StatusCode::kInvalidArgument, {kPath, "'d_ff'", "'dtype'"}));
}

TEST(ModelConfigTest, StringForInteger) {
  EXPECT_TRUE(IsError(ErrorOf([](json& j) { j["d_model"] = "16"; }), StatusCode::kInvalidArgument,
                      {kPath, "field 'd_model'", "expected an integer", "string \"16\""}));
}

TEST(ModelConfigTest, FloatForInteger) {
  EXPECT_TRUE(IsError(ErrorOf([](json& j) { j["n_layers"] = 2.5; }), StatusCode::kInvalidArgument,
                      {kPath, "field 'n_layers'", "expected an integer", "2.5"}));
}

TEST(ModelConfigTest, IntegerTooLarge) {
  EXPECT_TRUE(IsError(ErrorOf([](json& j) { j["vocab_size"] = int64_t{1} << 40; }),
                      StatusCode::kInvalidArgument, {kPath, "field 'vocab_size'", "32-bit"}));
}

TEST(ModelConfigTest, WrongTypeForBool) {
  EXPECT_TRUE(IsError(ErrorOf([](json& j) { j["tie_embeddings"] = 1; }),
                      StatusCode::kInvalidArgument,
                      {kPath, "field 'tie_embeddings'", "expected true or false"}));
}

TEST(ModelConfigTest, WrongTypeForFloat) {
  EXPECT_TRUE(IsError(ErrorOf([](json& j) { j["norm_eps"] = "1e-5"; }),
                      StatusCode::kInvalidArgument, {kPath, "field 'norm_eps'", "a number"}));
}

TEST(ModelConfigTest, WrongTypeForString) {
  EXPECT_TRUE(IsError(ErrorOf([](json& j) { j["pkm_mode"] = 1; }), StatusCode::kInvalidArgument,
                      {kPath, "field 'pkm_mode'", "expected a string"}));
}

TEST(ModelConfigTest, WrongTypeForList) {
  EXPECT_TRUE(IsError(ErrorOf([](json& j) { j["pkm_layers"] = 1; }), StatusCode::kInvalidArgument,
                      {kPath, "field 'pkm_layers'", "list of integers"}));
  EXPECT_TRUE(IsError(ErrorOf([](json& j) {
                        j["pkm_layers"] = {0, "1"};
                      }),
                      StatusCode::kInvalidArgument, {kPath, "field 'pkm_layers[1]'"}));
}

TEST(ModelConfigTest, UnsupportedFormatVersion) {
  EXPECT_TRUE(IsError(ErrorOf([](json& j) { j["format_version"] = 3; }), StatusCode::kUnimplemented,
                      {kPath, "'format_version'", "versions 1 and 2", "found 3", "export.py"}));
}

// A newer version may add fields: the version must be reported, not the new field.
TEST(ModelConfigTest, FormatVersionIsCheckedBeforeUnknownFields) {
  EXPECT_TRUE(IsError(ErrorOf([](json& j) {
                        j["format_version"] = 3;
                        j["rope_scaling"] = 4;
                      }),
                      StatusCode::kUnimplemented, {kPath, "'format_version'"}));
}

TEST(ModelConfigTest, WrongArchitecture) {
  EXPECT_TRUE(IsError(ErrorOf([](json& j) { j["architecture"] = "llama"; }),
                      StatusCode::kInvalidArgument,
                      {kPath, "field 'architecture'", "\"pkm-transformer\"", "\"llama\""}));
}

class NonPositiveSizeTest : public ::testing::TestWithParam<const char*> {};

TEST_P(NonPositiveSizeTest, IsRejected) {
  const std::string field = GetParam();
  for (int value : {0, -3}) {
    EXPECT_TRUE(IsError(ErrorOf([&](json& j) { j[field] = value; }), StatusCode::kInvalidArgument,
                        {kPath, "field '" + field + "'", "positive", std::to_string(value)}));
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, NonPositiveSizeTest,
                         ::testing::Values("vocab_size", "d_model", "n_layers", "n_heads", "d_ff",
                                           "max_seq_len", "pkm_heads", "pkm_n_keys", "pkm_k_dim",
                                           "pkm_v_dim"));

TEST(ModelConfigTest, NonPositiveRopeTheta) {
  EXPECT_TRUE(IsError(ErrorOf([](json& j) { j["rope_theta"] = 0.0; }), StatusCode::kInvalidArgument,
                      {kPath, "field 'rope_theta'", "positive"}));
}

TEST(ModelConfigTest, NegativeNormEps) {
  EXPECT_TRUE(IsError(ErrorOf([](json& j) { j["norm_eps"] = -1e-5; }), StatusCode::kInvalidArgument,
                      {kPath, "field 'norm_eps'"}));
}

TEST(ModelConfigTest, DModelNotAMultipleOfHeads) {
  EXPECT_TRUE(IsError(ErrorOf([](json& j) { j["n_heads"] = 3; }), StatusCode::kInvalidArgument,
                      {kPath, "field 'n_heads'", "d_model=16", "n_heads=3"}));
}

TEST(ModelConfigTest, OddHeadDim) {
  EXPECT_TRUE(IsError(ErrorOf([](json& j) { j["n_heads"] = 16; }), StatusCode::kInvalidArgument,
                      {kPath, "field 'n_heads'", "head_dim", "= 1", "even"}));
}

TEST(ModelConfigTest, TokenIdOutsideVocabulary) {
  EXPECT_TRUE(IsError(ErrorOf([](json& j) { j["eos_id"] = 32; }), StatusCode::kInvalidArgument,
                      {kPath, "field 'eos_id'", "vocab_size=32", "found 32"}));
  EXPECT_TRUE(IsError(ErrorOf([](json& j) { j["bos_id"] = -1; }), StatusCode::kInvalidArgument,
                      {kPath, "field 'bos_id'"}));
}

TEST(ModelConfigTest, PkmLayerOutOfRange) {
  EXPECT_TRUE(IsError(ErrorOf([](json& j) { j["pkm_layers"] = {2}; }), StatusCode::kInvalidArgument,
                      {kPath, "field 'pkm_layers'", "layer 2", "[0, n_layers=2)"}));
  EXPECT_TRUE(IsError(ErrorOf([](json& j) { j["pkm_layers"] = {-1}; }),
                      StatusCode::kInvalidArgument, {kPath, "field 'pkm_layers'", "layer -1"}));
}

TEST(ModelConfigTest, PkmLayerListedTwice) {
  EXPECT_TRUE(IsError(ErrorOf([](json& j) {
                        j["pkm_layers"] = {1, 0, 1};
                      }),
                      StatusCode::kInvalidArgument,
                      {kPath, "field 'pkm_layers'", "layer 1 is listed twice"}));
}

TEST(ModelConfigTest, UnknownPkmMode) {
  EXPECT_TRUE(IsError(ErrorOf([](json& j) { j["pkm_mode"] = "swap"; }),
                      StatusCode::kInvalidArgument,
                      {kPath, "field 'pkm_mode'", "\"replace\" or \"parallel\"", "\"swap\""}));
}

TEST(ModelConfigTest, PkmKnnOutOfRange) {
  for (int knn : {0, 5}) {
    EXPECT_TRUE(
        IsError(ErrorOf([&](json& j) { j["pkm_knn"] = knn; }), StatusCode::kInvalidArgument,
                {kPath, "field 'pkm_knn'", "pkm_n_keys=4", "found " + std::to_string(knn)}));
  }
}

TEST(ModelConfigTest, OddPkmKDim) {
  EXPECT_TRUE(IsError(ErrorOf([](json& j) { j["pkm_k_dim"] = 7; }), StatusCode::kInvalidArgument,
                      {kPath, "field 'pkm_k_dim'", "even", "found 7"}));
}

TEST(ModelConfigTest, PkmVDimMustEqualDModel) {
  EXPECT_TRUE(IsError(ErrorOf([](json& j) { j["pkm_v_dim"] = 8; }), StatusCode::kInvalidArgument,
                      {kPath, "field 'pkm_v_dim'", "d_model=16", "found 8"}));
}

TEST(ModelConfigTest, UnknownDType) {
  EXPECT_TRUE(IsError(ErrorOf([](json& j) { j["dtype"] = "float64"; }),
                      StatusCode::kInvalidArgument,
                      {kPath, "field 'dtype'", "\"float16\"", "\"float64\""}));
}

}  // namespace
}  // namespace pkm
