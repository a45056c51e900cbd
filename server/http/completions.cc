#include "server/http/completions.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "server/http/completion_request.h"
#include "server/http/completion_response.h"
#include "server/request_outcome.h"
#include "server/status_convert.h"

namespace pkm::http {
namespace {

using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

// What the engine thread hands one generation, for the handler thread to take.
struct Inbox {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<GeneratedStep> steps;  // not taken yet
  bool done = false;
  Status status;
  GenerateSummary summary;
  bool taken_done = false;  // the handler has seen `done` (stream: the final event is sent)
};

const char* FinishName(FinishReason f) {
  return f == FinishReason::kLength ? "length" : "stop";  // stop strings and EOS alike
}

// The echoed prompt: its text, and its tokens with the Score RPC's logprobs.
struct Echo {
  std::string text;
  std::vector<TokenLogprob> tokens;
  std::vector<std::string> texts;  // each token's text, for text_offset
};

// The prompt as echoed: its text as sent, or its token ids decoded.
std::string PromptText(const CompletionsContext& ctx, const CompletionRequest& cr) {
  if (!cr.generate.has_tokens()) return cr.generate.text();
  if (!ctx.tokenizer->can_decode()) return "";
  const auto& ids = cr.generate.tokens().ids();
  return ctx.tokenizer->Decode(std::vector<int32_t>(ids.begin(), ids.end()));
}

// Scores the prompt as the Score RPC would (the same ScoreRequest), waiting for the result.
StatusOr<Echo> ScorePrompt(const CompletionsContext& ctx, const CompletionRequest& cr) {
  pkmserve::v1::ScoreRequest sr;
  if (cr.generate.has_tokens()) {
    *sr.mutable_tokens() = cr.generate.tokens();
  } else {
    sr.set_text(cr.generate.text());
  }
  sr.set_per_token(true);
  sr.set_top_n(static_cast<uint32_t>(cr.logprobs > 0 ? cr.logprobs : 0));
  PKM_ASSIGN_OR_RETURN(ScoreWork work, ToScoreWork(sr, *ctx.tokenizer, *ctx.config));
  const std::vector<int32_t> ids = work.tokens;
  auto done = std::make_shared<std::promise<StatusOr<WindowedScoreResult>>>();
  std::future<StatusOr<WindowedScoreResult>> result = done->get_future();
  work.on_done = [done](StatusOr<WindowedScoreResult> r) { done->set_value(std::move(r)); };
  PKM_RETURN_IF_ERROR(ctx.scheduler->SubmitScore(std::move(work)).status());
  PKM_ASSIGN_OR_RETURN(WindowedScoreResult scored, result.get());
  const ScoreResult& s = scored.scores;
  Echo echo;
  echo.text = PromptText(ctx, cr);
  const size_t first = ids.size() - s.logprobs.size();  // tokens before it are context only
  // Each token's text is what it adds to the decoded prefix (a piece alone may decode
  // differently at the start of a text, e.g. without its leading space).
  size_t decoded = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    TokenLogprob t{.id = ids[i]};
    if (i >= first) {
      t.has_logprob = true;
      t.logprob = s.logprobs[i - first];
      if (i - first < s.top.size()) t.top = s.top[i - first];
    }
    echo.tokens.push_back(std::move(t));
    std::string prefix = ctx.tokenizer->can_decode()
                             ? ctx.tokenizer->Decode(std::span<const int32_t>(ids).first(i + 1))
                             : std::string();
    echo.texts.push_back(prefix.size() >= decoded ? prefix.substr(decoded) : std::string());
    decoded = std::max(decoded, prefix.size());
  }
  return echo;
}

// Generated steps as a completion's text, its tokens' logprobs and each token's text.
struct Generated {
  std::string text;
  std::vector<TokenLogprob> tokens;
  std::vector<std::string> texts;
};

Generated Collect(const std::vector<GeneratedStep>& steps) {
  Generated g;
  for (const GeneratedStep& s : steps) {
    g.text += s.text;
    g.tokens.push_back({.id = s.token, .has_logprob = true, .logprob = s.logprob, .top = s.top});
    g.texts.push_back(s.text);
  }
  return g;
}

// One stream's state, shared by the handler (which starts it) and the content provider.
struct Stream {
  std::shared_ptr<Inbox> inbox;
  Scheduler* scheduler = nullptr;
  RequestId id = 0;
  CompletionHead head;
  const Tokenizer* tokenizer = nullptr;
  int logprobs = -1;
  int prompt_tokens = 0;
  size_t text_bytes = 0;  // sent so far, for text_offset
  json first_event;       // the echo, sent before any token (null: none)
  bool finished = false;
  RequestOutcome outcome;  // recorded when the stream ends
  ServerMetrics* metrics = nullptr;
};

bool SendEvent(httplib::DataSink& sink, const json& body) {
  const std::string event = "data: " + body.dump() + "\n\n";
  return sink.write(event.data(), event.size());
}

// Sends what the inbox holds (or its end); false when the client has gone.
bool Pump(Stream& st, httplib::DataSink& sink) {
  if (!st.first_event.is_null()) {
    json event = std::move(st.first_event);
    st.first_event = nullptr;
    if (!SendEvent(sink, event)) return false;
  }
  std::vector<GeneratedStep> steps;
  bool done = false;
  Status status;
  GenerateSummary summary;
  {
    std::unique_lock<std::mutex> lock(st.inbox->mu);
    st.inbox->cv.wait_for(lock, std::chrono::milliseconds(200),
                          [&] { return !st.inbox->steps.empty() || st.inbox->done; });
    steps.swap(st.inbox->steps);
    done = st.inbox->done;
    status = st.inbox->status;
    summary = st.inbox->summary;
  }
  if (!steps.empty()) {
    const Generated g = Collect(steps);
    json lp = st.logprobs >= 0 ? LogprobsJson(g.tokens, g.texts, st.text_bytes, st.logprobs,
                                              *st.tokenizer)
                               : json(nullptr);
    st.text_bytes += g.text.size();
    if (!SendEvent(sink, CompletionJson(st.head, g.text, std::move(lp), nullptr, nullptr))) {
      return false;
    }
  }
  if (done) {
    const bool sent = status.ok()
        ? SendEvent(sink, CompletionJson(st.head, "", nullptr, FinishName(summary.finish),
                                         UsageJson(st.prompt_tokens, summary.completion_tokens)))
        : SendEvent(sink, ErrorBody(status));
    static constexpr char kDone[] = "data: [DONE]\n\n";
    if (!sent || !sink.write(kDone, sizeof(kDone) - 1)) return false;
    st.finished = true;
    sink.done();
  }
  return true;
}

}  // namespace

