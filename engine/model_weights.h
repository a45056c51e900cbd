// The model's weights on a backend, grouped the way the forward pass composes them: per block
// its norms, attention, FFN and memories, each only as present in the config
// (docs/model-format.md, format 2). A value table shared by several memories is uploaded once.
//
// Weight matrices (Linear weights, the embedding tables) are held as stored when the backend
// reads their type (fp16/bf16 on the CPU), and on a backend that addresses host memory they are
// used from the model file's mapping, not copied. Everything else is widened to fp32.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "kernels/backend.h"
#include "model_loader/model_loader.h"

namespace pkm {

struct NormWeights {
  const float* weight = nullptr;
  const float* bias = nullptr;  // null: no bias
};

// How weight matrices are held (--weights-dtype, --pkm-values-dtype). A type the backend
// does not read falls back to fp32.
enum class WeightsHeld {
  kAsStored,  // as the file stores them (mapped, on the CPU)
  kF32,       // widened to fp32 (the engine before typed weights)
  kF16,       // converted at load, rounding to nearest even
  kBF16,
  kI8,        // per-row absmax int8 (weight_conversion.h)
};

// The flags' spellings: "as-stored", "f32", "f16", "bf16", "int8".
inline constexpr char kWeightsHeldChoices[] = "as-stored, f32, f16, bf16 or int8";
bool ParseWeightsHeld(std::string_view text, WeightsHeld* out);

struct HeldTypes {
  WeightsHeld matrices = WeightsHeld::kAsStored;    // Linear weights and embedding tables
  WeightsHeld pkm_values = WeightsHeld::kAsStored;  // the PKM value tables
};

struct LinearWeights {
  WeightMatrix weight;            // [out, in]
  const float* bias = nullptr;    // [out] or null
  int in = 0, out = 0;
};

struct AttentionWeights {
  LinearWeights q, k, v, o;
};

struct FfnWeights {
  LinearWeights w1, w2, w3;  // w3: swiglu only
};

struct MemoryWeights {
  const MemorySpec* spec = nullptr;  // points into the engine's config
  int index = 0;                     // in config.memories: the order of per-memory outputs
  LinearWeights query;
  NormWeights query_norm;  // query_norm layernorm only
  const float* keys = nullptr;
  WeightMatrix values;  // shared with the memories that name the same table
  LinearWeights swilu, value_proj;  // memory_plus only
};

struct BlockWeights {
  NormWeights attn_norm, ffn_norm;
  AttentionWeights attn;
  bool has_ffn = false;
  FfnWeights ffn;
  int block_memory = -1;  // index into ModelWeights::memories, or -1
  int after_memory = -1;
};

struct ModelWeights {
  WeightMatrix tok_embeddings;
  WeightMatrix pos_embeddings;            // learned positions only
  NormWeights emb_norm, final_norm;       // when present
  LinearWeights lm_head;                  // weight = tok_embeddings when tied
  std::vector<BlockWeights> blocks;
  std::vector<MemoryWeights> memories;  // in config.memories order

  std::vector<DeviceBuffer> buffers;  // owns every tensor not used from the mapping
  size_t bytes = 0;              // every tensor as held
  size_t mapped_bytes = 0;       // of bytes: used from the model file's mapping
  size_t value_table_bytes = 0;  // of bytes
  size_t bytes_of[kWeightTypes] = {};  // the matrices' and value tables' bytes, by WeightType
};

// The types the weight matrices are held in, "+"-joined: "float16", "int8+float32".
std::string HeldTypeNames(const ModelWeights& weights);

// Places `model`'s tensors on `backend` as the header says. `config` must be the model's
// config and outlive the result (the memories point into it); so must `model` (its mapping).
// kResourceExhausted names the tensor the backend could not hold.
StatusOr<ModelWeights> UploadModelWeights(const LoadedModel& model, const ModelConfig& config,
                                          Backend* backend, const HeldTypes& held = {});

}  // namespace pkm
