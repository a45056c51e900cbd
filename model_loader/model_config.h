// ModelConfig: a model's config.json (docs/model-format.md), parsed and validated. Format 2
// describes a model family by its parts (norm, block order, positions, attention, FFN, LM head,
// memories); a format 1 file is read as the format 2 model it always was.
//
// Every error message names the file, the field (with its path: `memories[1].placement`), what
// was expected and what was found. Codes: kNotFound (no such file), kUnimplemented (a
// format_version this build cannot read), kInvalidArgument (anything else: malformed JSON,
// unknown or missing field, wrong JSON type, a value breaking an invariant).
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

inline constexpr int kModelFormatVersion = 2;  // the newest this build reads (and 1)
inline constexpr std::string_view kModelArchitecture = "pkm-transformer";

enum class NormKind { kLayerNorm, kRmsNorm };
enum class BlockOrder { kPreNorm, kPostNorm };
enum class PositionKind { kRope, kLearned, kNone };
enum class FfnKind { kGelu, kGeluTanh, kRelu, kSwiglu };
enum class MemoryPlacement { kReplace, kParallel, kAfter };
enum class QueryNorm { kNone, kLayerNorm };
enum class MemoryOutput { kSum, kMemoryPlus };

// The names config.json uses ("rmsnorm", "post_norm", "swiglu", "after", ...).
std::string_view Name(NormKind v);
std::string_view Name(BlockOrder v);
std::string_view Name(PositionKind v);
std::string_view Name(FfnKind v);
std::string_view Name(MemoryPlacement v);
std::string_view Name(QueryNorm v);
std::string_view Name(MemoryOutput v);

struct NormSpec {
  NormKind kind = NormKind::kLayerNorm;
  double eps = 1e-5;
  bool bias = true;  // layernorm only
};

struct PositionSpec {
  PositionKind kind = PositionKind::kRope;
  double rope_theta = 10000.0;  // rope
  int max_positions = 0;        // learned: rows of pos_embeddings
};

struct AttentionSpec {
  int n_heads = 0;
  int n_kv_heads = 0;  // divides n_heads; query head h reads kv head h / (n_heads / n_kv_heads)
  int head_dim = 0;
  bool bias = true;  // q, k, v and o projections
};

struct FfnSpec {
  FfnKind kind = FfnKind::kGelu;
  int hidden = 0;
  bool bias = true;  // w1, w2 (and w3)
};

struct LmHeadSpec {
  bool tied = true;
  bool bias = false;
};

struct MemorySpec {
  int layer = 0;
  MemoryPlacement placement = MemoryPlacement::kReplace;
  int heads = 0, knn = 0, n_keys = 0, k_dim = 0, v_dim = 0;
  bool query_bias = true;
  QueryNorm query_norm = QueryNorm::kNone;
  double query_norm_eps = 1e-5;
  MemoryOutput output = MemoryOutput::kSum;
  bool output_bias = true;  // memory_plus: swilu and value_proj
  std::string values;        // tensor name of its value table (shared when equal)
  std::string values_dtype;  // storage type of that table

  int64_t slots() const { return int64_t{n_keys} * n_keys; }
  // "layers.4.pkm." or, after the block, "layers.4.pkm_after.".
  std::string prefix() const;
  // "layer 4 (replace)": how messages and GetModelInfo name it.
  std::string label() const;
};

struct ModelConfig {
  int format_version = 0;  // as read: 1 or 2
  std::string architecture;
  std::string family;
  int vocab_size = 0;
  int d_model = 0;
  int n_layers = 0;
  int max_seq_len = 0;
  int bos_id = 0;
  int eos_id = 0;
  std::string dtype;  // "float32", "float16" or "bfloat16"
  NormSpec norm;
  BlockOrder block = BlockOrder::kPreNorm;
  bool embedding_norm = false;
  bool final_norm = true;
  PositionSpec positions;
  AttentionSpec attention;
  FfnSpec ffn;
  LmHeadSpec lm_head;
  std::vector<MemorySpec> memories;  // in file order

  int n_heads() const { return attention.n_heads; }
  int head_dim() const { return attention.head_dim; }
  // The memory inside block `layer` (replace or parallel), or null.
  const MemorySpec* BlockMemory(int layer) const;
  // The memory after block `layer`, or null.
  const MemorySpec* AfterMemory(int layer) const;
  // Each memory's block index, in memories order (the order of per-memory engine outputs
  // and metrics).
  std::vector<int> memory_layers() const;
  // Each memory's name in metrics, in memories order: "4", or "4_after" after block 4 (a
  // block may hold one memory and have another after it).
  std::vector<std::string> memory_labels() const;
  // Every block has an FFN but one whose memory replaces it.
  bool HasFfn(int layer) const;
  // The storage type of every tensor but value tables. Aborts when `dtype` is invalid.
  DType weight_dtype() const;
};

// Reads and validates `path` (a config.json).
StatusOr<ModelConfig> LoadModelConfig(const std::string& path);
// Parses and validates config.json text; `path` is only used in error messages.
StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text, std::string_view path);
// The invariants of the format (sizes, heads, positions, memories in range, shared tables
// consistent, dtypes, bos/eos ids), whichever version the config was read from.
Status ValidateModelConfig(const ModelConfig& config, std::string_view path);

}  // namespace pkm
