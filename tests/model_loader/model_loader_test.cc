#include "model_loader/model_loader.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>

#include "model_loader/tensor_specs.h"
#include "tests/common/status_testing.h"
#include "tests/model_loader/test_model_writer.h"

namespace pkm {
namespace {

using ::nlohmann::json;
using testing::IsError;
using testing::RandomTensor;
using testing::TempDir;
using testing::TestModel;

class ModelLoaderTest : public ::testing::Test {
 protected:
  // Writes `model` into the temp dir and loads it.
  StatusOr<LoadedModel> WriteAndLoad(const TestModel& model) {
    model.Write(dir_.path());
    return LoadModel(dir_.path());
  }
  std::string WeightsPath() const { return dir_.Join("model.safetensors"); }

  TempDir dir_;
  TestModel model_ = TestModel::Tiny();
};

TEST_F(ModelLoaderTest, LoadsTinyModel) {
  StatusOr<LoadedModel> loaded = WriteAndLoad(model_);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const LoadedModel& m = *loaded;
  EXPECT_EQ(m.dir(), dir_.path());
  EXPECT_EQ(m.config().d_model, 16);
  EXPECT_EQ(m.tensors().size(), model_.tensors.size());

  const TensorView* keys = m.FindTensor("layers.1.pkm.keys");
  ASSERT_NE(keys, nullptr);
  EXPECT_EQ(keys->shape, (std::vector<int64_t>{2, 2, 4, 4}));
  EXPECT_EQ(ToFloat32(*keys), model_.tensors.at("layers.1.pkm.keys").values);
  EXPECT_EQ(m.FindTensor("lm_head.weight"), nullptr);          // tied
  EXPECT_EQ(m.FindTensor("layers.1.ffn.w1.weight"), nullptr);  // replace mode

  int64_t params = 0;
  for (const auto& [name, t] : model_.tensors) params += static_cast<int64_t>(t.values.size());
  EXPECT_EQ(m.parameter_count(), params);
  EXPECT_EQ(m.weight_bytes(), static_cast<size_t>(params) * 4);

  const std::string summary = m.Summary();
  const std::string params_text = std::to_string(params);
  for (const char* part :
       {"2 layers", "d_model 16", "2 heads", "vocab 32", "layer 1 (replace mode)", "knn 2",
        "4^2 = 16 slots", "k_dim 8", "float32", params_text.c_str()}) {
    EXPECT_NE(summary.find(part), std::string::npos) << "no \"" << part << "\" in " << summary;
  }
}

class ModelLoaderDTypeTest : public ModelLoaderTest,
                             public ::testing::WithParamInterface<const char*> {};

TEST_P(ModelLoaderDTypeTest, LoadsEveryFloatDType) {
  model_.config["dtype"] = GetParam();
  model_.RebuildTensors();
  StatusOr<LoadedModel> loaded = WriteAndLoad(model_);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const DType dtype = *DTypeFromConfigName(GetParam());
  const TensorView* emb = loaded->FindTensor("tok_embeddings.weight");
  EXPECT_EQ(emb->dtype, dtype);
  // Stored values are the written floats rounded to the dtype.
  const std::vector<float> got = ToFloat32(*emb);
  const std::vector<float>& written = model_.tensors.at("tok_embeddings.weight").values;
  ASSERT_EQ(got.size(), written.size());
  const float tolerance = dtype == DType::kF32 ? 0.0f : dtype == DType::kF16 ? 1e-3f : 8e-3f;
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], written[i], tolerance);
  EXPECT_EQ(loaded->weight_bytes(),
            static_cast<size_t>(loaded->parameter_count()) * DTypeSize(dtype));
}

INSTANTIATE_TEST_SUITE_P(DTypes, ModelLoaderDTypeTest,
                         ::testing::Values("float32", "float16", "bfloat16"));

TEST_F(ModelLoaderTest, LoadsUntiedParallelModel) {
  model_.config["tie_embeddings"] = false;
  model_.config["pkm_mode"] = "parallel";
  model_.config["pkm_layers"] = {0, 1};
  model_.RebuildTensors();
  StatusOr<LoadedModel> loaded = WriteAndLoad(model_);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_NE(loaded->FindTensor("lm_head.weight"), nullptr);
  EXPECT_NE(loaded->FindTensor("layers.1.ffn.w1.weight"), nullptr);
  EXPECT_NE(loaded->FindTensor("layers.0.pkm.values"), nullptr);
}

