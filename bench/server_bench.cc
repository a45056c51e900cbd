// Throughput of the server, in two comparisons measured in one run:
//
//   overhead    the gRPC server on loopback against the same scheduler driven in-process, on
//               the same work: `concurrency` closed-loop clients each send requests one after
//               another (--requests requests in all, prompts of 8-40 tokens, --new-tokens
//               greedy tokens each). Overhead = 1 - grpc tokens/s / in-process tokens/s.
//   batching    continuous batching against static batching (a new batch forms only once the
//               last one has finished) on a mixed-length workload: output lengths long-tailed
//               (exponential, mean 40, clamped to [4, 192]), prompts of 8-64 tokens, 32
//               closed-loop clients, in-process.
//
// Each figure is the best of --repeats runs, the two sides alternating.
//
//   build/bin/server_bench --help   (lists the flags and their defaults)
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/flags.h"
#include "bench/load.h"
#include "engine/engine.h"
#include "kernels/cpu/backend/cpu_backend.h"
#include "server/grpc_server.h"
#include "server/inference_service.h"
#include "server/scheduler.h"

using pkm::bench::Die;
using pkm::bench::IntFlagOrExit;
using pkm::bench::Job;
using pkm::bench::LoadOrDie;
using pkm::bench::MakeJobs;
using pkm::bench::Result;
using pkm::bench::RunClosedLoop;
using pkm::bench::RunGrpc;
using pkm::bench::RunInProcess;
using pkm::bench::ToJson;

int main(int argc, char** argv) {
  const pkm::cli::Args args = pkm::bench::ParseFlagsOrExit(
      argc, argv,
      "gRPC server against the scheduler in-process, and continuous against static batching.",
      {{"model", "DIR", "model directory", "models/pkm-small"},
       {"threads", "N", "CPU threads", "2"},
       {"requests", "N", "requests per overhead run (at least 2 per client)", "128"},
       {"new-tokens", "N", "greedy tokens per overhead request", "32"},
       {"repeats", "N", "runs of each side, best taken", "3"},
       {"concurrency", "N", "overhead at this concurrency only (else 1, 8, 32 and 64)", ""},
       {"only-batching", "", "skip the overhead comparison", ""},
       {"out", "FILE", "also write the results as JSON", ""}});
  const std::string model_dir = args.Get("model"), out = args.Get("out");
  const int threads = IntFlagOrExit(args, "threads", 1, 1024);
  const int requests = IntFlagOrExit(args, "requests", 1, 1 << 20);
  const int new_tokens = IntFlagOrExit(args, "new-tokens", 1, 1 << 16);
  const int repeats = IntFlagOrExit(args, "repeats", 1, 1000);
  std::vector<int> overhead_concurrency = {1, 8, 32, 64};
  if (args.Has("concurrency")) overhead_concurrency = {IntFlagOrExit(args, "concurrency", 1, 4096)};
  if (args.Has("only-batching")) overhead_concurrency.clear();
  const auto [loaded, tokenizer_owned] = LoadOrDie(model_dir);
  const pkm::LoadedModel* model = &loaded;
  const pkm::Tokenizer* tokenizer = tokenizer_owned.get();
  auto engine = pkm::Engine::Create(*model, pkm::MakeCpuBackend(threads), {});
  if (!engine.ok()) Die("engine", engine.status());
  const int vocab = model->config().vocab_size;
  const pkm::SchedulerOptions sched{.max_batch_tokens = 512, .max_queue = 256, .max_running = 64};

  nlohmann::json report = {{"model", model_dir}, {"threads", threads}, {"repeats", repeats},
                           {"machine_cores", std::thread::hardware_concurrency()}};
  std::printf("| concurrency | in-process req/s | in-process tok/s | gRPC req/s | gRPC tok/s | "
              "overhead |\n| --- | --- | --- | --- | --- | --- |\n");
  for (int concurrency : overhead_concurrency) {
    const int n = std::max(requests, concurrency * 2);
    const std::vector<Job> jobs = MakeJobs(n, 8, 40, new_tokens, new_tokens, vocab, 7);
    // Best of `repeats` for each, alternating, since the VM's neighbours move single runs.
    Result inproc, over_grpc;
    for (int rep = 0; rep < repeats; ++rep) {
      Result r;
      {
        pkm::Scheduler s(engine->get(), tokenizer, sched);
        r = RunClosedLoop(jobs, concurrency, [&](const Job& j) { return RunInProcess(s, j); });
      }
      if (inproc.requests == 0 || r.tokens_per_s() > inproc.tokens_per_s()) inproc = r;
      pkm::Scheduler s(engine->get(), tokenizer, sched);
      pkm::InferenceService service(&s, tokenizer, model->config(), {});
      auto server = pkm::GrpcServer::Start({.listen = "127.0.0.1:0", .tls = {}}, &service);
      if (!server.ok()) Die("grpc server", server.status());
      auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string((*server)->port()),
                                         grpc::InsecureChannelCredentials());
      auto stub = pkmserve::v1::Inference::NewStub(channel);
      r = RunClosedLoop(jobs, concurrency, [&](const Job& j) { return RunGrpc(*stub, j); });
      if (over_grpc.requests == 0 || r.tokens_per_s() > over_grpc.tokens_per_s()) over_grpc = r;
      (*server)->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    }
    const double overhead = 1.0 - over_grpc.tokens_per_s() / inproc.tokens_per_s();
    std::printf("| %d | %.1f | %.0f | %.1f | %.0f | %.1f%% |\n", concurrency,
                inproc.requests_per_s(), inproc.tokens_per_s(), over_grpc.requests_per_s(),
                over_grpc.tokens_per_s(), 100 * overhead);
    std::fflush(stdout);
    report["overhead"].push_back({{"concurrency", concurrency}, {"in_process", ToJson(inproc)},
                                  {"grpc", ToJson(over_grpc)}, {"overhead", overhead}});
  }

  const std::vector<Job> mixed =
      MakeJobs(std::max(requests, 128), 8, 64, 4, 192, vocab, 11, /*mean_new=*/40);
  Result batching[2];
  for (int rep = 0; rep < repeats; ++rep) {
    for (int is_static = 0; is_static < 2; ++is_static) {
      pkm::SchedulerOptions o = sched;
      o.max_running = 32;
      o.static_batching = is_static == 1;
      pkm::Scheduler s(engine->get(), tokenizer, o);
      Result r = RunClosedLoop(mixed, 32, [&](const Job& j) { return RunInProcess(s, j); });
      Result& best = batching[is_static];
      if (best.requests == 0 || r.tokens_per_s() > best.tokens_per_s()) best = r;
    }
  }
  const double speedup = batching[0].tokens_per_s() / batching[1].tokens_per_s();
  std::printf("\n| batching | req/s | tok/s |\n| --- | --- | --- |\n| continuous | %.1f | %.0f |\n"
              "| static | %.1f | %.0f |\n\ncontinuous / static: %.2fx\n",
              batching[0].requests_per_s(), batching[0].tokens_per_s(),
              batching[1].requests_per_s(), batching[1].tokens_per_s(), speedup);
  report["batching"] = {{"concurrency", 32}, {"continuous", ToJson(batching[0])},
                        {"static", ToJson(batching[1])}, {"speedup", speedup}};
  if (!out.empty()) {
    std::ofstream(out) << report.dump(2) << "\n";
    std::printf("wrote %s\n", out.c_str());
  }
  return 0;
}
