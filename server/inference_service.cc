#include "server/inference_service.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <thread>
#include <cmath>
#include <mutex>
#include <utility>

#include "server/request_decoding.h"
#include "server/request_outcome.h"
#include "server/status_convert.h"

namespace pkm {
namespace {

namespace v1 = pkmserve::v1;

// The call's gRPC deadline on the scheduler's clock (max when the call has none).
SchedulerClock::time_point SchedulerDeadline(const grpc::CallbackServerContext* context) {
  const auto deadline = context->deadline();
  const auto now = std::chrono::system_clock::now();
  if (deadline >= now + std::chrono::hours(24 * 365)) return SchedulerClock::time_point::max();
  return SchedulerClock::now() +
         std::chrono::duration_cast<SchedulerClock::duration>(deadline - now);
}

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

v1::FinishReason ToProto(FinishReason r) {
  switch (r) {
    case FinishReason::kLength: return v1::FINISH_REASON_LENGTH;
    case FinishReason::kStop: return v1::FINISH_REASON_STOP;
    case FinishReason::kEos: return v1::FINISH_REASON_EOS;
    case FinishReason::kCancelled: return v1::FINISH_REASON_CANCELLED;
    case FinishReason::kNone: break;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

void AddTop(const std::vector<std::pair<int32_t, float>>& top, const Tokenizer& tokenizer,
            google::protobuf::RepeatedPtrField<v1::TokenLogprob>* out) {
  for (const auto& [id, logprob] : top) {
    v1::TokenLogprob* t = out->Add();
    t->set_id(id);
    t->set_logprob(logprob);
    t->set_piece(tokenizer.IdToPiece(id));
  }
}

class GenerateReactor;

}  // namespace

// Starts the writes that the engine thread's callbacks make due, on a thread of its own: a
// write can run a send syscall inline, and the engine thread should spend its time on steps.
class PumpQueue {
 public:
  PumpQueue() : thread_([this] { Run(); }) {}
  ~PumpQueue() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }
  void Post(GenerateReactor* reactor) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(reactor);
    }
    wake_.notify_one();
  }

 private:
  void Run();

  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<GenerateReactor*> queue_;
  bool stop_ = false;
  std::thread thread_;
};

namespace {

// Generate: the engine thread queues tokens into `pending_`; one write is in flight at a time,
// and each write takes everything pending, so a slow reader gets fewer, larger messages and
// never slows the engine. The reactor finishes only after the scheduler's terminal callback,
// so no callback can reach a deleted reactor; OnDone deletes it.
class GenerateReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  GenerateReactor(Scheduler* scheduler, const Tokenizer* tokenizer, PumpQueue* pumps,
                  ServerMetrics* metrics, bool logprobs, RequestOutcome outcome)
      : scheduler_(scheduler),
        tokenizer_(tokenizer),
        pumps_(pumps),
        metrics_(metrics),
        logprobs_(logprobs),
        outcome_(outcome) {}

