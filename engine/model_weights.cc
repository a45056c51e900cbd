#include "engine/model_weights.h"

#include <cstdint>
#include <map>
#include <utility>

#include "engine/weight_conversion.h"
#include "model_loader/dtype.h"

namespace pkm {
namespace {

bool ReadableType(DType d, WeightType* out) {
  switch (d) {
    case DType::kF32: *out = WeightType::kF32; return true;
    case DType::kF16: *out = WeightType::kF16; return true;
    case DType::kBF16: *out = WeightType::kBF16; return true;
    default: return false;
  }
}

WeightType TypeOf(WeightsHeld held, WeightType stored) {
  switch (held) {
    case WeightsHeld::kAsStored: return stored;
    case WeightsHeld::kF32: return WeightType::kF32;
    case WeightsHeld::kF16: return WeightType::kF16;
    case WeightsHeld::kBF16: return WeightType::kBF16;
    case WeightsHeld::kI8: return WeightType::kI8;
  }
  return WeightType::kF32;
}

class Uploader {
 public:
  Uploader(const LoadedModel& model, Backend* backend, const HeldTypes& held, ModelWeights* out)
      : model_(model), backend_(backend), held_(held), out_(out) {}

  // A weight matrix (or, `value_table`, a PKM value table) in the type asked for when the
  // backend reads it, else fp32 (see the header); empty when the model has no such tensor.
  StatusOr<WeightMatrix> OptionalMatrix(const std::string& name, bool value_table = false) {
    const TensorView* t = model_.FindTensor(name);
    if (t == nullptr) return WeightMatrix();
    WeightType stored = WeightType::kF32;
    const bool readable = ReadableType(t->dtype, &stored);
    WeightType type = TypeOf(value_table ? held_.pkm_values : held_.matrices, stored);
    if (!readable || !(value_table ? backend_->ReadsPkmValueType(type)
                                   : backend_->ReadsWeightType(type))) {
      type = WeightType::kF32;
    }
    const size_t rows = t->shape.empty() ? 1 : static_cast<size_t>(t->shape[0]);
    const size_t bytes = t->numel() * WeightTypeBytes(type);
    out_->bytes_of[static_cast<int>(type)] += bytes;
    if (readable && type == stored) {
      const bool aligned = reinterpret_cast<uintptr_t>(t->data) % WeightTypeBytes(type) == 0;
      if (backend_->AddressesHostMemory() && aligned) {
        out_->bytes += t->nbytes;
        out_->mapped_bytes += t->nbytes;
        return WeightMatrix(t->data, type);
      }
      PKM_ASSIGN_OR_RETURN(const void* p, Place(name, t->data, t->nbytes));
      return WeightMatrix(p, type);
    }
    if (type == WeightType::kF32) {
      PKM_ASSIGN_OR_RETURN(const float* p, Optional(name));
      return WeightMatrix(p);
    }
    // Converted at load, from the fp32 widening.
    std::vector<float> wide(t->numel());
    ToFloat32(*t, wide.data());
    switch (type) {
      case WeightType::kF32:  // placed above
        break;
      case WeightType::kF16:
      case WeightType::kBF16: {
        std::vector<uint16_t> narrow(wide.size());
        for (size_t i = 0; i < wide.size(); ++i) {
          narrow[i] = type == WeightType::kF16 ? FloatToHalf(wide[i]) : FloatToBf16(wide[i]);
        }
        PKM_ASSIGN_OR_RETURN(const void* p, Place(name, narrow.data(), bytes));
        return WeightMatrix(p, type);
      }
      case WeightType::kI8: {
        const Int8Rows q = QuantizeRowsInt8(wide.data(), rows, wide.size() / rows);
        PKM_ASSIGN_OR_RETURN(const void* p, Place(name, q.q.data(), bytes));
        PKM_ASSIGN_OR_RETURN(const void* scales,
                             Place(name + " scales", q.scales.data(), rows * sizeof(float)));
        return WeightMatrix(p, type, static_cast<const float*>(scales));
      }
    }
    return Status(StatusCode::kInternal, "tensor '" + name + "': no such weight type");
  }
  StatusOr<WeightMatrix> NeedMatrix(const std::string& name, bool value_table = false) {
    PKM_ASSIGN_OR_RETURN(WeightMatrix m, OptionalMatrix(name, value_table));
    if (!m) return Status(StatusCode::kInternal, "tensor '" + name + "' is missing");
    return m;
  }

