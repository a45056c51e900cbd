// The scheduler: one engine thread that batches every accepted request continuously.
//
// Requests are submitted from any thread (the gRPC reactors) into a bounded admission queue.
// The engine thread loops: it drops cancelled and expired requests (freeing their KV blocks),
// builds one step under a token budget (every running decode gets its one token first, then
// prefill chunks of running sequences, then newly admitted requests, so a long prompt is
// prefilled over several steps and never stalls the decodes), runs Engine::Step and hands
// each request its new tokens or scores through its callbacks.
//
// When the KV cache cannot hold a step, the most recently admitted running sequence is
// preempted: its blocks are freed and it goes back to the head of the queue, to be recomputed
// (prompt + tokens generated so far) when blocks free up. The engine is batch- and
// chunk-invariant and sampling depends only on (seed, step), so a preempted request produces
// exactly what it would have produced without preemption.
//
// Score requests run in the same steps: each sliding window is a sequence prefilled with
// targets (engine/scoring.h's PlanScoreWindows), and the result equals ScoreTokensWindowed on
// an idle engine bit for bit.
//
// Callbacks run on the engine thread and must not block (queue the output and return).
// Every accepted request gets exactly one terminal callback (on_done) and none after it.
//
// Thread-safety: Submit*, Cancel, Stats, BeginDrain and WaitIdle are thread-safe. The engine
// is used by the engine thread only, from construction until the destructor returns.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/status.h"
#include "engine/engine.h"
#include "engine/generation.h"
#include "engine/scoring.h"
#include "model_loader/tokenizer.h"

namespace pkm {

using SchedulerClock = std::chrono::steady_clock;
using RequestId = uint64_t;

// One engine step, as reported to a SchedulerObserver.
struct StepReport {
  // Every sequence of the step fed one token it had just generated (no prefill, no scoring,
  // no recomputation after preemption).
  bool decode_only = false;
  int sequences = 0;
  int tokens = 0;
  double forward_seconds = 0.0;  // Engine::Step, wall clock
  // Per memory layer, the seconds of its lookups (when the engine times them; else empty).
  std::span<const double> pkm_lookup_seconds;
};

// Told what the engine thread does, for metrics. Called on the engine thread: must not block.
class SchedulerObserver {
 public:
  virtual ~SchedulerObserver() = default;
  // A request started running for the first time, `queue_seconds` after it was accepted.
  virtual void OnAdmitted(double queue_seconds) = 0;
  virtual void OnStep(const StepReport& step) = 0;
  // Every memory layer's usage (Engine::PkmUsage, which costs a pass over the slots): at most
  // once per SchedulerOptions::pkm_usage_interval while steps run, and when the engine goes
  // idle, so the last value is never stale.
  virtual void OnPkmUsage(std::span<const PkmLayerUsage> usage) = 0;
};

struct SchedulerOptions {
  // Tokens per engine step: decode tokens plus prefill chunks. At least 1.
  int max_batch_tokens = 512;
  // Requests accepted but not yet running; Submit beyond it fails with kResourceExhausted.
  int max_queue = 256;
  // Sequences in one step (each running request holds one).
  int max_running = 256;
  // Benchmark baseline: admit new requests only when nothing is running (static batching).
  bool static_batching = false;
  // Told of admissions and steps when set; must outlive the scheduler.
  SchedulerObserver* observer = nullptr;
  // How often the observer gets the memory layers' usage while steps run (OnPkmUsage).
  std::chrono::milliseconds pkm_usage_interval{1000};
};

// One generated token as handed to a request.
struct GeneratedStep {
  int32_t token = -1;
  float logprob = 0.0f;                          // at temperature 1, with options.logprobs
  std::vector<std::pair<int32_t, float>> top;    // top_logprobs best tokens, when asked
  std::string text;                              // text that became final with this token
};

struct GenerateSummary {
  FinishReason finish = FinishReason::kNone;
  int prompt_tokens = 0;
  int completion_tokens = 0;  // tokens sampled, EOS included
};

// A validated generation request (the service checks ranges against the model and limits).
struct GenerateWork {
  std::vector<int32_t> prompt;  // not empty; prompt + max_new_tokens <= max_seq_len
  GenerateOptions options;
  MemoryReads memory;  // checked by Engine::CheckMemoryReads
  int top_logprobs = 0;
  SchedulerClock::time_point deadline = SchedulerClock::time_point::max();
  // Called once, when the request first runs, with the seconds it waited (optional).
  std::function<void(double queue_seconds)> on_admitted;
  // Called once per sampled token (EOS included), in order.
  std::function<void(const GeneratedStep&)> on_token;
  // Terminal: OK with the summary, or kDeadlineExceeded / kCancelled / kUnavailable (drain
  // timed out) / kInternal (engine failure).
  std::function<void(const Status&, const GenerateSummary&)> on_done;
};

struct ScoreWork {
  std::vector<int32_t> tokens;  // at least 2
  int context = 0;              // window length, in [2, max_seq_len]
  int stride = 0;               // in [1, context]
  int top_n = 0;
  MemoryReads memory;  // checked by Engine::CheckMemoryReads
  // Tokens before this index are context only: not scored (nor counted as scored). In
  // [1, context - 1]; 1 scores every token after the first.
  int score_from = 1;
  SchedulerClock::time_point deadline = SchedulerClock::time_point::max();
  std::function<void(double queue_seconds)> on_admitted;  // as GenerateWork's
  // Terminal: the scores (equal to ScoreTokensWindowed's), or an error as for GenerateWork.
  std::function<void(StatusOr<WindowedScoreResult>)> on_done;
};

struct SchedulerStats {
  int running = 0;          // requests holding a sequence in the engine
  int waiting = 0;          // accepted, not running (queued or preempted)
  double kv_usage = 0.0;    // fraction of KV blocks in use
  uint64_t steps = 0;
  uint64_t prompt_tokens = 0;      // prefilled (recomputation after preemption excluded)
  uint64_t generated_tokens = 0;
  uint64_t scored_tokens = 0;
  uint64_t preemptions = 0;
  uint64_t requests_finished = 0;  // terminal callbacks delivered, whatever the status
  DeviceMemoryUse device_memory;    // held on the engine's backend, by kind
  size_t device_memory_total = 0;  // the backend device's capacity
  bool draining = false;
};

class Scheduler {
 public:
  // `engine` and `tokenizer` must outlive the scheduler. Starts the engine thread.
  Scheduler(Engine* engine, const Tokenizer* tokenizer, SchedulerOptions options);
  // The backend the engine runs on: its capabilities are fixed, so any thread may ask them.
  const Backend& backend() const { return engine_->backend(); }
  // Fails whatever is still accepted with kUnavailable, then joins the engine thread.
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Accepts a request, or fails with kResourceExhausted (queue full) or kUnavailable
  // (draining), in which case no callback is ever called.
  StatusOr<RequestId> SubmitGenerate(GenerateWork work);
  StatusOr<RequestId> SubmitScore(ScoreWork work);

