// Throughput of the OpenAI-compatible HTTP API against the gRPC API on the same work and the
// same scheduler: `concurrency` closed-loop clients each send requests one after another
// (--requests in all, prompts of 8-40 token ids, --new-tokens greedy tokens each, EOS ignored).
// gRPC clients read Generate's stream; HTTP clients post /v1/completions (whole, on one
// keep-alive connection each, or with --stream as server-sent events, a connection each). Ratio = HTTP tokens/s ÷
// gRPC tokens/s; each figure the best of --repeats runs, the two APIs alternating.
//
//   build/bin/http_bench --help   (lists the flags and their defaults)
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/flags.h"
#include "bench/load.h"
#include "engine/engine.h"
#include "kernels/cpu/backend/cpu_backend.h"
#include "server/grpc_server.h"
#include "server/http/http_api.h"
#include "server/inference_service.h"
#include "server/log.h"

namespace {

using pkm::bench::Job;

std::atomic<int> g_http_errors{0};

// One completion over HTTP; returns the tokens generated (usage.completion_tokens), or 0 for a
// request that failed (counted in g_http_errors and reported: exiting from a client thread
// would tear the process down under the others).
int RunHttp(httplib::Client& client, const Job& job, bool stream) {
  nlohmann::json body = {{"prompt", job.prompt}, {"max_tokens", job.new_tokens},
                         {"temperature", 0}, {"ignore_eos", true}, {"stream", stream}};
  httplib::Result res = client.Post("/v1/completions", body.dump(), "application/json");
  if (!res || res->status != 200) {
    std::fprintf(stderr, "http_bench: /v1/completions: %s\n",
                 res ? res->body.c_str() : httplib::to_string(res.error()).c_str());
    ++g_http_errors;
    return 0;
  }
  if (!stream) return nlohmann::json::parse(res->body)["usage"]["completion_tokens"].get<int>();
  // The last event before [DONE] carries the usage.
  const size_t done = res->body.rfind("data: [DONE]");
  const size_t last = res->body.rfind("data: ", done - 1);
  return nlohmann::json::parse(res->body.substr(last + 6, done - last - 6))["usage"]
      ["completion_tokens"].get<int>();
}

}  // namespace

int main(int argc, char** argv) {
  const pkm::cli::Args args = pkm::bench::ParseFlagsOrExit(
      argc, argv, "The HTTP API against the gRPC API on the same work and scheduler.",
      {{"model", "DIR", "model directory", "models/pkm-small"},
       {"threads", "N", "CPU threads", "2"},
       {"requests", "N", "requests per run (at least 2 per client)", "128"},
       {"new-tokens", "N", "greedy tokens per request", "32"},
       {"repeats", "N", "runs of each API, best taken", "3"},
       {"stream", "", "HTTP clients ask for server-sent events", ""},
       {"out", "FILE", "also write the results as JSON", ""}});
  const std::string model_dir = args.Get("model"), out = args.Get("out");
  const int threads = pkm::bench::IntFlagOrExit(args, "threads", 1, 1024);
  const int requests = pkm::bench::IntFlagOrExit(args, "requests", 1, 1 << 20);
  const int new_tokens = pkm::bench::IntFlagOrExit(args, "new-tokens", 1, 1 << 16);
  const int repeats = pkm::bench::IntFlagOrExit(args, "repeats", 1, 1000);
  const bool stream = args.Has("stream");
  pkm::ConfigureLog({.format = "text", .level = pkm::LogLevel::kWarning});  // no line per request
  const auto [loaded, tokenizer] = pkm::bench::LoadOrDie(model_dir);
  auto engine = pkm::Engine::Create(loaded, pkm::MakeCpuBackend(threads), {});
  if (!engine.ok()) pkm::bench::Die("engine", engine.status());
  pkm::Scheduler scheduler(engine->get(), tokenizer.get(),
                           {.max_batch_tokens = 512, .max_queue = 256, .max_running = 64});
  pkm::InferenceService service(&scheduler, tokenizer.get(), loaded.config(), {});
  auto grpc_api = pkm::GrpcServer::Start({.listen = "127.0.0.1:0", .tls = {}}, &service);
  if (!grpc_api.ok()) pkm::bench::Die("grpc server", grpc_api.status());
  pkmserve::v1::ModelInfo info;
  info.set_name("bench");
  auto http = pkm::http::HttpApi::Start({.listen = "127.0.0.1:0"});
  if (!http.ok()) pkm::bench::Die("http server", http.status());
  (*http)->Attach({.scheduler = &scheduler, .tokenizer = tokenizer.get(),
                   .config = loaded.config(), .model_info = info});
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string((*grpc_api)->port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = pkmserve::v1::Inference::NewStub(channel);

  nlohmann::json report = {{"model", model_dir}, {"threads", threads}, {"repeats", repeats},
                           {"new_tokens", new_tokens}, {"http_stream", stream},
                           {"machine_cores", std::thread::hardware_concurrency()}};
  std::printf("| concurrency | gRPC req/s | gRPC tok/s | HTTP req/s | HTTP tok/s | HTTP ÷ gRPC |\n"
              "| --- | --- | --- | --- | --- | --- |\n");
  const int vocab = loaded.config().vocab_size;
  for (int concurrency : {1, 64}) {
    const std::vector<Job> jobs = pkm::bench::MakeJobs(std::max(requests, concurrency * 2), 8, 40,
                                                       new_tokens, new_tokens, vocab, 7);
    pkm::bench::Result best_grpc, best_http;
    for (int rep = 0; rep < repeats; ++rep) {
      pkm::bench::Result r = pkm::bench::RunClosedLoop(
          jobs, concurrency, [&](const Job& j) { return pkm::bench::RunGrpc(*stub, j); });
      if (best_grpc.requests == 0 || r.tokens_per_s() > best_grpc.tokens_per_s()) best_grpc = r;
      // One keep-alive connection per client thread, as an SDK's connection pool keeps.
      r = pkm::bench::RunClosedLoop(jobs, concurrency, [&](const Job& j) {
        thread_local std::unique_ptr<httplib::Client> client;
        if (!client) {
          client = std::make_unique<httplib::Client>("127.0.0.1", (*http)->port());
          // Streams take a connection each: httplib 0.11's client fails to read a response on
          // a connection that carried a chunked one (curl reuses it: the server keeps it).
          client->set_keep_alive(!stream);
          client->set_tcp_nodelay(true);
          client->set_read_timeout(300, 0);
        }
        return RunHttp(*client, j, stream);
      });
      if (best_http.requests == 0 || r.tokens_per_s() > best_http.tokens_per_s()) best_http = r;
    }
    const double ratio = best_http.tokens_per_s() / best_grpc.tokens_per_s();
    std::printf("| %d | %.1f | %.0f | %.1f | %.0f | %.3f |\n", concurrency,
                best_grpc.requests_per_s(), best_grpc.tokens_per_s(), best_http.requests_per_s(),
                best_http.tokens_per_s(), ratio);
    std::fflush(stdout);
    report["runs"].push_back({{"concurrency", concurrency}, {"grpc", ToJson(best_grpc)},
                              {"http", ToJson(best_http)}, {"http_over_grpc", ratio}});
  }
  report["http_errors"] = g_http_errors.load();
  if (g_http_errors > 0) std::printf("HTTP requests that failed: %d\n", g_http_errors.load());
  (*http)->Shutdown();
  (*grpc_api)->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  if (!out.empty()) {
    std::ofstream(out) << report.dump(2) << "\n";
    std::printf("wrote %s\n", out.c_str());
  }
  return 0;
}
