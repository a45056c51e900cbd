// The tokenizer a model directory carries, chosen by its files (docs/model-format.md):
//   tokenizer.model                 SentencePiece
//   tokenizer.tiktoken + tiktoken.json
//                                   tiktoken BPE ranks, with {"pattern": "cl100k" | "llama3" |
//                                   a PCRE2 pattern, "special_tokens": {"<|text|>": id, ...}}
//   xlm_dictionary.txt [+ xlm_bpe_codes.txt]
//                                   XLM's dictionary, and the fastBPE codes that encode text
//                                   (without them: token ids in, text out; tokenizer_xlm.h)
//   none of these                   none: the model is served on token ids (IdsOnlyTokenizer)
// BOS and EOS are the config's. Errors name the file.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "model_loader/model_loader.h"
#include "model_loader/tokenizer.h"

namespace pkm {

StatusOr<std::unique_ptr<Tokenizer>> LoadModelTokenizer(const LoadedModel& model);

}  // namespace pkm
