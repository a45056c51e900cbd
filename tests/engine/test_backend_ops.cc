// The Backend interface's format 2 ops, table-driven: RmsNorm, LayerNorm without bias,
// GeluTanh, Relu, SiluMul (out of place and in place) and grouped-query PagedAttention, on every
// backend of this build against the CPU reference (kernels/cpu/reference.cc), at odd sizes with
// a tolerance per op. The CPU backend always runs; the CUDA plugin (PKM_CUDA_PLUGIN) where it
// can, skipped, saying why, without a GPU; the plugin built on HIP-CPU (PKM_CUDA_MUST_RUN)
// always. Also: a plugin refuses a server of another backend API version.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "engine/backend_loader.h"
#include "kernels/backend.h"
#include "kernels/cpu/backend/cpu_backend.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cuda/backend/cuda_backend_plugin.h"

namespace pkm {
namespace {

std::vector<float> Random(size_t count, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(count);
  for (float& x : v) x = normal(rng);
  return v;
}

// Device copies of host vectors, freed with the object; results read back.
class DeviceData {
 public:
  explicit DeviceData(Backend& backend) : backend_(backend) {}
  template <typename T>
  T* Upload(const std::vector<T>& host) {
    T* p = Alloc<T>(host.size());
    backend_.CopyToDevice(p, host.data(), host.size() * sizeof(T));
    return p;
  }
  template <typename T>
  T* Alloc(size_t count) {
    owned_.emplace_back(&backend_, std::max<size_t>(count, 1) * sizeof(T));
    EXPECT_TRUE(owned_.back()) << "out of device memory";
    return owned_.back().as<T>();
  }
  std::vector<float> Download(const float* p, size_t count) {
    std::vector<float> host(count);
    backend_.CopyToHost(host.data(), p, count * sizeof(float));
    return host;
  }

