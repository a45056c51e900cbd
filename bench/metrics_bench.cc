// Cost of the metrics: decode throughput of the gRPC server with every metric on, against the
// same server with none, on the same work, measured in one run.
//
//   on    ServerMetrics on the service (request latencies) and as the scheduler's observer
//         (queue time, step time and size, lookup time, memory usage), the engine keeping
//         each memory layer's usage window (--window tokens) and timing its lookups, and a
//         scraper that collects and serializes /metrics every --scrape-ms, as Prometheus would
//   off   what `pkmserve --metrics-listen=off` runs: none of it
//
// Work: --concurrency closed-loop clients, --requests greedy requests of 8-40 prompt tokens
// and --new-tokens new tokens each (decode-dominated). Each side's figure is the best of
// --repeats runs, the sides alternating and their order swapped every repeat.
// Cost = 1 - on tokens/s / off tokens/s.
//
//   build/bin/metrics_bench [--model DIR] [--threads N] [--requests N] [--new-tokens N]
//                           [--concurrency N] [--repeats N] [--window N] [--scrape-ms N]
//                           [--out FILE]
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/load.h"
#include "engine/engine.h"
#include "model_loader/model_loader.h"
#include "model_loader/tokenizer_sentencepiece.h"
#include "server/grpc_server.h"
#include "server/inference_service.h"
#include "server/metrics.h"
#include "server/scheduler.h"

