#include "model_loader/model_config.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "model_loader/file_util.h"
#include "model_loader/json_fields.h"
#include "model_loader/model_config_versions.h"
#include "model_loader/tensor_specs.h"

namespace pkm {
namespace {

using json = nlohmann::json;
using internal_loader::FieldError;

std::string Str(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

Status CheckMemory(const ModelConfig& c, size_t index, std::string_view path) {
  const MemorySpec& m = c.memories[index];
  const std::string p = "memories[" + std::to_string(index) + "].";
  if (m.layer < 0 || m.layer >= c.n_layers) {
    return FieldError(path, p + "layer",
                      "layer " + std::to_string(m.layer) + " is outside [0, n_layers=" +
                          std::to_string(c.n_layers) + ")");
  }
  for (const auto& [name, value] : {std::pair<const char*, int>{"heads", m.heads},
                                    {"n_keys", m.n_keys},
                                    {"k_dim", m.k_dim},
                                    {"v_dim", m.v_dim}}) {
    if (value <= 0) {
      return FieldError(path, p + name, "expected a positive integer, found " + std::to_string(value));
    }
  }
  if (m.knn < 1 || m.knn > m.n_keys) {
    return FieldError(path, p + "knn",
                      "expected 1 <= knn <= n_keys=" + std::to_string(m.n_keys) + ", found " +
                          std::to_string(m.knn));
  }
  if (m.k_dim % 2 != 0) {
    return FieldError(path, p + "k_dim",
                      "expected an even number (the query splits in two halves), found " +
                          std::to_string(m.k_dim));
  }
  if (m.output == MemoryOutput::kSum && m.v_dim != c.d_model) {
    return FieldError(path, p + "v_dim",
                      "expected d_model=" + std::to_string(c.d_model) +
                          " (output \"sum\" adds the values to the residual stream; "
                          "\"memory_plus\" projects them), found " + std::to_string(m.v_dim));
  }
  if (!std::isfinite(m.query_norm_eps) || m.query_norm_eps < 0) {
    return FieldError(path, p + "query_norm_eps", "expected a number >= 0, found " + Str(m.query_norm_eps));
  }
  if (m.values.empty()) return FieldError(path, p + "values", "expected a tensor name, found \"\"");
  if (!DTypeFromConfigName(m.values_dtype)) {
    return FieldError(path, p + "values_dtype",
                      "expected \"float32\", \"float16\" or \"bfloat16\", found \"" +
                          m.values_dtype + "\"");
  }
  for (size_t k = 0; k < index; ++k) {
    const MemorySpec& o = c.memories[k];
    const bool o_in_block = o.placement != MemoryPlacement::kAfter;
    const bool m_in_block = m.placement != MemoryPlacement::kAfter;
    if (o.layer == m.layer && o_in_block == m_in_block) {
      return FieldError(path, p + "layer",
                        "layer " + std::to_string(m.layer) + " already has " +
                            (m_in_block ? "a memory inside its block (memories[" : "a memory after it (memories[") +
                            std::to_string(k) + "]); a block has at most one of each");
    }
    if (o.values == m.values &&
        (o.n_keys != m.n_keys || o.v_dim != m.v_dim || o.values_dtype != m.values_dtype)) {
      return FieldError(path, p + "values",
                        "shares table '" + m.values + "' with memories[" + std::to_string(k) +
                            "], so n_keys, v_dim and values_dtype must agree: found " +
                            std::to_string(m.n_keys) + "/" + std::to_string(m.v_dim) + "/" +
                            m.values_dtype + " against " + std::to_string(o.n_keys) + "/" +
                            std::to_string(o.v_dim) + "/" + o.values_dtype);
    }
  }
  return OkStatus();
}

}  // namespace

std::string_view Name(NormKind v) { return v == NormKind::kRmsNorm ? "rmsnorm" : "layernorm"; }
std::string_view Name(BlockOrder v) { return v == BlockOrder::kPostNorm ? "post_norm" : "pre_norm"; }
std::string_view Name(PositionKind v) {
  return v == PositionKind::kRope ? "rope" : v == PositionKind::kLearned ? "learned" : "none";
}
std::string_view Name(FfnKind v) {
  switch (v) {
    case FfnKind::kGelu: return "gelu";
    case FfnKind::kGeluTanh: return "gelu_tanh";
    case FfnKind::kRelu: return "relu";
    case FfnKind::kSwiglu: return "swiglu";
  }
  return "?";
}
std::string_view Name(MemoryPlacement v) {
  return v == MemoryPlacement::kReplace ? "replace" : v == MemoryPlacement::kParallel ? "parallel" : "after";
}
std::string_view Name(QueryNorm v) { return v == QueryNorm::kLayerNorm ? "layernorm" : "none"; }
std::string_view Name(MemoryOutput v) { return v == MemoryOutput::kMemoryPlus ? "memory_plus" : "sum"; }

std::string MemorySpec::prefix() const {
  return "layers." + std::to_string(layer) +
         (placement == MemoryPlacement::kAfter ? ".pkm_after." : ".pkm.");
}

std::string MemorySpec::label() const {
  return "layer " + std::to_string(layer) + " (" + std::string(Name(placement)) + ")";
}

const MemorySpec* ModelConfig::BlockMemory(int layer) const {
  for (const MemorySpec& m : memories) {
    if (m.layer == layer && m.placement != MemoryPlacement::kAfter) return &m;
  }
  return nullptr;
}

const MemorySpec* ModelConfig::AfterMemory(int layer) const {
  for (const MemorySpec& m : memories) {
    if (m.layer == layer && m.placement == MemoryPlacement::kAfter) return &m;
  }
  return nullptr;
}

std::vector<int> ModelConfig::memory_layers() const {
  std::vector<int> layers;
  for (const MemorySpec& m : memories) layers.push_back(m.layer);
  return layers;
}

std::vector<std::string> ModelConfig::memory_labels() const {
  std::vector<std::string> labels;
  for (const MemorySpec& m : memories) {
    labels.push_back(std::to_string(m.layer) +
                     (m.placement == MemoryPlacement::kAfter ? "_after" : ""));
  }
  return labels;
}

bool ModelConfig::HasFfn(int layer) const {
  const MemorySpec* m = BlockMemory(layer);
  return m == nullptr || m->placement != MemoryPlacement::kReplace;
}

DType ModelConfig::weight_dtype() const {
  std::optional<DType> d = DTypeFromConfigName(dtype);
  if (!d) {
    std::fprintf(stderr, "pkm::ModelConfig::weight_dtype: invalid dtype \"%s\"\n", dtype.c_str());
    std::abort();
  }
  return *d;
}

StatusOr<ModelConfig> LoadModelConfig(const std::string& path) {
  PKM_ASSIGN_OR_RETURN(
      std::string text,
      internal_loader::ReadFileToString(
          path,
          "a model directory holds config.json, model.safetensors and tokenizer.model "
          "(docs/model-format.md); training/export.py writes them"));
  return ParseModelConfig(text, path);
}

StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text, std::string_view path) {
  const std::string p(path);
  json j;
  if (std::optional<std::string> error = internal_loader::ParseJsonDocument(json_text, &j)) {
    return InvalidArgumentError(p + ": malformed JSON: " + *error);
  }
  if (!j.is_object()) {
    return InvalidArgumentError(p + ": expected a JSON object of config fields, found " +
                                internal_loader::DescribeJson(j));
  }
  // The version first: it says which fields exist.
  auto it = j.find("format_version");
  if (it == j.end()) {
    return InvalidArgumentError(p + ": missing field 'format_version' (1 or 2; "
                                "docs/model-format.md)");
  }
  if (!it->is_number_integer() || (*it != 1 && *it != 2)) {
    return UnimplementedError(
        p + ": field 'format_version': this build of pkmserve reads versions 1 and 2, found " +
        it->dump() + "; use a pkmserve that reads it, or re-export the model with "
        "training/export.py from this checkout");
  }
  StatusOr<ModelConfig> config = *it == 1 ? internal_loader::ParseModelConfigV1(j, path)
                                          : internal_loader::ParseModelConfigV2(j, path);
  if (!config.ok()) return config.status();
  PKM_RETURN_IF_ERROR(ValidateModelConfig(*config, path));
  return config;
}

Status ValidateModelConfig(const ModelConfig& c, std::string_view path) {
  if (c.format_version != 1 && c.format_version != 2) {
    return UnimplementedError(std::string(path) + ": field 'format_version': expected 1 or 2, found " +
                              std::to_string(c.format_version));
  }
  if (c.architecture != kModelArchitecture) {
    return FieldError(path, "architecture",
                      "expected \"" + std::string(kModelArchitecture) + "\", found \"" +
                          c.architecture + "\" (pkmserve serves only this architecture)");
  }
  if (c.family.empty()) return FieldError(path, "family", "expected a non-empty name, found \"\"");
  const std::pair<const char*, int> sizes[] = {
      {"vocab_size", c.vocab_size},           {"d_model", c.d_model},
      {"n_layers", c.n_layers},               {"max_seq_len", c.max_seq_len},
      {"attention.n_heads", c.attention.n_heads}, {"attention.n_kv_heads", c.attention.n_kv_heads},
      {"attention.head_dim", c.attention.head_dim}, {"ffn.hidden", c.ffn.hidden},
  };
  for (const auto& [name, value] : sizes) {
    if (value <= 0) {
      return FieldError(path, name, "expected a positive integer, found " + std::to_string(value));
    }
  }
  if (c.attention.n_heads % c.attention.n_kv_heads != 0) {
    return FieldError(path, "attention.n_kv_heads",
                      "must divide n_heads=" + std::to_string(c.attention.n_heads) +
                          " (each kv head serves n_heads / n_kv_heads query heads), found " +
                          std::to_string(c.attention.n_kv_heads));
  }
  // Format 1 allowed norm_eps = 0 (and its reader names that field); format 2 asks for > 0.
  if (!std::isfinite(c.norm.eps) || c.norm.eps < 0 || (c.format_version >= 2 && c.norm.eps == 0)) {
    return FieldError(path, "norm.eps", "expected a number > 0, found " + Str(c.norm.eps));
  }
  if (c.norm.kind == NormKind::kRmsNorm && c.norm.bias) {
    return FieldError(path, "norm.bias", "expected false: rmsnorm has no bias");
  }
  if (c.positions.kind == PositionKind::kRope) {
    if (!std::isfinite(c.positions.rope_theta) || c.positions.rope_theta <= 0) {
      return FieldError(path, "positions.theta",
                        "expected a positive number, found " + Str(c.positions.rope_theta));
    }
    if (c.attention.head_dim % 2 != 0) {
      return FieldError(path, "attention.head_dim",
                        "must be even under rope (it rotates pairs), found " +
                            std::to_string(c.attention.head_dim));
    }
  }
  if (c.positions.kind == PositionKind::kLearned && c.positions.max_positions < c.max_seq_len) {
    return FieldError(path, "positions.max_positions",
                      "expected at least max_seq_len=" + std::to_string(c.max_seq_len) +
                          " (one row per position served), found " +
                          std::to_string(c.positions.max_positions));
  }
  for (const auto& [name, id] : {std::pair<const char*, int>{"bos_id", c.bos_id},
                                 std::pair<const char*, int>{"eos_id", c.eos_id}}) {
    if (id < 0 || id >= c.vocab_size) {
      return FieldError(path, name,
                        "expected a token id in [0, vocab_size=" + std::to_string(c.vocab_size) +
                            "), found " + std::to_string(id));
    }
  }
  if (!DTypeFromConfigName(c.dtype)) {
    return FieldError(
        path, "dtype",
        "expected \"float32\", \"float16\" or \"bfloat16\", found \"" + c.dtype + "\"");
  }
  for (size_t i = 0; i < c.memories.size(); ++i) PKM_RETURN_IF_ERROR(CheckMemory(c, i, path));
  if (const std::string clash = ValueTableNameClash(c); !clash.empty()) {
    for (size_t i = 0; i < c.memories.size(); ++i) {
      if (c.memories[i].values == clash) {
        return FieldError(path, "memories[" + std::to_string(i) + "].values",
                          "'" + clash + "' is the name of another tensor of this model; "
                          "name the value table something else (e.g. value_tables.shared)");
      }
    }
  }
  return OkStatus();
}

}  // namespace pkm