  // Submits the work. Nothing is written and the call cannot finish (and the reactor be
  // deleted) until Start's final Pump marks it started under the lock. gRPC itself delays
  // OnDone until a running reaction (OnCancel, OnWriteDone) returns.
  void Start(GenerateWork work) {
    pending_.set_seed(work.options.sampling.seed);
    prompt_tokens_ = static_cast<uint32_t>(work.prompt.size());
    outcome_.prompt_tokens = static_cast<int>(work.prompt.size());
    work.on_admitted = [this](double queue_seconds) { outcome_.queue_seconds = queue_seconds; };
    work.on_token = [this](const GeneratedStep& step) { OnToken(step); };
    work.on_done = [this](const Status& status, const GenerateSummary& summary) {
      OnFinished(status, summary);
    };
    StatusOr<RequestId> id = scheduler_->SubmitGenerate(std::move(work));
    if (!id.ok()) {
      RecordOutcome(metrics_, outcome_, ToGrpcStatus(id.status()));
      Finish(ToGrpcStatus(id.status()));
      return;
    }
    bool cancel = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      id_ = *id;
      submitted_ = true;
      cancel = cancel_requested_;
    }
    if (cancel) scheduler_->Cancel(*id);
    Pump(/*from_start=*/true);
  }

  void OnCancel() override {
    RequestId id = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancel_requested_ = true;
      if (!submitted_) return;
      id = id_;
    }
    scheduler_->Cancel(id);
  }

  void OnWriteDone(bool ok) override {
    bool cancel = false;
    RequestId id = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      if (!ok && !broken_) {
        // The client is gone: stop decoding for it.
        broken_ = true;
        cancel = submitted_;
        id = id_;
      }
    }
    if (cancel) scheduler_->Cancel(id);
    Pump();
  }

  void OnDone() override { delete this; }

 private:
  void OnToken(const GeneratedStep& step) {
    if (tokens_seen_ == 0) outcome_.ttft_seconds = SecondsSince(outcome_.arrival);
    if (metrics_ != nullptr) {
      const Clock::time_point now = Clock::now();
      if (tokens_seen_ == 0) {
        metrics_->ObserveFirstToken(outcome_.ttft_seconds);
      } else {
        metrics_->ObserveInterToken(std::chrono::duration<double>(now - last_token_).count(), 1);
      }
      last_token_ = now;
    }
    ++tokens_seen_;
    {
      std::lock_guard<std::mutex> lock(mu_);
      v1::GeneratedToken* t = pending_.add_tokens();
      t->set_id(step.token);
      if (logprobs_) {
        t->set_logprob(step.logprob);
        t->set_piece(tokenizer_->IdToPiece(step.token));
        AddTop(step.top, *tokenizer_, t->mutable_top_logprobs());
      }
      pending_.mutable_text()->append(step.text);
      if (!ClaimPump()) return;
    }
    pumps_->Post(this);
  }

  void OnFinished(const Status& status, const GenerateSummary& summary) {
    outcome_.output_tokens = summary.completion_tokens;
    outcome_.finish = FinishReasonName(summary.finish);
    RecordOutcome(metrics_, outcome_, ToGrpcStatus(status));
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
      status_ = ToGrpcStatus(status);
      if (status.ok()) {
        pending_.set_finish_reason(ToProto(summary.finish));
        pending_.mutable_usage()->set_prompt_tokens(prompt_tokens_);
        pending_.mutable_usage()->set_completion_tokens(
            static_cast<uint32_t>(summary.completion_tokens));
        final_pending_ = true;
      }
      // In the same critical section as done_: once done_ is seen, another thread's Pump may
      // finish the call and OnDone delete the reactor, so nothing here may touch it after
      // the lock unless a pump is claimed (which keeps any other Pump from finishing).
      if (!ClaimPump()) return;
    }
    pumps_->Post(this);
  }

  // From the engine thread, with mu_ held: whether to have the pump queue start the write
  // (at most one queued at a time). A reactor with a queued pump is finished by no one but
  // that pump, so the queued pointer stays valid; a finished one gets no pump (found by the
  // random cancel mix under ASan: a pump queued after another thread's Finish outlived it).
  bool ClaimPump() {
    if (!started_ || pump_queued_ || writing_ || finished_) return false;
    pump_queued_ = true;
    return true;
  }

 public:
  // The pump queue's call.
  void QueuedPump() { Pump(/*from_start=*/false, /*from_queue=*/true); }

 private:

  // Starts the next write, or finishes the call once everything is written. Called without
  // the lock held; Finish is the last thing it does, as OnDone may delete the reactor at once.
  // Start's own call marks the reactor started under the lock: until then it cannot finish.
  void Pump(bool from_start = false, bool from_queue = false) {
    grpc::Status finish_with;
    bool finish = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (from_start) started_ = true;
      if (from_queue) pump_queued_ = false;
      if (!started_ || writing_ || finished_) return;
      const bool has_output =
          pending_.tokens_size() > 0 || !pending_.text().empty() || final_pending_;
      if (has_output && !broken_) {
        out_.Swap(&pending_);
        pending_.Clear();
        final_pending_ = false;
        writing_ = true;
      } else if (done_ && !pump_queued_) {
        finished_ = finish = true;
        finish_with = broken_ && status_.ok() ? grpc::Status(grpc::StatusCode::CANCELLED,
                                                             "the client stopped reading")
                                              : status_;
      } else {
        return;
      }
    }
    if (finish) {
      Finish(finish_with);
    } else {
      // out_ is ours alone while writing_ is set.
      EncodeResponse(out_, &out_buffer_);
      StartWrite(&out_buffer_);
    }
  }

  Scheduler* scheduler_;
  const Tokenizer* tokenizer_;
  PumpQueue* pumps_;
  ServerMetrics* metrics_;
  const bool logprobs_;
  uint32_t prompt_tokens_ = 0;
  RequestOutcome outcome_;        // engine thread only, once submitted
  Clock::time_point last_token_;  // engine thread only
  int tokens_seen_ = 0;           // engine thread only

  std::mutex mu_;
  v1::GenerateResponse pending_;  // built by the engine thread
  v1::GenerateResponse out_;      // the write in flight
  grpc::ByteBuffer out_buffer_;   // out_, serialized
  RequestId id_ = 0;
  bool submitted_ = false;
  bool cancel_requested_ = false;
  bool writing_ = false;
  bool pump_queued_ = false;    // a PumpQueue entry points at this reactor
  bool started_ = false;        // Start has submitted the work and may return
  bool final_pending_ = false;  // pending_ holds the finish reason and usage
  bool done_ = false;           // the scheduler's terminal callback has run
  bool broken_ = false;         // a write failed: the client is gone
  bool finished_ = false;
  grpc::Status status_;
};

