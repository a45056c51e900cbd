// The model this repository serves, as training/export.py wrote it: the C++ loader must accept
// it, and its config must agree with its tensors. Fails (does not skip) when the model is
// missing: serving it is the point of the project.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "model_loader/model_loader.h"
#include "model_loader/tensor_specs.h"

namespace pkm {
namespace {

constexpr char kModelDir[] = "models/pkm-small";

TEST(BundledModelTest, LoadsAndMatchesItsConfig) {
  StatusOr<LoadedModel> loaded = LoadModel(kModelDir);
  ASSERT_TRUE(loaded.ok()) << loaded.status() << " (tests run from the repository root; "
                           << "make model or training/export.py writes " << kModelDir << ")";
  const LoadedModel& m = *loaded;
  const ModelConfig& c = m.config();
  EXPECT_EQ(c.format_version, 1);  // the bundled model stays in format 1, which still loads
  EXPECT_EQ(c.architecture, kModelArchitecture);
  EXPECT_EQ(m.weights().metadata().at("pkmserve_format_version"), "1");

  const TensorView* emb = m.FindTensor("tok_embeddings.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->shape, (std::vector<int64_t>{c.vocab_size, c.d_model}));
  EXPECT_EQ(emb->dtype, c.weight_dtype());
  ASSERT_FALSE(c.memories.empty());
  for (const MemorySpec& mem : c.memories) {
    const TensorView* keys = m.FindTensor(mem.prefix() + "keys");
    const TensorView* values = m.FindTensor(mem.values);
    ASSERT_NE(keys, nullptr);
    ASSERT_NE(values, nullptr);
    EXPECT_EQ(keys->shape, (std::vector<int64_t>{mem.heads, 2, mem.n_keys, mem.k_dim / 2}));
    EXPECT_EQ(values->shape, (std::vector<int64_t>{mem.slots(), mem.v_dim}));
  }
  EXPECT_EQ(m.tensors().size(), ExpectedTensors(c).size());

  int64_t params = 0;
  for (const TensorView& t : m.tensors()) {
    params += static_cast<int64_t>(t.numel());
    for (float v : ToFloat32(t)) ASSERT_TRUE(std::isfinite(v)) << t.name;
  }
  EXPECT_EQ(m.parameter_count(), params);
  EXPECT_EQ(m.weight_bytes(), static_cast<size_t>(params) * DTypeSize(c.weight_dtype()));
  EXPECT_NE(m.Summary().find(std::to_string(c.n_layers) + " layers"), std::string::npos);
}

}  // namespace
}  // namespace pkm
