// The inference engine: model weights on a backend, the paged KV cache, and a step function
// over a ragged batch in which each sequence contributes a prefill chunk or one decode token.
//
// Results are batch-invariant: a sequence's logits do not depend on which other sequences
// share the step, nor on how its prompt was split into chunks (every kernel computes a
// token's row with the same operations whatever else is in the call).
//
// Not thread-safe: one thread (the scheduler's engine thread) drives an Engine.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"
#include "kernels/backend.h"
#include "engine/kv_cache.h"
#include "engine/layers.h"
#include "engine/model_weights.h"
#include "engine/pkm_usage.h"
#include "model_loader/model_config.h"
#include "model_loader/model_loader.h"

namespace pkm {

struct EngineOptions {
  // Memory for the KV cache; rounded down to whole blocks of KvCache::kBlockSize positions.
  size_t kv_cache_bytes = size_t{256} << 20;
  // Record each memory layer's selected slot ids of the last step (tests, diagnostics).
  bool record_pkm_lookups = false;
  // Keep each memory layer's usage (PkmUsageWindow) over this many recent tokens; 0 keeps
  // none. Costs a copy of the step's slot ids and weights to the host per memory layer.
  int pkm_usage_window = 0;
  // Time each memory layer's lookup (query projection + lookup) in StepResult.
  bool time_pkm_lookups = false;
  // The types weight matrices and PKM value tables are held in (model_weights.h).
  HeldTypes held = {};
};

// How much of each memory layer a request reads, below what it was trained with (a per-request
// trade of quality for speed): the first `heads` heads, `knn` slots each; 0: the trained value.
struct MemoryReads {
  int knn = 0;
  int heads = 0;
};

// OK when a request may read the memories so: each of knn and heads 0 (trained) or in [1, the
// smallest trained value over the memory layers]; kInvalidArgument naming the field otherwise,
// kFailedPrecondition on a backend that cannot (SupportsPkmTokenLimits).
Status CheckMemoryReads(const MemoryReads& reads, const ModelConfig& config,
                        const Backend& backend);

// One sequence's part of a step.
struct SeqChunk {
  SeqId seq = 0;
  // Tokens appended to the sequence: a prefill chunk, or one decode token. Not empty.
  std::span<const int32_t> tokens = {};
  // Return the logits of every token of the chunk (tests, diagnostics) instead of only the
  // last token's. Memory: tokens x vocab floats.
  bool all_logits = false;
  // Scoring: targets[i] is the token whose log-probability is wanted after tokens[i] (same
  // length as tokens; -1 scores nothing there). The engine computes log-probabilities itself,
  // so a long chunk never holds its [tokens, vocab] logits at once. With targets and without
  // all_logits, the chunk returns no logits.
  std::span<const int32_t> targets = {};
  // With targets: also the top_n most likely tokens at each scored position.
  int top_n = 0;
  // Each memory layer read below its trained heads and knn (Engine::CheckMemoryReads).
  MemoryReads memory = {};
};

// Log-probabilities of one chunk's targets (positions with target -1 are skipped).
struct ChunkScores {
  std::vector<float> logprobs;
  std::vector<std::vector<std::pair<int32_t, float>>> top;  // per scored position, best first
};

struct StepResult {
  // Logits [rows, vocab] in batch order. logits_row[i]: the first row of chunk i (all of its
  // tokens with all_logits, its last token for generation), or -1 when it returns none.
  std::vector<float> logits;
  std::vector<int> logits_row;
  // scores[i]: chunk i's target log-probabilities (empty without targets).
  std::vector<ChunkScores> scores;
  // When record_pkm_lookups: per memory (in config.memories order), [n_tokens, heads, knn]
  // slot ids of every token of the step, in batch order.
  std::vector<std::vector<int32_t>> pkm_ids;
  // When time_pkm_lookups: per memory (in config.memories order), the seconds its lookups
  // took in this step.
  std::vector<double> pkm_lookup_seconds;
};

// One memory layer's usage over the engine's window (EngineOptions::pkm_usage_window).
struct PkmLayerUsage {
  int layer = 0;              // index of the layer in the model
  double coverage = 0.0;      // share of slots selected in the window
  double kl_to_uniform = 0.0; // KL of the slots' accumulated weights to uniform, nats
  int window_tokens = 0;      // tokens in the window so far
};

// What the engine holds on its backend's device, by kind. Workspace is everything else the
// backend allocated: activations, block tables and the backend's own scratch.
struct DeviceMemoryUse {
  // Model weights other than the memory layers' value tables, those read from the model
  // file's mapping included (ModelWeights::mapped_bytes).
  size_t weights = 0;
  size_t pkm_values = 0;  // the memory layers' value tables (n_keys² × v_dim each)
  size_t kv_cache = 0;
  size_t workspace = 0;
  size_t total() const { return weights + pkm_values + kv_cache + workspace; }
};

class Engine {
 public:
  // Places the model's weights on the backend (model_weights.h: as stored where the backend
  // reads them, from the file's mapping on the CPU, so `model` must outlive the engine) and
  // sizes the KV cache.
  static StatusOr<std::unique_ptr<Engine>> Create(const LoadedModel& model,
                                                  std::unique_ptr<Backend> backend,
                                                  const EngineOptions& options);
  ~Engine();

