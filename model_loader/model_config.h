// ModelConfig: the fields of a model's config.json (docs/model-format.md, format_version 1),
// parsed and validated.
//
// Every error message names the file, the field, what was expected and what was found.
// Codes: kNotFound (no such file), kUnimplemented (a format_version this build cannot read),
// kInvalidArgument (anything else: malformed JSON, unknown or missing field, wrong JSON type,
// a value breaking an invariant).
//
// Thread-safety: ModelConfig is a plain value; the functions are reentrant.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "model_loader/dtype.h"

namespace pkm {

inline constexpr int kModelFormatVersion = 1;
inline constexpr std::string_view kModelArchitecture = "pkm-transformer";

// Field for field the keys of config.json; docs/model-format.md says what each means.
struct ModelConfig {
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
  std::vector<int> pkm_layers;  // 0-based block indices, in file order
  std::string pkm_mode;         // "replace" or "parallel"
  int pkm_heads = 0;
  int pkm_knn = 0;
  int pkm_n_keys = 0;
  int pkm_k_dim = 0;
  int pkm_v_dim = 0;
  std::string dtype;  // "float32", "float16" or "bfloat16"

  // Derived values; meaningful for a validated config.
  int head_dim() const { return d_model / n_heads; }
  int64_t pkm_slots() const { return int64_t{pkm_n_keys} * pkm_n_keys; }
  bool HasPkm(int layer) const;
  // Layers without a memory, and memory layers in parallel mode, have an FFN.
  bool HasFfn(int layer) const { return !HasPkm(layer) || pkm_mode == "parallel"; }
  // The storage type of every tensor. Aborts when `dtype` is not a valid config name.
  DType weight_dtype() const;
};

// Reads and validates `path` (a config.json).
StatusOr<ModelConfig> LoadModelConfig(const std::string& path);
// Parses and validates config.json text; `path` is only used in error messages.
StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text, std::string_view path);
// The invariants of the format (format_version, architecture, positive sizes, head_dim even,
// pkm_layers in range and unique, pkm_mode, pkm_knn, pkm_k_dim, pkm_v_dim, dtype, bos/eos ids).
Status ValidateModelConfig(const ModelConfig& config, std::string_view path);

}  // namespace pkm