// Score: one terminal callback fills the response and finishes the call.
class ScoreReactor final : public grpc::ServerUnaryReactor {
 public:
  ScoreReactor(Scheduler* scheduler, const Tokenizer* tokenizer, ServerMetrics* metrics,
               grpc::ByteBuffer* response, bool per_token, RequestOutcome outcome)
      : scheduler_(scheduler), tokenizer_(tokenizer), metrics_(metrics), response_(response),
        per_token_(per_token), outcome_(outcome) {}

  // As GenerateReactor::Start: the call finishes only once Start has returned control.
  void Start(ScoreWork work) {
    tokens_ = work.tokens;
    outcome_.prompt_tokens = static_cast<int>(work.tokens.size());
    work.on_admitted = [this](double queue_seconds) { outcome_.queue_seconds = queue_seconds; };
    work.on_done = [this](StatusOr<WindowedScoreResult> result) { OnScored(std::move(result)); };
    StatusOr<RequestId> id = scheduler_->SubmitScore(std::move(work));
    if (!id.ok()) {
      RecordOutcome(metrics_, outcome_, ToGrpcStatus(id.status()));
      Finish(ToGrpcStatus(id.status()));
      return;
    }
    // After the lock is released the reactor may be finished and deleted by the engine thread
    // at any time, unless it is done already (then finishing is left to us): use locals only.
    Scheduler* scheduler = scheduler_;
    bool cancel = false;
    bool done = false;
    grpc::Status status;
    {
      std::lock_guard<std::mutex> lock(mu_);
      id_ = *id;
      submitted_ = true;
      started_ = true;
      done = done_;
      status = status_;
      cancel = cancel_requested_ && !done_;
    }
    if (done) {
      Finish(status);
    } else if (cancel) {
      scheduler->Cancel(*id);
    }
  }

  void OnCancel() override {
    RequestId id = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancel_requested_ = true;
      if (!submitted_ || done_) return;
      id = id_;
    }
    scheduler_->Cancel(id);
  }

  void OnDone() override { delete this; }

 private:
  void OnScored(StatusOr<WindowedScoreResult> result) {
    grpc::Status status = result.ok() ? grpc::Status::OK : ToGrpcStatus(result.status());
    if (result.ok()) {
      v1::ScoreResponse response;
      Fill(*result, &response);
      EncodeResponse(response, response_);
      outcome_.output_tokens = static_cast<int>(response.token_count());
    }
    outcome_.finish = "scored";
    RecordOutcome(metrics_, outcome_, status);
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
      status_ = status;
      if (!started_) return;  // Start finishes the call
    }
    Finish(status);
  }

  void Fill(const WindowedScoreResult& result, v1::ScoreResponse* response) {
    const ScoreResult& s = result.scores;
    // The scores are those of the last logprobs.size() tokens (score_from onwards).
    const size_t first = tokens_.size() - s.logprobs.size();
    if (per_token_) {
      for (size_t i = 0; i < s.logprobs.size(); ++i) {
        v1::ScoredToken* t = response->add_tokens();
        t->set_id(tokens_[first + i]);
        t->set_piece(tokenizer_->IdToPiece(tokens_[first + i]));
        t->set_logprob(s.logprobs[i]);
        if (i < s.top.size()) AddTop(s.top[i], *tokenizer_, t->mutable_top());
      }
    }
    const auto count = static_cast<uint32_t>(s.logprobs.size());
    response->set_sum_nll(s.sum_nll);
    response->set_token_count(count);
    response->set_perplexity(std::exp(s.sum_nll / count));
    response->set_windows(static_cast<uint32_t>(result.windows));
  }

  Scheduler* scheduler_;
  const Tokenizer* tokenizer_;
  ServerMetrics* metrics_;
  grpc::ByteBuffer* response_;
  const bool per_token_;
  RequestOutcome outcome_;  // engine thread only, once submitted
  std::vector<int32_t> tokens_;
  std::mutex mu_;
  RequestId id_ = 0;
  bool submitted_ = false;
  bool started_ = false;
  bool cancel_requested_ = false;
  bool done_ = false;
  grpc::Status status_;
};

