#include "engine/generation.h"

#include <algorithm>

namespace pkm {

const char* FinishReasonName(FinishReason r) {
  switch (r) {
    case FinishReason::kNone: return "none";
    case FinishReason::kLength: return "length";
    case FinishReason::kStop: return "stop";
    case FinishReason::kEos: return "eos";
    case FinishReason::kCancelled: return "cancelled";
  }
  return "unknown";
}

Generation::Generation(const Tokenizer* tokenizer, int32_t anchor, int eos_id,
                       GenerateOptions options)
    : tokenizer_(tokenizer),
      anchor_(anchor),
      eos_id_(eos_id),
      options_(std::move(options)),
      stop_(options_.stop) {
  anchor_text_ = tokenizer_->Decode(std::vector<int32_t>{anchor_});
}

// Decoded text of the continuation not yet handed on. Unless `final`, a trailing U+FFFD (the
// decoder's stand-in for an incomplete UTF-8 sequence) is held back: the next byte-fallback
// token may complete the character.
std::string Generation::NewText(bool final) {
  std::vector<int32_t> ids;
  ids.reserve(tokens_.size() + 1);
  ids.push_back(anchor_);
  ids.insert(ids.end(), tokens_.begin(), tokens_.end());
  std::string full = tokenizer_->Decode(ids);
  std::string text = full.compare(0, anchor_text_.size(), anchor_text_) == 0
                         ? full.substr(anchor_text_.size())
                         : tokenizer_->Decode(tokens_);
  static const std::string kReplacement = "\xEF\xBF\xBD";
  size_t end = text.size();
  if (!final && end >= kReplacement.size() &&
      text.compare(end - kReplacement.size(), kReplacement.size(), kReplacement) == 0) {
    end -= kReplacement.size();
  }
  if (end <= decoded_bytes_) return "";
  std::string delta = text.substr(decoded_bytes_, end - decoded_bytes_);
  decoded_bytes_ = end;
  return delta;
}

Generation::Event Generation::Next(const float* logits, int vocab) {
  Event ev;
  if (finish_ != FinishReason::kNone) {
    ev.finish = finish_;
    return ev;
  }
  ev.token = SampleToken(logits, vocab, options_.sampling, tokens_.size());
  if (options_.logprobs) ev.logprob = TokenLogProb(logits, vocab, ev.token);
  if (ev.token == eos_id_ && !options_.ignore_eos) {
    finish_ = FinishReason::kEos;
  } else {
    tokens_.push_back(ev.token);
    if (static_cast<int>(tokens_.size()) >= options_.max_new_tokens) finish_ = FinishReason::kLength;
  }
  StopMatcher::Result r = stop_.Feed(NewText(finish_ != FinishReason::kNone));
  ev.text = std::move(r.emit);
  if (r.stopped) {
    finish_ = FinishReason::kStop;
  } else if (finish_ != FinishReason::kNone) {
    ev.text += stop_.Flush();
  }
  ev.finish = finish_;
  return ev;
}

StatusOr<GenerateResult> Generate(Engine& engine, const Tokenizer& tokenizer, SeqId seq,
                                  std::span<const int32_t> prompt, const GenerateOptions& options,
                                  int prefill_chunk) {
  if (prompt.empty()) return Status(StatusCode::kInvalidArgument, "prompt is empty");
  Generation gen(&tokenizer, prompt.back(), engine.config().eos_id, options);
  GenerateResult result;
  const size_t chunk = prefill_chunk > 0 ? prefill_chunk : prompt.size();
  StepResult step;
  Status status;
  for (size_t start = 0; start < prompt.size() && status.ok(); start += chunk) {
    SeqChunk ch{.seq = seq, .tokens = prompt.subspan(start, std::min(chunk, prompt.size() - start))};
    status = engine.Step(std::span<const SeqChunk>(&ch, 1), &step);
  }
  int32_t next = -1;
  while (status.ok()) {
    Generation::Event ev = gen.Next(step.logits.data(), engine.config().vocab_size);
    result.text += ev.text;
    if (ev.finish != FinishReason::kNone) break;
    next = ev.token;
    SeqChunk ch{.seq = seq, .tokens = std::span<const int32_t>(&next, 1)};
    status = engine.Step(std::span<const SeqChunk>(&ch, 1), &step);
  }
  engine.Release(seq);
  if (!status.ok()) return status;
  result.tokens = gen.tokens();
  result.finish = gen.finish();
  return result;
}

}  // namespace pkm
