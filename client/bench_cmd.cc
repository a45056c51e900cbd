// pkm bench: a load generator for pkmserve, reporting like `vllm bench serve`.
//
// Closed loop (--concurrency N clients, each sending its next request when the last ends) or
// open loop (--rate R requests/s with Poisson arrivals). Bounded by --num-requests and
// --duration. Per request: TTFT (first token), ITL (gaps between streamed messages, spread
// over the tokens they carry), TPOT ((E2E - TTFT) / (tokens - 1)) and E2E latency.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "client/bench_stats.h"
#include "client/commands.h"
#include "client/connection.h"
#include "client/text_input.h"
#include "pkmserve/v1/inference.grpc.pb.h"

namespace pkm::cli {
namespace {

namespace v1 = pkmserve::v1;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct Job {
  v1::GenerateRequest request;
  int prompt_tokens = 0;
};

struct Outcome {
  bool ok = false;
  std::string code;     // "INVALID_ARGUMENT", ...
  std::string message;  // the server's message
  double ttft = 0, e2e = 0, tpot = 0;
  std::vector<double> itl;
  int prompt_tokens = 0;
  int tokens = 0;
};

// "MIN:MAX" or "N" -> [min, max].
StatusOr<std::pair<int, int>> ParseRange(const std::string& text, const char* flag, int hi) {
  const size_t colon = text.find(':');
  try {
    const int lo_v = std::stoi(text.substr(0, colon));
    const int hi_v = colon == std::string::npos ? lo_v : std::stoi(text.substr(colon + 1));
    if (lo_v >= 1 && lo_v <= hi_v && hi_v <= hi) return std::pair{lo_v, hi_v};
  } catch (...) {
  }
  return Status(StatusCode::kInvalidArgument, std::string(flag) + " must be N or MIN:MAX with 1 <= MIN <= MAX <= " +
                                                  std::to_string(hi) + ", got '" + text + "'");
}

Outcome RunOne(const Connection& conn, v1::Inference::Stub& stub, const Job& job) {
  Outcome o;
  o.prompt_tokens = job.prompt_tokens;
  grpc::ClientContext ctx;
  conn.Prepare(&ctx);
  const auto start = Clock::now();
  auto prev = start;
  auto reader = stub.Generate(&ctx, job.request);
  v1::GenerateResponse msg;
  while (reader->Read(&msg)) {
    if (msg.tokens_size() == 0) continue;
    const auto now = Clock::now();
    if (o.tokens == 0) {
      o.ttft = Seconds(start, now);
      // Tokens coalesced with the first arrived with it: gaps of 0, so every token after a
      // stream's first is one gap, as the server counts them.
      for (int i = 1; i < msg.tokens_size(); ++i) o.itl.push_back(0.0);
    } else {
      const double gap = Seconds(prev, now) / msg.tokens_size();
      for (int i = 0; i < msg.tokens_size(); ++i) o.itl.push_back(gap);
    }
    prev = now;
    o.tokens += msg.tokens_size();
  }
  const grpc::Status st = reader->Finish();
  o.e2e = Seconds(start, Clock::now());
  o.ok = st.ok();
  if (!st.ok()) {
    o.code = CodeName(st.error_code());
    // In the terms of bench's own flags, which set these request fields.
    o.message = InFlagTerms(st.error_message(),
                            {{"max_new_tokens", "--output-len"}, {"temperature", "--temperature"}});
  }
  if (o.tokens > 1) o.tpot = (o.e2e - o.ttft) / (o.tokens - 1);
  return o;
}

nlohmann::json ToJson(const LatencySummary& s) {
  return {{"count", s.count}, {"mean_ms", 1e3 * s.mean}, {"p50_ms", 1e3 * s.p50},
          {"p90_ms", 1e3 * s.p90}, {"p99_ms", 1e3 * s.p99}, {"max_ms", 1e3 * s.max}};
}

void PrintLatency(const char* title, const char* name, const LatencySummary& s) {
  std::printf("%-50s\n", (std::string("---- ") + title + " ").c_str());
  std::printf("%-40s %10.2f\n", (std::string("Mean ") + name + " (ms):").c_str(), 1e3 * s.mean);
  std::printf("%-40s %10.2f\n", (std::string("Median ") + name + " (ms):").c_str(), 1e3 * s.p50);
  std::printf("%-40s %10.2f\n", (std::string("P90 ") + name + " (ms):").c_str(), 1e3 * s.p90);
  std::printf("%-40s %10.2f\n", (std::string("P99 ") + name + " (ms):").c_str(), 1e3 * s.p99);
}

}  // namespace

int BenchCommand(const std::vector<std::string>& argv) {
  int code = 0;
  auto args = ParseOrHelp(
      argv, "pkm bench [flags]",
      "Load generator: throughput, TTFT, TPOT, ITL and E2E latency of pkmserve; failures by "
      "status code\nwith the first message of each.",
      {
          {"concurrency", "N", "closed loop: N clients, each waiting for its last request", "8"},
          {"rate", "R", "open loop instead: R requests/s, Poisson arrivals", ""},
          {"num-requests", "N", "requests to send", "64"},
          {"duration", "SECONDS", "stop sending new requests after this long (0: no limit)", "0"},
          {"prompt-len", "MIN:MAX", "prompt length in tokens, uniform (random token ids)", "8:64"},
          {"prompt-file", "FILE", "prompts as text, one per line, used in turn", ""},
          {"output-len", "MIN:MAX", "tokens to generate, uniform; EOS is ignored", "16:64"},
          {"temperature", "T", "sampling temperature", "1"},
          {"seed", "S", "seed of the workload and of each request's sampler", "0"},
          {"json", "", "print the full record as JSON", ""},
      },
      &code);
  if (!args) return code;
  auto concurrency = args->GetInt("concurrency", 1, 4096);
  auto num_requests = args->GetInt("num-requests", 1, 10000000);
  auto duration = args->GetDouble("duration", 0, 86400 * 7);
  auto temperature = args->GetDouble("temperature", 0, 100);
  auto seed = args->GetInt("seed", 0, std::numeric_limits<int>::max());
  auto prompt_len = ParseRange(args->Get("prompt-len"), "--prompt-len", 1 << 20);
  auto output_len = ParseRange(args->Get("output-len"), "--output-len", 1 << 20);
  for (const Status& s : {concurrency.status(), num_requests.status(), duration.status(),
                          temperature.status(), seed.status(), prompt_len.status(),
                          output_len.status()}) {
    if (!s.ok()) return ReportUsageError(s);
  }
  double rate = 0;
  if (args->Has("rate")) {
    auto r = args->GetDouble("rate", 1e-3, 1e6);
    if (!r.ok()) return ReportUsageError(r.status());
    rate = *r;
  }
  auto conn = Connection::FromArgs(*args);
  if (!conn.ok()) return ReportUsageError(conn.status());
  auto stub = v1::Inference::NewStub(conn->channel());
  v1::ModelInfo info;
  if (grpc::Status st = FetchModelInfo(*conn, &info); !st.ok()) return ReportRpcError(st);

  std::vector<std::string> prompts;
  if (args->Has("prompt-file")) {
    auto text = ReadTextFile(args->Get("prompt-file"));
    if (!text.ok()) {
      return ReportUsageError(Status(StatusCode::kInvalidArgument,
                                     "--prompt-file: " + text.status().message()));
    }
    std::istringstream in(*text);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) prompts.push_back(line);
    }
    if (prompts.empty()) {
      return ReportUsageError(Status(StatusCode::kInvalidArgument, "--prompt-file has no lines"));
    }
  }
  std::mt19937_64 rng(static_cast<uint64_t>(*seed));
  std::uniform_int_distribution<int> plen(prompt_len->first, prompt_len->second);
  std::uniform_int_distribution<int> olen(output_len->first, output_len->second);
  std::uniform_int_distribution<int32_t> token(3, info.vocab_size() - 1);
  std::vector<Job> jobs(static_cast<size_t>(*num_requests));
  for (size_t i = 0; i < jobs.size(); ++i) {
    v1::GenerateRequest& r = jobs[i].request;
    if (!prompts.empty()) {
      r.set_text(prompts[i % prompts.size()]);
    } else {
      const int n = plen(rng);
      r.mutable_tokens()->add_ids(info.bos_id());
      for (int t = 1; t < n; ++t) r.mutable_tokens()->add_ids(token(rng));
      jobs[i].prompt_tokens = n;
    }
    r.set_max_new_tokens(static_cast<uint32_t>(olen(rng)));
    r.set_temperature(static_cast<float>(*temperature));
    r.set_seed(static_cast<uint64_t>(*seed) + i);
    r.set_ignore_eos(true);
  }

  std::vector<Outcome> outcomes(jobs.size());
  std::atomic<size_t> next{0};
  std::atomic<size_t> sent{0};
  const auto start = Clock::now();
  auto expired = [&] { return *duration > 0 && Seconds(start, Clock::now()) >= *duration; };
  std::vector<std::thread> threads;
  if (rate == 0) {
    for (long c = 0; c < *concurrency; ++c) {
      threads.emplace_back([&] {
        for (size_t i = next++; i < jobs.size() && !expired(); i = next++) {
          outcomes[i] = RunOne(*conn, *stub, jobs[i]);
          ++sent;
        }
      });
    }
  } else {
    std::exponential_distribution<double> gap(rate);
    auto when = start;
    for (size_t i = 0; i < jobs.size(); ++i) {
      when += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(gap(rng)));
      std::this_thread::sleep_until(when);
      if (expired()) break;
      threads.emplace_back([&, i] { outcomes[i] = RunOne(*conn, *stub, jobs[i]); });
      ++sent;
    }
  }
  for (auto& t : threads) t.join();
  const double elapsed = Seconds(start, Clock::now());

  std::vector<double> ttft, tpot, itl, e2e;
  std::map<std::string, int> errors;
  std::map<std::string, std::string> first_errors;  // the first message of each code
  long ok = 0, input_tokens = 0, output_tokens = 0;
  for (size_t i = 0; i < sent && i < outcomes.size(); ++i) {
    const Outcome& o = outcomes[i];
    if (!o.ok) {
      const std::string code_name = o.code.empty() ? "NOT_SENT" : o.code;
      if (errors[code_name]++ == 0) first_errors[code_name] = o.message;
      continue;
    }
    ++ok;
    input_tokens += o.prompt_tokens;
    output_tokens += o.tokens;
    ttft.push_back(o.ttft);
    e2e.push_back(o.e2e);
    if (o.tokens > 1) tpot.push_back(o.tpot);
    itl.insert(itl.end(), o.itl.begin(), o.itl.end());
  }
  const LatencySummary s_ttft = SummarizeLatencies(ttft), s_tpot = SummarizeLatencies(tpot),
                       s_itl = SummarizeLatencies(itl), s_e2e = SummarizeLatencies(e2e);
  const long failed = static_cast<long>(sent) - ok;
  if (args->Has("json")) {
    nlohmann::json j = {
        {"server", conn->address()}, {"mode", rate > 0 ? "open" : "closed"},
        {"concurrency", rate > 0 ? 0 : *concurrency}, {"rate", rate},
        {"requests_sent", sent.load()}, {"successful_requests", ok}, {"failed_requests", failed},
        {"errors_by_code", errors}, {"first_error_by_code", first_errors},
        {"duration_s", elapsed},
        {"total_input_tokens", input_tokens}, {"total_output_tokens", output_tokens},
        {"request_throughput", static_cast<double>(ok) / elapsed},
        {"output_token_throughput", static_cast<double>(output_tokens) / elapsed},
        {"ttft", ToJson(s_ttft)}, {"tpot", ToJson(s_tpot)}, {"itl", ToJson(s_itl)},
        {"e2e", ToJson(s_e2e)}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("============ pkm bench (%s loop) ============\n", rate > 0 ? "open" : "closed");
    std::printf("%-40s %10ld\n%-40s %10ld\n", "Successful requests:", ok, "Failed requests:",
                failed);
    for (const auto& [code_name, n] : errors) {
      std::printf("  %-38s %10d\n", (code_name + ":").c_str(), n);
      if (!first_errors[code_name].empty()) {
        std::printf("    first: %s\n", first_errors[code_name].c_str());
      }
    }
    std::printf("%-40s %10.2f\n%-40s %10ld\n%-40s %10ld\n", "Benchmark duration (s):", elapsed,
                "Total input tokens:", input_tokens, "Total generated tokens:", output_tokens);
    std::printf("%-40s %10.2f\n%-40s %10.2f\n", "Request throughput (req/s):", static_cast<double>(ok) / elapsed,
                "Output token throughput (tok/s):", static_cast<double>(output_tokens) / elapsed);
    PrintLatency("Time to First Token", "TTFT", s_ttft);
    PrintLatency("Time per Output Token (excl. 1st token)", "TPOT", s_tpot);
    PrintLatency("Inter-token Latency", "ITL", s_itl);
    PrintLatency("End-to-end Latency", "E2E", s_e2e);
  }
  return failed > 0 ? kExitServer : kExitOk;
}

}  // namespace pkm::cli
