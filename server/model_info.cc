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
  info.set_n_heads(c.n_heads);
  info.set_max_seq_len(c.max_seq_len);
  info.set_bos_id(c.bos_id);
  info.set_eos_id(c.eos_id);
  for (int layer : c.pkm_layers) {
    pkmserve::v1::PkmLayerInfo* p = info.add_pkm_layers();
    p->set_layer(layer);
    p->set_mode(c.pkm_mode);
    p->set_heads(c.pkm_heads);
    p->set_knn(c.pkm_knn);
    p->set_n_keys(c.pkm_n_keys);
    p->set_k_dim(c.pkm_k_dim);
    p->set_slots(c.pkm_slots());
  }
  info.set_parameter_count(model.parameter_count());
  info.set_device(settings.device);
  info.set_weight_dtype(c.dtype);
  info.set_compute_dtype("float32");
  info.set_weight_bytes(engine.weight_bytes());
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
