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

  // What the tokenizer can do. A model served on token ids only (IdsOnlyTokenizer) can do
  // neither: Encode gives {} and Decode "". An XLM dictionary without its BPE codes decodes but
  // cannot encode. The server refuses the fields that need what is missing, with
  // missing_text_reason() in the message.
  virtual bool can_encode() const { return true; }
  virtual bool can_decode() const { return true; }
  // Why can_encode() or can_decode() is false ("its directory has no tokenizer ..."); "" when
  // both are true.
  virtual std::string_view missing_text_reason() const { return ""; }
  // "sentencepiece", "tiktoken", "xlm" or "none" (GetModelInfo.tokenizer).
  virtual std::string_view kind() const = 0;

  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;
  virtual int32_t eos_id() const = 0;
};

}  // namespace pkm
