// Tokenizer: text <-> token ids. A pure interface, so that code using a tokenizer (the server,
// tests with fakes) does not see SentencePiece, whose headers clash with Abseil's.
//
// Thread-safety: implementations are immutable after construction; every method is const and
// may be called concurrently.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pkm {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // The ids of `text`, without BOS or EOS (the caller adds them).
  virtual std::vector<int32_t> Encode(std::string_view text) const = 0;
  // The text of `ids`, valid UTF-8 (bytes that form no character become U+FFFD; a character
  // cut at the end, one U+FFFD). Ids outside [0, vocab_size()) are skipped.
  virtual std::string Decode(std::span<const int32_t> ids) const = 0;
  // The piece of one id as stored in the vocabulary ("▁the", "<0x0A>"); "" when out of range.
  virtual std::string IdToPiece(int32_t id) const = 0;

  // False for a model served on token ids only (IdsOnlyTokenizer): nothing to encode text
  // with, and decoding gives "". The server then refuses text fields, naming the ids field.
  virtual bool has_text() const { return true; }
  // "sentencepiece", "tiktoken" or "none" (GetModelInfo.tokenizer).
  virtual std::string_view kind() const = 0;

  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;
  virtual int32_t eos_id() const = 0;
};

}  // namespace pkm
