// The tensors a model of a given config must have: the table of docs/model-format.md, expanded.
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
  // Where the shape comes from, for error messages: "(pkm_k_dim=128 -> 64 per half)".
  std::string origin;
};

// Every tensor of a model with `config` (validated), in the order of docs/model-format.md:
// tok_embeddings, then each layer's tensors, then norm and lm_head.
std::vector<TensorSpec> ExpectedTensors(const ModelConfig& config);

}  // namespace pkm
