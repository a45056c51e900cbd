#include "engine/engine.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <unordered_set>

#include "engine/sampling.h"
#include "model_loader/dtype.h"

namespace pkm {

struct Engine::LayerWeights {
  float *attn_norm_w, *attn_norm_b, *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo;
  float *ffn_norm_w, *ffn_norm_b;
  float *w1 = nullptr, *b1 = nullptr, *w2 = nullptr, *b2 = nullptr;        // no FFN: null
  float *pkm_q_w = nullptr, *pkm_q_b = nullptr, *pkm_keys = nullptr, *pkm_values = nullptr;
  int pkm_index = -1;  // position in config.pkm_layers, -1 without a memory
};

// Activations of one tile of kMaxTileTokens tokens, and one LM-head tile.
struct Engine::Scratch {
  int tokens = 0, blocks = 0;
  DeviceBuffer x, h, q, k, v, att, o, f, pq, mem, ids, pkm_weights, xr, logits;
  DeviceBuffer token_ids, token_seq, token_pos, block_tables, logit_rows;
  // Host copies of one LM-head tile, reused across steps (decode calls this every token).
  std::vector<float> host_logits, host_logprobs;
  std::vector<int32_t> host_rows;
  // Host copies of one tile's memory lookups, for the usage windows.
  std::vector<int32_t> host_pkm_ids;
  std::vector<float> host_pkm_weights;
};

Engine::Engine(const ModelConfig& config, std::unique_ptr<Backend> backend, int kv_blocks,
               const EngineOptions& options)
    : config_(config),
      options_(options),
      backend_(std::move(backend)),
      kv_(config.n_heads, config.head_dim(), kv_blocks),
      scratch_(std::make_unique<Scratch>()) {
  if (options.pkm_usage_window > 0) {
    const int64_t slots = static_cast<int64_t>(config.pkm_n_keys) * config.pkm_n_keys;
    for (size_t i = 0; i < config.pkm_layers.size(); ++i) {
      pkm_usage_.emplace_back(slots, config.pkm_heads * config.pkm_knn, options.pkm_usage_window);
    }
  }
}

Engine::~Engine() = default;

StatusOr<std::unique_ptr<Engine>> Engine::Create(const LoadedModel& model,
                                                 std::unique_ptr<Backend> backend,
                                                 const EngineOptions& options) {
  const ModelConfig& c = model.config();
  const int head_dim = c.d_model / c.n_heads;
  const size_t per_block =
      KvCache::BytesPerPosition(c.n_layers, c.n_heads, head_dim) * KvCache::kBlockSize;
  const size_t blocks = options.kv_cache_bytes / per_block;
  if (blocks == 0) {
    return Status(StatusCode::kInvalidArgument,
                  "kv_cache_bytes " + std::to_string(options.kv_cache_bytes) +
                      " is less than one KV block (" + std::to_string(per_block) +
                      " bytes = " + std::to_string(KvCache::kBlockSize) + " positions)");
  }
  if (!c.pkm_layers.empty()) {
    const std::string refused =
        backend->CheckPkmShape({c.pkm_heads, c.pkm_knn, c.pkm_n_keys, c.pkm_k_dim, c.pkm_v_dim});
    if (!refused.empty()) {
      return Status(StatusCode::kFailedPrecondition,
                    "the " + backend->name() + " backend cannot run this model's memory: " + refused);
    }
  }
  std::unique_ptr<Engine> engine(new Engine(c, std::move(backend), static_cast<int>(blocks), options));
  PKM_RETURN_IF_ERROR(engine->UploadWeights(model));
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

float* Engine::Upload(const LoadedModel& model, const std::string& name) {
  const TensorView* t = model.FindTensor(name);
  if (t == nullptr) return nullptr;  // the loader validated presence; absent means optional
  std::vector<float> host(t->numel());
  ToFloat32(*t, host.data());
  DeviceBuffer buf(backend_.get(), host.size() * sizeof(float));
  if (!buf) return nullptr;
  backend_->CopyToDevice(buf.f(), host.data(), host.size() * sizeof(float));
  weight_bytes_ += buf.bytes();
  if (name.ends_with(".pkm.values")) pkm_value_bytes_ += buf.bytes();
  float* p = buf.f();
  weight_buffers_.push_back(std::move(buf));
  return p;
}

Status Engine::UploadWeights(const LoadedModel& model) {
  const ModelConfig& c = config_;
  auto need = [&](const std::string& name, float** out) -> Status {
    *out = Upload(model, name);
    if (*out == nullptr) {
      return Status(StatusCode::kResourceExhausted,
                    "cannot place tensor '" + name + "' on " + backend_->name());
    }
    return Status();
  };
  PKM_RETURN_IF_ERROR(need("tok_embeddings.weight", &tok_embeddings_));
  PKM_RETURN_IF_ERROR(need("norm.weight", &final_norm_w_));
  PKM_RETURN_IF_ERROR(need("norm.bias", &final_norm_b_));
  if (c.tie_embeddings) {
    lm_head_ = tok_embeddings_;
  } else {
    PKM_RETURN_IF_ERROR(need("lm_head.weight", &lm_head_));
  }
  layers_.resize(c.n_layers);
  for (int i = 0; i < c.n_layers; ++i) {
    LayerWeights& w = layers_[i];
    const std::string p = "layers." + std::to_string(i) + ".";
    PKM_RETURN_IF_ERROR(need(p + "attn_norm.weight", &w.attn_norm_w));
    PKM_RETURN_IF_ERROR(need(p + "attn_norm.bias", &w.attn_norm_b));
    PKM_RETURN_IF_ERROR(need(p + "attn.wq.weight", &w.wq));
    PKM_RETURN_IF_ERROR(need(p + "attn.wq.bias", &w.bq));
    PKM_RETURN_IF_ERROR(need(p + "attn.wk.weight", &w.wk));
    PKM_RETURN_IF_ERROR(need(p + "attn.wk.bias", &w.bk));
    PKM_RETURN_IF_ERROR(need(p + "attn.wv.weight", &w.wv));
    PKM_RETURN_IF_ERROR(need(p + "attn.wv.bias", &w.bv));
    PKM_RETURN_IF_ERROR(need(p + "attn.wo.weight", &w.wo));
    PKM_RETURN_IF_ERROR(need(p + "attn.wo.bias", &w.bo));
    PKM_RETURN_IF_ERROR(need(p + "ffn_norm.weight", &w.ffn_norm_w));
    PKM_RETURN_IF_ERROR(need(p + "ffn_norm.bias", &w.ffn_norm_b));
    if (c.HasFfn(i)) {
      PKM_RETURN_IF_ERROR(need(p + "ffn.w1.weight", &w.w1));
      PKM_RETURN_IF_ERROR(need(p + "ffn.w1.bias", &w.b1));
      PKM_RETURN_IF_ERROR(need(p + "ffn.w2.weight", &w.w2));
      PKM_RETURN_IF_ERROR(need(p + "ffn.w2.bias", &w.b2));
    }
    if (c.HasPkm(i)) {
      w.pkm_index = static_cast<int>(
          std::find(c.pkm_layers.begin(), c.pkm_layers.end(), i) - c.pkm_layers.begin());
      PKM_RETURN_IF_ERROR(need(p + "pkm.query.weight", &w.pkm_q_w));
      PKM_RETURN_IF_ERROR(need(p + "pkm.query.bias", &w.pkm_q_b));
      PKM_RETURN_IF_ERROR(need(p + "pkm.keys", &w.pkm_keys));
      PKM_RETURN_IF_ERROR(need(p + "pkm.values", &w.pkm_values));
    }
  }
  return Status();
}

void Engine::EnsureScratch() {
  Scratch& s = *scratch_;
  if (s.tokens > 0) return;
  Backend* b = backend_.get();
  const size_t n = kMaxTileTokens, d = config_.d_model;
  const size_t pkm_q = static_cast<size_t>(config_.pkm_heads) * config_.pkm_k_dim;
  const size_t pkm_ids = static_cast<size_t>(config_.pkm_heads) * config_.pkm_knn;
  for (DeviceBuffer* buf : {&s.x, &s.h, &s.q, &s.k, &s.v, &s.att, &s.o, &s.mem}) {
    *buf = DeviceBuffer(b, n * d * sizeof(float));
  }
  s.f = DeviceBuffer(b, n * static_cast<size_t>(config_.d_ff) * sizeof(float));
  s.pq = DeviceBuffer(b, n * pkm_q * sizeof(float));
  s.ids = DeviceBuffer(b, n * pkm_ids * sizeof(int32_t));
  s.pkm_weights = DeviceBuffer(b, n * pkm_ids * sizeof(float));
  for (DeviceBuffer* buf : {&s.token_ids, &s.token_seq, &s.token_pos}) {
    *buf = DeviceBuffer(b, n * sizeof(int32_t));
  }
  s.xr = DeviceBuffer(b, kLogitTile * d * sizeof(float));
  s.logits = DeviceBuffer(b, kLogitTile * static_cast<size_t>(config_.vocab_size) * sizeof(float));
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
  std::vector<int32_t> tokens, token_seq, token_pos;
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
  result->pkm_ids.assign(record ? c.pkm_layers.size() : 0,
                         std::vector<int32_t>(static_cast<size_t>(n) * c.pkm_heads * c.pkm_knn));
  result->pkm_lookup_seconds.assign(options_.time_pkm_lookups ? c.pkm_layers.size() : 0, 0.0);
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
    Forward(tn, max_blocks, result, t0);
    size_t end_row = next_row;
    while (end_row < rows.size() && rows[end_row].token < t0 + tn) ++end_row;
    EmitOutputs(batch, std::span<const OutputRow>(rows).subspan(next_row, end_row - next_row), t0,
                &logits_written, result);
    next_row = end_row;
  }
  b.Synchronize();
  return Status();
}

void Engine::Forward(int n, int max_blocks, StepResult* result, int first_token) {
  const ModelConfig& c = config_;
  Backend& b = *backend_;
  Scratch& s = *scratch_;
  const int d = c.d_model, heads = c.n_heads, hd = d / heads;
  const size_t nd = static_cast<size_t>(n) * d;
  const float theta = static_cast<float>(c.rope_theta);
  const float eps = static_cast<float>(c.norm_eps);
  const int32_t* pos = s.token_pos.as<int32_t>();
  const int32_t* seq = s.token_seq.as<int32_t>();
  const int32_t* tables = s.block_tables.as<int32_t>();

  b.Embedding(tok_embeddings_, d, s.token_ids.as<int32_t>(), n, s.x.f());
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& w = layers_[l];
    b.LayerNorm(s.x.f(), n, d, w.attn_norm_w, w.attn_norm_b, eps, s.h.f());
    b.Linear(s.h.f(), n, d, w.wq, w.bq, d, s.q.f());
    b.Linear(s.h.f(), n, d, w.wk, w.bk, d, s.k.f());
    b.Linear(s.h.f(), n, d, w.wv, w.bv, d, s.v.f());
    b.Rope(s.q.f(), n, heads, hd, pos, theta);
    b.Rope(s.k.f(), n, heads, hd, pos, theta);
    b.KvWrite(s.k.f(), s.v.f(), n, d, KvCache::kBlockSize, tables, max_blocks, seq, pos,
              k_cache_[l].f(), v_cache_[l].f());
    b.PagedAttention(s.q.f(), n, heads, /*kv_heads=*/c.n_heads, hd, k_cache_[l].f(),
                     v_cache_[l].f(), KvCache::kBlockSize, tables, max_blocks, seq, pos, s.att.f());
    b.Linear(s.att.f(), n, d, w.wo, w.bo, d, s.o.f());
    b.Add(s.x.f(), s.o.f(), nd);

    // x = x + (FFN(h) [+ PKM(h)]): the sum in parentheses first, as the reference adds it.
    b.LayerNorm(s.x.f(), n, d, w.ffn_norm_w, w.ffn_norm_b, eps, s.h.f());
    float* branch = nullptr;
    if (w.w1 != nullptr) {
      b.Linear(s.h.f(), n, d, w.w1, w.b1, c.d_ff, s.f.f());
      b.Gelu(s.f.f(), static_cast<size_t>(n) * c.d_ff);
      b.Linear(s.f.f(), n, c.d_ff, w.w2, w.b2, d, s.o.f());
      branch = s.o.f();
    }
    if (w.pkm_index >= 0) {
      PkmForward(w, n, result, first_token);
      if (branch != nullptr) {
        b.Add(branch, s.mem.f(), nd);
      } else {
        branch = s.mem.f();
      }
    }
    b.Add(s.x.f(), branch, nd);
  }
}

