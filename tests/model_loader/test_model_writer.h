// Test helpers: temporary directories, and tiny model directories written in the format of
// docs/model-format.md so that loader tests need no exported model.
//
// The tensor list here is written out by hand from the docs, independently of
// model_loader/tensor_specs.cc, so that a test comparing the two can catch a mistake in either.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model_loader/dtype.h"

namespace pkm::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string Join(std::string_view name) const;

 private:
  std::string path_;
};

// A tensor to write. `values` (numel of `shape` elements) are converted to `dtype` on write:
// rounded to nearest for F16/BF16, truncated toward zero for integer types.
struct TestTensor {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

// A tensor of `shape` with values uniform in [-1, 1) from `seed`.
TestTensor RandomTensor(DType dtype, std::vector<int64_t> shape, uint32_t seed);

// A model directory in memory. Tests mutate `config` and `tensors`, then Write().
struct TestModel {
  nlohmann::json config;
  std::map<std::string, TestTensor> tensors;
  std::map<std::string, std::string> metadata = {{"format", "pt"},
                                                 {"pkmserve_format_version", "1"}};

  // vocab 32, d_model 16, 2 layers, 2 heads, d_ff 32, a memory in layer 1 (replace mode) with
  // 2 heads, knn 2, n_keys 4, k_dim 8; float32; tied embeddings.
  static TestModel Tiny(uint32_t seed = 1);

  // Replaces `tensors` with random tensors of the shapes `config` implies (call after changing
  // sizes, pkm_layers, pkm_mode or tie_embeddings in `config`), in config["dtype"].
  void RebuildTensors(uint32_t seed = 1);

  // Writes config.json and model.safetensors (no tokenizer) into `dir`, which must exist.
  void Write(const std::string& dir) const;
};

// Writes a safetensors file the way training/export.py does: header padded with spaces so the
// data starts on an 8-byte boundary, tensors in name order without gaps.
void WriteSafetensors(const std::string& path, const std::map<std::string, TestTensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Writes [u64 header_len][header][data]; header_len defaults to header.size(). For corrupt files.
void WriteRawSafetensors(const std::string& path, std::string_view header, std::string_view data,
                         std::optional<uint64_t> header_len = std::nullopt);

void WriteFile(const std::string& path, std::string_view contents);

// float -> IEEE binary16 / bfloat16 bits, round to nearest even (overflow to inf, NaN kept).
uint16_t FloatToHalf(float f);
uint16_t FloatToBFloat16(float f);

}  // namespace pkm::testing
