// Throughput and memory of the engine (CPU, or CUDA with --device cuda) on the workloads of
// bench/reference_bench.py:
//   decode  greedy decoding of --decode-batch streams in lockstep (1: single-stream): tokens/s
//           over --decode-tokens steps after a --prompt-tokens prefill
//   prefill one prompt of --prefill-tokens tokens, its last logits only (what time to first
//           token needs): tokens/s
//   score   --score-batch sequences of --score-len tokens scored in one step: tokens/s
// plus the load time (model file to engine ready), peak resident memory against the model
// file and the engine's weight and KV cache bytes, each memory layer's time per decode token,
// and batch-1 decode as a share of its bandwidth limit (bench/bandwidth.h).
// Token ids are drawn with a fixed seed: speed does not depend on content.
//
//   build/bin/engine_bench --help   (lists the flags and their defaults)
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/bandwidth.h"
#include "bench/flags.h"
#include "engine/backend_loader.h"
#include "engine/engine.h"
#include "model_loader/model_loader.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

int Argmax(const float* x, int n) { return static_cast<int>(std::max_element(x, x + n) - x); }

void Check(const pkm::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "engine_bench: %s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const pkm::cli::Args args = pkm::bench::ParseFlagsOrExit(
      argc, argv, "Decode and scoring throughput and peak memory of the engine.",
      {{"model", "DIR", "model directory", "models/pkm-small"},
       {"device", "NAME", "cpu, cuda or auto", "cpu"},
       {"threads", "N", "CPU threads", "2"},
       {"decode-batch", "B", "streams decoded in lockstep", "1"},
       {"prompt-tokens", "N", "prompt tokens prefilled before decoding", "16"},
       {"decode-tokens", "N", "decode steps after the prompt", "128"},
       {"prefill-tokens", "N", "tokens of the prefill-only prompt", "128"},
       {"score-batch", "N", "sequences scored in one step", "32"},
       {"score-len", "N", "tokens per scored sequence", "256"},
       {"repeats", "N", "timed runs, best taken, after one warm-up", "3"},
       {"weights-dtype", "TYPE", "weight matrices: as-stored, f32, f16, bf16 or int8", "as-stored"},
       {"pkm-values-dtype", "TYPE", "PKM value tables: as --weights-dtype", "as-stored"},
       {"memory-knn", "K", "slots read per memory head (0: as trained)", "0"},
       {"memory-heads", "H", "memory heads read (0: as trained)", "0"},
       {"out", "FILE.json", "also write the results as JSON", ""}});
  auto count = [&args](const char* name) {
    return pkm::bench::IntFlagOrExit(args, name, 1, 1 << 20);
  };
  const std::string model_dir = args.Get("model"), device = args.Get("device");
  const std::string out = args.Get("out");
  const int threads = count("threads"), decode_batch = count("decode-batch");
  const int prompt_tokens = count("prompt-tokens"), decode_tokens = count("decode-tokens");
  const int prefill_tokens = count("prefill-tokens");
  const int score_batch = count("score-batch"), score_len = count("score-len");
  const int repeats = count("repeats");
  const pkm::MemoryReads reads{pkm::bench::IntFlagOrExit(args, "memory-knn", 0, 1 << 20),
                               pkm::bench::IntFlagOrExit(args, "memory-heads", 0, 1 << 20)};
  const std::string weights_dtype = args.Get("weights-dtype");
  const std::string values_dtype = args.Get("pkm-values-dtype");
  pkm::HeldTypes held;
  if (!pkm::ParseWeightsHeld(weights_dtype, &held.matrices) ||
      !pkm::ParseWeightsHeld(values_dtype, &held.pkm_values)) {
    std::fprintf(stderr, "engine_bench: --weights-dtype and --pkm-values-dtype must be %s\n",
                 pkm::kWeightsHeldChoices);
    return 2;
  }
  std::string engine_name;
  const auto load_start = Clock::now();
  // The engine may use weights from the model file's mapping: the model outlives it.
  auto model = pkm::LoadModel(model_dir);
  if (!model.ok()) {
    std::fprintf(stderr, "engine_bench: %s\n", model.status().ToString().c_str());
    return 2;
  }
  std::unique_ptr<pkm::Engine> engine_ptr;
  pkm::ModelConfig cfg;
  {
    cfg = model->config();
    // KV cache sized to the largest workload, so resident memory is compared with what it needs.
    const size_t block_bytes =
        pkm::KvCache::BytesPerPosition(cfg.n_layers, cfg.attention.n_kv_heads, cfg.head_dim()) *
        pkm::KvCache::kBlockSize;
    const size_t blocks_per_seq =
        (score_len + pkm::KvCache::kBlockSize - 1) / pkm::KvCache::kBlockSize;
    pkm::EngineOptions options;
    options.held = held;
    options.time_pkm_lookups = true;
    const size_t decode_blocks =
        (prompt_tokens + decode_tokens + pkm::KvCache::kBlockSize) / pkm::KvCache::kBlockSize;
    options.kv_cache_bytes =
        block_bytes * std::max(blocks_per_seq * score_batch, decode_blocks * decode_batch);
    auto backend = pkm::MakeBackend(device, threads);
    if (!backend.ok()) {
      std::fprintf(stderr, "engine_bench: %s\n", backend.status().ToString().c_str());
      return 2;
    }
    engine_name = "pkmserve-" + backend->device;
    std::fprintf(stderr, "engine_bench: backend %s\n", backend->description.c_str());
    auto engine_or = pkm::Engine::Create(*model, std::move(backend->backend), options);
    if (!engine_or.ok()) {
      std::fprintf(stderr, "engine_bench: %s\n", engine_or.status().ToString().c_str());
      return 2;
    }
    engine_ptr = std::move(*engine_or);
  }
  pkm::Engine& engine = *engine_ptr;
  const double load_s = Seconds(load_start, Clock::now());

  std::mt19937 rng(0);
  std::uniform_int_distribution<int32_t> tok(3, cfg.vocab_size - 1);
  pkm::StepResult step;

  // Decode: decode_batch streams in lockstep, best of `repeats`.
  double decode_s = 1e30, pkm_s = 0;
  for (int r = 0; r <= repeats; ++r) {  // r == 0 warms up
    std::vector<std::vector<int32_t>> prompts(decode_batch, std::vector<int32_t>(prompt_tokens));
    std::vector<pkm::SeqChunk> chunks;
    for (int b = 0; b < decode_batch; ++b) {
      for (auto& t : prompts[b]) t = tok(rng);
      chunks.push_back({.seq = 1 + b, .tokens = prompts[b], .memory = reads});
    }
    Check(engine.Step(chunks, &step), "prefill");
    std::vector<int32_t> next(decode_batch);
    auto t0 = Clock::now();
    double pkm_run_s = 0;
    for (int i = 0; i < decode_tokens; ++i) {
      chunks.clear();
      for (int b = 0; b < decode_batch; ++b) {
        next[b] = Argmax(step.logits.data() + static_cast<size_t>(step.logits_row[b]) * cfg.vocab_size,
                         cfg.vocab_size);
        chunks.push_back({.seq = 1 + b, .tokens = {&next[b], 1}, .memory = reads});
      }
      Check(engine.Step(chunks, &step), "decode");
      for (double s : step.pkm_lookup_seconds) pkm_run_s += s;
    }
    const double run_s = Seconds(t0, Clock::now());
    if (r > 0 && run_s < decode_s) {
      decode_s = run_s;
      pkm_s = pkm_run_s;
    }
    for (int b = 0; b < decode_batch; ++b) engine.Release(1 + b);
  }

  // Prefill: one prompt, last logits only.
  std::vector<int32_t> prompt(prefill_tokens);
  for (auto& t : prompt) t = tok(rng);
  const pkm::SeqChunk prefill{.seq = 5, .tokens = prompt};
  double prefill_s = 1e30;
  for (int r = 0; r <= repeats; ++r) {
    auto t0 = Clock::now();
    Check(engine.Step({&prefill, 1}, &step), "prefill-only");
    if (r > 0) prefill_s = std::min(prefill_s, Seconds(t0, Clock::now()));
    engine.Release(5);
  }

  // Score: score_batch sequences in one step, each token's next token as target.
  std::vector<std::vector<int32_t>> seqs(score_batch, std::vector<int32_t>(score_len + 1));
  for (auto& s : seqs) for (auto& t : s) t = tok(rng);
  std::vector<pkm::SeqChunk> batch;
  for (int i = 0; i < score_batch; ++i) {
    batch.push_back({.seq = 10 + i,
                     .tokens = std::span<const int32_t>(seqs[i]).first(score_len),
                     .targets = std::span<const int32_t>(seqs[i]).subspan(1),
                     .memory = reads});
  }
  double score_s = 1e30;
  for (int r = 0; r <= repeats; ++r) {
    auto t0 = Clock::now();
    Check(engine.Step(batch, &step), "score");
    if (r > 0) score_s = std::min(score_s, Seconds(t0, Clock::now()));
    for (int i = 0; i < score_batch; ++i) engine.Release(10 + i);
  }

  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);  // before the bandwidth buffer exists
  const double rss = static_cast<double>(ru.ru_maxrss) * 1024.0;
  const double weights = static_cast<double>(engine.weight_bytes());
  const double kv = static_cast<double>(engine.kv_cache_bytes());
  std::error_code ec;
  const double file = static_cast<double>(
      std::filesystem::file_size(model_dir + "/model.safetensors", ec));
  const double decode_tps = static_cast<double>(decode_batch) * decode_tokens / decode_s;
  // Batch-1 decode's limit, at the decode run's mean context.
  const double token_bytes =
      pkm::bench::DecodeBytesPerToken(engine, prompt_tokens + decode_tokens / 2);
  const double bandwidth = pkm::bench::ReadBandwidth(threads);
  char json[4096];
  std::snprintf(json, sizeof(json),
                "{\n \"engine\": \"%s\",\n \"threads\": %d,\n \"model\": \"%s\",\n"
                " \"load_seconds\": %.3f,\n"
                " \"decode_tokens_per_s\": %.3f,\n \"prefill_tokens_per_s\": %.3f,\n"
                " \"score_tokens_per_s\": %.3f,\n"
                " \"pkm_us_per_decode_token\": %.3f,\n"
                " \"decode_bytes_per_token\": %.0f,\n \"read_bytes_per_s\": %.0f,\n"
                " \"bandwidth_limit_tokens_per_s\": %.3f,\n"
                " \"decode_share_of_bandwidth_limit\": %.4f,\n"
                " \"peak_rss_bytes\": %.0f,\n \"model_file_bytes\": %.0f,\n"
                " \"weight_bytes\": %.0f,\n \"mapped_weight_bytes\": %zu,\n"
                " \"kv_cache_bytes\": %.0f,\n"
                " \"rss_over_weights_plus_kv\": %.4f,\n \"rss_over_file\": %.4f,\n"
                " \"settings\": {\"prompt_tokens\": %d, \"decode_tokens\": %d, \"decode_batch\": %d,"
                " \"prefill_tokens\": %d, \"score_batch\": %d,"
                " \"score_len\": %d, \"repeats\": %d, \"weights_dtype\": \"%s\","
                " \"pkm_values_dtype\": \"%s\"}\n}\n",
                engine_name.c_str(), threads, model_dir.c_str(), load_s, decode_tps,
                prefill_tokens / prefill_s, score_batch * score_len / score_s,
                1e6 * pkm_s / (static_cast<double>(decode_batch) * decode_tokens), token_bytes,
                bandwidth, bandwidth / token_bytes,
                decode_batch == 1 ? decode_tps * token_bytes / bandwidth : 0.0, rss, file, weights,
                engine.weights().mapped_bytes, kv, rss / (weights + kv), rss / file, prompt_tokens,
                decode_tokens, decode_batch, prefill_tokens, score_batch, score_len, repeats,
                weights_dtype.c_str(), values_dtype.c_str());
  std::fputs(json, stdout);
  if (!out.empty()) {
    FILE* f = std::fopen(out.c_str(), "w");
    if (f == nullptr) {
      std::perror(out.c_str());
      return 1;
    }
    std::fputs(json, f);
    std::fclose(f);
  }
  return 0;
}
