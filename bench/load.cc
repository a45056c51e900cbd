#include "bench/load.h"

#include <algorithm>
#include <errno.h>  // program_invocation_short_name

#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <random>
#include <utility>

#include "model_loader/model_tokenizer.h"

namespace pkm::bench {

void Die(const std::string& what, const Status& s) {
  std::fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what.c_str(),
               s.ToString().c_str());
  std::exit(1);
}

BenchModel LoadOrDie(const std::string& dir) {
  auto model = LoadModel(dir);
  if (!model.ok()) Die("loading " + dir, model.status());
  auto tokenizer = LoadModelTokenizer(*model);
  if (!tokenizer.ok()) Die("tokenizer", tokenizer.status());
  return {std::move(*model), std::move(*tokenizer)};
}

std::vector<Job> MakeJobs(int n, int min_prompt, int max_prompt, int min_new, int max_new,
                          int vocab, uint32_t seed, double mean_new) {
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

int RunInProcess(Scheduler& s, const Job& job) {
  GenerateWork w;
  w.prompt = job.prompt;
  w.options.max_new_tokens = job.new_tokens;
  w.options.sampling.temperature = 0;
  w.options.ignore_eos = true;
  auto tokens = std::make_shared<std::atomic<int>>(0);
  auto done = std::make_shared<std::promise<void>>();
  w.on_token = [tokens](const GeneratedStep&) { ++*tokens; };
  w.on_done = [done](const Status& st, const GenerateSummary&) {
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

}  // namespace pkm::bench