// ExpectedTensors and the test writer's hand-written list both follow docs/model-format.md.
TEST_F(ModelLoaderTest, ExpectedTensorsMatchTheWrittenModel) {
  for (bool tied : {true, false}) {
    for (const char* mode : {"replace", "parallel"}) {
      model_.config["tie_embeddings"] = tied;
      model_.config["pkm_mode"] = mode;
      model_.RebuildTensors();
      StatusOr<ModelConfig> config = ParseModelConfig(model_.config.dump(), "config.json");
      ASSERT_TRUE(config.ok()) << config.status();
      std::set<std::string> expected;
      for (const TensorSpec& spec : ExpectedTensors(*config)) {
        expected.insert(spec.name);
        ASSERT_EQ(model_.tensors.count(spec.name), 1u) << spec.name;
        EXPECT_EQ(spec.shape, model_.tensors.at(spec.name).shape) << spec.name;
      }
      EXPECT_EQ(expected.size(), model_.tensors.size());
    }
  }
}

TEST_F(ModelLoaderTest, MissingDirectory) {
  const std::string dir = dir_.Join("nope");
  EXPECT_TRUE(
      IsError(LoadModel(dir).status(), StatusCode::kNotFound, {dir, "no such model directory"}));
}

TEST_F(ModelLoaderTest, MissingConfig) {
  model_.Write(dir_.path());
  std::filesystem::remove(dir_.Join("config.json"));
  EXPECT_TRUE(IsError(LoadModel(dir_.path()).status(), StatusCode::kNotFound,
                      {dir_.Join("config.json"), "no such file"}));
}

TEST_F(ModelLoaderTest, MissingSafetensors) {
  model_.Write(dir_.path());
  std::filesystem::remove(WeightsPath());
  EXPECT_TRUE(IsError(LoadModel(dir_.path()).status(), StatusCode::kNotFound,
                      {WeightsPath(), "no such file"}));
}

TEST_F(ModelLoaderTest, BadConfigNamesConfigFileAndField) {
  model_.config["pkm_knn"] = 9;
  EXPECT_TRUE(IsError(WriteAndLoad(model_).status(), StatusCode::kInvalidArgument,
                      {dir_.Join("config.json"), "field 'pkm_knn'"}));
}

TEST_F(ModelLoaderTest, CorruptSafetensorsNamesFile) {
  model_.Write(dir_.path());
  testing::WriteFile(WeightsPath(), "abc");
  EXPECT_TRUE(IsError(LoadModel(dir_.path()).status(), StatusCode::kDataLoss, {WeightsPath()}));
}

TEST_F(ModelLoaderTest, MissingTensor) {
  model_.tensors.erase("layers.0.attn.wq.bias");
  EXPECT_TRUE(IsError(WriteAndLoad(model_).status(), StatusCode::kInvalidArgument,
                      {WeightsPath(), "missing tensor 'layers.0.attn.wq.bias'", "[16]",
                       "re-export with training/export.py"}));
}

TEST_F(ModelLoaderTest, SeveralMissingTensorsAreListed) {
  model_.tensors.erase("norm.weight");
  model_.tensors.erase("norm.bias");
  model_.tensors.erase("tok_embeddings.weight");
  EXPECT_TRUE(IsError(WriteAndLoad(model_).status(), StatusCode::kInvalidArgument,
                      {WeightsPath(), "'tok_embeddings.weight'", "'norm.weight'", "'norm.bias'"}));
}

TEST_F(ModelLoaderTest, MemoryTensorsMissingForAPkmLayer) {
  model_.config["pkm_layers"] = {0, 1};  // the tensors still have no memory in layer 0
  EXPECT_TRUE(IsError(WriteAndLoad(model_).status(), StatusCode::kInvalidArgument,
                      {WeightsPath(), "missing tensor 'layers.0.pkm.query.weight'"}));
}

