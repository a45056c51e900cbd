// Closed-loop load for the server benchmarks: synthetic jobs, N clients each sending its next
// request when the last one finished, in-process (Scheduler) or over gRPC.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "model_loader/model_loader.h"
#include "model_loader/tokenizer.h"
#include "pkmserve/v1/inference.grpc.pb.h"
#include "server/scheduler.h"

namespace pkm::bench {

using Clock = std::chrono::steady_clock;

struct Job {
  std::vector<int32_t> prompt;
  int new_tokens = 0;
};

struct Result {
  double seconds = 0;
  int requests = 0;
  long tokens = 0;  // generated
  double requests_per_s() const { return requests / seconds; }
  double tokens_per_s() const { return static_cast<double>(tokens) / seconds; }
};

// Prints "<program>: what: status" and exits 1.
[[noreturn]] void Die(const std::string& what, const Status& s);

struct BenchModel {
  LoadedModel model;
  std::unique_ptr<Tokenizer> tokenizer;
};
// The model in `dir` and its tokenizer, or Die.
BenchModel LoadOrDie(const std::string& dir);

// n jobs with prompt lengths uniform in [min_prompt, max_prompt] and output lengths uniform in
// [min_new, max_new], or, with mean_new > 0, exponential with that mean clamped to the range
// (output lengths of chat traffic are long-tailed: most replies short, a few long).
std::vector<Job> MakeJobs(int n, int min_prompt, int max_prompt, int min_new, int max_new,
                          int vocab, uint32_t seed, double mean_new = 0);

// Runs `jobs` with `concurrency` closed-loop clients; `run(job)` returns the tokens generated.
template <typename RunOne>
Result RunClosedLoop(const std::vector<Job>& jobs, int concurrency, RunOne run) {
  std::atomic<size_t> next{0};
  std::atomic<long> tokens{0};
  const auto start = Clock::now();
  std::vector<std::thread> clients;
  for (int c = 0; c < concurrency; ++c) {
    clients.emplace_back([&] {
      for (size_t i = next++; i < jobs.size(); i = next++) tokens += run(jobs[i]);
    });
  }
  for (auto& t : clients) t.join();
  Result r;
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.requests = static_cast<int>(jobs.size());
  r.tokens = tokens;
  return r;
}

// One greedy request (EOS ignored) through the scheduler / over gRPC; returns its tokens.
int RunInProcess(Scheduler& s, const Job& job);
int RunGrpc(pkmserve::v1::Inference::Stub& stub, const Job& job);

nlohmann::json ToJson(const Result& r);

}  // namespace pkm::bench