  // The tensor on the device, widened to fp32; null when the model has no such tensor (an
  // optional one).
  StatusOr<const float*> Optional(const std::string& name) {
    const TensorView* t = model_.FindTensor(name);
    if (t == nullptr) return static_cast<const float*>(nullptr);
    std::vector<float> host(t->numel());
    ToFloat32(*t, host.data());
    PKM_ASSIGN_OR_RETURN(const void* p, Place(name, host.data(), host.size() * sizeof(float)));
    return static_cast<const float*>(p);
  }
  // A tensor the loader checked is present.
  StatusOr<const float*> Need(const std::string& name) {
    PKM_ASSIGN_OR_RETURN(const float* p, Optional(name));
    if (p == nullptr) return Status(StatusCode::kInternal, "tensor '" + name + "' is missing");
    return p;
  }
  StatusOr<LinearWeights> Linear(const std::string& name, int in, int out) {
    LinearWeights w{WeightMatrix(), nullptr, in, out};
    PKM_ASSIGN_OR_RETURN(w.weight, NeedMatrix(name + ".weight"));
    PKM_ASSIGN_OR_RETURN(w.bias, Optional(name + ".bias"));
    return w;
  }
  StatusOr<NormWeights> Norm(const std::string& name) {
    NormWeights w;
    PKM_ASSIGN_OR_RETURN(w.weight, Need(name + ".weight"));
    PKM_ASSIGN_OR_RETURN(w.bias, Optional(name + ".bias"));
    return w;
  }

 private:
  // `bytes` of host memory copied into a new allocation of the backend, owned by out_.
  StatusOr<const void*> Place(const std::string& name, const void* host, size_t bytes) {
    DeviceBuffer buf(backend_, bytes);
    if (!buf) {
      return Status(StatusCode::kResourceExhausted,
                    "cannot place tensor '" + name + "' on " + backend_->name());
    }
    backend_->CopyToDevice(buf.as<void>(), host, bytes);
    out_->bytes += buf.bytes();
    const void* p = buf.as<void>();
    out_->buffers.push_back(std::move(buf));
    return p;
  }

