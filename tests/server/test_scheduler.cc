// The scheduler on the bundled model: batched, chunked, preempted requests produce exactly
// what each produces alone on an idle engine; cancellation, deadlines, the queue bound and
// draining end requests with the right status and give their KV blocks back.
#include "server/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "engine/scoring.h"
#include "tests/server/model_fixture.h"

namespace pkm {
namespace {

// What a Generate request delivered through its callbacks.
struct Collected {
  std::vector<int32_t> tokens;
  std::vector<GeneratedStep> steps;
  std::string text;
  Status status;
  GenerateSummary summary;
};

// Collects one request's callbacks; get() waits for the terminal one.
class GenerateCollector {
 public:
  GenerateWork Attach(GenerateWork work) {
    work.on_token = [this](const GeneratedStep& s) {
      result_.tokens.push_back(s.token);
      result_.text += s.text;
      result_.steps.push_back(s);
    };
    work.on_done = [this](const Status& st, const GenerateSummary& sum) {
      result_.status = st;
      result_.summary = sum;
      done_.set_value();
    };
    return work;
  }
  const Collected& get() {
    future_.wait();
    return result_;
  }
  bool WaitFor(std::chrono::milliseconds d) {
    return future_.wait_for(d) == std::future_status::ready;
  }

 private:
  Collected result_;
  std::promise<void> done_;
  std::shared_future<void> future_ = done_.get_future().share();
};

class SchedulerTest : public ModelTest {
 protected:
  static GenerateWork Work(std::vector<int32_t> prompt, int max_new, uint64_t seed,
                           float temperature = 0.9f) {
    GenerateWork w;
    w.prompt = std::move(prompt);
    w.options.max_new_tokens = max_new;
    w.options.sampling = {.temperature = temperature, .top_k = 40, .top_p = 0.95f, .seed = seed};
    w.options.ignore_eos = true;
    return w;
  }

  // The request run alone on a fresh idle engine.
  static GenerateResult Alone(const GenerateWork& w) {
    auto engine = MakeEngine();
    auto r = Generate(*engine, *tokenizer_, 1, w.prompt, w.options);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : GenerateResult{};
  }

