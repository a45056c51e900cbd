#include "server/metrics.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <utility>

namespace pkm {
namespace {

// Resident set size of this process, from /proc/self/statm.
double ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

// One engine step: 100 us to 10 s.
std::vector<double> StepBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,  10.0};
}

// One memory layer's lookups in one step: 10 us to 1 s.
std::vector<double> LookupBuckets() {
  return {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
          0.005,   0.01,     0.025,   0.05,   0.1,     0.25,   0.5,   1.0};
}

std::vector<double> PowersOfTwo(int from, int to) {
  std::vector<double> bounds;
  for (int v = from; v <= to; v *= 2) bounds.push_back(v);
  return bounds;
}

}  // namespace

std::vector<double> LatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
          1.0,   2.5,    5.0,   10.0, 20.0,  30.0, 60.0};
}

ServerMetrics::ServerMetrics(MetricsSetup setup)
    : model_(std::move(setup.model)),
      stats_(std::move(setup.stats)),
      registry_(std::make_shared<prometheus::Registry>()) {
  const prometheus::Labels labels = {{"model", model_}};
  auto histogram = [&](const char* name, const char* help, std::vector<double> buckets) {
    return &prometheus::BuildHistogram().Name(name).Help(help).Register(*registry_).Add(
        labels, std::move(buckets));
  };
  auto gauge = [&](const char* name, const char* help) {
    return &prometheus::BuildGauge().Name(name).Help(help).Register(*registry_).Add(labels);
  };
  auto counter = [&](const char* name, const char* help) {
    return &prometheus::BuildCounter().Name(name).Help(help).Register(*registry_).Add(labels);
  };
  ttft_ = histogram("pkmserve_time_to_first_token_seconds",
                    "Time from a Generate call's arrival to its first token.", LatencyBuckets());
  itl_ = histogram("pkmserve_inter_token_latency_seconds",
                   "Time between successive tokens of a Generate stream.", LatencyBuckets());
  e2e_ = histogram("pkmserve_e2e_request_latency_seconds",
                   "Time from a request's arrival to its end, whatever the outcome.",
                   LatencyBuckets());
  queue_time_ = histogram("pkmserve_request_queue_time_seconds",
                          "Time from a request's acceptance to its first engine step.",
                          LatencyBuckets());
  auto& forward = prometheus::BuildHistogram()
                      .Name("pkmserve_batch_forward_seconds")
                      .Help("Time of one engine step; phase decode when every sequence in it "
                            "decoded one token, else prefill.")
                      .Register(*registry_);
  forward_prefill_ = &forward.Add({{"model", model_}, {"phase", "prefill"}}, StepBuckets());
  forward_decode_ = &forward.Add({{"model", model_}, {"phase", "decode"}}, StepBuckets());
  batch_size_ = histogram("pkmserve_batch_size", "Sequences in one engine step.",
                          PowersOfTwo(1, 1024));
  batch_tokens_ = histogram("pkmserve_batch_tokens", "Tokens in one engine step.",
                            PowersOfTwo(1, 16384));
  auto& lookup = prometheus::BuildHistogram()
                     .Name("pkmserve_pkm_lookup_seconds")
                     .Help("Time of one memory layer's lookups (query projection, key scores, "
                           "top-k, value gather) in one engine step.")
                     .Register(*registry_);
  auto& coverage = prometheus::BuildGauge()
                       .Name("pkmserve_pkm_slot_coverage_ratio")
                       .Help("Share of a memory layer's slots selected at least once in the "
                             "usage window of recent tokens.")
                       .Register(*registry_);
  auto& kl = prometheus::BuildGauge()
                 .Name("pkmserve_pkm_lookup_kl")
                 .Help("KL divergence (nats) of a memory layer's slot weights, summed over "
                       "the usage window, from the uniform distribution.")
                 .Register(*registry_);
  auto& window = prometheus::BuildGauge()
                     .Name("pkmserve_pkm_usage_window_tokens")
                     .Help("Tokens in a memory layer's usage window.")
                     .Register(*registry_);
  for (const std::string& layer : setup.memory_labels) {
    const prometheus::Labels l = {{"model", model_}, {"layer", layer}};
    pkm_.push_back({&lookup.Add(l, LookupBuckets()), &coverage.Add(l), &kl.Add(l), &window.Add(l)});
  }
  success_ = &prometheus::BuildCounter()
                  .Name("pkmserve_request_success_total")
                  .Help("Generate and Score calls finished, one per call, by API (grpc, http) "
                        "and finish reason (Score calls: \"scored\").")
                  .Register(*registry_);
  failure_ = &prometheus::BuildCounter()
                  .Name("pkmserve_request_failure_total")
                  .Help("Inference calls (any method) ended with an error, one per call, by API "
                        "(grpc, http) and gRPC status code.")
                  .Register(*registry_);
  // Every known outcome's series exists from the start at 0, so that rate() and increase()
  // see the first failure of a kind (a series born at 1 has no earlier sample to differ from).
  for (const char* api : {"grpc", "http"}) {
    for (const char* reason : {"length", "stop", "eos", "cancelled", "scored"}) {
      success_->Add({{"model", model_}, {"api", api}, {"finish_reason", reason}});
    }
    for (const char* code : {"INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "UNAVAILABLE",
                             "DEADLINE_EXCEEDED", "CANCELLED", "UNAUTHENTICATED", "INTERNAL"}) {
      failure_->Add({{"model", model_}, {"api", api}, {"code", code}});
    }
  }
  running_ = gauge("pkmserve_requests_running", "Requests holding a sequence in the engine.");
  waiting_ = gauge("pkmserve_requests_waiting", "Requests accepted and waiting for admission.");
  gauge("pkmserve_request_queue_capacity",
        "Requests that may wait for admission before new ones are refused (--max-queue).")
      ->Set(setup.queue_capacity);
  kv_usage_ = gauge("pkmserve_kv_cache_usage_ratio", "Fraction of KV cache blocks in use.");
  rss_ = gauge("pkmserve_host_memory_resident_bytes", "Resident memory of the server process.");
  const prometheus::Labels device = {{"model", model_}, {"device", setup.device}};
  device_used_ = &prometheus::BuildGauge()
                      .Name("pkmserve_device_memory_used_bytes")
                      .Help("Memory the engine holds on its device (weights, KV cache, "
                            "activations).")
                      .Register(*registry_)
                      .Add(device);
  auto& by_kind = prometheus::BuildGauge()
                      .Name("pkmserve_device_memory_bytes")
                      .Help("Memory the engine holds on its device, by kind: weights, pkm_values "
                            "(the memory layers' value tables), kv_cache, workspace.")
                      .Register(*registry_);
  const std::pair<const char*, size_t DeviceMemoryUse::*> kinds[] = {
      {"weights", &DeviceMemoryUse::weights},
      {"pkm_values", &DeviceMemoryUse::pkm_values},
      {"kv_cache", &DeviceMemoryUse::kv_cache},
      {"workspace", &DeviceMemoryUse::workspace}};
  for (const auto& [kind, field] : kinds) {
    prometheus::Labels with_kind = device;
    with_kind["kind"] = kind;
    device_by_kind_.push_back({field, &by_kind.Add(with_kind)});
  }
  device_total_ = &prometheus::BuildGauge()
                       .Name("pkmserve_device_memory_total_bytes")
                       .Help("Memory capacity of the engine's device (host RAM for cpu).")
                       .Register(*registry_)
                       .Add(device);
  gauge("pkmserve_model_weights_bytes", "Bytes of model weights held by the engine.")
      ->Set(setup.weight_bytes);
  gauge("pkmserve_kv_cache_bytes", "Bytes of the KV cache.")->Set(setup.kv_cache_bytes);
  prompt_tokens_ = counter("pkmserve_prompt_tokens_total", "Prompt tokens prefilled.");
  generation_tokens_ = counter("pkmserve_generation_tokens_total", "Tokens generated.");
  scored_tokens_ = counter("pkmserve_scored_tokens_total",
                           "Tokens scored by Score calls, each once (context-only tokens and "
                           "recomputation excluded).");
  preemptions_ = counter("pkmserve_preemptions_total",
                         "Sequences preempted for KV space and recomputed later.");
}

