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
//   build/bin/server_bench [--model DIR] [--threads N] [--requests N] [--new-tokens N]
//                          [--repeats N] [--concurrency N] [--only-batching 1] [--out FILE]
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "model_loader/model_loader.h"
#include "model_loader/tokenizer_sentencepiece.h"
#include "pkmserve/v1/inference.grpc.pb.h"
#include "server/grpc_server.h"
#include "server/inference_service.h"
#include "server/scheduler.h"

namespace {

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

void Die(const std::string& what, const pkm::Status& s) {
  std::fprintf(stderr, "server_bench: %s: %s\n", what.c_str(), s.ToString().c_str());
  std::exit(1);
}

// n jobs with prompt lengths uniform in [min_prompt, max_prompt] and output lengths uniform in
// [min_new, max_new], or, with mean_new > 0, exponential with that mean clamped to the range
// (output lengths of chat traffic are long-tailed: most replies short, a few long).
std::vector<Job> MakeJobs(int n, int min_prompt, int max_prompt, int min_new, int max_new,
                          int vocab, uint32_t seed, double mean_new = 0) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> plen(min_prompt, max_prompt), nnew(min_new, max_new);
  std::exponential_distribution<double> exp_new(mean_new > 0 ? 1.0 / mean_new : 1.0);
  std::uniform_int_distribution<int32_t> tok(3, vocab - 1);
  std::vector<Job> jobs(static_cast<size_t>(n));
  for (Job& j : jobs) {
    j.prompt.resize(static_cast<size_t>(plen(rng)));
    j.prompt[0] = 1;
    for (size_t i = 1; i < j.prompt.size(); ++i) j.prompt[i] = tok(rng);
    j.new_tokens = mean_new > 0 ? std::clamp(static_cast<int>(exp_new(rng)), min_new, max_new)
                                : nnew(rng);
  }
  return jobs;
}

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

int RunInProcess(pkm::Scheduler& s, const Job& job) {
  pkm::GenerateWork w;
  w.prompt = job.prompt;
  w.options.max_new_tokens = job.new_tokens;
  w.options.sampling.temperature = 0;
  w.options.ignore_eos = true;
  auto tokens = std::make_shared<std::atomic<int>>(0);
  auto done = std::make_shared<std::promise<void>>();
  w.on_token = [tokens](const pkm::GeneratedStep&) { ++*tokens; };
  w.on_done = [done](const pkm::Status& st, const pkm::GenerateSummary&) {
    if (!st.ok()) Die("in-process request", st);
    done->set_value();
  };
  auto id = s.SubmitGenerate(std::move(w));
  if (!id.ok()) Die("submit", id.status());
  done->get_future().wait();
  return *tokens;
}

int RunGrpc(pkmserve::v1::Inference::Stub& stub, const Job& job) {
  pkmserve::v1::GenerateRequest req;
  for (int32_t t : job.prompt) req.mutable_tokens()->add_ids(t);
  req.set_max_new_tokens(static_cast<uint32_t>(job.new_tokens));
  req.set_temperature(0);
  req.set_ignore_eos(true);
  grpc::ClientContext ctx;
  auto reader = stub.Generate(&ctx, req);
  pkmserve::v1::GenerateResponse resp;
  int tokens = 0;
  while (reader->Read(&resp)) tokens += resp.tokens_size();
  grpc::Status st = reader->Finish();
  if (!st.ok()) {
    std::fprintf(stderr, "server_bench: grpc Generate: %s\n", st.error_message().c_str());
    std::exit(1);
  }
  return tokens;
}

nlohmann::json ToJson(const Result& r) {
  return {{"seconds", r.seconds}, {"requests", r.requests}, {"tokens", r.tokens},
          {"requests_per_s", r.requests_per_s()}, {"tokens_per_s", r.tokens_per_s()}};
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir = "models/pkm-small", out;
  int threads = 2, requests = 128, new_tokens = 32, repeats = 3;
  std::vector<int> overhead_concurrency = {1, 8, 32, 64};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--model") model_dir = v;
    else if (a == "--threads") threads = std::atoi(v.c_str());
    else if (a == "--requests") requests = std::atoi(v.c_str());
    else if (a == "--new-tokens") new_tokens = std::atoi(v.c_str());
    else if (a == "--repeats") repeats = std::max(1, std::atoi(v.c_str()));
    else if (a == "--out") out = v;
    else if (a == "--only-batching") overhead_concurrency.clear();
    else if (a == "--concurrency") overhead_concurrency = {std::atoi(v.c_str())};
    else {
      std::fprintf(stderr, "server_bench: unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  auto model = pkm::LoadModel(model_dir);
  if (!model.ok()) Die("loading " + model_dir, model.status());
  auto tokenizer = pkm::LoadSentencePieceTokenizer(model->tokenizer_path());
  if (!tokenizer.ok()) Die("tokenizer", tokenizer.status());
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
        pkm::Scheduler s(engine->get(), tokenizer->get(), sched);
        r = RunClosedLoop(jobs, concurrency, [&](const Job& j) { return RunInProcess(s, j); });
      }
      if (inproc.requests == 0 || r.tokens_per_s() > inproc.tokens_per_s()) inproc = r;
      pkm::Scheduler s(engine->get(), tokenizer->get(), sched);
      pkm::InferenceService service(&s, tokenizer->get(), model->config(), {});
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
      pkm::Scheduler s(engine->get(), tokenizer->get(), o);
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