  const LoadedModel& model_;
  Backend* backend_;
  HeldTypes held_;
  ModelWeights* out_;
};

}  // namespace

bool ParseWeightsHeld(std::string_view text, WeightsHeld* out) {
  static constexpr std::pair<std::string_view, WeightsHeld> kNames[] = {
      {"as-stored", WeightsHeld::kAsStored}, {"f32", WeightsHeld::kF32},
      {"f16", WeightsHeld::kF16}, {"bf16", WeightsHeld::kBF16}, {"int8", WeightsHeld::kI8}};
  for (const auto& [name, held] : kNames) {
    if (text == name) {
      *out = held;
      return true;
    }
  }
  return false;
}

std::string HeldTypeNames(const ModelWeights& weights) {
  std::string types;
  for (WeightType t : {WeightType::kI8, WeightType::kF16, WeightType::kBF16, WeightType::kF32}) {
    if (weights.bytes_of[static_cast<int>(t)] == 0) continue;
    if (!types.empty()) types += "+";
    types += WeightTypeName(t);
  }
  return types;
}

StatusOr<ModelWeights> UploadModelWeights(const LoadedModel& model, const ModelConfig& c,
                                          Backend* backend, const HeldTypes& held) {
  ModelWeights w;
  Uploader up(model, backend, held, &w);
  const int d = c.d_model;
  const AttentionSpec& a = c.attention;
  PKM_ASSIGN_OR_RETURN(w.tok_embeddings, up.NeedMatrix("tok_embeddings.weight"));
  if (c.positions.kind == PositionKind::kLearned) {
    PKM_ASSIGN_OR_RETURN(w.pos_embeddings, up.NeedMatrix("pos_embeddings.weight"));
  }
  if (c.embedding_norm) {
    PKM_ASSIGN_OR_RETURN(w.emb_norm, up.Norm("emb_norm"));
  }

  std::map<std::string, WeightMatrix> tables;
  for (size_t i = 0; i < c.memories.size(); ++i) {
    const MemorySpec& m = c.memories[i];
    const std::string p = m.prefix();
    MemoryWeights mw;
    mw.spec = &m;
    mw.index = static_cast<int>(i);
    PKM_ASSIGN_OR_RETURN(mw.query, up.Linear(p + "query", d, m.heads * m.k_dim));
    if (m.query_norm == QueryNorm::kLayerNorm) {
      PKM_ASSIGN_OR_RETURN(mw.query_norm, up.Norm(p + "query_norm"));
    }
    PKM_ASSIGN_OR_RETURN(mw.keys, up.Need(p + "keys"));
    if (auto it = tables.find(m.values); it != tables.end()) {
      mw.values = it->second;
    } else {
      const size_t before = w.bytes;
      PKM_ASSIGN_OR_RETURN(mw.values, up.NeedMatrix(m.values, /*value_table=*/true));
      w.value_table_bytes += w.bytes - before;
      tables[m.values] = mw.values;
    }
    if (m.output == MemoryOutput::kMemoryPlus) {
      PKM_ASSIGN_OR_RETURN(mw.swilu, up.Linear(p + "swilu", d, m.v_dim));
      PKM_ASSIGN_OR_RETURN(mw.value_proj, up.Linear(p + "value_proj", m.v_dim, d));
    }
    w.memories.push_back(mw);
  }

  w.blocks.resize(c.n_layers);
  for (int i = 0; i < c.n_layers; ++i) {
    BlockWeights& b = w.blocks[i];
    const std::string p = "layers." + std::to_string(i) + ".";
    PKM_ASSIGN_OR_RETURN(b.attn_norm, up.Norm(p + "attn_norm"));
    PKM_ASSIGN_OR_RETURN(b.attn.q, up.Linear(p + "attn.wq", d, a.n_heads * a.head_dim));
    PKM_ASSIGN_OR_RETURN(b.attn.k, up.Linear(p + "attn.wk", d, a.n_kv_heads * a.head_dim));
    PKM_ASSIGN_OR_RETURN(b.attn.v, up.Linear(p + "attn.wv", d, a.n_kv_heads * a.head_dim));
    PKM_ASSIGN_OR_RETURN(b.attn.o, up.Linear(p + "attn.wo", a.n_heads * a.head_dim, d));
    PKM_ASSIGN_OR_RETURN(b.ffn_norm, up.Norm(p + "ffn_norm"));
    b.has_ffn = c.HasFfn(i);
    if (b.has_ffn) {
      PKM_ASSIGN_OR_RETURN(b.ffn.w1, up.Linear(p + "ffn.w1", d, c.ffn.hidden));
      PKM_ASSIGN_OR_RETURN(b.ffn.w2, up.Linear(p + "ffn.w2", c.ffn.hidden, d));
      if (c.ffn.kind == FfnKind::kSwiglu) {
        PKM_ASSIGN_OR_RETURN(b.ffn.w3, up.Linear(p + "ffn.w3", d, c.ffn.hidden));
      }
    }
    for (const MemoryWeights& mw : w.memories) {
      if (mw.spec->layer != i) continue;
      (mw.spec->placement == MemoryPlacement::kAfter ? b.after_memory : b.block_memory) = mw.index;
    }
  }
  if (c.final_norm) {
    PKM_ASSIGN_OR_RETURN(w.final_norm, up.Norm("norm"));
  }
  w.lm_head = {w.tok_embeddings, nullptr, d, c.vocab_size};
  if (!c.lm_head.tied) {
    PKM_ASSIGN_OR_RETURN(w.lm_head.weight, up.NeedMatrix("lm_head.weight"));
  }
  PKM_ASSIGN_OR_RETURN(w.lm_head.bias, up.Optional("lm_head.bias"));
  return w;
}

}  // namespace pkm
