#include "tests/model_loader/test_model_writer.h"

#include <stdlib.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

namespace pkm::testing {
namespace {

void Fail(const std::string& why) {
  std::fprintf(stderr, "test_model_writer: %s\n", why.c_str());
  std::abort();
}

size_t Numel(const std::vector<int64_t>& shape) {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

template <typename T>
void Append(std::string* out, T v) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &v, sizeof(T));
  out->append(bytes, sizeof(T));
}

std::string Encode(const TestTensor& t) {
  std::string out;
  for (float v : t.values) {
    switch (t.dtype) {
      case DType::kF32:
        Append(&out, v);
        break;
      case DType::kF16:
        Append(&out, FloatToHalf(v));
        break;
      case DType::kBF16:
        Append(&out, FloatToBFloat16(v));
        break;
      case DType::kI32:
        Append(&out, static_cast<int32_t>(v));
        break;
      case DType::kI64:
        Append(&out, static_cast<int64_t>(v));
        break;
    }
  }
  return out;
}

}  // namespace

TempDir::TempDir() {
  std::string templ = (std::filesystem::temp_directory_path() / "pkm_test_XXXXXX").string();
  if (::mkdtemp(templ.data()) == nullptr) Fail("mkdtemp failed for " + templ);
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::Join(std::string_view name) const { return path_ + "/" + std::string(name); }

TestTensor RandomTensor(DType dtype, std::vector<int64_t> shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  TestTensor t{dtype, std::move(shape), {}};
  t.values.resize(Numel(t.shape));
  for (float& v : t.values) v = dist(rng);
  return t;
}

TestModel TestModel::Tiny(uint32_t seed) {
  TestModel m;
  m.config = {
      {"format_version", 1},
      {"architecture", "pkm-transformer"},
      {"vocab_size", 32},
      {"d_model", 16},
      {"n_layers", 2},
      {"n_heads", 2},
      {"d_ff", 32},
      {"max_seq_len", 64},
      {"rope_theta", 10000.0},
      {"norm_eps", 1e-5},
      {"tie_embeddings", true},
      {"bos_id", 1},
      {"eos_id", 2},
      {"pkm_layers", {1}},
      {"pkm_mode", "replace"},
      {"pkm_heads", 2},
      {"pkm_knn", 2},
      {"pkm_n_keys", 4},
      {"pkm_k_dim", 8},
      {"pkm_v_dim", 16},
      {"dtype", "float32"},
  };
  m.RebuildTensors(seed);
  return m;
}

void TestModel::RebuildTensors(uint32_t seed) {
  const nlohmann::json& c = config;
  const std::optional<DType> dtype = DTypeFromConfigName(c.at("dtype").get<std::string>());
  if (!dtype) Fail("config dtype is not a float type");
  const int64_t vocab = c.at("vocab_size"), d = c.at("d_model"), d_ff = c.at("d_ff");
  const int64_t heads = c.at("pkm_heads"), n_keys = c.at("pkm_n_keys");
  const int64_t k_dim = c.at("pkm_k_dim"), v_dim = c.at("pkm_v_dim");
  const std::vector<int> pkm_layers = c.at("pkm_layers");
  const bool parallel = c.at("pkm_mode") == "parallel";

  tensors.clear();
  uint32_t next_seed = seed;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    tensors[name] = RandomTensor(*dtype, std::move(shape), next_seed++);
  };
  add("tok_embeddings.weight", {vocab, d});
  for (int i = 0; i < c.at("n_layers").get<int>(); ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    const bool has_pkm = std::find(pkm_layers.begin(), pkm_layers.end(), i) != pkm_layers.end();
    add(p + "attn_norm.weight", {d});
    add(p + "attn_norm.bias", {d});
    for (const char* w : {"wq", "wk", "wv", "wo"}) {
      add(p + "attn." + w + ".weight", {d, d});
      add(p + "attn." + w + ".bias", {d});
    }
    add(p + "ffn_norm.weight", {d});
    add(p + "ffn_norm.bias", {d});
    if (!has_pkm || parallel) {
      add(p + "ffn.w1.weight", {d_ff, d});
      add(p + "ffn.w1.bias", {d_ff});
      add(p + "ffn.w2.weight", {d, d_ff});
      add(p + "ffn.w2.bias", {d});
    }
    if (has_pkm) {
      add(p + "pkm.query.weight", {heads * k_dim, d});
      add(p + "pkm.query.bias", {heads * k_dim});
      add(p + "pkm.keys", {heads, 2, n_keys, k_dim / 2});
      add(p + "pkm.values", {n_keys * n_keys, v_dim});
    }
  }
  add("norm.weight", {d});
  add("norm.bias", {d});
  if (!c.at("tie_embeddings").get<bool>()) add("lm_head.weight", {vocab, d});
}

void TestModel::Write(const std::string& dir) const {
  WriteFile(dir + "/config.json", config.dump(2));
  WriteSafetensors(dir + "/model.safetensors", tensors, metadata);
}

void WriteSafetensors(const std::string& path, const std::map<std::string, TestTensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string data;
  for (const auto& [name, t] : tensors) {
    if (t.values.size() != Numel(t.shape)) Fail("tensor " + name + ": values do not fit shape");
    const std::string bytes = Encode(t);
    header[name] = {{"dtype", std::string(DTypeName(t.dtype))},
                    {"shape", t.shape},
                    {"data_offsets", {data.size(), data.size() + bytes.size()}}};
    data += bytes;
  }
  std::string text = header.dump();
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');
  WriteRawSafetensors(path, text, data);
}

void WriteRawSafetensors(const std::string& path, std::string_view header, std::string_view data,
                         std::optional<uint64_t> header_len) {
  std::string bytes;
  Append(&bytes, header_len.value_or(header.size()));
  bytes.append(header);
  bytes.append(data);
  WriteFile(path, bytes);
}

void WriteFile(const std::string& path, std::string_view contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  if (!out) Fail("cannot write " + path);
}

uint16_t FloatToHalf(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const auto sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t abs = x & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520: inf
  if (abs < 0x38800000u) {  // below 2^-14: a subnormal half, in units of 2^-24
    const float scaled = std::bit_cast<float>(abs) * 16777216.0f;
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(std::nearbyint(scaled)));
  }
  const uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);  // to nearest even, 23 -> 10 bits
  return static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13));  // rebias 127 -> 15
}

uint16_t FloatToBFloat16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // NaN
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

}  // namespace pkm::testing
