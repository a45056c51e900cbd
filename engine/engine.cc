#include "engine/engine.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <tuple>
#include <unordered_set>

#include "engine/layers.h"
#include "engine/sampling.h"
#include "model_loader/dtype.h"

namespace pkm {

// Activations of one tile of kMaxTileTokens tokens, and one LM-head tile.
struct Engine::Scratch {
  int tokens = 0, blocks = 0;
  DeviceBuffer x, h, q, k, v, att, o, f, f3, pq, bag, gate, mem, ids, pkm_weights, xr, logits;
  DeviceBuffer token_ids, token_seq, token_pos, block_tables, logit_rows;
  DeviceBuffer token_knn, token_heads;  // per token, when a chunk of the step limits them
  // Host copies of one LM-head tile, reused across steps (decode calls this every token).
  std::vector<float> host_logits, host_logprobs;
  std::vector<int32_t> host_rows;
  // Host copies of one tile's memory lookups, for the usage windows.
  std::vector<int32_t> host_pkm_ids;
  std::vector<float> host_pkm_weights;
};

namespace {

// The largest per-token width any memory needs for `f` (e.g. heads·k_dim for the queries).
template <typename F>
size_t MaxOverMemories(const ModelConfig& c, F f) {
  size_t most = 0;
  for (const MemorySpec& m : c.memories) most = std::max(most, static_cast<size_t>(f(m)));
  return most;
}

}  // namespace

Engine::Engine(const ModelConfig& config, std::unique_ptr<Backend> backend, int kv_blocks,
               const EngineOptions& options)
    : config_(config),
      options_(options),
      backend_(std::move(backend)),
      kv_(config.attention.n_kv_heads, config.head_dim(), kv_blocks),
      scratch_(std::make_unique<Scratch>()) {
  if (options.pkm_usage_window > 0) {
    for (const MemorySpec& m : config.memories) {
      pkm_usage_.emplace_back(m.slots(), m.heads * m.knn, options.pkm_usage_window);
    }
  }
}

Engine::~Engine() = default;

StatusOr<std::unique_ptr<Engine>> Engine::Create(const LoadedModel& model,
                                                 std::unique_ptr<Backend> backend,
                                                 const EngineOptions& options) {
  const ModelConfig& c = model.config();
  const size_t per_block =
      KvCache::BytesPerPosition(c.n_layers, c.attention.n_kv_heads, c.head_dim()) *
      KvCache::kBlockSize;
  const size_t blocks = options.kv_cache_bytes / per_block;
  if (blocks == 0) {
    return Status(StatusCode::kInvalidArgument,
                  "kv_cache_bytes " + std::to_string(options.kv_cache_bytes) +
                      " is less than one KV block (" + std::to_string(per_block) +
                      " bytes = " + std::to_string(KvCache::kBlockSize) + " positions)");
  }
  for (const MemorySpec& m : c.memories) {
    const std::string refused = backend->CheckPkmShape({m.heads, m.knn, m.n_keys, m.k_dim, m.v_dim});
    if (!refused.empty()) {
      return Status(StatusCode::kFailedPrecondition, "the " + backend->name() +
                                                         " backend cannot run the memory of " +
                                                         m.label() + ": " + refused);
    }
  }
  std::unique_ptr<Engine> engine(new Engine(c, std::move(backend), static_cast<int>(blocks), options));
  PKM_ASSIGN_OR_RETURN(engine->weights_,
                       UploadModelWeights(model, engine->config_, engine->backend_.get(),
                                          options.held));
  const size_t layer_floats = engine->kv_.floats_per_layer();
  for (int l = 0; l < c.n_layers; ++l) {
    engine->k_cache_.emplace_back(engine->backend_.get(), layer_floats * sizeof(float));
    engine->v_cache_.emplace_back(engine->backend_.get(), layer_floats * sizeof(float));
    if (!engine->k_cache_.back() || !engine->v_cache_.back()) {
      return Status(StatusCode::kResourceExhausted,
                    "cannot allocate the KV cache (" + std::to_string(options.kv_cache_bytes) +
                        " bytes) on " + engine->backend_->name());
    }
  }
  return engine;
}

void Engine::EnsureScratch() {
  Scratch& s = *scratch_;
  if (s.tokens > 0) return;
  const ModelConfig& c = config_;
  Backend* b = backend_.get();
  const size_t n = kMaxTileTokens, d = c.d_model;
  const size_t q_width = static_cast<size_t>(c.attention.n_heads) * c.head_dim();
  const size_t kv_width = static_cast<size_t>(c.attention.n_kv_heads) * c.head_dim();
  auto floats = [&](DeviceBuffer* buf, size_t width) {
    *buf = DeviceBuffer(b, n * std::max<size_t>(width, 1) * sizeof(float));
  };
  for (DeviceBuffer* buf : {&s.x, &s.h, &s.o, &s.mem}) floats(buf, d);
  floats(&s.q, q_width);
  floats(&s.att, q_width);
  floats(&s.k, kv_width);
  floats(&s.v, kv_width);
  floats(&s.f, static_cast<size_t>(c.ffn.hidden));
  floats(&s.f3, c.ffn.kind == FfnKind::kSwiglu ? static_cast<size_t>(c.ffn.hidden) : 1);
  floats(&s.pq, MaxOverMemories(c, [](const MemorySpec& m) { return m.heads * m.k_dim; }));
  const size_t v_width = MaxOverMemories(c, [](const MemorySpec& m) { return m.v_dim; });
  floats(&s.bag, v_width);
  floats(&s.gate, v_width);
  const size_t per_token = MaxOverMemories(c, [](const MemorySpec& m) { return m.heads * m.knn; });
  s.ids = DeviceBuffer(b, n * std::max<size_t>(per_token, 1) * sizeof(int32_t));
  floats(&s.pkm_weights, per_token);
  for (DeviceBuffer* buf :
       {&s.token_ids, &s.token_seq, &s.token_pos, &s.token_knn, &s.token_heads}) {
    *buf = DeviceBuffer(b, n * sizeof(int32_t));
  }
  s.xr = DeviceBuffer(b, kLogitTile * d * sizeof(float));
  s.logits = DeviceBuffer(b, kLogitTile * static_cast<size_t>(c.vocab_size) * sizeof(float));
  s.logit_rows = DeviceBuffer(b, kLogitTile * sizeof(int32_t));
  s.tokens = kMaxTileTokens;
}

Status Engine::Validate(std::span<const SeqChunk> batch) const {
  const ModelConfig& c = config_;
  if (batch.empty()) return Status(StatusCode::kInvalidArgument, "empty batch");
  std::unordered_set<SeqId> seen;
  int blocks_needed = 0;
  for (const SeqChunk& ch : batch) {
    const std::string seq = "sequence " + std::to_string(ch.seq);
    if (ch.tokens.empty()) return Status(StatusCode::kInvalidArgument, seq + " has an empty chunk");
    if (!seen.insert(ch.seq).second) {
      return Status(StatusCode::kInvalidArgument, seq + " appears twice in one step");
    }
    if (!ch.targets.empty() && ch.targets.size() != ch.tokens.size()) {
      return Status(StatusCode::kInvalidArgument,
                    seq + " has " + std::to_string(ch.targets.size()) + " targets for " +
                        std::to_string(ch.tokens.size()) + " tokens; expected one per token");
    }
    PKM_RETURN_IF_ERROR(CheckMemoryReads(ch.memory, c, *backend_));
    if (ch.top_n < 0 || ch.top_n > c.vocab_size) {
      return Status(StatusCode::kInvalidArgument, "top_n " + std::to_string(ch.top_n) +
                                                      " is outside [0, " +
                                                      std::to_string(c.vocab_size) + "]");
    }
    for (int32_t tok : ch.tokens) {
      if (tok < 0 || tok >= c.vocab_size) {
        return Status(StatusCode::kInvalidArgument,
                      "token id " + std::to_string(tok) + " is outside the vocabulary [0, " +
                          std::to_string(c.vocab_size) + ")");
      }
    }
    for (int32_t tok : ch.targets) {
      if (tok < -1 || tok >= c.vocab_size) {
        return Status(StatusCode::kInvalidArgument,
                      "target id " + std::to_string(tok) + " is outside the vocabulary [0, " +
                          std::to_string(c.vocab_size) + ") (or -1 for none)");
      }
    }
    const int len = SequenceLength(ch.seq) + static_cast<int>(ch.tokens.size());
    if (len > c.max_seq_len) {
      return Status(StatusCode::kInvalidArgument,
                    seq + " would hold " + std::to_string(len) +
                        " tokens; the model's context is max_seq_len=" +
                        std::to_string(c.max_seq_len));
    }
    blocks_needed += kv_.BlocksNeeded(ch.seq, len);
  }
  if (blocks_needed > kv_.free_blocks()) {
    return Status(StatusCode::kResourceExhausted,
                  "KV cache full: the step needs " + std::to_string(blocks_needed) +
                      " blocks, " + std::to_string(kv_.free_blocks()) + " are free");
  }
  return Status();
}

Status CheckMemoryReads(const MemoryReads& reads, const ModelConfig& config,
                        const Backend& backend) {
  if (reads.knn == 0 && reads.heads == 0) return Status();
  if (config.memories.empty()) {
    return Status(StatusCode::kInvalidArgument,
                  "memory_knn/memory_heads: the model has no memory layer");
  }
  if (!backend.SupportsPkmTokenLimits()) {
    return Status(StatusCode::kFailedPrecondition,
                  "memory_knn/memory_heads: the " + backend.name() +
                      " backend reads every memory in full; serve on the CPU to read less");
  }
  int knn = config.memories[0].knn, heads = config.memories[0].heads;
  for (const MemorySpec& m : config.memories) {
    knn = std::min(knn, m.knn);
    heads = std::min(heads, m.heads);
  }
  for (const auto& [name, value, most] :
       {std::tuple("memory_knn", reads.knn, knn), std::tuple("memory_heads", reads.heads, heads)}) {
    if (value < 0 || value > most) {
      return Status(StatusCode::kInvalidArgument,
                    std::string(name) + " must be in [1, " + std::to_string(most) +
                        "] (the trained value; 0 or unset reads it), got " +
                        std::to_string(value));
    }
  }
  return Status();
}

Status Engine::Step(std::span<const SeqChunk> batch, StepResult* result) {
  PKM_RETURN_IF_ERROR(Validate(batch));
  const ModelConfig& c = config_;
  Backend& b = *backend_;
  EnsureScratch();
  Scratch& s = *scratch_;

  // Flatten the ragged batch: per token its id, its chunk and its position; per chunk its
  // block table (a row of `tables`); and the rows that need logits or scores.
  int max_blocks = 0;
  for (const SeqChunk& ch : batch) {
    const int len = SequenceLength(ch.seq) + static_cast<int>(ch.tokens.size());
    max_blocks = std::max(max_blocks, (len + KvCache::kBlockSize - 1) / KvCache::kBlockSize);
  }
  std::vector<int32_t> tokens, token_seq, token_pos, token_knn, token_heads;
  bool limited = false;
  for (const SeqChunk& ch : batch) limited |= ch.memory.knn > 0 || ch.memory.heads > 0;
  std::vector<int32_t> tables(batch.size() * static_cast<size_t>(max_blocks), 0);
  std::vector<OutputRow> rows;
  result->logits_row.assign(batch.size(), -1);
  result->scores.assign(batch.size(), {});
  int logits_rows = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const SeqChunk& ch = batch[i];
    const int start = SequenceLength(ch.seq);
    const int len = static_cast<int>(ch.tokens.size());
    kv_.Reserve(ch.seq, start + len);  // cannot fail: Validate counted the blocks
    lengths_[ch.seq] = start + len;
    const std::vector<int32_t>& table = kv_.BlockTable(ch.seq);
    std::copy(table.begin(), table.end(), tables.begin() + i * max_blocks);
    const bool scoring = !ch.targets.empty();
    if (ch.all_logits || !scoring) result->logits_row[i] = logits_rows;
    for (int t = 0; t < len; ++t) {
      const int32_t row = static_cast<int32_t>(tokens.size());
      tokens.push_back(ch.tokens[t]);
      token_seq.push_back(static_cast<int32_t>(i));
      token_pos.push_back(start + t);
      if (limited) {
        token_knn.push_back(ch.memory.knn);
        token_heads.push_back(ch.memory.heads);
      }
      if (ch.all_logits || (!scoring && t == len - 1)) {
        rows.push_back({row, static_cast<int>(i), -1});
        ++logits_rows;
      }
      if (scoring && ch.targets[t] >= 0) rows.push_back({row, static_cast<int>(i), ch.targets[t]});
    }
  }
  const int n = static_cast<int>(tokens.size());
  result->logits.resize(static_cast<size_t>(logits_rows) * c.vocab_size);
  const bool record = options_.record_pkm_lookups;
  result->pkm_ids.clear();
  if (record) {
    for (const MemorySpec& m : c.memories) {
      result->pkm_ids.emplace_back(static_cast<size_t>(n) * m.heads * m.knn);
    }
  }
  result->pkm_lookup_seconds.assign(options_.time_pkm_lookups ? c.memories.size() : 0, 0.0);
  if (s.blocks < static_cast<int>(tables.size())) {
    s.block_tables = DeviceBuffer(&b, tables.size() * sizeof(int32_t));
    s.blocks = static_cast<int>(tables.size());
  }
  b.CopyToDevice(s.block_tables.as<int32_t>(), tables.data(), tables.size() * sizeof(int32_t));

