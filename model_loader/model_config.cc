#include "model_loader/model_config.h"

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <variant>

#include "model_loader/file_util.h"

namespace pkm {
namespace {

using json = nlohmann::json;

constexpr char kReexport[] = "re-export the model with training/export.py";

// The table of config.json keys: parsing, unknown and missing fields all follow it.
using Member = std::variant<int ModelConfig::*, double ModelConfig::*, bool ModelConfig::*,
                            std::string ModelConfig::*, std::vector<int> ModelConfig::*>;
struct Field {
  std::string_view name;
  Member member;
};

const std::array<Field, 21> kFields = {{
    {"format_version", &ModelConfig::format_version},
    {"architecture", &ModelConfig::architecture},
    {"vocab_size", &ModelConfig::vocab_size},
    {"d_model", &ModelConfig::d_model},
    {"n_layers", &ModelConfig::n_layers},
    {"n_heads", &ModelConfig::n_heads},
    {"d_ff", &ModelConfig::d_ff},
    {"max_seq_len", &ModelConfig::max_seq_len},
    {"rope_theta", &ModelConfig::rope_theta},
    {"norm_eps", &ModelConfig::norm_eps},
    {"tie_embeddings", &ModelConfig::tie_embeddings},
    {"bos_id", &ModelConfig::bos_id},
    {"eos_id", &ModelConfig::eos_id},
    {"pkm_layers", &ModelConfig::pkm_layers},
    {"pkm_mode", &ModelConfig::pkm_mode},
    {"pkm_heads", &ModelConfig::pkm_heads},
    {"pkm_knn", &ModelConfig::pkm_knn},
    {"pkm_n_keys", &ModelConfig::pkm_n_keys},
    {"pkm_k_dim", &ModelConfig::pkm_k_dim},
    {"pkm_v_dim", &ModelConfig::pkm_v_dim},
    {"dtype", &ModelConfig::dtype},
}};

// Built by appending: GCC 12 warns falsely (-Wrestrict, PR 105651) on "literal" + string&&.
std::string Quote(std::string_view s) {
  std::string quoted = "'";
  quoted += s;
  return quoted += "'";
}

Status FieldError(std::string_view path, std::string_view field, const std::string& what) {
  return InvalidArgumentError(std::string(path) + ": field " + Quote(field) + ": " + what);
}

// "string \"256\"", "number 256.5", "array [1,2]": the found side of a type error.
std::string Describe(const json& v) {
  std::string text = v.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return std::string(v.type_name()) + " " + text;
}

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
                 ModelConfig* config) {
  if (auto* m = std::get_if<int ModelConfig::*>(&member)) {
    return ReadInt(v, path, name, &(config->**m));
  }
  if (auto* m = std::get_if<double ModelConfig::*>(&member)) {
    if (!v.is_number()) return FieldError(path, name, "expected a number, found " + Describe(v));
    config->** m = v.get<double>();
    return OkStatus();
  }
  if (auto* m = std::get_if<bool ModelConfig::*>(&member)) {
    if (!v.is_boolean()) {
      return FieldError(path, name, "expected true or false, found " + Describe(v));
    }
    config->** m = v.get<bool>();
    return OkStatus();
  }
  if (auto* m = std::get_if<std::string ModelConfig::*>(&member)) {
    if (!v.is_string()) return FieldError(path, name, "expected a string, found " + Describe(v));
    config->** m = v.get<std::string>();
    return OkStatus();
  }
  auto* m = std::get_if<std::vector<int> ModelConfig::*>(&member);
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

Status CheckFormatVersion(const json& j, std::string_view path) {
  auto it = j.find("format_version");
  if (it == j.end()) return OkStatus();  // reported with the other missing fields
  int version = 0;
  PKM_RETURN_IF_ERROR(ReadInt(*it, path, "format_version", &version));
  if (version != kModelFormatVersion) {
    return UnimplementedError(
        std::string(path) + ": field 'format_version': this build of pkmserve reads version " +
        std::to_string(kModelFormatVersion) + " only, found " + std::to_string(version) +
        "; use a pkmserve that reads it, or " + kReexport + " from this checkout");
  }
  return OkStatus();
}

}  // namespace

bool ModelConfig::HasPkm(int layer) const {
  return std::find(pkm_layers.begin(), pkm_layers.end(), layer) != pkm_layers.end();
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
  try {  // nlohmann reports syntax errors, with their position, only by exception
    j = json::parse(json_text);
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    if (size_t cut = what.find("] "); cut != std::string::npos) what = what.substr(cut + 2);
    return InvalidArgumentError(p + ": malformed JSON: " + what + " (byte " +
                                std::to_string(e.byte) + ")");
  }
  if (!j.is_object()) {
    return InvalidArgumentError(p + ": expected a JSON object of config fields, found " +
                                Describe(j));
  }
  // The version first: a newer file's new fields must not be reported as typos.
  PKM_RETURN_IF_ERROR(CheckFormatVersion(j, path));

  std::vector<std::string> unknown;
  for (const auto& [key, value] : j.items()) {
    const bool known =
        std::any_of(kFields.begin(), kFields.end(), [&](const Field& f) { return f.name == key; });
    if (!known) unknown.push_back(key);
  }
  if (!unknown.empty()) {
    return InvalidArgumentError(
        p + ": unknown field" + (unknown.size() > 1 ? "s " : " ") + NameList(unknown) +
        "; check the spelling against docs/model-format.md (format_version " +
        std::to_string(kModelFormatVersion) + " allows no other field)");
  }
  std::vector<std::string> missing;
  for (const Field& f : kFields) {
    if (!j.contains(f.name)) missing.emplace_back(f.name);
  }
  if (!missing.empty()) {
    return InvalidArgumentError(p + ": missing field" + (missing.size() > 1 ? "s " : " ") +
                                NameList(missing) + " (every field is required); " + kReexport);
  }

  ModelConfig config;
  for (const Field& f : kFields) {
    PKM_RETURN_IF_ERROR(ReadField(j.at(std::string(f.name)), path, f.name, f.member, &config));
  }
  PKM_RETURN_IF_ERROR(ValidateModelConfig(config, path));
  return config;
}

Status ValidateModelConfig(const ModelConfig& c, std::string_view path) {
  if (c.format_version != kModelFormatVersion) {
    return UnimplementedError(std::string(path) + ": field 'format_version': expected " +
                              std::to_string(kModelFormatVersion) + ", found " +
                              std::to_string(c.format_version));
  }
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

}  // namespace pkm
