// LoadModel: reads a model directory (docs/model-format.md) and checks it completely before
// anything uses it: config.json parses and validates, model.safetensors is sound and holds
// exactly the tensors the config implies, each with its shape and the config's dtype, and
// tokenizer.model is a readable file (its contents are the tokenizer's business).
//
// Errors name the file, the field or tensor, expected against found, and the fix, e.g.
//   models/x/model.safetensors: tensor 'layers.4.pkm.keys' has shape [4,2,128,32], expected
//   [4,2,128,64] (memories[0].heads=4, 2 halves, memories[0].n_keys=128,
//   memories[0].k_dim=128 -> 64 per half);
//   re-export with training/export.py
// Codes: kNotFound for a missing directory or file; the codes of LoadModelConfig and
// SafetensorsFile::Open for their files; kInvalidArgument for missing, unexpected, misshapen or
// mistyped tensors.
//
// Thread-safety: a LoadedModel is immutable; const methods may be called concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "model_loader/dtype.h"
#include "model_loader/model_config.h"
#include "model_loader/safetensors.h"

namespace pkm {

class LoadedModel {
 public:
  LoadedModel(LoadedModel&&) noexcept = default;
  LoadedModel& operator=(LoadedModel&&) noexcept = default;

  // The directory as given to LoadModel.
  const std::string& dir() const { return dir_; }
  const ModelConfig& config() const { return config_; }
  // The weight called `name` (mapped, in the config's dtype), or null: absent optional tensors
  // (lm_head.weight when tied, ffn.* of replace-mode memory layers) are null.
  const TensorView* FindTensor(std::string_view name) const { return weights_.Find(name); }
  // Every weight, sorted by name.
  const std::vector<TensorView>& tensors() const { return weights_.tensors(); }
  const SafetensorsFile& weights() const { return weights_; }

  // Elements of all tensors (tied embeddings counted once).
  int64_t parameter_count() const;
  // Bytes of all tensors as stored.
  size_t weight_bytes() const;
  // One paragraph: layers, d_model, heads, vocab, the memory (layers, mode, heads, knn, slots,
  // k_dim), dtype, parameters and bytes.
  std::string Summary() const;

 private:
  friend StatusOr<LoadedModel> LoadModel(const std::string& dir);
  LoadedModel(std::string dir, ModelConfig config, SafetensorsFile weights);

  std::string dir_;
  ModelConfig config_;
  SafetensorsFile weights_;
};

// Loads and validates the model in `dir`: config.json and model.safetensors. Its tokenizer is
// LoadModelTokenizer's (model_tokenizer.h).
StatusOr<LoadedModel> LoadModel(const std::string& dir);

// The tensor checks of LoadModel: `weights` holds exactly ExpectedTensors(config) (first
// missing, then shape and dtype in spec order, then unexpected tensors are reported).
Status ValidateTensors(const ModelConfig& config, const SafetensorsFile& weights);

}  // namespace pkm
