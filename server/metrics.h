// Prometheus metrics of the server (prometheus-cpp), names prefixed pkmserve_, after vLLM/TGI
// (docs/metrics.md). Request latencies are observed by the gRPC service, where the client's
// view of them is; queue time, steps and the memory layers' statistics come from the
// scheduler's engine thread (SchedulerObserver); gauges (running, waiting, KV usage, memory)
// are read from the scheduler and the process when Prometheus scrapes.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "server/scheduler.h"

namespace pkm {

// Bucket bounds for LLM latencies, 1 ms to 60 s, about three per decade.
std::vector<double> LatencyBuckets();

struct MetricsSetup {
  std::string model;                      // the `model` label of every series
  std::function<SchedulerStats()> stats;  // read on every scrape (e.g. the scheduler's Stats)
  double weight_bytes = 0;
  double kv_cache_bytes = 0;
  int queue_capacity = 0;                 // the admission queue's bound (--max-queue)
  std::string device = "cpu";             // the `device` label of the device memory gauges
  // The model's memories, the `layer` label: "4", or "4_after" for a memory after block 4.
  std::vector<std::string> memory_labels;
};

class ServerMetrics final : public prometheus::Collectable, public SchedulerObserver {
 public:
  explicit ServerMetrics(MetricsSetup setup);

  // pkmserve_build_info{version, commit, build_type} 1 (common/version.h's values).
  void SetBuildInfo(const std::string& version, const std::string& commit,
                    const std::string& build_type);

  // A request's first token `seconds` after it arrived; later tokens `seconds` apart.
  void ObserveFirstToken(double seconds);
  void ObserveInterToken(double seconds, int tokens);
  // A request ended: its end-to-end latency and outcome. `finish_reason` for a success
  // ("length", "stop", "eos"), else the gRPC status code name for a failure.
  // api: "grpc" or "http", the API the call came through.
  void ObserveSuccess(double e2e_seconds, const std::string& finish_reason,
                      const std::string& api);
  void ObserveFailure(double e2e_seconds, const std::string& code, const std::string& api);

  // SchedulerObserver: queue time, step size and time, lookup time and memory usage.
  void OnAdmitted(double queue_seconds) override;
  void OnStep(const StepReport& step) override;
  void OnPkmUsage(std::span<const PkmLayerUsage> usage) override;

  // Refreshes the gauges and counters mirrored from the scheduler, then returns every family.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  // The series of one memory, in memory_labels order.
  struct PkmLayerSeries {
    prometheus::Histogram* lookup_seconds;
    prometheus::Gauge* coverage;
    prometheus::Gauge* kl;
    prometheus::Gauge* window_tokens;
  };

  std::string model_;
  std::function<SchedulerStats()> stats_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Histogram* ttft_;
  prometheus::Histogram* itl_;
  prometheus::Histogram* e2e_;
  prometheus::Histogram* queue_time_;
  prometheus::Histogram* forward_prefill_;
  prometheus::Histogram* forward_decode_;
  prometheus::Histogram* batch_size_;
  prometheus::Histogram* batch_tokens_;
  std::vector<PkmLayerSeries> pkm_;
  prometheus::Family<prometheus::Counter>* success_;
  prometheus::Family<prometheus::Counter>* failure_;
  prometheus::Gauge* running_;
  prometheus::Gauge* waiting_;
  prometheus::Gauge* kv_usage_;
  prometheus::Gauge* rss_;
  prometheus::Gauge* device_used_;
  // pkmserve_device_memory_bytes{kind}: the field of DeviceMemoryUse each series shows.
  std::vector<std::pair<size_t DeviceMemoryUse::*, prometheus::Gauge*>> device_by_kind_;
  prometheus::Gauge* device_total_;
  // Counters the scheduler keeps; each scrape adds what they grew by since the last one.
  prometheus::Counter* prompt_tokens_;
  prometheus::Counter* generation_tokens_;
  prometheus::Counter* scored_tokens_;
  prometheus::Counter* preemptions_;
  mutable std::mutex mu_;
  mutable SchedulerStats last_;
};

}  // namespace pkm