  // Tiles of at most kMaxTileTokens tokens, in batch order, each through every layer: a
  // token's earlier positions are in the KV cache by the time it attends to them (they came in
  // an earlier step, an earlier tile, or its own tile), and activations stay small.
  size_t next_row = 0, logits_written = 0;
  for (int t0 = 0; t0 < n; t0 += kMaxTileTokens) {
    const int tn = std::min(kMaxTileTokens, n - t0);
    b.CopyToDevice(s.token_ids.as<int32_t>(), tokens.data() + t0, tn * sizeof(int32_t));
    b.CopyToDevice(s.token_seq.as<int32_t>(), token_seq.data() + t0, tn * sizeof(int32_t));
    b.CopyToDevice(s.token_pos.as<int32_t>(), token_pos.data() + t0, tn * sizeof(int32_t));
    if (limited) {
      b.CopyToDevice(s.token_knn.as<int32_t>(), token_knn.data() + t0, tn * sizeof(int32_t));
      b.CopyToDevice(s.token_heads.as<int32_t>(), token_heads.data() + t0, tn * sizeof(int32_t));
    }
    Forward(tn, max_blocks, result, t0, limited);
    size_t end_row = next_row;
    while (end_row < rows.size() && rows[end_row].token < t0 + tn) ++end_row;
    EmitOutputs(batch, std::span<const OutputRow>(rows).subspan(next_row, end_row - next_row), t0,
                &logits_written, result);
    next_row = end_row;
  }
  b.Synchronize();
  return Status();
}