void Engine::PkmForward(const LayerWeights& w, int n, StepResult* result, int first_token) {
  const ModelConfig& c = config_;
  Backend& b = *backend_;
  Scratch& s = *scratch_;
  const cpu::PkmShape shape{c.pkm_heads, c.pkm_knn, c.pkm_n_keys, c.pkm_k_dim, c.pkm_v_dim};
  const bool record = options_.record_pkm_lookups;
  const bool track = !pkm_usage_.empty();
  const bool timed = options_.time_pkm_lookups;
  const auto start = std::chrono::steady_clock::now();
  b.Linear(s.h.f(), n, c.d_model, w.pkm_q_w, w.pkm_q_b,
           c.pkm_heads * c.pkm_k_dim, s.pq.f());
  b.PkmLookup(shape, s.pq.f(), n, w.pkm_keys, w.pkm_values, s.mem.f(),
              record || track ? s.ids.as<int32_t>() : nullptr,
              track ? s.pkm_weights.f() : nullptr);
  if (timed) {
    b.Synchronize();
    result->pkm_lookup_seconds[w.pkm_index] +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  const size_t per_token = static_cast<size_t>(c.pkm_heads) * c.pkm_knn;
  if (record) {
    b.CopyToHost(result->pkm_ids[w.pkm_index].data() + first_token * per_token,
                 s.ids.as<int32_t>(), n * per_token * sizeof(int32_t));
  }
  if (track) {
    s.host_pkm_ids.resize(n * per_token);
    s.host_pkm_weights.resize(n * per_token);
    b.CopyToHost(s.host_pkm_ids.data(), s.ids.as<int32_t>(), n * per_token * sizeof(int32_t));
    b.CopyToHost(s.host_pkm_weights.data(), s.pkm_weights.f(), n * per_token * sizeof(float));
    pkm_usage_[w.pkm_index].Add(s.host_pkm_ids.data(), s.host_pkm_weights.data(), n);
  }
}

std::vector<PkmLayerUsage> Engine::PkmUsage() const {
  std::vector<PkmLayerUsage> usage;
  for (size_t i = 0; i < pkm_usage_.size(); ++i) {
    const PkmUsageWindow& u = pkm_usage_[i];
    usage.push_back({.layer = config_.pkm_layers[i],
                     .coverage = u.Coverage(),
                     .kl_to_uniform = u.KlToUniform(),
                     .window_tokens = u.tokens()});
  }
  return usage;
}

void Engine::EmitOutputs(std::span<const SeqChunk> batch, std::span<const OutputRow> rows,
                         int first_token, size_t* logits_written, StepResult* result) {
  const int vocab = config_.vocab_size, d = config_.d_model;
  const float eps = static_cast<float>(config_.norm_eps);
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
    b.LayerNorm(s.xr.f(), static_cast<int>(count), d, final_norm_w_, final_norm_b_, eps, s.xr.f());
    b.Linear(s.xr.f(), static_cast<int>(count), d, lm_head_, nullptr, vocab, s.logits.f());
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
  use.pkm_values = pkm_value_bytes_;
  use.weights = weight_bytes_ - pkm_value_bytes_;
  use.kv_cache = kv_cache_bytes();
  const size_t held = use.weights + use.pkm_values + use.kv_cache;
  const size_t allocated = backend_->allocated_bytes();
  use.workspace = allocated > held ? allocated - held : 0;
  return use;
}

size_t Engine::kv_cache_bytes() const {
  return 2 * kv_.floats_per_layer() * sizeof(float) * static_cast<size_t>(config_.n_layers);
}

}  // namespace pkm