  // Runs one forward step. A sequence seen for the first time starts at position 0; later
  // chunks continue where it stopped. Fails, changing nothing, with kResourceExhausted when the
  // KV cache cannot hold the step's new positions (the caller may preempt and retry), and with
  // kInvalidArgument for an empty chunk, a repeated sequence, a token outside the vocabulary or
  // a sequence longer than max_seq_len.
  Status Step(std::span<const SeqChunk> batch, StepResult* result);

  // Frees a sequence's KV blocks (finished, cancelled or preempted). Unknown ids are ignored.
  void Release(SeqId seq);

  // Positions `seq` holds in the cache (0 for an unknown sequence).
  int SequenceLength(SeqId seq) const;
  // KV blocks `seq` would still need to grow by `new_tokens` positions.
  int KvBlocksNeeded(SeqId seq, int new_tokens) const;

  const ModelConfig& config() const { return config_; }
  const KvCache& kv_cache() const { return kv_; }
  size_t kv_cache_bytes() const;
  size_t weight_bytes() const { return weights_.bytes; }
  // The weights as placed on the backend: types held, bytes used from the file's mapping.
  const ModelWeights& weights() const { return weights_; }
  // Reads the backend's allocation count: cheap, callable from any thread that may call
  // Backend::allocated_bytes.
  DeviceMemoryUse device_memory() const;
  // Usage of every memory layer (empty unless pkm_usage_window > 0). Costs a pass over each
  // layer's n_keys² slot sums (PkmUsageWindow::KlToUniform): call it per metrics refresh,
  // not per step.
  std::vector<PkmLayerUsage> PkmUsage() const;
  Backend& backend() { return *backend_; }
  const Backend& backend() const { return *backend_; }

 private:
  Engine(const ModelConfig& config, std::unique_ptr<Backend> backend, int kv_blocks,
         const EngineOptions& options);
  // A row of the step that needs logits (target -1) or a score (target >= 0).
  struct OutputRow {
    int32_t token;  // index in the step's flattened tokens
    int chunk;
    int32_t target;
  };
  Status Validate(std::span<const SeqChunk> batch) const;
  void EnsureScratch();
  // Runs n tokens (whose ids, chunks and positions are in the scratch) through every layer,
  // leaving the last hidden states in the scratch. first_token: their index in the step.
  // limited: the step's per-token memory reads are in the scratch's token_knn/token_heads.
  void Forward(int n, int max_blocks, StepResult* result, int first_token, bool limited);
  // One memory over the tile's n tokens: M(in) into out (slot ids and weights into t's, when
  // set); records, times and tracks usage as the options ask.
  void MemoryForward(const MemoryWeights& w, const TileBuffers& t, const float* in, int n,
                     float* out, StepResult* result, int first_token);
  // Final norm + LM head over `rows` (all within the tile starting at first_token),
  // kLogitTile rows at a time, filling the result's logits and scores.
  void EmitOutputs(std::span<const SeqChunk> batch, std::span<const OutputRow> rows,
                   int first_token, size_t* logits_written, StepResult* result);

  ModelConfig config_;
  EngineOptions options_;
  std::unique_ptr<Backend> backend_;
  KvCache kv_;
  std::unordered_map<SeqId, int> lengths_;
  ModelWeights weights_;  // as held (model_weights.h): mapped, converted or widened
  // Memories' usage windows, in config.memories order (empty when not kept).
  std::vector<PkmUsageWindow> pkm_usage_;
  // Tokens per pass through the layers, and rows per LM-head GEMM: bounds activation memory.
  static constexpr int kMaxTileTokens = 256;
  static constexpr int kLogitTile = 64;
  // KV storage per layer.
  std::vector<DeviceBuffer> k_cache_, v_cache_;
  // Scratch, grown on demand.
  struct Scratch;
  std::unique_ptr<Scratch> scratch_;
};

}  // namespace pkm
