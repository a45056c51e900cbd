// Format 1 of config.json: flat fields, one architecture, one memory shape shared by the
// pkm_layers. Read and validated with its own field names, then described as format 2.
#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <nlohmann/json.hpp>
#include <variant>

#include "model_loader/json_fields.h"
#include "model_loader/model_config_versions.h"

namespace pkm::internal_loader {
namespace {

// Field for field the keys of a format 1 config.json.
struct V1Config {
  int format_version = 0;
  std::string architecture;
  int vocab_size = 0;
  int d_model = 0;
  int n_layers = 0;
  int n_heads = 0;
  int d_ff = 0;
  int max_seq_len = 0;
  double rope_theta = 0;
  double norm_eps = 0;
  bool tie_embeddings = false;
  int bos_id = 0;
  int eos_id = 0;
  std::vector<int> pkm_layers;
  std::string pkm_mode;
  int pkm_heads = 0;
  int pkm_knn = 0;
  int pkm_n_keys = 0;
  int pkm_k_dim = 0;
  int pkm_v_dim = 0;
  std::string dtype;

  int head_dim() const { return d_model / n_heads; }
};

using json = nlohmann::json;

constexpr char kReexport[] = "re-export the model with training/export.py";

// The table of config.json keys: parsing, unknown and missing fields all follow it.
using Member = std::variant<int V1Config::*, double V1Config::*, bool V1Config::*,
                            std::string V1Config::*, std::vector<int> V1Config::*>;
struct Field {
  std::string_view name;
  Member member;
};

const std::array<Field, 21> kFields = {{
    {"format_version", &V1Config::format_version},
    {"architecture", &V1Config::architecture},
    {"vocab_size", &V1Config::vocab_size},
    {"d_model", &V1Config::d_model},
    {"n_layers", &V1Config::n_layers},
    {"n_heads", &V1Config::n_heads},
    {"d_ff", &V1Config::d_ff},
    {"max_seq_len", &V1Config::max_seq_len},
    {"rope_theta", &V1Config::rope_theta},
    {"norm_eps", &V1Config::norm_eps},
    {"tie_embeddings", &V1Config::tie_embeddings},
    {"bos_id", &V1Config::bos_id},
    {"eos_id", &V1Config::eos_id},
    {"pkm_layers", &V1Config::pkm_layers},
    {"pkm_mode", &V1Config::pkm_mode},
    {"pkm_heads", &V1Config::pkm_heads},
    {"pkm_knn", &V1Config::pkm_knn},
    {"pkm_n_keys", &V1Config::pkm_n_keys},
    {"pkm_k_dim", &V1Config::pkm_k_dim},
    {"pkm_v_dim", &V1Config::pkm_v_dim},
    {"dtype", &V1Config::dtype},
}};

// Built by appending: GCC 12 warns falsely (-Wrestrict, PR 105651) on "literal" + string&&.
std::string Quote(std::string_view s) {
  std::string quoted = "'";
  quoted += s;
  return quoted += "'";
}

using internal_loader::FieldError;

std::string Describe(const json& v) { return internal_loader::DescribeJson(v); }

Status ReadInt(const json& v, std::string_view path, std::string_view name, int* out) {
  if (!v.is_number_integer()) {
    return FieldError(path, name, "expected an integer, found " + Describe(v));
  }
  const bool fits = v.is_number_unsigned()
                        ? v.get<uint64_t>() <= uint64_t{INT_MAX}
                        : v.get<int64_t>() >= INT_MIN && v.get<int64_t>() <= INT_MAX;
  if (!fits) return FieldError(path, name, "value " + v.dump() + " does not fit a 32-bit int");
  *out = v.get<int>();
  return OkStatus();
}

Status ReadField(const json& v, std::string_view path, std::string_view name, Member member,
                 V1Config* config) {
  if (auto* m = std::get_if<int V1Config::*>(&member)) {
    return ReadInt(v, path, name, &(config->**m));
  }
  if (auto* m = std::get_if<double V1Config::*>(&member)) {
    if (!v.is_number()) return FieldError(path, name, "expected a number, found " + Describe(v));
    config->** m = v.get<double>();
    return OkStatus();
  }
  if (auto* m = std::get_if<bool V1Config::*>(&member)) {
    if (!v.is_boolean()) {
      return FieldError(path, name, "expected true or false, found " + Describe(v));
    }
    config->** m = v.get<bool>();
    return OkStatus();
  }
  if (auto* m = std::get_if<std::string V1Config::*>(&member)) {
    if (!v.is_string()) return FieldError(path, name, "expected a string, found " + Describe(v));
    config->** m = v.get<std::string>();
    return OkStatus();
  }
  auto* m = std::get_if<std::vector<int> V1Config::*>(&member);
  if (!v.is_array()) {
    return FieldError(path, name, "expected a list of integers, found " + Describe(v));
  }
  std::vector<int>& list = config->**m;
  list.assign(v.size(), 0);
  for (size_t i = 0; i < v.size(); ++i) {
    PKM_RETURN_IF_ERROR(
        ReadInt(v[i], path, std::string(name) + "[" + std::to_string(i) + "]", &list[i]));
  }
  return OkStatus();
}

// Names in a message: 'a', 'b' and 'c'.
std::string NameList(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) s += (i + 1 == names.size()) ? " and " : ", ";
    s += Quote(names[i]);
  }
  return s;
}