void ReplyError(const Status& status, httplib::Response& res) {
  res.status = HttpStatus(status.code());
  res.set_content(ErrorBody(status).dump(), "application/json");
}

void HandleCompletion(const CompletionsContext& ctx, uint64_t call_id, const httplib::Request& req,
                      httplib::Response& res) {
  RequestOutcome outcome;
  outcome.id = call_id;
  outcome.method = "generate";
  outcome.api = "http";
  auto fail = [&](const Status& s) {
    RecordOutcome(ctx.metrics, outcome, ToGrpcStatus(s));
    ReplyError(s, res);
  };
  StatusOr<CompletionRequest> parsed = ParseCompletionRequest(req.body);
  if (!parsed.ok()) return fail(parsed.status());
  const CompletionRequest& cr = *parsed;
  const CompletionHead head{.id = "cmpl-" + std::to_string(call_id),
                            .created = std::chrono::duration_cast<std::chrono::seconds>(
                                           std::chrono::system_clock::now().time_since_epoch())
                                           .count(),
                            .model = ctx.model_name};
  Echo echo;
  if (cr.echo && (cr.logprobs >= 0 || cr.max_tokens == 0)) {
    StatusOr<Echo> scored = ScorePrompt(ctx, cr);
    if (!scored.ok()) return fail(scored.status());
    echo = std::move(*scored);
  } else if (cr.echo) {
    echo.text = PromptText(ctx, cr);  // no logprobs asked: nothing to score
  }
  json echo_logprobs = cr.logprobs >= 0 && cr.echo
                           ? LogprobsJson(echo.tokens, echo.texts, 0, cr.logprobs, *ctx.tokenizer)
                           : json(nullptr);
  if (cr.max_tokens == 0) {  // echo only: the log-likelihood path of evaluation harnesses
    outcome.method = "score";
    outcome.prompt_tokens = static_cast<int>(echo.tokens.size());
    outcome.output_tokens = static_cast<int>(echo.tokens.size()) - 1;
    outcome.finish = "scored";
    RecordOutcome(ctx.metrics, outcome, grpc::Status::OK);
    res.set_content(CompletionJson(head, echo.text, std::move(echo_logprobs), "length",
                                   UsageJson(outcome.prompt_tokens, 0))
                        .dump(),
                    "application/json");
    return;
  }

  StatusOr<GenerateWork> work = ToGenerateWork(cr.generate, *ctx.tokenizer, *ctx.config,
                                               *ctx.limits);
  if (!work.ok()) return fail(work.status());
  const int prompt_tokens = static_cast<int>(work->prompt.size());
  outcome.prompt_tokens = prompt_tokens;
  auto inbox = std::make_shared<Inbox>();
  work->on_token = [inbox](const GeneratedStep& s) {
    std::lock_guard<std::mutex> lock(inbox->mu);
    inbox->steps.push_back(s);
    inbox->cv.notify_all();
  };
  work->on_done = [inbox](const Status& s, const GenerateSummary& summary) {
    std::lock_guard<std::mutex> lock(inbox->mu);
    inbox->done = true;
    inbox->status = s;
    inbox->summary = summary;
    inbox->cv.notify_all();
  };
  StatusOr<RequestId> id = ctx.scheduler->SubmitGenerate(std::move(*work));
  if (!id.ok()) return fail(id.status());

  if (!cr.stream) {
    std::unique_lock<std::mutex> lock(inbox->mu);
    inbox->cv.wait(lock, [&] { return inbox->done; });
    outcome.output_tokens = inbox->summary.completion_tokens;
    if (!inbox->status.ok()) {
      lock.unlock();
      return fail(inbox->status);
    }
    const Generated g = Collect(inbox->steps);
    json lp = nullptr;
    if (cr.logprobs >= 0) {
      lp = LogprobsJson(g.tokens, g.texts, echo.text.size(), cr.logprobs, *ctx.tokenizer);
      if (cr.echo) {  // the prompt's tokens first
        for (const char* key : {"tokens", "token_logprobs", "top_logprobs", "text_offset"}) {
          json merged = echo_logprobs[key];
          for (auto& v : lp[key]) merged.push_back(std::move(v));
          lp[key] = std::move(merged);
        }
      }
    }
    outcome.finish = FinishName(inbox->summary.finish);
    RecordOutcome(ctx.metrics, outcome, grpc::Status::OK);
    res.set_content(CompletionJson(head, echo.text + g.text, std::move(lp),
                                   FinishName(inbox->summary.finish),
                                   UsageJson(prompt_tokens, inbox->summary.completion_tokens))
                        .dump(),
                    "application/json");
    return;
  }

  auto stream = std::make_shared<Stream>();
  stream->inbox = inbox;
  stream->scheduler = ctx.scheduler;
  stream->id = *id;
  stream->head = head;
  stream->tokenizer = ctx.tokenizer;
  stream->logprobs = cr.logprobs;
  stream->prompt_tokens = prompt_tokens;
  if (cr.echo) {
    stream->first_event = CompletionJson(head, echo.text, std::move(echo_logprobs), nullptr, nullptr);
    stream->text_bytes = echo.text.size();
  }
  stream->outcome = outcome;
  stream->metrics = ctx.metrics;
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [stream](size_t, httplib::DataSink& sink) { return Pump(*stream, sink); },
      [stream](bool) {
        // The client went away before the end: the request is cancelled, which frees its KV
        // blocks at the next step.
        if (!stream->finished) stream->scheduler->Cancel(stream->id);
        Status status(StatusCode::kCancelled, "the client closed the stream");
        {
          std::lock_guard<std::mutex> lock(stream->inbox->mu);
          stream->outcome.output_tokens = stream->inbox->summary.completion_tokens;
          if (stream->finished) status = stream->inbox->status;
          if (stream->finished && status.ok()) {
            stream->outcome.finish = FinishName(stream->inbox->summary.finish);
          }
        }
        RecordOutcome(stream->metrics, stream->outcome, ToGrpcStatus(status));
      });
}

}  // namespace pkm::http