 private:
  Backend& backend_;
  std::vector<DeviceBuffer> owned_;
};

// One op: what it computes on a backend and in the reference, and how close they must be
// (|got − want| <= tol · (1 + |want|)). tol 0 on the CPU backend where the fast kernel is the
// reference's expression, so the CPU backend's results must be the reference's bits.
struct OpCase {
  std::string name;
  double cpu_tol, cuda_tol;
  std::function<std::vector<float>(Backend&)> run;
  std::function<std::vector<float>()> reference;
};

// Test names print the op's name, not its bytes.
void PrintTo(const OpCase& op, std::ostream* os) { *os << op.name; }

constexpr int kRows = 7, kWidth = 769;  // 769: not a multiple of any vector or block width
constexpr size_t kCount = static_cast<size_t>(kRows) * kWidth;

OpCase RmsNormCase() {
  const std::vector<float> x = Random(kCount, 1, 2.0f), gamma = Random(kWidth, 2);
  return {"RmsNorm", 1e-6, 1e-5,
          [=](Backend& b) {
            DeviceData d(b);
            float* p = d.Upload(x);
            b.RmsNorm(p, kRows, kWidth, d.Upload(gamma), 1e-6f, p);  // in place
            return d.Download(p, kCount);
          },
          [=] {
            std::vector<float> y(kCount);
            cpu::ref::RmsNorm(x.data(), kRows, kWidth, gamma.data(), 1e-6f, y.data());
            return y;
          }};
}

OpCase LayerNormWithoutBiasCase() {
  const std::vector<float> x = Random(kCount, 3, 2.0f), gamma = Random(kWidth, 4);
  return {"LayerNormWithoutBias", 1e-6, 1e-5,
          [=](Backend& b) {
            DeviceData d(b);
            float* y = d.Alloc<float>(kCount);
            b.LayerNorm(d.Upload(x), kRows, kWidth, d.Upload(gamma), nullptr, 1e-5f, y);
            return d.Download(y, kCount);
          },
          [=] {
            std::vector<float> y(kCount);
            cpu::ref::LayerNorm(x.data(), kRows, kWidth, gamma.data(), nullptr, 1e-5f, y.data());
            return y;
          }};
}

// An in-place activation: x scaled to reach the saturated ends of tanh.
OpCase InPlaceCase(std::string name, double cuda_tol, void (Backend::*op)(float*, size_t),
                   void (*reference)(float*, size_t)) {
  const std::vector<float> x = Random(kCount, 5, 4.0f);
  return {std::move(name), 0.0, cuda_tol,
          [=](Backend& b) {
            DeviceData d(b);
            float* p = d.Upload(x);
            (b.*op)(p, kCount);
            return d.Download(p, kCount);
          },
          [=] {
            std::vector<float> y = x;
            reference(y.data(), kCount);
            return y;
          }};
}

// SiluMul writing to a new buffer, or over `gate` or `up` (the aliasings the interface allows).
enum class SiluOut { kNew, kGate, kUp };

OpCase SiluMulCase(std::string name, SiluOut out) {
  const std::vector<float> gate = Random(kCount, 6, 5.0f), up = Random(kCount, 7);
  return {std::move(name), 0.0, 1e-6,
          [=](Backend& b) {
            DeviceData d(b);
            float* g = d.Upload(gate);
            float* u = d.Upload(up);
            float* y = out == SiluOut::kGate ? g : out == SiluOut::kUp ? u : d.Alloc<float>(kCount);
            b.SiluMul(g, u, kCount, y);
            return d.Download(y, kCount);
          },
          [=] {
            std::vector<float> y(kCount);
            cpu::ref::SiluMul(gate.data(), up.data(), kCount, y.data());
            return y;
          }};
}

// Tokens of three sequences over shuffled cache blocks, the cache filled on the host.
OpCase PagedAttentionCase(int heads, int kv_heads) {
  const int head_dim = 40, block_size = 16, max_blocks = 3, num_blocks = 10;
  const std::vector<int32_t> tables = {7, 2, 9, 0, 5, 1, 8, 3, 6};  // [3 sequences, 3 blocks]
  const std::vector<int32_t> seq = {0, 1, 2, 2, 0, 1, 2}, pos = {0, 15, 16, 47, 33, 31, 2};
  const int n = static_cast<int>(seq.size());
  const size_t cache = static_cast<size_t>(num_blocks) * block_size * kv_heads * head_dim;
  const size_t out = static_cast<size_t>(n) * heads * head_dim;
  const std::vector<float> q = Random(out, 8, 2.0f), k = Random(cache, 9), v = Random(cache, 10);
  return {"PagedAttention_heads" + std::to_string(heads) + "_kv" + std::to_string(kv_heads), 1e-6,
          1e-5,
          [=](Backend& b) {
            DeviceData d(b);
            float* o = d.Alloc<float>(out);
            b.PagedAttention(d.Upload(q), n, heads, kv_heads, head_dim, d.Upload(k), d.Upload(v),
                             block_size, d.Upload(tables), max_blocks, d.Upload(seq),
                             d.Upload(pos), o);
            return d.Download(o, out);
          },
          [=] {
            std::vector<float> o(out);
            cpu::ref::PagedAttention(q.data(), n, heads, kv_heads, head_dim, k.data(), v.data(),
                                     block_size, tables.data(), max_blocks, seq.data(),
                                     pos.data(), o.data());
            return o;
          }};
}

std::vector<OpCase> AllOps() {
  return {RmsNormCase(),
          LayerNormWithoutBiasCase(),
          InPlaceCase("GeluTanh", 1e-6, &Backend::GeluTanh, cpu::ref::GeluTanh),
          InPlaceCase("Relu", 0.0, &Backend::Relu, cpu::ref::Relu),
          SiluMulCase("SiluMul", SiluOut::kNew),
          SiluMulCase("SiluMulOverGate", SiluOut::kGate),
          SiluMulCase("SiluMulOverUp", SiluOut::kUp),
          PagedAttentionCase(6, 2),
          PagedAttentionCase(4, 1),
          PagedAttentionCase(3, 3)};
}

// A CUDA backend of this build, or null with the reason. One per test, destroyed in it (as the
// engine tests do), not a static that would outlive the emulated runtime at exit.
std::unique_ptr<Backend> MakeCudaBackend(std::string* why) {
  const std::string plugin = PKM_CUDA_PLUGIN;
  if (plugin.empty()) {
    *why = "this build has no CUDA plugin (configure with PKMSERVE_WITH_CUDA)";
    return nullptr;
  }
  StatusOr<std::unique_ptr<Backend>> loaded = LoadCudaBackend(plugin, 0, nullptr);
  if (!loaded.ok()) {
    *why = loaded.status().message() + ": the CUDA backend's op tests run on a GPU machine";
    return nullptr;
  }
  return std::move(*loaded);
}

::testing::AssertionResult Close(const std::vector<float>& got, const std::vector<float>& want,
                                 double tol) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << "sizes differ";
  for (size_t i = 0; i < want.size(); ++i) {
    const double err = std::abs(static_cast<double>(got[i]) - want[i]);
    const bool same_nan = std::isnan(got[i]) && std::isnan(want[i]);
    if (!same_nan && !(err <= tol * (1.0 + std::abs(want[i])))) {
      return ::testing::AssertionFailure() << "element " << i << " of " << want.size() << ": "
                                           << got[i] << " vs " << want[i] << " (tolerance "
                                           << tol << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

class BackendOps : public ::testing::TestWithParam<std::tuple<std::string, OpCase>> {};

TEST_P(BackendOps, MatchReference) {
  const auto& [device, op] = GetParam();
  std::unique_ptr<Backend> backend;
  double tol = op.cpu_tol;
  if (device == "cpu") {
    backend = MakeCpuBackend(2);
  } else {
    std::string why;
    backend = MakeCudaBackend(&why);
#if PKM_CUDA_MUST_RUN
    if (!backend) FAIL() << why;
#else
    if (!backend) GTEST_SKIP() << why;
#endif
    tol = op.cuda_tol;
  }
  const std::vector<float> got = op.run(*backend);
  backend->Synchronize();
  EXPECT_EQ(backend->allocated_bytes(), size_t{0}) << "the op's buffers are freed";
  EXPECT_TRUE(Close(got, op.reference(), tol)) << op.name << " on " << backend->name();
}

std::string CaseName(const ::testing::TestParamInfo<BackendOps::ParamType>& info) {
  return std::get<0>(info.param) + "_" + std::get<1>(info.param).name;
}

#if PKM_CUDA_MUST_RUN
// The plugin on HIP-CPU: its ops only (the CPU backend runs in test_backend_ops).
INSTANTIATE_TEST_SUITE_P(Ops, BackendOps,
                         ::testing::Combine(::testing::Values("cuda"),
                                            ::testing::ValuesIn(AllOps())),
                         CaseName);
#else
INSTANTIATE_TEST_SUITE_P(Ops, BackendOps,
                         ::testing::Combine(::testing::Values("cpu", "cuda"),
                                            ::testing::ValuesIn(AllOps())),
                         CaseName);
#endif

// A server of another backend API version gets no backend from the plugin, and a message that
// names both versions: the version check comes before any device is touched, so this runs
// without a GPU too.
TEST(CudaPlugin, RefusesAnotherBackendApiVersion) {
  const std::string plugin = PKM_CUDA_PLUGIN;
  if (plugin.empty()) GTEST_SKIP() << "this build has no CUDA plugin (PKMSERVE_WITH_CUDA off)";
  void* library = dlopen(plugin.c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(library, nullptr) << dlerror();
  auto create = reinterpret_cast<PkmCudaBackendCreateFn>(dlsym(library, kPkmCudaBackendCreate));
  ASSERT_NE(create, nullptr);
  for (int server : {kBackendApiVersion - 1, kBackendApiVersion + 1}) {
    char error[512] = "";
    std::unique_ptr<Backend> backend(create(server, 0, error, sizeof(error)));
    EXPECT_EQ(backend, nullptr) << "API " << server;
    EXPECT_EQ(std::string(error), "libpkm_cuda.so implements backend API " +
                                      std::to_string(kBackendApiVersion) +
                                      ", the server needs " + std::to_string(server) +
                                      ": rebuild them together");
  }
  // The library stays loaded: another test of this process may hold its backend.
}

}  // namespace
}  // namespace pkm
