#include "server/metrics.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>

namespace pkm {
namespace {

// Resident set size of this process, from /proc/self/statm.
double ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

}  // namespace

std::vector<double> LatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
          1.0,   2.5,    5.0,   10.0, 20.0,  30.0, 60.0};
}

ServerMetrics::ServerMetrics(std::string model, std::function<SchedulerStats()> stats,
                             double weight_bytes, double kv_cache_bytes)
    : model_(std::move(model)),
      stats_(std::move(stats)),
      registry_(std::make_shared<prometheus::Registry>()) {
  const prometheus::Labels labels = {{"model", model_}};
  auto histogram = [&](const char* name, const char* help) {
    return &prometheus::BuildHistogram().Name(name).Help(help).Register(*registry_).Add(
        labels, LatencyBuckets());
  };
  auto gauge = [&](const char* name, const char* help) {
    return &prometheus::BuildGauge().Name(name).Help(help).Register(*registry_).Add(labels);
  };
  auto counter = [&](const char* name, const char* help) {
    return &prometheus::BuildCounter().Name(name).Help(help).Register(*registry_).Add(labels);
  };
  ttft_ = histogram("pkmserve_time_to_first_token_seconds",
                    "Time from a Generate call's arrival to its first token.");
  itl_ = histogram("pkmserve_inter_token_latency_seconds",
                   "Time between successive tokens of a Generate stream.");
  e2e_ = histogram("pkmserve_e2e_request_latency_seconds",
                   "Time from a request's arrival to its end, whatever the outcome.");
  success_ = &prometheus::BuildCounter()
                  .Name("pkmserve_request_success_total")
                  .Help("Requests finished, by finish reason (score requests: \"scored\").")
                  .Register(*registry_);
  failure_ = &prometheus::BuildCounter()
                  .Name("pkmserve_request_failure_total")
                  .Help("Requests ended with an error, by gRPC status code.")
                  .Register(*registry_);
  running_ = gauge("pkmserve_requests_running", "Requests holding a sequence in the engine.");
  waiting_ = gauge("pkmserve_requests_waiting", "Requests accepted and waiting for admission.");
  kv_usage_ = gauge("pkmserve_kv_cache_usage_ratio", "Fraction of KV cache blocks in use.");
  rss_ = gauge("pkmserve_host_memory_resident_bytes", "Resident memory of the server process.");
  gauge("pkmserve_model_weights_bytes", "Bytes of model weights held by the engine.")
      ->Set(weight_bytes);
  gauge("pkmserve_kv_cache_bytes", "Bytes of the KV cache.")->Set(kv_cache_bytes);
  prompt_tokens_ = counter("pkmserve_prompt_tokens_total", "Prompt tokens prefilled.");
  generation_tokens_ = counter("pkmserve_generation_tokens_total", "Tokens generated.");
  scored_tokens_ = counter("pkmserve_scored_tokens_total", "Tokens scored by Score requests.");
  preemptions_ = counter("pkmserve_preemptions_total",
                         "Sequences preempted for KV space and recomputed later.");
}

void ServerMetrics::ObserveFirstToken(double seconds) { ttft_->Observe(seconds); }

void ServerMetrics::ObserveInterToken(double seconds, int tokens) {
  for (int i = 0; i < tokens; ++i) itl_->Observe(seconds / tokens);
}

void ServerMetrics::ObserveSuccess(double e2e_seconds, const std::string& finish_reason) {
  e2e_->Observe(e2e_seconds);
  success_->Add({{"model", model_}, {"finish_reason", finish_reason}}).Increment();
}

void ServerMetrics::ObserveFailure(double e2e_seconds, const std::string& code) {
  e2e_->Observe(e2e_seconds);
  failure_->Add({{"model", model_}, {"code", code}}).Increment();
}

std::vector<prometheus::MetricFamily> ServerMetrics::Collect() const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const SchedulerStats s = stats_();
    running_->Set(s.running);
    waiting_->Set(s.waiting);
    kv_usage_->Set(s.kv_usage);
    rss_->Set(ResidentBytes());
    prompt_tokens_->Increment(static_cast<double>(s.prompt_tokens - last_.prompt_tokens));
    generation_tokens_->Increment(
        static_cast<double>(s.generated_tokens - last_.generated_tokens));
    scored_tokens_->Increment(static_cast<double>(s.scored_tokens - last_.scored_tokens));
    preemptions_->Increment(static_cast<double>(s.preemptions - last_.preemptions));
    last_ = s;
  }
  return registry_->Collect();
}

}  // namespace pkm
