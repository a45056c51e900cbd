#include "model_loader/tensor_specs.h"

#include <initializer_list>
#include <set>

namespace pkm {
namespace {

std::string Eq(const std::string& name, int64_t value) {
  return name + "=" + std::to_string(value);
}

// "(a, b, c)". Built by appending: GCC 12 warns falsely (-Wrestrict, PR 105651) on
// "literal" + std::string&&.
std::string Parens(std::initializer_list<std::string> parts) {
  std::string s = "(";
  for (const std::string& part : parts) {
    if (s.size() > 1) s += ", ";
    s += part;
  }
  return s += ")";
}

class SpecList {
 public:
  explicit SpecList(const ModelConfig& c) : dtype_(c.dtype) {}
  void Add(std::string name, std::vector<int64_t> shape, std::string origin) {
    specs_.push_back({std::move(name), std::move(shape), std::move(origin), dtype_});
  }
  // A weight and, when `bias`, its bias of `rows`.
  void Linear(const std::string& name, int64_t rows, int64_t cols, const std::string& origin,
              bool bias) {
    Add(name + ".weight", {rows, cols}, origin);
    if (bias) Add(name + ".bias", {rows}, origin);
  }
  void Norm(const std::string& name, int64_t d, const std::string& origin, bool bias) {
    Add(name + ".weight", {d}, origin);
    if (bias) Add(name + ".bias", {d}, origin);
  }
  void AddTable(const std::string& name, std::vector<int64_t> shape, std::string origin,
                std::string dtype) {
    specs_.push_back({name, std::move(shape), std::move(origin), std::move(dtype)});
  }
  std::vector<TensorSpec> Take() { return std::move(specs_); }

