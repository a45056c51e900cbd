// XLM's tokenizer: a dictionary of words (Moses tokens split by fastBPE, continued pieces
// ending in "@@") and, optionally, the fastBPE codes the model was trained with. Target
// pkm_xlm_tokenizer; it needs only the standard library.
//
// Files (docs/model-format.md):
//   dictionary  one word per line, line i = id i: XLM's order, <s> </s> <pad> <unk>
//               <special0>..<special9> and then the words (training/convert writes it from the
//               checkpoint's dico_id2word). "<unk>" must be present.
//   codes       fastBPE codes, "left right count" per line, in merge order ("e r</w> 42").
//
// Encode (only with codes; can_encode() says whether) does what fastBPE's applybpe with the
// dictionary as its vocabulary, then XLM's Dictionary.index, do to a line:
//   1. The text is split into words at ASCII whitespace. XLM's text was Moses-tokenized (and,
//      for some models, lower-cased and accent-stripped) first; that step is the caller's.
//   2. Each word becomes its UTF-8 characters, the last one marked with "</w>". The adjacent
//      pair of lowest code rank is merged, every occurrence left to right, until no adjacent
//      pair has a code.
//   3. Each piece but the last gets "@@", the last loses "</w>"; a piece the dictionary lacks
//      is split back into the two it was merged from (recursively, down to characters).
//   4. Pieces map to their dictionary ids, unknown ones to <unk>.
// Decode joins the words with spaces, a word ending in "@@" joined to the next without one
// and its "@@" dropped (XLM's `" ".join(words).replace("@@ ", "")`, also at the end, so that
// the text of a prefix is a prefix of the text). <s>, </s>, <pad> and <specialN> decode to
// nothing; <unk> to "<unk>". The text is XLM's tokenized form (Moses detokenization is not
// done: its rules are per language).
//
// Thread-safety: immutable after loading; all methods may run concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "model_loader/tokenizer.h"

namespace pkm {

// `codes_path` empty: no codes, the model takes token ids and returns text.
// Errors: kNotFound for a missing file; kDataLoss for a malformed line (a word with whitespace,
// a word twice, a codes line not "left right count"), naming `path:line`; kInvalidArgument when
// the dictionary has no <unk> or its size is not `vocab_size`, or bos/eos are out of range.
StatusOr<std::unique_ptr<Tokenizer>> LoadXlmTokenizer(const std::string& dictionary_path,
                                                      const std::string& codes_path,
                                                      int32_t vocab_size, int32_t bos_id,
                                                      int32_t eos_id);

}  // namespace pkm