// Format 1's own invariants, with its field names in the messages.
Status ValidateV1(const V1Config& c, std::string_view path) {
  if (c.architecture != kModelArchitecture) {
    return FieldError(path, "architecture",
                      "expected \"" + std::string(kModelArchitecture) + "\", found \"" +
                          c.architecture + "\" (pkmserve serves only this architecture)");
  }
  const std::pair<std::string_view, int> sizes[] = {
      {"vocab_size", c.vocab_size},
      {"d_model", c.d_model},
      {"n_layers", c.n_layers},
      {"n_heads", c.n_heads},
      {"d_ff", c.d_ff},
      {"max_seq_len", c.max_seq_len},
      {"pkm_heads", c.pkm_heads},
      {"pkm_n_keys", c.pkm_n_keys},
      {"pkm_k_dim", c.pkm_k_dim},
      {"pkm_v_dim", c.pkm_v_dim},
  };
  for (const auto& [name, value] : sizes) {
    if (value <= 0) {
      return FieldError(path, name, "expected a positive integer, found " + std::to_string(value));
    }
  }
  if (!std::isfinite(c.rope_theta) || c.rope_theta <= 0) {
    return FieldError(path, "rope_theta",
                      "expected a positive number, found " + std::to_string(c.rope_theta));
  }
  if (!std::isfinite(c.norm_eps) || c.norm_eps < 0) {
    return FieldError(path, "norm_eps",
                      "expected a number >= 0, found " + std::to_string(c.norm_eps));
  }
  if (c.d_model % c.n_heads != 0) {
    return FieldError(path, "n_heads",
                      "d_model=" + std::to_string(c.d_model) +
                          " is not a multiple of n_heads=" + std::to_string(c.n_heads));
  }
  if (c.head_dim() % 2 != 0) {
    return FieldError(path, "n_heads",
                      "head_dim = d_model / n_heads = " + std::to_string(c.d_model) + " / " +
                          std::to_string(c.n_heads) + " = " + std::to_string(c.head_dim()) +
                          " must be even (RoPE rotates pairs)");
  }
  for (const auto& [name, id] : {std::pair<std::string_view, int>{"bos_id", c.bos_id},
                                 std::pair<std::string_view, int>{"eos_id", c.eos_id}}) {
    if (id < 0 || id >= c.vocab_size) {
      return FieldError(path, name,
                        "expected a token id in [0, vocab_size=" + std::to_string(c.vocab_size) +
                            "), found " + std::to_string(id));
    }
  }
  for (size_t i = 0; i < c.pkm_layers.size(); ++i) {
    const int layer = c.pkm_layers[i];
    if (layer < 0 || layer >= c.n_layers) {
      return FieldError(path, "pkm_layers",
                        "layer " + std::to_string(layer) +
                            " is outside [0, n_layers=" + std::to_string(c.n_layers) + ")");
    }
    for (size_t k = 0; k < i; ++k) {
      if (c.pkm_layers[k] == layer) {
        return FieldError(path, "pkm_layers",
                          "layer " + std::to_string(layer) + " is listed twice");
      }
    }
  }
  if (c.pkm_mode != "replace" && c.pkm_mode != "parallel") {
    return FieldError(path, "pkm_mode",
                      "expected \"replace\" or \"parallel\", found \"" + c.pkm_mode + "\"");
  }
  if (c.pkm_knn < 1 || c.pkm_knn > c.pkm_n_keys) {
    return FieldError(path, "pkm_knn",
                      "expected 1 <= pkm_knn <= pkm_n_keys=" + std::to_string(c.pkm_n_keys) +
                          ", found " + std::to_string(c.pkm_knn));
  }
  if (c.pkm_k_dim % 2 != 0) {
    return FieldError(path, "pkm_k_dim",
                      "expected an even number (the query splits in two halves), found " +
                          std::to_string(c.pkm_k_dim));
  }
  if (c.pkm_v_dim != c.d_model) {
    return FieldError(path, "pkm_v_dim",
                      "expected d_model=" + std::to_string(c.d_model) +
                          " (values are added to the residual stream), found " +
                          std::to_string(c.pkm_v_dim));
  }
  if (!DTypeFromConfigName(c.dtype)) {
    return FieldError(
        path, "dtype",
        "expected \"float32\", \"float16\" or \"bfloat16\", found \"" + c.dtype + "\"");
  }
  return OkStatus();
}