void Engine::Forward(int n, int max_blocks, StepResult* result, int first_token,
                     bool limited) {
  const ModelConfig& c = config_;
  const ModelWeights& w = weights_;
  Backend& b = *backend_;
  Scratch& s = *scratch_;
  const int d = c.d_model;
  const size_t nd = static_cast<size_t>(n) * d;
  const bool want_ids = options_.record_pkm_lookups || !pkm_usage_.empty();
  const TileBuffers t{.q = s.q.f(), .k = s.k.f(), .v = s.v.f(), .att = s.att.f(),
                      .f = s.f.f(), .f3 = s.f3.f(), .pq = s.pq.f(), .bag = s.bag.f(),
                      .gate = s.gate.f(),
                      .ids = want_ids ? s.ids.as<int32_t>() : nullptr,
                      .slot_weights = pkm_usage_.empty() ? nullptr : s.pkm_weights.f(),
                      .memory_limits = limited ? cpu::PkmTokenLimits{s.token_knn.as<int32_t>(),
                                                                     s.token_heads.as<int32_t>()}
                                               : cpu::PkmTokenLimits{},
                      .positions = s.token_pos.as<int32_t>(), .seqs = s.token_seq.as<int32_t>(),
                      .block_tables = s.block_tables.as<int32_t>(), .max_blocks = max_blocks};
  float* x = s.x.f();

  b.Embedding(w.tok_embeddings, d, s.token_ids.as<int32_t>(), n, x);
  if (w.pos_embeddings) {
    b.Embedding(w.pos_embeddings, d, t.positions, n, s.o.f());
    b.Add(x, s.o.f(), nd);
  }
  if (c.embedding_norm) Norm(b, c.norm, w.emb_norm, x, n, d, x);
  const bool pre_norm = c.block == BlockOrder::kPreNorm;
  for (int l = 0; l < c.n_layers; ++l) {
    const BlockWeights& bw = w.blocks[l];
    // Attention: x + Attn(norm(x)) (pre-norm) or norm(x + Attn(x)) (post-norm).
    const float* attn_in = x;
    if (pre_norm) {
      Norm(b, c.norm, bw.attn_norm, x, n, d, s.h.f());
      attn_in = s.h.f();
    }
    Attention(b, c, bw.attn, attn_in, n, t, k_cache_[l].f(), v_cache_[l].f(), s.o.f());
    b.Add(x, s.o.f(), nd);
    if (!pre_norm) Norm(b, c.norm, bw.attn_norm, x, n, d, x);

    // F: FFN, a memory instead of it, or both; x + F(norm(x)) or norm(x + F(x)).
    const float* f_in = x;
    if (pre_norm) {
      Norm(b, c.norm, bw.ffn_norm, x, n, d, s.h.f());
      f_in = s.h.f();
    }
    float* branch = nullptr;
    if (bw.has_ffn) {
      Ffn(b, c.ffn, bw.ffn, f_in, n, t, s.o.f());
      branch = s.o.f();
    }
    if (bw.block_memory >= 0) {
      MemoryForward(w.memories[bw.block_memory], t, f_in, n, s.mem.f(), result, first_token);
      if (branch != nullptr) {
        b.Add(branch, s.mem.f(), nd);  // FFN(h) + M(h) first, as the reference adds them
      } else {
        branch = s.mem.f();
      }
    }
    b.Add(x, branch, nd);
    if (!pre_norm) Norm(b, c.norm, bw.ffn_norm, x, n, d, x);

    if (bw.after_memory >= 0) {
      MemoryForward(w.memories[bw.after_memory], t, x, n, s.mem.f(), result, first_token);
      b.Add(x, s.mem.f(), nd);
    }
  }
}

