// tiktoken BPE tokenizers (cl100k_base, Llama-3): a ranks file, a pre-tokenizer regex and a
// list of special tokens. Target pkm_tiktoken, which needs PCRE2 (Debian: libpcre2-dev) and
// nothing from Abseil or SentencePiece; this header does not include PCRE2's.
//
// Encode follows tiktoken's `encode(text, allowed_special="all")`:
//   1. The text is cut at every special token it contains (leftmost first, the longest when
//      two start at the same byte); each special is encoded as its id. There is no way to turn
//      this off: text that must not produce specials should not contain their spelling.
//   2. Each stretch between specials is split by the pre-tokenizer regex into pieces.
//   3. A piece that is itself in the vocabulary is one token; otherwise its bytes are merged
//      pairwise, always the adjacent pair whose concatenation has the lowest rank, until no
//      adjacent pair is in the vocabulary.
// Bytes that the regex cannot match (invalid UTF-8) are encoded as pieces of their own, so
// Decode(Encode(x)) == x for any bytes whenever the vocabulary holds all 256 single bytes
// (every real tiktoken file does), for valid UTF-8 x. A byte the vocabulary lacks is dropped.
//
// Decode concatenates the tokens' bytes and, as every Tokenizer, returns valid UTF-8: bytes
// that do not form a character become U+FFFD (ReplaceInvalidUtf8), so Decode(Encode(x)) == x
// for UTF-8 text. IdToPiece returns a token's bytes (not base64) likewise, and a special
// token's text.
//
// Thread-safety: the tokenizer is immutable after loading; all methods may run concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "model_loader/tokenizer.h"

namespace pkm {

// cl100k_base's pre-tokenizer as the npm tiktoken package ships it (encoders/cl100k_base.json,
// "pat_str"); tests/model_loader/tiktoken_ref fails if the package's pattern ever differs.
// Later tiktoken releases spell it with possessive quantifiers and \s*[\r\n] for \s*[\r\n]+,
//   '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|
//   \s*[\r\n]|\s+(?!\S)|\s+
// which changes no match (the backtracking it forbids never leads to one; \s* already takes
// all but the last newline); with it as the pattern the tiktoken_ref corpus gives the same ids.
inline constexpr char kCl100kPattern[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Llama-3's pre-tokenizer: `pat_str` in meta-llama/llama3 llama/tokenizer.py, character for
// character cl100k's. Named apart so that a model's configuration says which one it means.
inline constexpr char kLlama3Pattern[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

struct TiktokenOptions {
  // A PCRE2 pattern, compiled in UTF mode with Unicode properties (\p{L}, \s, (?i) by Unicode).
  std::string pattern = kCl100kPattern;
  // (text, id), e.g. {"<|endoftext|>", 100257}. Ids must not be ranks of the file.
  std::vector<std::pair<std::string, int32_t>> special_tokens;
  // -1 when the model has none; otherwise an id of the file or of special_tokens.
  int32_t bos_id = -1;
  int32_t eos_id = -1;
};

// Loads a tiktoken ranks file: one `base64(token bytes) rank` per line (blank lines skipped);
// the ranks are the ids. vocab_size() is one past the largest rank or special id; ids in
// between that name nothing decode to nothing.
// Errors: kNotFound when `path` does not exist; kDataLoss for a malformed line (bad base64, bad
// or negative rank, a token or rank seen before), naming `path:line`; kInvalidArgument for a
// pattern PCRE2 refuses or special tokens / bos / eos that do not fit the file.
StatusOr<std::unique_ptr<Tokenizer>> LoadTiktokenTokenizer(const std::string& path,
                                                           const TiktokenOptions& options);

}  // namespace pkm
