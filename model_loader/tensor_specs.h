// The tensors a model of a given config must have: the tensor table of docs/model-format.md,
// expanded for one config.
//
// Thread-safety: a pure function.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model_loader/model_config.h"

namespace pkm {

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  // Where the shape comes from, for error messages: "(memories[0].k_dim=128 -> 64 per half)".
  std::string origin;
  std::string dtype;  // its storage type, a config name: the model's, or a table's values_dtype
};

// Every tensor of a model with `config` (validated), in the order of docs/model-format.md:
// embeddings, then each layer's tensors, then the final norm and the LM head. A value table
// shared by several memories appears once, where its first memory is.
std::vector<TensorSpec> ExpectedTensors(const ModelConfig& config);

// A memory's `values` name that is also another tensor's ("layers.0.attn.wq.weight"), or "".
std::string ValueTableNameClash(const ModelConfig& config);

}  // namespace pkm
