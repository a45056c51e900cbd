#include "server/model_info.h"

#include <filesystem>

#include "common/version.h"

namespace pkm {

pkmserve::v1::ModelInfo DescribeModel(const LoadedModel& model, const Engine& engine,
                                      const ServerSettings& settings) {
  const ModelConfig& c = model.config();
  pkmserve::v1::ModelInfo info;
  std::filesystem::path dir(model.dir());
  info.set_name((dir.has_filename() ? dir : dir.parent_path()).filename().string());
  info.set_path(std::filesystem::absolute(dir).lexically_normal().string());
  info.set_vocab_size(c.vocab_size);
  info.set_d_model(c.d_model);
  info.set_n_layers(c.n_layers);
  info.set_n_heads(c.n_heads());
  info.set_max_seq_len(c.max_seq_len);
  info.set_bos_id(c.bos_id);
  info.set_eos_id(c.eos_id);
  for (const MemorySpec& m : c.memories) {
    pkmserve::v1::PkmLayerInfo* p = info.add_pkm_layers();
    p->set_layer(m.layer);
    p->set_mode(std::string(Name(m.placement)));
    p->set_heads(m.heads);
    p->set_knn(m.knn);
    p->set_n_keys(m.n_keys);
    p->set_k_dim(m.k_dim);
    p->set_slots(m.slots());
    p->set_v_dim(m.v_dim);
    p->set_query_norm(std::string(Name(m.query_norm)));
    p->set_output(std::string(Name(m.output)));
    p->set_values(m.values);
    p->set_values_dtype(m.values_dtype);
  }
  info.set_family(c.family);
  info.set_norm(std::string(Name(c.norm.kind)));
  info.set_block(std::string(Name(c.block)));
  info.set_positions(std::string(Name(c.positions.kind)));
  info.set_ffn(std::string(Name(c.ffn.kind)));
  info.set_ffn_hidden(c.ffn.hidden);
  info.set_n_kv_heads(c.attention.n_kv_heads);
  info.set_head_dim(c.head_dim());
  info.set_tied_embeddings(c.lm_head.tied);
  info.set_parameter_count(model.parameter_count());
  info.set_device(settings.device);
  info.set_weight_dtype(c.dtype);
  info.set_compute_dtype("float32");
  info.set_weight_bytes(engine.weight_bytes());
  info.set_held_dtype(HeldTypeNames(engine.weights()));
  info.set_mapped_weight_bytes(engine.weights().mapped_bytes);
  info.set_server_version(VersionLine());
  pkmserve::v1::ServerLimits* limits = info.mutable_limits();
  const int seq_room = c.max_seq_len - 1;
  limits->set_max_prompt_tokens(static_cast<uint32_t>(
      settings.limits.max_prompt_tokens > 0 ? settings.limits.max_prompt_tokens : seq_room));
  limits->set_max_new_tokens(static_cast<uint32_t>(
      settings.limits.max_new_tokens > 0 ? settings.limits.max_new_tokens : seq_room));
  limits->set_max_batch_tokens(static_cast<uint32_t>(settings.scheduler.max_batch_tokens));
  limits->set_max_queue(static_cast<uint32_t>(settings.scheduler.max_queue));
  limits->set_kv_cache_bytes(engine.kv_cache_bytes());
  limits->set_kv_cache_tokens(
      static_cast<uint32_t>(engine.kv_cache().num_blocks() * KvCache::kBlockSize));
  return info;
}

}  // namespace pkm