// A reactor that finishes at once with `status` (answers computed inline, or errors).
grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

// Writes `status` into a write reactor that ends before any message.
class RejectedStream final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  explicit RejectedStream(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

void PumpQueue::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    wake_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and nothing left
    GenerateReactor* reactor = queue_.front();
    queue_.pop_front();
    lock.unlock();
    reactor->QueuedPump();
    lock.lock();
  }
}

InferenceService::InferenceService(Scheduler* scheduler, const Tokenizer* tokenizer,
                                   const ModelConfig& config, ServiceConfig service_config)
    : scheduler_(scheduler),
      tokenizer_(tokenizer),
      model_config_(config),
      config_(std::move(service_config)),
      pumps_(std::make_unique<PumpQueue>()) {}

InferenceService::~InferenceService() = default;

grpc::Status InferenceService::CheckAuth(const grpc::CallbackServerContext* context) const {
  if (config_.auth_token.empty()) return grpc::Status::OK;
  const auto& metadata = context->client_metadata();
  const auto it = metadata.find("authorization");
  const std::string expected = "Bearer " + config_.auth_token;
  if (it != metadata.end() && it->second.size() == expected.size()) {
    // Constant-time comparison: the time taken does not reveal how much of the token matched.
    unsigned char diff = 0;
    for (size_t i = 0; i < expected.size(); ++i) {
      diff |= static_cast<unsigned char>(it->second.data()[i] ^ expected[i]);
    }
    if (diff == 0) return grpc::Status::OK;
  }
  // One answer whether the token is missing or wrong: a caller learns nothing of which.
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      "this server needs metadata \"authorization: Bearer <token>\" (missing or "
                      "not the server's token)");
}

