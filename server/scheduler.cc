#include "server/scheduler.h"

#include <algorithm>
#include <string>

#include "engine/kv_cache.h"
#include "engine/sampling.h"

namespace pkm {

// One accepted request. Its sequence's "feed" is what the KV cache must hold before the next
// output: the prompt plus the tokens generated so far (Generate), or the current window's
// inputs (Score). `fed` of them are in the cache; after a preemption `fed` is 0 again and the
// feed is recomputed.
struct Scheduler::Request {
  RequestId id = 0;
  bool is_score = false;
  SchedulerClock::time_point deadline;
  SchedulerClock::time_point accepted_at;
  bool started = false;  // has run at least once (its queue time was reported)
  SeqId seq = 0;  // 0: holds no sequence
  std::vector<int32_t> feed;
  int fed = 0;
  int fed_high_water = 0;  // positions ever fed in the current window (recomputation excluded)

  // Generate.
  GenerateWork gen;
  std::unique_ptr<Generation> generation;
  int completion_tokens = 0;
  FinishReason finish = FinishReason::kNone;

  // Score.
  ScoreWork score;
  std::vector<ScoreWindow> windows;
  size_t window = 0;
  std::vector<int32_t> targets;  // the current window's, aligned with feed
  WindowedScoreResult scores;

  int pending() const { return static_cast<int>(feed.size()) - fed; }
};

namespace {

int BlocksFor(int positions) {
  return (positions + KvCache::kBlockSize - 1) / KvCache::kBlockSize;
}

}  // namespace

Scheduler::Scheduler(Engine* engine, const Tokenizer* tokenizer, SchedulerOptions options)
    : engine_(engine), tokenizer_(tokenizer), options_(options) {
  options_.max_batch_tokens = std::max(options_.max_batch_tokens, 1);
  options_.max_running = std::max(options_.max_running, 1);
  options_.max_queue = std::max(options_.max_queue, 0);
  // The device's capacity does not change: read it once (on the CPU it costs a system call).
  counters_.device_memory_total = engine_->backend().memory_total_bytes();
  stats_.device_memory_total = counters_.device_memory_total;
  stats_.device_memory = engine_->device_memory();
  last_pkm_usage_ = SchedulerClock::now();
  thread_ = std::thread([this] { Loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

StatusOr<RequestId> Scheduler::SubmitGenerate(GenerateWork work) {
  if (work.prompt.empty()) {
    return Status(StatusCode::kInvalidArgument, "the prompt has no tokens");
  }
  auto r = std::make_unique<Request>();
  r->deadline = work.deadline;
  r->feed = work.prompt;
  r->gen = std::move(work);
  r->generation = std::make_unique<Generation>(tokenizer_, r->gen.prompt.back(),
                                               engine_->config().eos_id, r->gen.options);
  return Accept(std::move(r));
}

StatusOr<RequestId> Scheduler::SubmitScore(ScoreWork work) {
  auto r = std::make_unique<Request>();
  r->is_score = true;
  r->deadline = work.deadline;
  r->windows = PlanScoreWindows(static_cast<int>(work.tokens.size()), work.context, work.stride);
  if (r->windows.empty()) {
    return Status(StatusCode::kInvalidArgument,
                  "scoring needs at least 2 tokens, context >= 2 and stride in [1, context - 1]");
  }
  // score_from lies in the first window (it is below context): only that window's first
  // target moves; later windows start scoring past it anyway.
  r->windows[0].first_target = std::max(r->windows[0].first_target, work.score_from);
  r->score = std::move(work);
  r->scores.windows = static_cast<int>(r->windows.size());
  const ScoreWindow& w = r->windows[0];
  r->feed.assign(r->score.tokens.begin() + w.begin, r->score.tokens.begin() + w.end - 1);
  r->targets = WindowTargets(r->score.tokens, w);
  return Accept(std::move(r));
}

StatusOr<RequestId> Scheduler::Accept(std::unique_ptr<Request> request) {
  std::lock_guard<std::mutex> lock(mu_);
  if (draining_ || stop_) {
    return Status(StatusCode::kUnavailable, "the server is shutting down; retry elsewhere");
  }
  if (waiting_ >= options_.max_queue) {
    return Status(StatusCode::kResourceExhausted,
                  "the request queue is full (" + std::to_string(options_.max_queue) +
                      " waiting); retry later");
  }
  request->id = next_id_++;
  request->accepted_at = SchedulerClock::now();
  const RequestId id = request->id;
  incoming_.push_back(std::move(request));
  ++accepted_;
  ++waiting_;
  wake_.notify_one();
  return id;
}

void Scheduler::Cancel(RequestId id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_.insert(id);
  }
  wake_.notify_one();
}

void Scheduler::BeginDrain() {
  std::lock_guard<std::mutex> lock(mu_);
  draining_ = true;
  stats_.draining = true;
}

bool Scheduler::WaitIdle(SchedulerClock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  if (idle_.wait_until(lock, deadline, [this] { return accepted_ == 0; })) return true;
  abort_ = true;
  wake_.notify_one();
  idle_.wait(lock, [this] { return accepted_ == 0; });
  return false;
}

SchedulerStats Scheduler::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void Scheduler::Loop() {
  while (true) {
    std::vector<std::unique_ptr<Request>> incoming;
    std::unordered_set<RequestId> cancelled;
    bool abort = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [this] {
        return stop_ || abort_ || !incoming_.empty() || !cancelled_.empty() ||
               !running_.empty() || !queue_.empty();
      });
      if (stop_) break;
      incoming.swap(incoming_);
      cancelled.swap(cancelled_);
      abort = abort_;
      abort_ = false;
    }
    for (auto& r : incoming) queue_.push_back(std::move(r));
    if (abort) {
      FinishAll(Status(StatusCode::kUnavailable,
                       "the server shut down before the request finished (drain timeout)"));
      continue;
    }
    EndCancelledAndExpired(cancelled);
    const std::vector<Planned> plan = PlanStep();
    if (!plan.empty()) RunStep(plan);
    if (running_.empty() && queue_.empty()) ReportPkmUsage(/*force=*/true);
    PublishStats();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& r : incoming_) queue_.push_back(std::move(r));
    incoming_.clear();
  }
  FinishAll(Status(StatusCode::kUnavailable, "the server shut down before the request finished"));
}

