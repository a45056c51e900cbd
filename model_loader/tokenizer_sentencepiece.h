// The SentencePiece tokenizer of a model directory (tokenizer.model). Target pkm_tokenizer,
// built only where SentencePiece is installed; this header does not include its headers.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "model_loader/tokenizer.h"

namespace pkm {

// Loads a SentencePiece model file. kNotFound when `path` does not exist, kDataLoss when it is
// not a SentencePiece model; both messages name the path. kFailedPrecondition when the
// SentencePiece plugin (libpkm_sentencepiece.so) cannot be loaded.
StatusOr<std::unique_ptr<Tokenizer>> LoadSentencePieceTokenizer(const std::string& path);

namespace internal_tokenizer {
// The implementation inside the plugin.
StatusOr<std::unique_ptr<Tokenizer>> LoadSentencePieceDirect(const std::string& path);
}  // namespace internal_tokenizer

}  // namespace pkm