void Engine::MemoryForward(const MemoryWeights& w, const TileBuffers& t, const float* in, int n,
                           float* out, StepResult* result, int first_token) {
  Backend& b = *backend_;
  Scratch& s = *scratch_;
  const MemorySpec& m = *w.spec;
  const bool record = options_.record_pkm_lookups;
  const bool track = !pkm_usage_.empty();
  const bool timed = options_.time_pkm_lookups;
  const auto start = std::chrono::steady_clock::now();
  Memory(b, w, in, n, t, out);
  if (timed) {
    b.Synchronize();
    result->pkm_lookup_seconds[w.index] +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  const size_t per_token = static_cast<size_t>(m.heads) * m.knn;
  if (record) {
    b.CopyToHost(result->pkm_ids[w.index].data() + first_token * per_token,
                 s.ids.as<int32_t>(), n * per_token * sizeof(int32_t));
  }
  if (track) {
    s.host_pkm_ids.resize(n * per_token);
    s.host_pkm_weights.resize(n * per_token);
    b.CopyToHost(s.host_pkm_ids.data(), s.ids.as<int32_t>(), n * per_token * sizeof(int32_t));
    b.CopyToHost(s.host_pkm_weights.data(), s.pkm_weights.f(), n * per_token * sizeof(float));
    pkm_usage_[w.index].Add(s.host_pkm_ids.data(), s.host_pkm_weights.data(), n);
  }
}

std::vector<PkmLayerUsage> Engine::PkmUsage() const {
  std::vector<PkmLayerUsage> usage;
  for (size_t i = 0; i < pkm_usage_.size(); ++i) {
    const PkmUsageWindow& u = pkm_usage_[i];
    usage.push_back({.layer = config_.memories[i].layer,
                     .coverage = u.Coverage(),
                     .kl_to_uniform = u.KlToUniform(),
                     .window_tokens = u.tokens()});
  }
  return usage;
}

void Engine::EmitOutputs(std::span<const SeqChunk> batch, std::span<const OutputRow> rows,
                         int first_token, size_t* logits_written, StepResult* result) {
  const int vocab = config_.vocab_size, d = config_.d_model;
  Scratch& s = *scratch_;
  Backend& b = *backend_;
  std::vector<float>& host = s.host_logits;
  std::vector<float>& logprobs = s.host_logprobs;
  std::vector<int32_t>& tile_rows = s.host_rows;
  host.resize(static_cast<size_t>(kLogitTile) * vocab);
  for (size_t start = 0; start < rows.size(); start += kLogitTile) {
    const size_t count = std::min<size_t>(kLogitTile, rows.size() - start);
    tile_rows.clear();
    for (size_t r = 0; r < count; ++r) tile_rows.push_back(rows[start + r].token - first_token);
    b.CopyToDevice(s.logit_rows.as<int32_t>(), tile_rows.data(), count * sizeof(int32_t));
    b.GatherRows(s.x.f(), d, s.logit_rows.as<int32_t>(), static_cast<int>(count), s.xr.f());
    if (config_.final_norm) {
      Norm(b, config_.norm, weights_.final_norm, s.xr.f(), static_cast<int>(count), d, s.xr.f());
    }
    Project(b, weights_.lm_head, s.xr.f(), static_cast<int>(count), s.logits.f());
    b.CopyToHost(host.data(), s.logits.f(), count * vocab * sizeof(float));
    for (size_t r = 0; r < count; ++r) {
      const OutputRow& row = rows[start + r];
      const float* lg = host.data() + r * vocab;
      if (row.target < 0) {
        std::copy(lg, lg + vocab, result->logits.begin() + *logits_written * vocab);
        ++*logits_written;
        continue;
      }
      ChunkScores& sc = result->scores[row.chunk];
      sc.logprobs.push_back(TokenLogProb(lg, vocab, row.target));
      if (batch[row.chunk].top_n > 0) {
        logprobs.resize(vocab);
        LogSoftmax(lg, vocab, logprobs.data());
        sc.top.push_back(TopLogProbs(logprobs.data(), vocab, batch[row.chunk].top_n));
      }
    }
  }
}

void Engine::Release(SeqId seq) {
  kv_.Release(seq);
  lengths_.erase(seq);
}

int Engine::SequenceLength(SeqId seq) const {
  auto it = lengths_.find(seq);
  return it == lengths_.end() ? 0 : it->second;
}

int Engine::KvBlocksNeeded(SeqId seq, int new_tokens) const {
  return kv_.BlocksNeeded(seq, SequenceLength(seq) + new_tokens);
}

DeviceMemoryUse Engine::device_memory() const {
  DeviceMemoryUse use;
  use.pkm_values = weights_.value_table_bytes;
  use.weights = weights_.bytes - weights_.value_table_bytes;
  use.kv_cache = kv_cache_bytes();
  // Weights read from the file's mapping are held but not allocated through the backend.
  const size_t held = use.weights + use.pkm_values + use.kv_cache - weights_.mapped_bytes;
  const size_t allocated = backend_->allocated_bytes();
  use.workspace = allocated > held ? allocated - held : 0;
  return use;
}

size_t Engine::kv_cache_bytes() const {
  return 2 * kv_.floats_per_layer() * sizeof(float) * static_cast<size_t>(config_.n_layers);
}

}  // namespace pkm