void Scheduler::EndCancelledAndExpired(const std::unordered_set<RequestId>& cancelled) {
  const auto now = SchedulerClock::now();
  auto should_end = [&](Request* r, Status* why) {
    if (cancelled.count(r->id)) {
      *why = Status(StatusCode::kCancelled, "the request was cancelled");
      return true;
    }
    if (now >= r->deadline) {
      *why = Status(StatusCode::kDeadlineExceeded, "the request's deadline passed");
      return true;
    }
    return false;
  };
  Status why;
  for (auto it = running_.begin(); it != running_.end();) {
    if (should_end(it->get(), &why)) {
      Finish(it->get(), why);
      it = running_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (should_end(it->get(), &why)) {
      Finish(it->get(), why);
      it = queue_.erase(it);
      std::lock_guard<std::mutex> lock(mu_);
      --waiting_;
    } else {
      ++it;
    }
  }
}

std::vector<Scheduler::Planned> Scheduler::PlanStep() {
  while (true) {
    std::vector<Planned> plan;
    int budget = options_.max_batch_tokens;
    int free_blocks = engine_->kv_cache().free_blocks();
    bool decode_blocked = false;
    // Decodes first: one token each, so a running generation advances every step.
    for (auto& r : running_) {
      if (r->pending() != 1 || budget == 0) continue;
      const int need = engine_->KvBlocksNeeded(r->seq, 1);
      if (need > free_blocks) {
        decode_blocked = true;
        break;
      }
      free_blocks -= need;
      --budget;
      plan.push_back({r.get(), 1});
    }
    // Then prefill chunks, as long as tokens and blocks remain.
    for (auto& r : running_) {
      if (decode_blocked || r->pending() <= 1 || budget == 0) continue;
      const int have = BlocksFor(r->fed);
      const int fits = (have + free_blocks) * KvCache::kBlockSize - r->fed;
      const int len = std::min({r->pending(), budget, fits});
      if (len <= 0) continue;
      free_blocks -= engine_->KvBlocksNeeded(r->seq, len);
      budget -= len;
      plan.push_back({r.get(), len});
    }
    if (!decode_blocked && (!plan.empty() || running_.empty())) {
      // Static batching (the benchmarks' baseline) forms a new batch only once the last one
      // has finished.
      if (!options_.static_batching || running_.empty()) {
        while (TryAdmit(&plan, &budget, &free_blocks)) {
        }
      }
      return plan;
    }
    // The running requests cannot all advance: give the newest one's blocks back.
    Preempt();
  }
}

bool Scheduler::TryAdmit(std::vector<Planned>* plan, int* budget, int* free_blocks) {
  if (queue_.empty() || *budget <= 0) return false;
  if (static_cast<int>(running_.size()) >= options_.max_running) return false;
  Request* r = queue_.front().get();
  // Admit only when the whole feed fits next to what is already planned, so an admission
  // does not preempt a running request a few steps later.
  const int blocks = BlocksFor(static_cast<int>(r->feed.size()) + 1);
  if (blocks > engine_->kv_cache().num_blocks()) {
    std::unique_ptr<Request> owned = std::move(queue_.front());
    queue_.pop_front();
    {
      std::lock_guard<std::mutex> lock(mu_);
      --waiting_;
    }
    Finish(owned.get(),
           Status(StatusCode::kResourceExhausted,
                  "the request needs " + std::to_string(r->feed.size() + 1) +
                      " KV positions but the whole cache holds " +
                      std::to_string(engine_->kv_cache().num_blocks() * KvCache::kBlockSize) +
                      "; raise --kv-cache-bytes"));
    return true;
  }
  if (blocks > *free_blocks) return false;
  const int len = std::min(r->pending(), *budget);
  r->seq = next_seq_++;
  *free_blocks -= blocks;
  *budget -= len;
  plan->push_back({r, len});
  if (!r->started) {
    const double queued =
        std::chrono::duration<double>(SchedulerClock::now() - r->accepted_at).count();
    if (options_.observer != nullptr) options_.observer->OnAdmitted(queued);
    const auto& on_admitted = r->is_score ? r->score.on_admitted : r->gen.on_admitted;
    if (on_admitted) on_admitted(queued);
  }
  r->started = true;
  running_.push_back(std::move(queue_.front()));
  queue_.pop_front();
  std::lock_guard<std::mutex> lock(mu_);
  --waiting_;
  return true;
}

void Scheduler::Preempt() {
  std::unique_ptr<Request> victim = std::move(running_.back());
  running_.pop_back();
  engine_->Release(victim->seq);
  victim->seq = 0;
  victim->fed = 0;
  queue_.push_front(std::move(victim));
  ++counters_.preemptions;
  std::lock_guard<std::mutex> lock(mu_);
  ++waiting_;
}

void Scheduler::RunStep(const std::vector<Planned>& plan) {
  std::vector<SeqChunk> chunks;
  chunks.reserve(plan.size());
  for (const Planned& p : plan) {
    Request* r = p.request;
    SeqChunk c{.seq = r->seq,
               .tokens = std::span<const int32_t>(r->feed).subspan(r->fed, p.len)};
    if (r->is_score) {
      c.targets = std::span<const int32_t>(r->targets).subspan(r->fed, p.len);
      c.top_n = r->score.top_n;
      c.memory = r->score.memory;
    } else {
      c.memory = r->gen.memory;
    }
    chunks.push_back(c);
  }
  const auto start = SchedulerClock::now();
  const Status status = engine_->Step(chunks, &step_result_);
  ++counters_.steps;
  if (options_.observer != nullptr) Report(plan, start);
  if (!status.ok()) {
    // Planning keeps within the cache and the service validates requests, so this is a bug:
    // fail the step's requests rather than retry them forever.
    const Status internal(StatusCode::kInternal, "engine step failed: " + status.message());
    for (const Planned& p : plan) {
      auto it = std::find_if(running_.begin(), running_.end(),
                             [&](const auto& r) { return r.get() == p.request; });
      Finish(p.request, internal);
      running_.erase(it);
    }
    return;
  }
  // The step's KV blocks and running count are published before its tokens reach a client, so
  // a client that has its token and reads the metrics sees the cache that made it.
  PublishStats();
  for (size_t i = 0; i < plan.size(); ++i) {
    if (!Deliver(plan[i].request, plan[i].len, static_cast<int>(i))) continue;
    auto it = std::find_if(running_.begin(), running_.end(),
                           [&](const auto& r) { return r.get() == plan[i].request; });
    Finish(plan[i].request, OkStatus());
    running_.erase(it);
  }
}

bool Scheduler::Deliver(Request* r, int len, int i) {
  const int first = r->fed;
  const int old_high = r->fed_high_water;
  r->fed += len;
  r->fed_high_water = std::max(old_high, r->fed);
  if (r->is_score) {
    // The chunk's scores are those of its positions with a target, in order. After a
    // preemption, positions up to the high-water mark are recomputed: their scores are
    // already kept (and equal), so only later ones are taken.
    ChunkScores& sc = step_result_.scores[i];
    size_t k = 0;
    for (int t = first; t < r->fed; ++t) {
      if (r->targets[t] < 0) continue;
      if (t >= old_high) {
        r->scores.scores.sum_nll -= sc.logprobs[k];
        r->scores.scores.logprobs.push_back(sc.logprobs[k]);
        if (!sc.top.empty()) r->scores.scores.top.push_back(std::move(sc.top[k]));
        ++counters_.scored_tokens;
      }
      ++k;
    }
    if (r->pending() > 0) return false;
    engine_->Release(r->seq);
    r->seq = 0;
    if (++r->window == r->windows.size()) return true;
    const ScoreWindow& next = r->windows[r->window];
    r->feed.assign(r->score.tokens.begin() + next.begin, r->score.tokens.begin() + next.end - 1);
    r->targets = WindowTargets(r->score.tokens, next);
    r->fed = 0;
    r->fed_high_water = 0;
    r->seq = next_seq_++;
    return false;
  }

  const int prompt = static_cast<int>(r->gen.prompt.size());
  counters_.prompt_tokens +=
      static_cast<uint64_t>(std::max(0, std::min(r->fed, prompt) - std::min(old_high, prompt)));
  if (r->pending() > 0) return false;
  const int vocab = engine_->config().vocab_size;
  const float* logits = step_result_.logits.data() +
                        static_cast<size_t>(step_result_.logits_row[i]) * vocab;
  Generation::Event ev = r->generation->Next(logits, vocab);
  ++r->completion_tokens;
  ++counters_.generated_tokens;
  GeneratedStep out{.token = ev.token, .logprob = ev.logprob, .top = {}, .text = std::move(ev.text)};
  if (r->gen.top_logprobs > 0) {
    logprob_row_.resize(static_cast<size_t>(vocab));
    LogSoftmax(logits, vocab, logprob_row_.data());
    out.top = TopLogProbs(logprob_row_.data(), vocab, r->gen.top_logprobs);
  }
  if (r->gen.on_token) r->gen.on_token(out);
  if (ev.finish != FinishReason::kNone) {
    r->finish = ev.finish;
    return true;
  }
  r->feed.push_back(ev.token);
  return false;
}

void Scheduler::Finish(Request* r, const Status& status) {
  if (r->seq != 0) {
    engine_->Release(r->seq);
    r->seq = 0;
  }
  // The counters a client may read right after its answer (scored and generated tokens, the
  // requests finished) are published before the answer goes out, not after the step.
  ++counters_.requests_finished;
  PublishStats();
  if (r->is_score) {
    if (r->score.on_done) {
      if (status.ok()) {
        r->score.on_done(std::move(r->scores));
      } else {
        r->score.on_done(status);
      }
    }
  } else if (r->gen.on_done) {
    GenerateSummary summary{.finish = r->finish,
                            .prompt_tokens = static_cast<int>(r->gen.prompt.size()),
                            .completion_tokens = r->completion_tokens};
    r->gen.on_done(status, summary);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    --accepted_;
  }
  idle_.notify_all();
}

void Scheduler::FinishAll(const Status& status) {
  for (auto& r : running_) Finish(r.get(), status);
  running_.clear();
  for (auto& r : queue_) Finish(r.get(), status);
  {
    std::lock_guard<std::mutex> lock(mu_);
    waiting_ -= static_cast<int>(queue_.size());
  }
  queue_.clear();
  PublishStats();
}

void Scheduler::Report(const std::vector<Planned>& plan, SchedulerClock::time_point start) {
  const auto now = SchedulerClock::now();
  StepReport report{.decode_only = true,
                    .sequences = static_cast<int>(plan.size()),
                    .forward_seconds = std::chrono::duration<double>(now - start).count(),
                    .pkm_lookup_seconds = step_result_.pkm_lookup_seconds};
  for (const Planned& p : plan) {
    const Request* r = p.request;
    report.tokens += p.len;
    // A decode feeds the one token it sampled last: the feed's last, past the prompt.
    const bool decode = !r->is_score && p.len == 1 && r->pending() == 1 &&
                        r->fed >= static_cast<int>(r->gen.prompt.size());
    report.decode_only = report.decode_only && decode;
  }
  options_.observer->OnStep(report);
  pkm_usage_stale_ = true;
  ReportPkmUsage(/*force=*/false);
}

void Scheduler::ReportPkmUsage(bool force) {
  if (options_.observer == nullptr || !pkm_usage_stale_) return;
  const auto now = SchedulerClock::now();
  if (!force && now - last_pkm_usage_ < options_.pkm_usage_interval) return;
  options_.observer->OnPkmUsage(engine_->PkmUsage());
  last_pkm_usage_ = now;
  pkm_usage_stale_ = false;
}

void Scheduler::PublishStats() {
  std::lock_guard<std::mutex> lock(mu_);
  const bool draining = stats_.draining;
  stats_ = counters_;
  stats_.running = static_cast<int>(running_.size());
  stats_.waiting = waiting_;
  stats_.kv_usage = engine_->kv_cache().usage();
  stats_.device_memory = engine_->device_memory();
  stats_.draining = draining;
}

}  // namespace pkm