TEST_F(ModelLoaderTest, MissingLmHeadWhenUntied) {
  model_.config["tie_embeddings"] = false;
  EXPECT_TRUE(IsError(WriteAndLoad(model_).status(), StatusCode::kInvalidArgument,
                      {WeightsPath(), "missing tensor 'lm_head.weight'", "[32,16]"}));
}

TEST_F(ModelLoaderTest, WrongShape) {
  model_.tensors["layers.1.pkm.keys"] = RandomTensor(DType::kF32, {2, 2, 4, 2}, 7);
  EXPECT_TRUE(IsError(WriteAndLoad(model_).status(), StatusCode::kInvalidArgument,
                      {WeightsPath(),
                       "tensor 'layers.1.pkm.keys' has shape [2,2,4,2], expected "
                       "[2,2,4,4]",
                       "memories[0].k_dim=8 -> 4 per half", "re-export with training/export.py"}));
}

TEST_F(ModelLoaderTest, WrongShapeOfValues) {
  model_.tensors["layers.1.pkm.values"] = RandomTensor(DType::kF32, {15, 16}, 7);
  EXPECT_TRUE(IsError(WriteAndLoad(model_).status(), StatusCode::kInvalidArgument,
                      {WeightsPath(), "'layers.1.pkm.values' has shape [15,16], expected [16,16]",
                       "memories[0].n_keys=4 -> 16 slots"}));
}

TEST_F(ModelLoaderTest, WrongDType) {
  model_.tensors["layers.0.ffn.w2.weight"].dtype = DType::kF16;
  EXPECT_TRUE(IsError(WriteAndLoad(model_).status(), StatusCode::kInvalidArgument,
                      {WeightsPath(), "tensor 'layers.0.ffn.w2.weight' has dtype F16, expected F32",
                       "\"float32\""}));
}

TEST_F(ModelLoaderTest, IntegerTensorIsWrongDType) {
  model_.tensors["norm.bias"].dtype = DType::kI32;
  EXPECT_TRUE(IsError(WriteAndLoad(model_).status(), StatusCode::kInvalidArgument,
                      {WeightsPath(), "tensor 'norm.bias' has dtype I32, expected F32"}));
}

TEST_F(ModelLoaderTest, UnexpectedTensor) {
  model_.tensors["layers.0.attn.rotary.inv_freq"] = RandomTensor(DType::kF32, {4}, 3);
  EXPECT_TRUE(IsError(WriteAndLoad(model_).status(), StatusCode::kInvalidArgument,
                      {WeightsPath(), "unexpected tensor 'layers.0.attn.rotary.inv_freq'"}));
}

TEST_F(ModelLoaderTest, LmHeadWithTiedEmbeddingsIsUnexpected) {
  model_.tensors["lm_head.weight"] = RandomTensor(DType::kF32, {32, 16}, 3);
  EXPECT_TRUE(IsError(WriteAndLoad(model_).status(), StatusCode::kInvalidArgument,
                      {WeightsPath(), "unexpected tensor 'lm_head.weight'", "tie_embeddings"}));
}

TEST_F(ModelLoaderTest, FfnInReplaceModeMemoryLayerIsUnexpected) {
  model_.tensors["layers.1.ffn.w1.bias"] = RandomTensor(DType::kF32, {32}, 3);
  EXPECT_TRUE(IsError(WriteAndLoad(model_).status(), StatusCode::kInvalidArgument,
                      {WeightsPath(), "unexpected tensor 'layers.1.ffn.w1.bias'", "replace"}));
}

TEST_F(ModelLoaderTest, MemoryTensorsOutsidePkmLayersAreUnexpected) {
  model_.config["pkm_layers"] = json::array();
  model_.RebuildTensors();
  model_.tensors["layers.1.pkm.keys"] = RandomTensor(DType::kF32, {2, 2, 4, 4}, 3);
  EXPECT_TRUE(IsError(WriteAndLoad(model_).status(), StatusCode::kInvalidArgument,
                      {WeightsPath(), "unexpected tensor 'layers.1.pkm.keys'", "pkm_layers"}));
}

}  // namespace
}  // namespace pkm