 private:
  std::string dtype_;
  std::vector<TensorSpec> specs_;
};

void AddMemory(const ModelConfig& c, size_t index, std::set<std::string>* tables, SpecList* out) {
  const MemorySpec& m = c.memories[index];
  const std::string p = m.prefix();
  const std::string f = "memories[" + std::to_string(index) + "].";
  const int64_t d = c.d_model, q = int64_t{m.heads} * m.k_dim;
  const std::string heads_x_kdim = Eq(f + "heads", m.heads) + " x " + Eq(f + "k_dim", m.k_dim);
  out->Linear(p + "query", q, d, Parens({heads_x_kdim, Eq("d_model", d)}), m.query_bias);
  if (m.query_norm == QueryNorm::kLayerNorm) {
    out->Norm(p + "query_norm", m.k_dim / 2,
              Parens({Eq(f + "k_dim", m.k_dim) + " -> " + std::to_string(m.k_dim / 2) + " per half",
                      "query_norm layernorm"}),
              true);
  }
  out->Add(p + "keys", {m.heads, 2, m.n_keys, m.k_dim / 2},
           Parens({Eq(f + "heads", m.heads), "2 halves", Eq(f + "n_keys", m.n_keys),
                   Eq(f + "k_dim", m.k_dim) + " -> " + std::to_string(m.k_dim / 2) + " per half"}));
  if (tables->insert(m.values).second) {
    out->AddTable(m.values, {m.slots(), m.v_dim},
                  Parens({Eq(f + "n_keys", m.n_keys) + " -> " + std::to_string(m.slots()) + " slots",
                          Eq(f + "v_dim", m.v_dim)}),
                  m.values_dtype);
  }
  if (m.output == MemoryOutput::kMemoryPlus) {
    const std::string origin = Parens({Eq(f + "v_dim", m.v_dim), Eq("d_model", d), "memory_plus"});
    out->Linear(p + "swilu", m.v_dim, d, origin, m.output_bias);
    out->Linear(p + "value_proj", d, m.v_dim, origin, m.output_bias);
  }
}

}  // namespace

std::vector<TensorSpec> ExpectedTensors(const ModelConfig& c) {
  const int64_t d = c.d_model;
  const AttentionSpec& a = c.attention;
  const bool norm_bias = c.norm.bias;
  const std::string by_d = Parens({Eq("d_model", d)});
  SpecList out(c);
  std::set<std::string> tables;

  out.Add("tok_embeddings.weight", {c.vocab_size, d},
          Parens({Eq("vocab_size", c.vocab_size), Eq("d_model", d)}));
  if (c.positions.kind == PositionKind::kLearned) {
    out.Add("pos_embeddings.weight", {c.positions.max_positions, d},
            Parens({Eq("positions.max_positions", c.positions.max_positions), Eq("d_model", d)}));
  }
  if (c.embedding_norm) out.Norm("emb_norm", d, by_d, norm_bias);
  const int64_t q_rows = int64_t{a.n_heads} * a.head_dim, kv_rows = int64_t{a.n_kv_heads} * a.head_dim;
  const std::string q_origin = Parens({Eq("attention.n_heads", a.n_heads) + " x " +
                                           Eq("attention.head_dim", a.head_dim),
                                       Eq("d_model", d)});
  const std::string kv_origin = Parens({Eq("attention.n_kv_heads", a.n_kv_heads) + " x " +
                                            Eq("attention.head_dim", a.head_dim),
                                        Eq("d_model", d)});
  const std::string ffn_origin = Parens({Eq("ffn.hidden", c.ffn.hidden), Eq("d_model", d)});
  for (int i = 0; i < c.n_layers; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    out.Norm(p + "attn_norm", d, by_d, norm_bias);
    out.Linear(p + "attn.wq", q_rows, d, q_origin, a.bias);
    out.Linear(p + "attn.wk", kv_rows, d, kv_origin, a.bias);
    out.Linear(p + "attn.wv", kv_rows, d, kv_origin, a.bias);
    out.Linear(p + "attn.wo", d, q_rows, q_origin, a.bias);
    out.Norm(p + "ffn_norm", d, by_d, norm_bias);
    if (c.HasFfn(i)) {
      out.Linear(p + "ffn.w1", c.ffn.hidden, d, ffn_origin, c.ffn.bias);
      out.Linear(p + "ffn.w2", d, c.ffn.hidden, ffn_origin, c.ffn.bias);
      if (c.ffn.kind == FfnKind::kSwiglu) {
        out.Linear(p + "ffn.w3", c.ffn.hidden, d, ffn_origin, c.ffn.bias);
      }
    }
    for (size_t m = 0; m < c.memories.size(); ++m) {
      if (c.memories[m].layer == i && c.memories[m].placement != MemoryPlacement::kAfter) {
        AddMemory(c, m, &tables, &out);
      }
    }
    for (size_t m = 0; m < c.memories.size(); ++m) {
      if (c.memories[m].layer == i && c.memories[m].placement == MemoryPlacement::kAfter) {
        AddMemory(c, m, &tables, &out);
      }
    }
  }
  if (c.final_norm) out.Norm("norm", d, by_d, norm_bias);
  if (!c.lm_head.tied) {
    out.Add("lm_head.weight", {c.vocab_size, d},
            Parens({Eq("vocab_size", c.vocab_size), Eq("d_model", d), "lm_head.tied is false"}));
  }
  if (c.lm_head.bias) out.Add("lm_head.bias", {c.vocab_size}, Parens({Eq("vocab_size", c.vocab_size)}));
  return out.Take();
}

std::string ValueTableNameClash(const ModelConfig& c) {
  std::set<std::string> tables;
  for (const MemorySpec& m : c.memories) tables.insert(m.values);
  for (const TensorSpec& s : ExpectedTensors(c)) {
    // A table's own entry has its values_dtype and n_keys² rows; any other with its name clashes.
    if (tables.count(s.name) == 0) continue;
    bool is_table = false;
    for (const MemorySpec& m : c.memories) {
      is_table |= m.values == s.name && s.shape == std::vector<int64_t>{m.slots(), m.v_dim} &&
                  s.dtype == m.values_dtype;
    }
    if (!is_table) return s.name;
  }
  return "";
}

}  // namespace pkm