  static void WaitForKvZero(const Engine& engine, Scheduler& s) {
    for (int i = 0; i < 500 && (engine.kv_cache().used_blocks() != 0 || s.Stats().running != 0);
         ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(s.Stats().kv_usage, 0.0);
    EXPECT_EQ(s.Stats().running, 0);
  }

  // Prompts of different lengths (a few tokens to a few hundred characters).
  static std::vector<std::string> Texts(int n) {
    std::vector<std::string> texts;
    for (int i = 0; i < n; ++i) {
      std::string t = "The whale " + std::to_string(i);
      for (int j = 0; j < i % 7; ++j) t += " and the sea of the nation, said the captain";
      texts.push_back(t);
    }
    return texts;
  }

  // Collectors owned by the fixture outlive every scheduler of the test body, whose
  // destructor may still deliver terminal callbacks after a failed assertion.
  std::vector<GenerateCollector>& Collectors(size_t n) {
    collectors_ = std::vector<GenerateCollector>(n);
    return collectors_;
  }

  std::vector<GenerateCollector> collectors_;
};

TEST_F(SchedulerTest, GreedyRequestMatchesOfflineGenerate) {
  auto engine = MakeEngine();
  Scheduler s(engine.get(), tokenizer_, {});
  GenerateWork w = Work(Prompt("It was the best of times"), 24, 0, /*temperature=*/0.0f);
  w.options.logprobs = true;
  w.top_logprobs = 3;
  GenerateCollector& c = Collectors(1)[0];
  ASSERT_TRUE(s.SubmitGenerate(c.Attach(w)).ok());
  const Collected& got = c.get();
  ASSERT_TRUE(got.status.ok()) << got.status.ToString();
  const GenerateResult alone = Alone(w);
  EXPECT_EQ(got.tokens, alone.tokens);
  EXPECT_EQ(got.text, alone.text);
  EXPECT_EQ(got.summary.finish, FinishReason::kLength);
  EXPECT_EQ(got.summary.prompt_tokens, static_cast<int>(w.prompt.size()));
  EXPECT_EQ(got.summary.completion_tokens, 24);
  for (const GeneratedStep& step : got.steps) {
    // Greedy: the sampled token is the most likely one, with the same log-probability.
    ASSERT_EQ(step.top.size(), 3u);
    EXPECT_EQ(step.top[0].first, step.token);
    EXPECT_EQ(step.top[0].second, step.logprob);
    EXPECT_GE(step.top[0].second, step.top[1].second);
  }
  WaitForKvZero(*engine, s);
}

// Many requests of mixed lengths, batched under a small token budget (so prompts are
// prefilled in chunks next to running decodes): each yields what it yields alone.
TEST_F(SchedulerTest, ConcurrentSeededRequestsEqualTheirSoloRuns) {
  auto engine = MakeEngine();
  Scheduler s(engine.get(), tokenizer_, {.max_batch_tokens = 24});
  const std::vector<std::string> texts = Texts(16);
  std::vector<GenerateWork> works;
  for (size_t i = 0; i < texts.size(); ++i) {
    works.push_back(Work(Prompt(texts[i]), 8 + static_cast<int>(i % 5) * 4, 1000 + i));
  }
  std::vector<GenerateCollector>& collectors = Collectors(works.size());
  for (size_t i = 0; i < works.size(); ++i) {
    ASSERT_TRUE(s.SubmitGenerate(collectors[i].Attach(works[i])).ok());
  }
  for (size_t i = 0; i < works.size(); ++i) {
    const Collected& got = collectors[i].get();
    ASSERT_TRUE(got.status.ok()) << got.status.ToString();
    const GenerateResult alone = Alone(works[i]);
    EXPECT_EQ(got.tokens, alone.tokens) << "request " << i;
    EXPECT_EQ(got.text, alone.text) << "request " << i;
  }
  const SchedulerStats st = s.Stats();
  EXPECT_EQ(st.requests_finished, works.size());
  EXPECT_GT(st.generated_tokens, 0u);
  WaitForKvZero(*engine, s);
}

// Records what the scheduler reports to its observer (on the engine thread).
class RecordingObserver final : public SchedulerObserver {
 public:
  void OnAdmitted(double queue_seconds) override {
    std::lock_guard<std::mutex> lock(mu);
    queue_seconds_seen.push_back(queue_seconds);
  }
  void OnStep(const StepReport& step) override {
    std::lock_guard<std::mutex> lock(mu);
    steps.push_back(step);
    lookup_seconds.push_back(step.pkm_lookup_seconds.empty() ? -1 : step.pkm_lookup_seconds[0]);
  }
  void OnPkmUsage(std::span<const PkmLayerUsage> u) override {
    std::lock_guard<std::mutex> lock(mu);
    usage.assign(u.begin(), u.end());
    ++usage_reports;
  }
  std::mutex mu;
  std::vector<double> queue_seconds_seen;
  std::vector<StepReport> steps;  // pkm_lookup_seconds not valid after the call
  std::vector<double> lookup_seconds;
  std::vector<PkmLayerUsage> usage;
  int usage_reports = 0;
};

// The observer hears of every admission once and of every step, with the step's tokens, and
// gets the memory usage of every token once the engine is idle.
TEST_F(SchedulerTest, ObserverSeesEveryStepAndAdmission) {
  auto engine = MakeEngine(size_t{64} << 20, {.pkm_usage_window = 1 << 20, .time_pkm_lookups = true});
  RecordingObserver observer;
  Scheduler s(engine.get(), tokenizer_,
              {.max_batch_tokens = 24, .observer = &observer,
               .pkm_usage_interval = std::chrono::hours(1)});
  const std::vector<std::string> texts = Texts(8);
  std::vector<GenerateCollector>& collectors = Collectors(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    ASSERT_TRUE(s.SubmitGenerate(collectors[i].Attach(Work(Prompt(texts[i]), 6, 3 + i))).ok());
  }
  for (auto& c : collectors) ASSERT_TRUE(c.get().status.ok());
  WaitForKvZero(*engine, s);
  const SchedulerStats stats = s.Stats();
  ASSERT_EQ(stats.preemptions, 0u);
  std::lock_guard<std::mutex> lock(observer.mu);
  EXPECT_EQ(observer.queue_seconds_seen.size(), texts.size());
  for (double q : observer.queue_seconds_seen) EXPECT_GE(q, 0.0);
  ASSERT_EQ(observer.steps.size(), stats.steps);
  long tokens = 0;
  int decode_steps = 0;
  for (size_t i = 0; i < observer.steps.size(); ++i) {
    const StepReport& st = observer.steps[i];
    tokens += st.tokens;
    EXPECT_LE(st.tokens, 24);
    EXPECT_GT(st.forward_seconds, 0.0);
    EXPECT_GT(observer.lookup_seconds[i], 0.0);
    if (st.decode_only) {
      ++decode_steps;
      EXPECT_EQ(st.tokens, st.sequences) << "a decode step feeds one token per sequence";
    }
  }
  // Every prompt token and every sampled token but each request's last went through a step.
  EXPECT_EQ(tokens, static_cast<long>(stats.prompt_tokens + stats.generated_tokens) -
                        static_cast<long>(texts.size()));
  EXPECT_GT(decode_steps, 0);
  // Reports only when the engine went idle (the interval is an hour); the last counts every
  // token. (The engine may have gone idle between two submissions too.)
  EXPECT_GE(observer.usage_reports, 1);
  EXPECT_LE(observer.usage_reports, static_cast<int>(texts.size()));
  ASSERT_EQ(observer.usage.size(), model_->config().memory_layers().size());
  EXPECT_EQ(observer.usage[0].window_tokens, tokens);
  EXPECT_GT(observer.usage[0].coverage, 0.0);
}

// A KV cache too small for every request at once: the newest are preempted and recomputed,
// and still produce exactly their solo output.
TEST_F(SchedulerTest, PreemptionRecomputesWithoutChangingResults) {
  const size_t per_position = KvCache::BytesPerPosition(
      model_->config().n_layers, model_->config().attention.n_kv_heads, model_->config().head_dim());
  auto engine = MakeEngine(per_position * 16 * 12);  // 12 blocks: 192 positions
  Scheduler s(engine.get(), tokenizer_, {.max_batch_tokens = 64});
  const std::vector<std::string> texts = Texts(8);
  std::vector<GenerateWork> works;
  for (size_t i = 0; i < texts.size(); ++i) works.push_back(Work(Prompt(texts[i]), 40, 7 + i));
  std::vector<GenerateCollector>& collectors = Collectors(works.size());
  for (size_t i = 0; i < works.size(); ++i) {
    ASSERT_TRUE(s.SubmitGenerate(collectors[i].Attach(works[i])).ok());
  }
  for (size_t i = 0; i < works.size(); ++i) {
    const Collected& got = collectors[i].get();
    ASSERT_TRUE(got.status.ok()) << got.status.ToString();
    EXPECT_EQ(got.tokens, Alone(works[i]).tokens) << "request " << i;
  }
  EXPECT_GT(s.Stats().preemptions, 0u);
  WaitForKvZero(*engine, s);
}

// Score requests (with several windows) batched with generations, under preemption, equal
// ScoreTokensWindowed on an idle engine bit for bit.
TEST_F(SchedulerTest, ScoresEqualIdleEngineScoringExactly) {
  const size_t per_position = KvCache::BytesPerPosition(
      model_->config().n_layers, model_->config().attention.n_kv_heads, model_->config().head_dim());
  auto engine = MakeEngine(per_position * 16 * 20);  // 320 positions
  std::vector<std::promise<StatusOr<WindowedScoreResult>>> done(4);
  std::vector<GenerateCollector> gens(4);
  Scheduler s(engine.get(), tokenizer_, {.max_batch_tokens = 48});
  std::string long_text;
  for (int i = 0; i < 30; ++i) long_text += "Call me Ishmael. Some years ago, never mind how long. ";
  const std::vector<int32_t> tokens = Prompt(long_text);
  ASSERT_GT(tokens.size(), 200u);
  struct Case {
    int context, stride, top_n;
  };
  const std::vector<Case> cases = {{256, 128, 0}, {64, 32, 2}, {48, 47, 0}, {300, 100, 1}};
  ASSERT_EQ(done.size(), cases.size());
  for (size_t i = 0; i < gens.size(); ++i) {
    ASSERT_TRUE(s.SubmitGenerate(gens[i].Attach(Work(Prompt(Texts(4)[i]), 30, i))).ok());
  }
  for (size_t i = 0; i < cases.size(); ++i) {
    ScoreWork w;
    w.tokens = tokens;
    w.context = std::min(cases[i].context, 256);
    w.stride = std::min(cases[i].stride, w.context - 1);
    w.top_n = cases[i].top_n;
    w.on_done = [&done, i](StatusOr<WindowedScoreResult> r) { done[i].set_value(std::move(r)); };
    ASSERT_TRUE(s.SubmitScore(std::move(w)).ok());
  }
  for (size_t i = 0; i < cases.size(); ++i) {
    StatusOr<WindowedScoreResult> got = done[i].get_future().get();
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    const int context = std::min(cases[i].context, 256);
    const int stride = std::min(cases[i].stride, context - 1);
    auto idle = MakeEngine();
    auto want = ScoreTokensWindowed(*idle, 1, tokens, context, stride, {.top_n = cases[i].top_n});
    ASSERT_TRUE(want.ok()) << want.status().ToString();
    EXPECT_EQ(got->windows, want->windows);
    ASSERT_EQ(got->scores.logprobs.size(), tokens.size() - 1);
    EXPECT_EQ(got->scores.logprobs, want->scores.logprobs) << "case " << i;
    EXPECT_EQ(got->scores.sum_nll, want->scores.sum_nll);
    EXPECT_EQ(got->scores.top, want->scores.top);
  }
  for (auto& g : gens) EXPECT_TRUE(g.get().status.ok());
  WaitForKvZero(*engine, s);
}

TEST_F(SchedulerTest, WindowPlanScoresEveryTokenOnce) {
  for (int n : {2, 3, 17, 256, 257, 1000}) {
    for (auto [context, stride] : std::vector<std::pair<int, int>>{{2, 1}, {16, 8}, {256, 255}, {64, 1}}) {
      const auto windows = PlanScoreWindows(n, context, stride);
      ASSERT_FALSE(windows.empty());
      int next = 1;
      for (const ScoreWindow& w : windows) {
        EXPECT_LE(w.end - w.begin, context);
        EXPECT_GT(w.first_target, w.begin);
        EXPECT_EQ(w.first_target, next);
        next = w.end;
      }
      EXPECT_EQ(next, n);
    }
  }
  EXPECT_TRUE(PlanScoreWindows(10, 8, 8).empty());  // stride must leave context
  EXPECT_TRUE(PlanScoreWindows(1, 8, 4).empty());
}

TEST_F(SchedulerTest, CancellationEndsTheRequestAndFreesItsBlocks) {
  auto engine = MakeEngine();
  Scheduler s(engine.get(), tokenizer_, {});
  GenerateCollector& c = Collectors(1)[0];
  std::promise<void> first_token;
  GenerateWork w = c.Attach(Work(Prompt("Cancel me"), 200, 3));
  auto on_token = w.on_token;
  bool signalled = false;
  w.on_token = [&, on_token](const GeneratedStep& step) {
    on_token(step);
    if (!signalled) first_token.set_value();
    signalled = true;
  };
  auto id = s.SubmitGenerate(std::move(w));
  ASSERT_TRUE(id.ok());
  first_token.get_future().wait();
  s.Cancel(*id);
  const Collected& got = c.get();
  EXPECT_EQ(got.status.code(), StatusCode::kCancelled);
  EXPECT_LT(got.tokens.size(), 200u);
  WaitForKvZero(*engine, s);
}

// A client that has a token and reads the metrics sees the step that made it: its KV blocks
// and its request running, not the idle scheduler of the step before.
TEST_F(SchedulerTest, StatsSeenWithATokenIncludeItsStep) {
  auto engine = MakeEngine();
  Scheduler s(engine.get(), tokenizer_, {});
  GenerateCollector& c = Collectors(1)[0];
  GenerateWork w = c.Attach(Work(Prompt("Watch the gauge"), 4, 7));
  std::vector<SchedulerStats> seen;  // written on the scheduler's thread, read after get()
  auto on_token = w.on_token;
  w.on_token = [&, on_token](const GeneratedStep& step) {
    on_token(step);
    seen.push_back(s.Stats());
  };
  ASSERT_TRUE(s.SubmitGenerate(std::move(w)).ok());
  ASSERT_TRUE(c.get().status.ok());
  ASSERT_EQ(seen.size(), 4u);
  for (const SchedulerStats& stats : seen) {
    EXPECT_GT(stats.kv_usage, 0.0);
    EXPECT_EQ(stats.running, 1);
  }
}

TEST_F(SchedulerTest, DeadlineEndsTheRequest) {
  auto engine = MakeEngine();
  Scheduler s(engine.get(), tokenizer_, {});
  GenerateCollector& c = Collectors(1)[0];
  GenerateWork w = Work(Prompt("Too slow"), 250, 5);
  w.deadline = SchedulerClock::now() + std::chrono::milliseconds(30);
  ASSERT_TRUE(s.SubmitGenerate(c.Attach(std::move(w))).ok());
  EXPECT_EQ(c.get().status.code(), StatusCode::kDeadlineExceeded);
  WaitForKvZero(*engine, s);
}

TEST_F(SchedulerTest, FullQueueRefusesWithResourceExhausted) {
  auto engine = MakeEngine();
  Scheduler s(engine.get(), tokenizer_, {.max_queue = 1, .max_running = 1});
  std::vector<GenerateCollector>& c = Collectors(3);
  std::vector<StatusCode> codes;
  for (auto& col : c) {
    auto id = s.SubmitGenerate(col.Attach(Work(Prompt("Long"), 250, 1)));
    codes.push_back(id.ok() ? StatusCode::kOk : id.status().code());
  }
  // One running slot and one queue slot hold at most two of the three (which two depends on
  // when the engine thread admits the first).
  EXPECT_EQ(codes[0], StatusCode::kOk);
  EXPECT_GE(std::count(codes.begin(), codes.end(), StatusCode::kResourceExhausted), 1);
  for (size_t i = 0; i < 3; ++i) {
    if (codes[i] == StatusCode::kOk) {
      EXPECT_TRUE(c[i].get().status.ok()) << i << ": " << c[i].get().status.ToString();
      EXPECT_EQ(c[i].get().tokens.size(), 250u);
    }
  }
}

TEST_F(SchedulerTest, DrainFinishesAcceptedRequestsAndRefusesNewOnes) {
  auto engine = MakeEngine();
  Scheduler s(engine.get(), tokenizer_, {});
  std::vector<GenerateCollector>& c = Collectors(4);
  for (size_t i = 0; i < c.size(); ++i) {
    ASSERT_TRUE(s.SubmitGenerate(c[i].Attach(Work(Prompt("Drain"), 20, i))).ok());
  }
  s.BeginDrain();
  GenerateCollector late;
  auto refused = s.SubmitGenerate(late.Attach(Work(Prompt("Late"), 4, 1)));
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(s.WaitIdle(SchedulerClock::now() + std::chrono::seconds(60)));
  for (auto& col : c) {
    const Collected& got = col.get();
    EXPECT_TRUE(got.status.ok()) << got.status.ToString();
    EXPECT_EQ(got.tokens.size(), 20u);
  }
  EXPECT_TRUE(s.Stats().draining);
}

TEST_F(SchedulerTest, DrainTimeoutFailsWhatRemainsWithUnavailable) {
  auto engine = MakeEngine();
  Scheduler s(engine.get(), tokenizer_, {});
  GenerateCollector& c = Collectors(1)[0];
  ASSERT_TRUE(s.SubmitGenerate(c.Attach(Work(Prompt("Forever"), 250, 1))).ok());
  s.BeginDrain();
  EXPECT_FALSE(s.WaitIdle(SchedulerClock::now() + std::chrono::milliseconds(20)));
  EXPECT_EQ(c.get().status.code(), StatusCode::kUnavailable);
  WaitForKvZero(*engine, s);
}

TEST_F(SchedulerTest, DestructorEndsAcceptedRequests) {
  GenerateCollector c;
  {
    auto engine = MakeEngine();
    Scheduler s(engine.get(), tokenizer_, {});
    ASSERT_TRUE(s.SubmitGenerate(c.Attach(Work(Prompt("Bye"), 250, 1))).ok());
  }
  ASSERT_TRUE(c.WaitFor(std::chrono::seconds(0)));
  const Status status = c.get().status;
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
}

TEST_F(SchedulerTest, StaticBatchingGivesTheSameResults) {
  auto engine = MakeEngine();
  Scheduler s(engine.get(), tokenizer_, {.max_batch_tokens = 512, .static_batching = true});
  const std::vector<std::string> texts = Texts(6);
  std::vector<GenerateWork> works;
  for (size_t i = 0; i < texts.size(); ++i) {
    works.push_back(Work(Prompt(texts[i]), 4 + static_cast<int>(i) * 3, 50 + i));
  }
  std::vector<GenerateCollector>& collectors = Collectors(works.size());
  for (size_t i = 0; i < works.size(); ++i) {
    ASSERT_TRUE(s.SubmitGenerate(collectors[i].Attach(works[i])).ok());
  }
  for (size_t i = 0; i < works.size(); ++i) {
    EXPECT_EQ(collectors[i].get().tokens, Alone(works[i]).tokens) << "request " << i;
  }
}

}  // namespace
}  // namespace pkm
