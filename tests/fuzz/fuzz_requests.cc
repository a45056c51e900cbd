// Fuzzes request validation for every RPC, on the bundled model's config and tokenizer: the
// bytes of a gRPC request message (decoded as the service decodes them, request_decoding.h) and
// the HTTP API's JSON bodies (completion_request.h). Properties beyond "no crash": a refusal
// says why; accepted work is within the model and the limits (a prompt in the vocabulary that
// leaves room for max_new_tokens, score windows in range) and samples a token in the vocabulary.
//
// Input: one byte choosing the entry point, then its bytes.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "engine/sampling.h"
#include "model_loader/model_config.h"
#include "model_loader/tokenizer_sentencepiece.h"
#include "pkmserve/v1/inference.pb.h"
#include "server/http/completion_request.h"
#include "server/request_decoding.h"
#include "server/request_validation.h"
#include "tests/fuzz/fuzz_files.h"

namespace {

namespace v1 = pkmserve::v1;

void Require(bool ok) {
  if (!ok) std::abort();
}

struct Fixtures {
  pkm::ModelConfig config = [] {
    auto c = pkm::LoadModelConfig(pkm::fuzz::SourcePath("models/pkm-small/config.json"));
    Require(c.ok());
    return *c;
  }();
  std::unique_ptr<pkm::Tokenizer> tokenizer = [] {
    auto t = pkm::LoadSentencePieceTokenizer(pkm::fuzz::SourcePath("models/pkm-small/tokenizer.model"));
    Require(t.ok());
    return std::move(*t);
  }();
  pkm::ServiceLimits limits{.max_prompt_tokens = 200, .max_new_tokens = 100};
  std::vector<float> logits = [this] {
    std::vector<float> l(static_cast<size_t>(config.vocab_size));
    for (size_t i = 0; i < l.size(); ++i) l[i] = static_cast<float>((i * 7919) % 101) / 10.0f;
    return l;
  }();
};

void CheckGenerate(const Fixtures& f, const v1::GenerateRequest& request) {
  auto work = pkm::ToGenerateWork(request, *f.tokenizer, f.config, f.limits);
  if (!work.ok()) {
    Require(!work.status().message().empty());
    return;
  }
  Require(!work->prompt.empty());
  for (int32_t id : work->prompt) Require(id >= 0 && id < f.config.vocab_size);
  Require(work->options.max_new_tokens >= 1);
  Require(work->options.max_new_tokens <= f.limits.max_new_tokens);
  Require(static_cast<int>(work->prompt.size()) + work->options.max_new_tokens <=
          f.config.max_seq_len);
  Require(pkm::Validate(work->options.sampling, f.config.vocab_size).empty());
  const int32_t token =
      pkm::SampleToken(f.logits.data(), f.config.vocab_size, work->options.sampling, 0);
  Require(token >= 0 && token < f.config.vocab_size);
}

void CheckScore(const Fixtures& f, const v1::ScoreRequest& request) {
  auto work = pkm::ToScoreWork(request, *f.tokenizer, f.config);
  if (!work.ok()) {
    Require(!work.status().message().empty());
    return;
  }
  Require(work->tokens.size() >= 2);
  for (int32_t id : work->tokens) Require(id >= 0 && id < f.config.vocab_size);
  Require(work->context >= 2 && work->context <= f.config.max_seq_len);
  Require(work->stride >= 1 && work->stride <= work->context);
  Require(work->score_from >= 1 && work->score_from <= work->context - 1);
}

void CheckDetokenize(const Fixtures& f, const v1::DetokenizeRequest& request) {
  if (pkm::CheckTokenIds(request.ids(), f.config.vocab_size, "ids").ok()) {
    (void)f.tokenizer->Decode({request.ids().data(), static_cast<size_t>(request.ids_size())});
  }
}

template <typename Message>
bool Decode(const std::string& bytes, Message* out) {
  const grpc::Status status = pkm::DecodeRequestBytes(bytes, out);
  if (!status.ok()) Require(!status.error_message().empty());
  return status.ok();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Fixtures* fixtures = new Fixtures();
  const Fixtures& f = *fixtures;
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 8) {
    case 0: {
      v1::GenerateRequest r;
      if (Decode(rest, &r)) CheckGenerate(f, r);
      break;
    }
    case 1: {
      v1::ScoreRequest r;
      if (Decode(rest, &r)) CheckScore(f, r);
      break;
    }
    case 2: {
      v1::TokenizeRequest r;
      if (Decode(rest, &r)) (void)f.tokenizer->Encode(r.text());
      break;
    }
    case 3: {
      v1::DetokenizeRequest r;
      if (Decode(rest, &r)) CheckDetokenize(f, r);
      break;
    }
    case 4: {
      v1::GetModelInfoRequest r;
      (void)Decode(rest, &r);
      break;
    }
    case 5: {  // POST /v1/completions
      auto r = pkm::http::ParseCompletionRequest(rest);
      if (!r.ok()) {
        Require(!r.status().message().empty());
        break;
      }
      v1::GenerateRequest generate = r->generate;
      generate.set_max_new_tokens(r->max_tokens > 0 ? r->max_tokens : 1);
      CheckGenerate(f, generate);
      break;
    }
    case 6: {  // POST /tokenize
      auto r = pkm::http::ParseTokenizeRequest(rest);
      if (r.ok()) (void)f.tokenizer->Encode(r->text());
      break;
    }
    case 7: {  // POST /detokenize
      auto r = pkm::http::ParseDetokenizeRequest(rest);
      if (r.ok()) CheckDetokenize(f, *r);
      break;
    }
  }
  return 0;
}
