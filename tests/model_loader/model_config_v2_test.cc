// Format 2 of config.json: every part of a model family read, each refusal naming the field by
// its path, and the tensor table it implies (shared value tables once, with their own dtype).
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "model_loader/model_config.h"
#include "model_loader/tensor_specs.h"

namespace pkm {
namespace {

using ::nlohmann::json;

constexpr char kPath[] = "models/memplus/config.json";

// A Llama with GQA and two Memory+ layers sharing one bf16 table, in an fp32 model.
json MemoryPlusLlama() {
  json memory = {{"placement", "replace"}, {"heads", 2}, {"knn", 2}, {"n_keys", 4},
                 {"k_dim", 8}, {"v_dim", 24}, {"query_bias", true}, {"query_norm", "none"},
                 {"output", "memory_plus"}, {"output_bias", true}, {"values", "value_tables.shared"},
                 {"values_dtype", "bfloat16"}};
  json first = memory, second = memory;
  first["layer"] = 0;
  second["layer"] = 2;
  return {{"format_version", 2}, {"architecture", "pkm-transformer"}, {"family", "llama"},
          {"vocab_size", 32}, {"d_model", 16}, {"n_layers", 3}, {"max_seq_len", 64},
          {"bos_id", 1}, {"eos_id", 2}, {"dtype", "float32"},
          {"norm", {{"kind", "rmsnorm"}, {"eps", 1e-5}, {"bias", false}}},
          {"block", "pre_norm"},
          {"positions", {{"kind", "rope"}, {"theta", 500000.0}}},
          {"attention", {{"n_heads", 4}, {"n_kv_heads", 2}, {"head_dim", 6}, {"bias", false}}},
          {"ffn", {{"kind", "swiglu"}, {"hidden", 40}, {"bias", false}}},
          {"lm_head", {{"tied", false}, {"bias", false}}},
          {"memories", {first, second}}};
}

StatusOr<ModelConfig> Parse(const std::function<void(json&)>& mutate) {
  json j = MemoryPlusLlama();
  mutate(j);
  return ParseModelConfig(j.dump(), kPath);
}

TEST(ModelConfigV2, ReadsEveryPart) {
  StatusOr<ModelConfig> c = Parse([](json&) {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->format_version, 2);
  EXPECT_EQ(c->family, "llama");
  EXPECT_EQ(c->norm.kind, NormKind::kRmsNorm);
  EXPECT_FALSE(c->norm.bias);
  EXPECT_EQ(c->positions.rope_theta, 500000.0);
  EXPECT_EQ(c->attention.n_kv_heads, 2);
  EXPECT_EQ(c->head_dim(), 6);  // not d_model / n_heads
  EXPECT_EQ(c->ffn.kind, FfnKind::kSwiglu);
  EXPECT_FALSE(c->lm_head.tied);
  EXPECT_TRUE(c->final_norm);       // the default
  EXPECT_FALSE(c->embedding_norm);  // the default
  ASSERT_EQ(c->memories.size(), 2u);
  EXPECT_EQ(c->memories[1].layer, 2);
  EXPECT_EQ(c->memories[1].output, MemoryOutput::kMemoryPlus);
  EXPECT_TRUE(c->memories[1].output_bias);
  EXPECT_EQ(c->memories[1].values_dtype, "bfloat16");
  EXPECT_FALSE(c->HasFfn(0));
  EXPECT_TRUE(c->HasFfn(1));
}

TEST(ModelConfigV2, RefusalsNameTheFieldPath) {
  const std::pair<std::function<void(json&)>, std::vector<std::string>> cases[] = {
      {[](json& j) { j["memories"][1]["placement"] = "inside"; },
       {"field 'memories[1].placement'", "\"replace\" | \"parallel\" | \"after\"", "\"inside\""}},
      {[](json& j) { j["attention"]["n_kv_heads"] = 3; },
       {"field 'attention.n_kv_heads'", "must divide n_heads=4"}},
      {[](json& j) { j["norm"]["bias"] = true; }, {"field 'norm.bias'", "rmsnorm has no bias"}},
      {[](json& j) { j["norm"]["eps"] = 0; }, {"field 'norm.eps'", "expected a number > 0"}},
      {[](json& j) { j["ffn"]["kind"] = "geglu"; }, {"field 'ffn.kind'", "\"swiglu\""}},
      {[](json& j) { j["attention"]["nheads"] = 4; }, {"unknown field 'attention.nheads'"}},
      {[](json& j) { j["memories"][0].erase("knn"); }, {"field 'memories[0].knn'", "missing"}},
      {[](json& j) { j["memories"][1]["layer"] = 0; },
       {"field 'memories[1].layer'", "already has a memory inside its block (memories[0])"}},
      {[](json& j) { j["memories"][1]["v_dim"] = 32; },
       {"field 'memories[1].values'", "shares table 'value_tables.shared' with memories[0]"}},
      {[](json& j) {
         j["memories"][0]["output"] = "sum";
         j["memories"][0].erase("output_bias");
       },
       {"field 'memories[0].v_dim'", "expected d_model=16"}},
      {[](json& j) { j["memories"][0]["output"] = "sum"; },
       {"field 'memories[0].output_bias'", "only when output is \"memory_plus\""}},
      {[](json& j) { j["memories"][0].erase("output_bias"); },
       {"field 'memories[0].output_bias'", "missing"}},
      {[](json& j) { j["memories"][0]["query_norm_eps"] = 1e-6; },
       {"field 'memories[0].query_norm_eps'", "only when query_norm is \"layernorm\""}},
      {[](json& j) { j["memories"][0]["values"] = "layers.1.attn.wq.weight"; },
       {"field 'memories[0].values'", "the name of another tensor"}},
      {[](json& j) { j["positions"] = {{"kind", "learned"}, {"max_positions", 32}}; },
       {"field 'positions.max_positions'", "at least max_seq_len=64"}},
      {[](json& j) { j["memories"][0]["values_dtype"] = "int8"; },
       {"field 'memories[0].values_dtype'", "\"int8\""}},
  };
  for (const auto& [mutate, parts] : cases) {
    const Status s = Parse(mutate).status();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s;
    for (const std::string& part : parts) {
      EXPECT_NE(s.message().find(part), std::string::npos) << "no \"" << part << "\" in " << s;
    }
  }
}

TEST(ModelConfigV2, TensorsOfASharedBf16TableAppearOnce) {
  StatusOr<ModelConfig> c = Parse([](json&) {});
  ASSERT_TRUE(c.ok()) << c.status();
  const std::vector<TensorSpec> specs = ExpectedTensors(*c);
  auto find = [&](const std::string& name) -> const TensorSpec* {
    for (const TensorSpec& s : specs) {
      if (s.name == name) return &s;
    }
    return nullptr;
  };
  int tables = 0;
  for (const TensorSpec& s : specs) tables += s.name == "value_tables.shared";
  EXPECT_EQ(tables, 1);
  ASSERT_NE(find("value_tables.shared"), nullptr);
  EXPECT_EQ(find("value_tables.shared")->dtype, "bfloat16");
  EXPECT_EQ(find("value_tables.shared")->shape, (std::vector<int64_t>{16, 24}));
  EXPECT_EQ(find("layers.0.pkm.keys")->dtype, "float32");
  EXPECT_EQ(find("layers.0.attn.wk.weight")->shape, (std::vector<int64_t>{12, 16}));  // 2 kv x 6
  EXPECT_EQ(find("layers.0.attn.wo.weight")->shape, (std::vector<int64_t>{16, 24}));  // 4 x 6
  EXPECT_EQ(find("layers.2.pkm.swilu.weight")->shape, (std::vector<int64_t>{24, 16}));
  EXPECT_EQ(find("layers.2.pkm.value_proj.weight")->shape, (std::vector<int64_t>{16, 24}));
  EXPECT_NE(find("layers.1.ffn.w3.weight"), nullptr);
  EXPECT_EQ(find("layers.0.ffn.w1.weight"), nullptr);  // replaced by its memory
  EXPECT_EQ(find("layers.0.attn.wq.bias"), nullptr);   // attention.bias false
  EXPECT_EQ(find("norm.bias"), nullptr);                // rmsnorm
  EXPECT_NE(find("lm_head.weight"), nullptr);
}

TEST(ModelConfigV2, TensorsOfAnXlmStyleModel) {
  StatusOr<ModelConfig> c = Parse([](json& j) {
    j["family"] = "xlm";
    j["norm"] = {{"kind", "layernorm"}, {"eps", 1e-12}, {"bias", true}};
    j["block"] = "post_norm";
    j["embedding_norm"] = true;
    j["final_norm"] = false;
    j["positions"] = {{"kind", "learned"}, {"max_positions", 64}};
    j["lm_head"] = {{"tied", true}, {"bias", true}};
    j["memories"][1]["placement"] = "after";
    j["memories"][1]["layer"] = 0;
    j["memories"][1]["output"] = "sum";
    j["memories"][1].erase("output_bias");
    j["memories"][1]["v_dim"] = 16;
    j["memories"][1]["query_norm"] = "layernorm";
    j["memories"][1].erase("values");
    j["memories"][1].erase("values_dtype");
  });
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_NE(c->AfterMemory(0), nullptr);
  EXPECT_EQ(c->memory_labels(), (std::vector<std::string>{"0", "0_after"}));
  std::vector<std::string> names;
  for (const TensorSpec& s : ExpectedTensors(*c)) names.push_back(s.name);
  for (const char* want : {"pos_embeddings.weight", "emb_norm.bias", "lm_head.bias",
                           "layers.0.pkm_after.query_norm.weight", "layers.0.pkm_after.values",
                           "layers.0.pkm_after.keys"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
  }
  EXPECT_EQ(std::find(names.begin(), names.end(), "norm.weight"), names.end());  // no final norm
  EXPECT_EQ(std::find(names.begin(), names.end(), "lm_head.weight"), names.end());  // tied
}

}  // namespace
}  // namespace pkm