  // Ends a request at the next step with kCancelled, freeing its KV blocks. Unknown or
  // finished ids are ignored.
  void Cancel(RequestId id);

  // Stops admitting (later Submits fail with kUnavailable); accepted requests keep running.
  void BeginDrain();
  // Waits until nothing is accepted or `deadline` passes; then fails whatever remains with
  // kUnavailable. Returns true when everything finished on its own.
  bool WaitIdle(SchedulerClock::time_point deadline);

  SchedulerStats Stats() const;
  const SchedulerOptions& options() const { return options_; }

 private:
  struct Request;
  struct Planned {
    Request* request;
    int len;  // tokens of its feed in this step
  };
  StatusOr<RequestId> Accept(std::unique_ptr<Request> request);
  void Loop();
  // Engine-thread helpers.
  void EndCancelledAndExpired(const std::unordered_set<RequestId>& cancelled);
  // Plans the next step (running decodes, running prefills, then admissions), preempting the
  // newest running requests when the KV cache cannot hold the running ones' next tokens.
  std::vector<Planned> PlanStep();
  bool TryAdmit(std::vector<Planned>* plan, int* budget, int* free_blocks);
  void Preempt();
  void RunStep(const std::vector<Planned>& plan);
  // Hands request `r` the outputs of its chunk `i` of the step; true when it finished.
  bool Deliver(Request* r, int len, int i);
  // The terminal callback; releases the request's sequence. The caller drops the request.
  void Finish(Request* r, const Status& status);
  void FinishAll(const Status& status);
  // Tells the observer about the step just run (started at `start`).
  void Report(const std::vector<Planned>& plan, SchedulerClock::time_point start);
  // Gives the observer the memory usage, if due (or `force`d) and changed since.
  void ReportPkmUsage(bool force);
  void PublishStats();

  Engine* engine_;
  const Tokenizer* tokenizer_;
  SchedulerOptions options_;

  // Shared with submitters, under mu_.
  mutable std::mutex mu_;
  std::condition_variable wake_;       // engine thread: work arrived or stop
  std::condition_variable idle_;       // WaitIdle: a request finished
  std::vector<std::unique_ptr<Request>> incoming_;
  std::unordered_set<RequestId> cancelled_;
  RequestId next_id_ = 1;
  int accepted_ = 0;                   // accepted and not yet finished
  int waiting_ = 0;                    // accepted and not running (for the queue bound)
  bool draining_ = false;
  bool abort_ = false;                 // WaitIdle timed out: fail what remains
  bool stop_ = false;
  SchedulerStats stats_;

  // Engine thread only.
  std::deque<std::unique_ptr<Request>> queue_;    // admission order; preempted go to the front
  std::vector<std::unique_ptr<Request>> running_; // admission order
  SeqId next_seq_ = 1;
  StepResult step_result_;
  std::vector<float> logprob_row_;     // scratch for top_logprobs
  SchedulerStats counters_;            // engine thread's running totals, published to stats_
  SchedulerClock::time_point last_pkm_usage_;  // when the observer last got PKM usage
  bool pkm_usage_stale_ = false;               // steps ran since

  std::thread thread_;
};

}  // namespace pkm