namespace pkm::bench {
namespace {

struct Setup {
  const LoadedModel* model;
  const Tokenizer* tokenizer;
  int threads;
  int window;
  int scrape_ms;
  SchedulerOptions scheduler;
};

// One run of `jobs` against a fresh server, with or without metrics.
Result RunServer(const Setup& setup, const std::vector<Job>& jobs, int concurrency,
                 bool metrics_on) {
  auto engine = Engine::Create(*setup.model, MakeCpuBackend(setup.threads),
                               {.pkm_usage_window = metrics_on ? setup.window : 0,
                                .time_pkm_lookups = metrics_on});
  if (!engine.ok()) Die("engine", engine.status());
  std::unique_ptr<Scheduler> scheduler;
  std::unique_ptr<ServerMetrics> metrics;
  SchedulerOptions options = setup.scheduler;
  if (metrics_on) {
    metrics = std::make_unique<ServerMetrics>(MetricsSetup{
        .model = "bench",
        .stats = [&scheduler] { return scheduler->Stats(); },
        .weight_bytes = static_cast<double>((*engine)->weight_bytes()),
        .kv_cache_bytes = static_cast<double>((*engine)->kv_cache_bytes()),
        .queue_capacity = options.max_queue,
        .device = "cpu",
        .pkm_layers = setup.model->config().pkm_layers});
    options.observer = metrics.get();
  }
  scheduler = std::make_unique<Scheduler>(engine->get(), setup.tokenizer, options);
  ServiceConfig config;
  config.metrics = metrics.get();
  InferenceService service(scheduler.get(), setup.tokenizer, setup.model->config(),
                           std::move(config));
  auto server = GrpcServer::Start({.listen = "127.0.0.1:0", .tls = {}}, &service);
  if (!server.ok()) Die("grpc server", server.status());
  std::atomic<bool> done{false};
  std::thread scraper;
  if (metrics_on) {
    scraper = std::thread([&] {
      size_t bytes = 0;
      while (!done) {
        bytes += prometheus::TextSerializer().Serialize(metrics->Collect()).size();
        std::this_thread::sleep_for(std::chrono::milliseconds(setup.scrape_ms));
      }
      if (bytes == 0) std::fprintf(stderr, "metrics_bench: empty scrape\n");
    });
  }
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string((*server)->port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = pkmserve::v1::Inference::NewStub(channel);
  const Result r = RunClosedLoop(jobs, concurrency, [&](const Job& j) { return RunGrpc(*stub, j); });
  done = true;
  if (scraper.joinable()) scraper.join();
  (*server)->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return r;
}

}  // namespace
}  // namespace pkm::bench

int main(int argc, char** argv) {
  using namespace pkm::bench;  // NOLINT: this file is the benchmark
  std::string model_dir = "models/pkm-small", out;
  int threads = 2, requests = 128, new_tokens = 64, concurrency = 16, repeats = 5;
  int window = 8192, scrape_ms = 1000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--model") model_dir = v;
    else if (a == "--threads") threads = std::atoi(v.c_str());
    else if (a == "--requests") requests = std::atoi(v.c_str());
    else if (a == "--new-tokens") new_tokens = std::atoi(v.c_str());
    else if (a == "--concurrency") concurrency = std::atoi(v.c_str());
    else if (a == "--repeats") repeats = std::max(1, std::atoi(v.c_str()));
    else if (a == "--window") window = std::atoi(v.c_str());
    else if (a == "--scrape-ms") scrape_ms = std::max(1, std::atoi(v.c_str()));
    else if (a == "--out") out = v;
    else {
      std::fprintf(stderr, "metrics_bench: unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  auto model = pkm::LoadModel(model_dir);
  if (!model.ok()) Die("loading " + model_dir, model.status());
  auto tokenizer = pkm::LoadSentencePieceTokenizer(model->tokenizer_path());
  if (!tokenizer.ok()) Die("tokenizer", tokenizer.status());
  const Setup setup{.model = &*model,
                    .tokenizer = tokenizer->get(),
                    .threads = threads,
                    .window = window,
                    .scrape_ms = scrape_ms,
                    .scheduler = {.max_batch_tokens = 512, .max_queue = 256, .max_running = 64}};
  const std::vector<Job> jobs =
      MakeJobs(requests, 8, 40, new_tokens, new_tokens, model->config().vocab_size, 5);

  Result best[2];  // [0] off, [1] on
  std::vector<double> costs;
  for (int rep = 0; rep < repeats; ++rep) {
    Result run[2];
    for (int k = 0; k < 2; ++k) {
      const int on = (rep + k) % 2;
      run[on] = RunServer(setup, jobs, concurrency, on == 1);
      if (best[on].requests == 0 || run[on].tokens_per_s() > best[on].tokens_per_s()) {
        best[on] = run[on];
      }
    }
    costs.push_back(1.0 - run[1].tokens_per_s() / run[0].tokens_per_s());
    std::fprintf(stderr, "repeat %d: off %.0f tok/s, on %.0f tok/s\n", rep,
                 run[0].tokens_per_s(), run[1].tokens_per_s());
  }
  std::sort(costs.begin(), costs.end());
  const double cost = 1.0 - best[1].tokens_per_s() / best[0].tokens_per_s();
  const double median = costs[costs.size() / 2];
  std::printf("| metrics | req/s | tok/s |\n| --- | --- | --- |\n| off | %.1f | %.0f |\n"
              "| on | %.1f | %.0f |\n\ncost (best of %d): %.2f%%; median of paired runs: %.2f%%\n",
              best[0].requests_per_s(), best[0].tokens_per_s(), best[1].requests_per_s(),
              best[1].tokens_per_s(), repeats, 100 * cost, 100 * median);
  if (!out.empty()) {
    nlohmann::json report = {
        {"model", model_dir}, {"threads", threads}, {"concurrency", concurrency},
        {"requests", requests}, {"new_tokens", new_tokens}, {"repeats", repeats},
        {"pkm_usage_window", window}, {"scrape_ms", scrape_ms},
        {"machine_cores", std::thread::hardware_concurrency()},
        {"off", ToJson(best[0])}, {"on", ToJson(best[1])}, {"cost", cost},
        {"paired_costs", costs}, {"median_paired_cost", median}};
    std::ofstream(out) << report.dump(2) << "\n";
    std::printf("wrote %s\n", out.c_str());
  }
  return 0;
}
