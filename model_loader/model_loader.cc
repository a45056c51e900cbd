#include "model_loader/model_loader.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <unordered_set>

#include "model_loader/file_util.h"
#include "model_loader/tensor_specs.h"

namespace pkm {
namespace {

constexpr char kReexport[] = "re-export with training/export.py";

// Why a tensor the spec does not list might be in the file, when we can tell.
std::string UnexpectedHint(const ModelConfig& c, const std::string& name) {
  if (name == "lm_head.weight" && c.lm_head.tied) {
    return c.format_version == 1
               ? " (tie_embeddings is true: the LM head is tok_embeddings.weight)"
               : " (lm_head.tied is true: the LM head is tok_embeddings.weight)";
  }
  for (int i = 0; i < c.n_layers; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    if (name.rfind(p + "ffn.", 0) == 0 && !c.HasFfn(i)) {
      return " (layer " + std::to_string(i) + " has a memory in replace mode, so no FFN)";
    }
    if (name.rfind(p + "pkm.", 0) == 0 && c.BlockMemory(i) == nullptr) {
      return c.format_version == 1
                 ? " (layer " + std::to_string(i) + " is not in pkm_layers)"
                 : " (no memory inside block " + std::to_string(i) + " in config.json)";
    }
    if (name.rfind(p + "pkm_after.", 0) == 0 && c.AfterMemory(i) == nullptr) {
      return " (no memory after block " + std::to_string(i) + " in config.json)";
    }
  }
  return "";
}

std::string Quoted(const std::vector<std::string>& names, size_t max_names) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < max_names; ++i) {
    s += (i > 0 ? ", '" : "'") + names[i] + "'";
  }
  if (names.size() > max_names) s += " and " + std::to_string(names.size() - max_names) + " more";
  return s;
}

// "12.3 MB" / "10.65M": human sizes for the summary.
std::string Human(double value, const char* unit) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.2f%s", value, unit);
  return buf;
}

}  // namespace

Status ValidateTensors(const ModelConfig& config, const SafetensorsFile& weights) {
  const std::string& path = weights.path();
  const std::vector<TensorSpec> specs = ExpectedTensors(config);

  std::vector<std::string> missing;
  for (const TensorSpec& spec : specs) {
    if (weights.Find(spec.name) == nullptr) missing.push_back(spec.name);
  }
  if (!missing.empty()) {
    const TensorSpec& first = *std::find_if(
        specs.begin(), specs.end(), [&](const TensorSpec& s) { return s.name == missing.front(); });
    return InvalidArgumentError(
        path + ": missing tensor '" + first.name + "' of shape " + ShapeToString(first.shape) +
        " " + first.origin +
        (missing.size() > 1 ? "; also missing: " + Quoted({missing.begin() + 1, missing.end()}, 8)
                            : "") +
        "; " + kReexport);
  }

  for (const TensorSpec& spec : specs) {
    const DType dtype = *DTypeFromConfigName(spec.dtype);
    const TensorView& t = *weights.Find(spec.name);
    if (t.shape != spec.shape) {
      return InvalidArgumentError(path + ": tensor '" + spec.name + "' has shape " +
                                  ShapeToString(t.shape) + ", expected " +
                                  ShapeToString(spec.shape) + " " + spec.origin + "; " + kReexport);
    }
    if (t.dtype != dtype) {
      return InvalidArgumentError(
          path + ": tensor '" + spec.name + "' has dtype " + std::string(DTypeName(t.dtype)) +
          ", expected " + std::string(DTypeName(dtype)) + " (config.json dtype \"" + spec.dtype +
          "\"" + (spec.dtype == config.dtype ? "" : ", the table's values_dtype") + "); " + kReexport);
    }
  }

  std::unordered_set<std::string> expected;
  for (const TensorSpec& spec : specs) expected.insert(spec.name);
  for (const TensorView& t : weights.tensors()) {
    if (expected.count(t.name) == 0) {
      return InvalidArgumentError(path + ": unexpected tensor '" + t.name + "'" +
                                  UnexpectedHint(config, t.name) +
                                  "; the format allows no tensor beyond those of "
                                  "docs/model-format.md; " +
                                  kReexport);
    }
  }
  return OkStatus();
}

StatusOr<LoadedModel> LoadModel(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return NotFoundError(dir +
                         ": no such model directory (expected config.json and "
                         "model.safetensors inside, and a tokenizer's files; training/export.py "
                         "writes them)");
  }
  PKM_ASSIGN_OR_RETURN(ModelConfig config,
                       LoadModelConfig(internal_loader::JoinPath(dir, "config.json")));
  PKM_ASSIGN_OR_RETURN(SafetensorsFile weights,
                       SafetensorsFile::Open(internal_loader::JoinPath(dir, "model.safetensors")));
  PKM_RETURN_IF_ERROR(ValidateTensors(config, weights));
  return LoadedModel(dir, std::move(config), std::move(weights));
}

LoadedModel::LoadedModel(std::string dir, ModelConfig config, SafetensorsFile weights)
    : dir_(std::move(dir)), config_(std::move(config)), weights_(std::move(weights)) {}

int64_t LoadedModel::parameter_count() const {
  int64_t n = 0;
  for (const TensorView& t : tensors()) n += static_cast<int64_t>(t.numel());
  return n;
}

size_t LoadedModel::weight_bytes() const {
  size_t n = 0;
  for (const TensorView& t : tensors()) n += t.nbytes;
  return n;
}

std::string LoadedModel::Summary() const {
  const ModelConfig& c = config_;
  const AttentionSpec& a = c.attention;
  std::string memory;
  for (const MemorySpec& m : c.memories) {
    memory += (memory.empty() ? "memories: layer " : "; layer ") + std::to_string(m.layer) + " (" +
              std::string(Name(m.placement)) + " mode): " + std::to_string(m.heads) +
              " heads, knn " + std::to_string(m.knn) + ", " + std::to_string(m.n_keys) +
              "^2 = " + std::to_string(m.slots()) + " slots, k_dim " + std::to_string(m.k_dim) +
              ", v_dim " + std::to_string(m.v_dim) + ", query norm " +
              std::string(Name(m.query_norm)) + ", output " + std::string(Name(m.output)) +
              ", values '" + m.values + "' " + m.values_dtype;
  }
  if (memory.empty()) memory = "no product-key memory";
  const int64_t params = parameter_count();
  const size_t bytes = weight_bytes();
  return dir_ + ": " + c.architecture + " (family " + c.family + ", format " +
         std::to_string(c.format_version) + "), " + std::to_string(c.n_layers) + " layers, d_model " +
         std::to_string(c.d_model) + ", " + std::string(Name(c.norm.kind)) + " " +
         std::string(Name(c.block)) + ", positions " + std::string(Name(c.positions.kind)) + ", " +
         std::to_string(a.n_heads) + " heads (" + std::to_string(a.n_kv_heads) +
         " kv, head_dim " + std::to_string(a.head_dim) + "), " + std::string(Name(c.ffn.kind)) +
         " FFN " + std::to_string(c.ffn.hidden) + ", vocab " + std::to_string(c.vocab_size) +
         ", max_seq_len " + std::to_string(c.max_seq_len) +
         (c.lm_head.tied ? ", tied embeddings; " : ", separate LM head; ") + memory + "; " +
         c.dtype + " weights: " + Human(static_cast<double>(params) / 1e6, "M") + " parameters (" +
         std::to_string(params) + "), " + Human(static_cast<double>(bytes) / 1e6, " MB") + " (" +
         std::to_string(bytes) + " bytes).";
}

}  // namespace pkm