RequestOutcome InferenceService::NewOutcome(const char* method) {
  RequestOutcome outcome;
  outcome.id = next_call_id_++;
  outcome.method = method;
  return outcome;
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* InferenceService::Generate(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes) {
  RequestOutcome outcome = NewOutcome("generate");
  context->AddTrailingMetadata("x-request-id", std::to_string(outcome.id));
  auto reject = [&](const grpc::Status& status) {
    RecordOutcome(config_.metrics, outcome, status);
    return new RejectedStream(status);
  };
  if (grpc::Status auth = CheckAuth(context); !auth.ok()) return reject(auth);
  v1::GenerateRequest request;
  if (grpc::Status s = DecodeRequest(*request_bytes, &request); !s.ok()) return reject(s);
  StatusOr<GenerateWork> work = ToGenerateWork(request, *tokenizer_, model_config_, config_.limits);
  if (!work.ok()) return reject(ToGrpcStatus(work.status()));
  if (Status s = CheckMemoryReads(work->memory, model_config_, scheduler_->backend()); !s.ok()) {
    return reject(ToGrpcStatus(s));
  }
  work->deadline = SchedulerDeadline(context);
  auto* reactor = new GenerateReactor(scheduler_, tokenizer_, pumps_.get(), config_.metrics,
                                      request.logprobs(), outcome);
  reactor->Start(std::move(*work));
  return reactor;
}

grpc::ServerUnaryReactor* InferenceService::Score(grpc::CallbackServerContext* context,
                                                  const grpc::ByteBuffer* request_bytes,
                                                  grpc::ByteBuffer* response) {
  RequestOutcome outcome = NewOutcome("score");
  context->AddTrailingMetadata("x-request-id", std::to_string(outcome.id));
  auto reject = [&](const grpc::Status& status) {
    RecordOutcome(config_.metrics, outcome, status);
    return FinishNow(context, status);
  };
  if (grpc::Status auth = CheckAuth(context); !auth.ok()) return reject(auth);
  v1::ScoreRequest request;
  if (grpc::Status s = DecodeRequest(*request_bytes, &request); !s.ok()) return reject(s);
  StatusOr<ScoreWork> work = ToScoreWork(request, *tokenizer_, model_config_);
  if (!work.ok()) return reject(ToGrpcStatus(work.status()));
  if (Status s = CheckMemoryReads(work->memory, model_config_, scheduler_->backend()); !s.ok()) {
    return reject(ToGrpcStatus(s));
  }
  work->deadline = SchedulerDeadline(context);
  auto* reactor = new ScoreReactor(scheduler_, tokenizer_, config_.metrics, response,
                                   !request.has_per_token() || request.per_token(), outcome);
  reactor->Start(std::move(*work));
  return reactor;
}

template <class Request, class Response, class Answer>
grpc::ServerUnaryReactor* InferenceService::AnswerNow(const char* method,
                                                      grpc::CallbackServerContext* context,
                                                      const grpc::ByteBuffer* request_bytes,
                                                      grpc::ByteBuffer* response_bytes,
                                                      Answer answer) {
  RequestOutcome outcome = NewOutcome(method);
  auto finish = [&](const grpc::Status& status) {
    RecordOutcome(config_.metrics, outcome, status);
    return FinishNow(context, status);
  };
  if (grpc::Status auth = CheckAuth(context); !auth.ok()) return finish(auth);
  Request request;
  if (grpc::Status s = DecodeRequest(*request_bytes, &request); !s.ok()) return finish(s);
  Response response;
  if (grpc::Status s = answer(request, &response, &outcome); !s.ok()) return finish(s);
  outcome.finish = "ok";
  EncodeResponse(response, response_bytes);
  return finish(grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::Tokenize(grpc::CallbackServerContext* context,
                                                     const grpc::ByteBuffer* request_bytes,
                                                     grpc::ByteBuffer* response_bytes) {
  return AnswerNow<v1::TokenizeRequest, v1::TokenizeResponse>(
      "tokenize", context, request_bytes, response_bytes,
      [this](const v1::TokenizeRequest& request, v1::TokenizeResponse* response,
             RequestOutcome* outcome) {
        if (Status s = CheckTextUse("Tokenize", TextUse::kEncode, *tokenizer_, ""); !s.ok()) {
          return ToGrpcStatus(s);
        }
        if (!request.has_add_bos() || request.add_bos()) response->add_ids(tokenizer_->bos_id());
        for (int32_t id : tokenizer_->Encode(request.text())) response->add_ids(id);
        for (int32_t id : response->ids()) response->add_pieces(tokenizer_->IdToPiece(id));
        outcome->output_tokens = response->ids_size();
        return grpc::Status::OK;
      });
}

grpc::ServerUnaryReactor* InferenceService::Detokenize(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request_bytes,
                                                       grpc::ByteBuffer* response_bytes) {
  return AnswerNow<v1::DetokenizeRequest, v1::DetokenizeResponse>(
      "detokenize", context, request_bytes, response_bytes,
      [this](const v1::DetokenizeRequest& request, v1::DetokenizeResponse* response,
             RequestOutcome* outcome) {
        if (Status s = CheckTextUse("Detokenize", TextUse::kDecode, *tokenizer_, ""); !s.ok()) {
          return ToGrpcStatus(s);
        }
        if (Status s = CheckTokenIds(request.ids(), model_config_.vocab_size, "ids"); !s.ok()) {
          return ToGrpcStatus(s);
        }
        response->set_text(
            tokenizer_->Decode(std::vector<int32_t>(request.ids().begin(), request.ids().end())));
        outcome->prompt_tokens = request.ids_size();
        return grpc::Status::OK;
      });
}

grpc::ServerUnaryReactor* InferenceService::GetModelInfo(grpc::CallbackServerContext* context,
                                                         const v1::GetModelInfoRequest*,
                                                         v1::ModelInfo* response) {
  if (grpc::Status auth = CheckAuth(context); !auth.ok()) return FinishNow(context, auth);
  *response = config_.model_info;
  return FinishNow(context, grpc::Status::OK);
}

}  // namespace pkm
