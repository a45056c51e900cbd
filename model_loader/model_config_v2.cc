// Format 2 of config.json: a model family described by its parts (docs/model-format.md).
#include <nlohmann/json.hpp>

#include "model_loader/json_fields.h"
#include "model_loader/model_config_versions.h"

namespace pkm::internal_loader {
namespace {

Status ReadNorm(JsonFields& f, NormSpec* n) {
  PKM_RETURN_IF_ERROR(f.Choice<NormKind>(
      "kind", {{"layernorm", NormKind::kLayerNorm}, {"rmsnorm", NormKind::kRmsNorm}}, &n->kind));
  PKM_RETURN_IF_ERROR(f.Number("eps", &n->eps));
  PKM_RETURN_IF_ERROR(f.Bool("bias", &n->bias));
  return f.Finish();
}

Status ReadPositions(JsonFields& f, PositionSpec* p) {
  PKM_RETURN_IF_ERROR(f.Choice<PositionKind>("kind",
                                             {{"rope", PositionKind::kRope},
                                              {"learned", PositionKind::kLearned},
                                              {"none", PositionKind::kNone}},
                                             &p->kind));
  if (p->kind == PositionKind::kRope) PKM_RETURN_IF_ERROR(f.Number("theta", &p->rope_theta));
  if (p->kind == PositionKind::kLearned) {
    PKM_RETURN_IF_ERROR(f.Int("max_positions", &p->max_positions));
  }
  return f.Finish();
}

Status ReadAttention(JsonFields& f, AttentionSpec* a) {
  PKM_RETURN_IF_ERROR(f.Int("n_heads", &a->n_heads));
  PKM_RETURN_IF_ERROR(f.Int("n_kv_heads", &a->n_kv_heads));
  PKM_RETURN_IF_ERROR(f.Int("head_dim", &a->head_dim));
  PKM_RETURN_IF_ERROR(f.Bool("bias", &a->bias));
  return f.Finish();
}

Status ReadFfn(JsonFields& f, FfnSpec* ffn) {
  PKM_RETURN_IF_ERROR(f.Choice<FfnKind>("kind",
                                        {{"gelu", FfnKind::kGelu},
                                         {"gelu_tanh", FfnKind::kGeluTanh},
                                         {"relu", FfnKind::kRelu},
                                         {"swiglu", FfnKind::kSwiglu}},
                                        &ffn->kind));
  PKM_RETURN_IF_ERROR(f.Int("hidden", &ffn->hidden));
  PKM_RETURN_IF_ERROR(f.Bool("bias", &ffn->bias));
  return f.Finish();
}

Status ReadLmHead(JsonFields& f, LmHeadSpec* h) {
  PKM_RETURN_IF_ERROR(f.Bool("tied", &h->tied));
  PKM_RETURN_IF_ERROR(f.Bool("bias", &h->bias));
  return f.Finish();
}

Status ReadMemory(JsonFields& f, const std::string& model_dtype, MemorySpec* m) {
  PKM_RETURN_IF_ERROR(f.Int("layer", &m->layer));
  PKM_RETURN_IF_ERROR(f.Choice<MemoryPlacement>("placement",
                                                {{"replace", MemoryPlacement::kReplace},
                                                 {"parallel", MemoryPlacement::kParallel},
                                                 {"after", MemoryPlacement::kAfter}},
                                                &m->placement));
  for (const auto& [name, out] : {std::pair<const char*, int*>{"heads", &m->heads},
                                  {"knn", &m->knn},
                                  {"n_keys", &m->n_keys},
                                  {"k_dim", &m->k_dim},
                                  {"v_dim", &m->v_dim}}) {
    PKM_RETURN_IF_ERROR(f.Int(name, out));
  }
  PKM_RETURN_IF_ERROR(f.Bool("query_bias", &m->query_bias));
  PKM_RETURN_IF_ERROR(f.Choice<QueryNorm>(
      "query_norm", {{"none", QueryNorm::kNone}, {"layernorm", QueryNorm::kLayerNorm}},
      &m->query_norm));
  // Options of one variant are refused on another: a setting that would change nothing is a
  // mistake in the file.
  if (m->query_norm == QueryNorm::kLayerNorm) {
    PKM_RETURN_IF_ERROR(f.OptionalNumber("query_norm_eps", &m->query_norm_eps));
    if (!(m->query_norm_eps > 0)) {
      return f.Error("query_norm_eps", "expected a number > 0, found " + std::to_string(m->query_norm_eps));
    }
  } else if (f.Has("query_norm_eps")) {
    return f.Error("query_norm_eps", "allowed only when query_norm is \"layernorm\"");
  }
  PKM_RETURN_IF_ERROR(f.Choice<MemoryOutput>(
      "output", {{"sum", MemoryOutput::kSum}, {"memory_plus", MemoryOutput::kMemoryPlus}},
      &m->output));
  if (m->output == MemoryOutput::kMemoryPlus) {
    PKM_RETURN_IF_ERROR(f.Bool("output_bias", &m->output_bias));
  } else if (f.Has("output_bias")) {
    return f.Error("output_bias", "allowed only when output is \"memory_plus\"");
  }
  m->values = m->prefix() + "values";
  PKM_RETURN_IF_ERROR(f.OptionalString("values", &m->values));
  m->values_dtype = model_dtype;
  PKM_RETURN_IF_ERROR(f.OptionalString("values_dtype", &m->values_dtype));
  return f.Finish();
}

// Reads the object field `name` with `read`.
template <typename Spec, typename Read>
Status Nested(JsonFields& top, std::string_view name, Spec* spec, Read read) {
  PKM_ASSIGN_OR_RETURN(JsonFields f, top.Object(name));
  return read(f, spec);
}

}  // namespace

StatusOr<ModelConfig> ParseModelConfigV2(const nlohmann::json& j, std::string_view path) {
  ModelConfig c;
  JsonFields top(j, std::string(path), "");
  PKM_RETURN_IF_ERROR(top.Int("format_version", &c.format_version));
  PKM_RETURN_IF_ERROR(top.String("architecture", &c.architecture));
  PKM_RETURN_IF_ERROR(top.String("family", &c.family));
  for (const auto& [name, out] : {std::pair<const char*, int*>{"vocab_size", &c.vocab_size},
                                  {"d_model", &c.d_model},
                                  {"n_layers", &c.n_layers},
                                  {"max_seq_len", &c.max_seq_len},
                                  {"bos_id", &c.bos_id},
                                  {"eos_id", &c.eos_id}}) {
    PKM_RETURN_IF_ERROR(top.Int(name, out));
  }
  PKM_RETURN_IF_ERROR(top.String("dtype", &c.dtype));
  PKM_RETURN_IF_ERROR(Nested(top, "norm", &c.norm, ReadNorm));
  PKM_RETURN_IF_ERROR(top.Choice<BlockOrder>(
      "block", {{"pre_norm", BlockOrder::kPreNorm}, {"post_norm", BlockOrder::kPostNorm}},
      &c.block));
  PKM_RETURN_IF_ERROR(top.OptionalBool("embedding_norm", &c.embedding_norm));
  PKM_RETURN_IF_ERROR(top.OptionalBool("final_norm", &c.final_norm));
  PKM_RETURN_IF_ERROR(Nested(top, "positions", &c.positions, ReadPositions));
  PKM_RETURN_IF_ERROR(Nested(top, "attention", &c.attention, ReadAttention));
  PKM_RETURN_IF_ERROR(Nested(top, "ffn", &c.ffn, ReadFfn));
  PKM_RETURN_IF_ERROR(Nested(top, "lm_head", &c.lm_head, ReadLmHead));
  PKM_ASSIGN_OR_RETURN(const nlohmann::json* memories, top.List("memories"));
  for (size_t i = 0; i < memories->size(); ++i) {
    const std::string prefix = "memories[" + std::to_string(i) + "].";
    if (!(*memories)[i].is_object()) {
      return top.Error("memories[" + std::to_string(i) + "]",
                       "expected an object, found " + DescribeJson((*memories)[i]));
    }
    JsonFields f((*memories)[i], std::string(path), prefix);
    c.memories.emplace_back();
    PKM_RETURN_IF_ERROR(ReadMemory(f, c.dtype, &c.memories.back()));
  }
  PKM_RETURN_IF_ERROR(top.Finish());
  return c;
}

}  // namespace pkm::internal_loader
