// The tokenizer of a model directory without a tokenizer's files (a converted checkpoint whose
// vocabulary cannot be tokenized exactly, or a test model): it knows the vocabulary's size and
// BOS/EOS ids only, so the model is served on token ids.
#pragma once

#include "model_loader/tokenizer.h"

namespace pkm {

class IdsOnlyTokenizer final : public Tokenizer {
 public:
  IdsOnlyTokenizer(int32_t vocab_size, int32_t bos_id, int32_t eos_id)
      : vocab_size_(vocab_size), bos_id_(bos_id), eos_id_(eos_id) {}

  std::vector<int32_t> Encode(std::string_view) const override { return {}; }
  std::string Decode(std::span<const int32_t>) const override { return ""; }
  std::string IdToPiece(int32_t) const override { return ""; }
  bool can_encode() const override { return false; }
  bool can_decode() const override { return false; }
  std::string_view missing_text_reason() const override {
    return "its directory has no tokenizer (tokenizer.model, tokenizer.tiktoken or "
           "xlm_dictionary.txt)";
  }
  std::string_view kind() const override { return "none"; }
  int32_t vocab_size() const override { return vocab_size_; }
  int32_t bos_id() const override { return bos_id_; }
  int32_t eos_id() const override { return eos_id_; }

 private:
  int32_t vocab_size_, bos_id_, eos_id_;
};

}  // namespace pkm
