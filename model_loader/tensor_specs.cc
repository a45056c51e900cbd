#include "model_loader/tensor_specs.h"

#include <initializer_list>

namespace pkm {
namespace {

std::string Eq(const char* name, int64_t value) {
  return std::string(name) + "=" + std::to_string(value);
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

}  // namespace

std::vector<TensorSpec> ExpectedTensors(const ModelConfig& c) {
  const int64_t d = c.d_model;
  const std::string by_d = Parens({Eq("d_model", d)});
  std::vector<TensorSpec> specs;
  auto add = [&specs](std::string name, std::vector<int64_t> shape, std::string origin) {
    specs.push_back({std::move(name), std::move(shape), std::move(origin)});
  };

  add("tok_embeddings.weight", {c.vocab_size, d},
      Parens({Eq("vocab_size", c.vocab_size), Eq("d_model", d)}));
  for (int i = 0; i < c.n_layers; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    add(p + "attn_norm.weight", {d}, by_d);
    add(p + "attn_norm.bias", {d}, by_d);
    for (const char* w : {"wq", "wk", "wv", "wo"}) {
      add(p + "attn." + w + ".weight", {d, d}, by_d);
      add(p + "attn." + w + ".bias", {d}, by_d);
    }
    add(p + "ffn_norm.weight", {d}, by_d);
    add(p + "ffn_norm.bias", {d}, by_d);
    if (c.HasFfn(i)) {
      const std::string by_ff = Parens({Eq("d_ff", c.d_ff), Eq("d_model", d)});
      add(p + "ffn.w1.weight", {c.d_ff, d}, by_ff);
      add(p + "ffn.w1.bias", {c.d_ff}, Parens({Eq("d_ff", c.d_ff)}));
      add(p + "ffn.w2.weight", {d, c.d_ff}, by_ff);
      add(p + "ffn.w2.bias", {d}, by_d);
    }
    if (c.HasPkm(i)) {
      const int64_t q = int64_t{c.pkm_heads} * c.pkm_k_dim;
      const std::string heads_x_kdim =
          Eq("pkm_heads", c.pkm_heads) + " x " + Eq("pkm_k_dim", c.pkm_k_dim);
      add(p + "pkm.query.weight", {q, d}, Parens({heads_x_kdim, Eq("d_model", d)}));
      add(p + "pkm.query.bias", {q}, Parens({heads_x_kdim}));
      add(p + "pkm.keys", {c.pkm_heads, 2, c.pkm_n_keys, c.pkm_k_dim / 2},
          Parens({Eq("pkm_heads", c.pkm_heads), "2 halves", Eq("pkm_n_keys", c.pkm_n_keys),
                  Eq("pkm_k_dim", c.pkm_k_dim) + " -> " + std::to_string(c.pkm_k_dim / 2) +
                      " per half"}));
      add(p + "pkm.values", {c.pkm_slots(), c.pkm_v_dim},
          Parens(
              {Eq("pkm_n_keys", c.pkm_n_keys) + " -> " + std::to_string(c.pkm_slots()) + " slots",
               Eq("pkm_v_dim", c.pkm_v_dim)}));
    }
  }
  add("norm.weight", {d}, by_d);
  add("norm.bias", {d}, by_d);
  if (!c.tie_embeddings) {
    add("lm_head.weight", {c.vocab_size, d},
        Parens({Eq("vocab_size", c.vocab_size), Eq("d_model", d), "tie_embeddings is false"}));
  }
  return specs;
}

}  // namespace pkm