// The format 1 fields, as the file has them.
StatusOr<V1Config> ParseV1(const json& j, std::string_view path) {
  const std::string p(path);
  std::vector<std::string> unknown;
  for (const auto& item : j.items()) {
    // A named reference, not a structured binding: clang 14 cannot capture those in a lambda.
    const std::string& key = item.key();
    const bool known =
        std::any_of(kFields.begin(), kFields.end(), [&](const Field& f) { return f.name == key; });
    if (!known) unknown.push_back(key);
  }
  if (!unknown.empty()) {
    return InvalidArgumentError(
        p + ": unknown field" + (unknown.size() > 1 ? "s " : " ") + NameList(unknown) +
        "; check the spelling against docs/model-format.md (format_version 1 allows no other "
        "field)");
  }
  std::vector<std::string> missing;
  for (const Field& f : kFields) {
    if (!j.contains(f.name)) missing.emplace_back(f.name);
  }
  if (!missing.empty()) {
    return InvalidArgumentError(p + ": missing field" + (missing.size() > 1 ? "s " : " ") +
                                NameList(missing) + " (every field is required); " + kReexport);
  }

  V1Config config;
  for (const Field& f : kFields) {
    PKM_RETURN_IF_ERROR(ReadField(j.at(std::string(f.name)), path, f.name, f.member, &config));
  }
  PKM_RETURN_IF_ERROR(ValidateV1(config, path));
  return config;
}

}  // namespace

StatusOr<ModelConfig> ParseModelConfigV1(const nlohmann::json& j, std::string_view path) {
  PKM_ASSIGN_OR_RETURN(V1Config v1, ParseV1(j, path));
  ModelConfig c;
  c.format_version = 1;
  c.architecture = v1.architecture;
  c.family = "pkmserve";
  c.vocab_size = v1.vocab_size;
  c.d_model = v1.d_model;
  c.n_layers = v1.n_layers;
  c.max_seq_len = v1.max_seq_len;
  c.bos_id = v1.bos_id;
  c.eos_id = v1.eos_id;
  c.dtype = v1.dtype;
  c.norm = {NormKind::kLayerNorm, v1.norm_eps, true};
  c.block = BlockOrder::kPreNorm;
  c.embedding_norm = false;
  c.final_norm = true;
  c.positions = {PositionKind::kRope, v1.rope_theta, 0};
  c.attention = {v1.n_heads, v1.n_heads, v1.head_dim(), true};
  c.ffn = {FfnKind::kGelu, v1.d_ff, true};
  c.lm_head = {v1.tie_embeddings, false};
  for (int layer : v1.pkm_layers) {
    MemorySpec m;
    m.layer = layer;
    m.placement = v1.pkm_mode == "parallel" ? MemoryPlacement::kParallel : MemoryPlacement::kReplace;
    m.heads = v1.pkm_heads;
    m.knn = v1.pkm_knn;
    m.n_keys = v1.pkm_n_keys;
    m.k_dim = v1.pkm_k_dim;
    m.v_dim = v1.pkm_v_dim;
    m.values = m.prefix() + "values";
    m.values_dtype = v1.dtype;
    c.memories.push_back(m);
  }
  return c;
}

}  // namespace pkm::internal_loader
