// A "stats" log line every --log-stats-interval seconds while the server is busy (requests
// running or waiting, or tokens processed since the last line), as vLLM's periodic stats:
//
//   ... INFO stats prompt_tok_s=812.0 gen_tok_s=95.5 scored_tok_s=0.0 running=3 waiting=0
//       kv_cache_pct=4.7 requests=118
//
// Idle intervals log nothing, so an idle server's log stays quiet.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "server/scheduler.h"

namespace pkm {

class StatsLog {
 public:
  // Reads `stats` every `interval_s` (> 0) on a thread of its own.
  StatsLog(std::function<SchedulerStats()> stats, double interval_s);
  ~StatsLog();  // stops the thread
  StatsLog(const StatsLog&) = delete;
  StatsLog& operator=(const StatsLog&) = delete;

 private:
  void Run();

  std::function<SchedulerStats()> stats_;
  std::chrono::duration<double> interval_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace pkm