void ServerMetrics::SetBuildInfo(const std::string& version, const std::string& commit,
                                 const std::string& build_type) {
  prometheus::BuildGauge()
      .Name("pkmserve_build_info")
      .Help("Always 1; the labels say which build serves (version, git commit, build type).")
      .Register(*registry_)
      .Add({{"model", model_}, {"version", version}, {"commit", commit},
            {"build_type", build_type}})
      .Set(1);
}

void ServerMetrics::ObserveFirstToken(double seconds) { ttft_->Observe(seconds); }

void ServerMetrics::ObserveInterToken(double seconds, int tokens) {
  for (int i = 0; i < tokens; ++i) itl_->Observe(seconds / tokens);
}

void ServerMetrics::ObserveSuccess(double e2e_seconds, const std::string& finish_reason,
                                   const std::string& api) {
  e2e_->Observe(e2e_seconds);
  success_->Add({{"model", model_}, {"api", api}, {"finish_reason", finish_reason}}).Increment();
}

void ServerMetrics::ObserveFailure(double e2e_seconds, const std::string& code,
                                   const std::string& api) {
  e2e_->Observe(e2e_seconds);
  failure_->Add({{"model", model_}, {"api", api}, {"code", code}}).Increment();
}

void ServerMetrics::OnAdmitted(double queue_seconds) { queue_time_->Observe(queue_seconds); }

void ServerMetrics::OnStep(const StepReport& step) {
  (step.decode_only ? forward_decode_ : forward_prefill_)->Observe(step.forward_seconds);
  batch_size_->Observe(step.sequences);
  batch_tokens_->Observe(step.tokens);
  for (size_t i = 0; i < pkm_.size() && i < step.pkm_lookup_seconds.size(); ++i) {
    pkm_[i].lookup_seconds->Observe(step.pkm_lookup_seconds[i]);
  }
}

void ServerMetrics::OnPkmUsage(std::span<const PkmLayerUsage> usage) {
  for (size_t i = 0; i < pkm_.size() && i < usage.size(); ++i) {
    pkm_[i].coverage->Set(usage[i].coverage);
    pkm_[i].kl->Set(usage[i].kl_to_uniform);
    pkm_[i].window_tokens->Set(usage[i].window_tokens);
  }
}

std::vector<prometheus::MetricFamily> ServerMetrics::Collect() const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const SchedulerStats s = stats_();
    running_->Set(s.running);
    waiting_->Set(s.waiting);
    kv_usage_->Set(s.kv_usage);
    rss_->Set(ResidentBytes());
    device_used_->Set(static_cast<double>(s.device_memory.total()));
    for (const auto& [field, gauge] : device_by_kind_) {
      gauge->Set(static_cast<double>(s.device_memory.*field));
    }
    device_total_->Set(static_cast<double>(s.device_memory_total));
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
