#include "server/stats_log.h"

#include <cmath>

#include "server/log.h"

namespace pkm {

StatsLog::StatsLog(std::function<SchedulerStats()> stats, double interval_s)
    : stats_(std::move(stats)), interval_(interval_s), thread_([this] { Run(); }) {}

StatsLog::~StatsLog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void StatsLog::Run() {
  auto round1 = [](double v) { return std::round(v * 10) / 10; };
  SchedulerStats last = stats_();
  auto last_time = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mu_);
  while (!wake_.wait_for(lock, interval_, [this] { return stop_; })) {
    const SchedulerStats now = stats_();
    const auto now_time = std::chrono::steady_clock::now();
    const double dt = std::chrono::duration<double>(now_time - last_time).count();
    const bool busy = now.running > 0 || now.waiting > 0 || now.steps != last.steps;
    if (busy && dt > 0) {
      auto rate = [&](uint64_t a, uint64_t b) { return round1(static_cast<double>(a - b) / dt); };
      Log(LogLevel::kInfo, "stats",
          {{"prompt_tok_s", rate(now.prompt_tokens, last.prompt_tokens)},
           {"gen_tok_s", rate(now.generated_tokens, last.generated_tokens)},
           {"scored_tok_s", rate(now.scored_tokens, last.scored_tokens)},
           {"running", now.running},
           {"waiting", now.waiting},
           {"kv_cache_pct", round1(100 * now.kv_usage)},
           {"requests", now.requests_finished - last.requests_finished}});
    }
    last = now;
    last_time = now_time;
  }
}

}  // namespace pkm
