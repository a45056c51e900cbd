// The whole CUDA PKM layer (query projection through the value gather) against the CPU
// reference (cpu::ref::Linear, then cpu::ref::PkmLookup), on each of its three paths: scores
// in the selection blocks, scores from a cuBLAS GEMM, and the unfused chain. Inputs are small
// integers, so the projected queries and scores are exact in every value type and summation
// order, and ties are everywhere: the slot ids must match exactly.
#include "kernels/cuda/pkm_layer.h"

#include <cublas_v2.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "tests/kernels/cuda/cuda_test_util.h"

namespace pkm::cuda {
namespace {

struct LayerResult {
  std::vector<float> out, weights;
  std::vector<int32_t> ids;
};

struct LayerInputs {
  PkmLookupShape s;
  int d, n;
  std::vector<float> x, wq, bq, keys, values;
};

LayerInputs RandomInputs(const PkmLookupShape& s, int d, int n, ValueType type, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> small(-2, 2), tiny(-1, 1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  LayerInputs in{s, d, n, {}, {}, {}, {}, {}};
  const size_t q_width = static_cast<size_t>(s.heads) * s.k_dim;
  in.x.resize(static_cast<size_t>(n) * d);
  in.wq.resize(q_width * d);
  in.bq.resize(q_width);
  in.keys.resize(static_cast<size_t>(s.heads) * 2 * s.n_keys * (s.k_dim / 2));
  in.values.resize(static_cast<size_t>(s.n_keys) * s.n_keys * s.v_dim);
  for (float& v : in.x) v = static_cast<float>(small(rng));
  for (float& v : in.wq) v = static_cast<float>(tiny(rng));
  for (float& v : in.bq) v = static_cast<float>(small(rng));
  for (float& v : in.keys) v = static_cast<float>(tiny(rng));
  for (float& v : in.values) v = Round(normal(rng), type);
  return in;
}

LayerResult Reference(const LayerInputs& in) {
  const PkmLookupShape& s = in.s;
  std::vector<float> q(static_cast<size_t>(in.n) * s.heads * s.k_dim);
  cpu::ref::Linear(in.x.data(), in.n, in.d, in.wq.data(), in.bq.data(), s.heads * s.k_dim,
                   q.data());
  const size_t sel = static_cast<size_t>(in.n) * s.heads * s.knn;
  LayerResult r{std::vector<float>(static_cast<size_t>(in.n) * s.v_dim), std::vector<float>(sel),
                std::vector<int32_t>(sel)};
  cpu::ref::PkmLookup({s.heads, s.knn, s.n_keys, s.k_dim, s.v_dim}, q.data(), in.n,
                      in.keys.data(), in.values.data(), r.out.data(), r.ids.data(),
                      r.weights.data());
  return r;
}

LayerResult RunOnDevice(const LayerInputs& in, ValueType type, const PkmLayerOptions& options) {
  const PkmLookupShape& s = in.s;
  void* x = UploadAs(in.x, type);
  void* wq = UploadAs(in.wq, type);
  float* bq = Upload(in.bq);
  void* keys = UploadAs(in.keys, type);
  void* values = UploadAs(in.values, type);
  const size_t sel = static_cast<size_t>(in.n) * s.heads * s.knn;
  float* out = DeviceAlloc<float>(static_cast<size_t>(in.n) * s.v_dim);
  float* weights = DeviceAlloc<float>(sel);
  int32_t* ids = DeviceAlloc<int32_t>(sel);
  const size_t ws_bytes = PkmLayerWorkspaceBytes(s, type, in.n, options);
  char* ws = DeviceAlloc<char>(ws_bytes);
  cublasHandle_t cublas = nullptr;
  EXPECT_EQ(cublasCreate(&cublas), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(PkmLayerForward(s, in.d, type, {wq, bq, keys, values}, x, in.n, out, ids, weights,
                            ws, ws_bytes, cublas, nullptr, options),
            "");
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  LayerResult r{Download(out, static_cast<size_t>(in.n) * s.v_dim), Download(weights, sel),
                Download(ids, sel)};
  cublasDestroy(cublas);
  for (void* p : {x, wq, static_cast<void*>(bq), keys, values, static_cast<void*>(out),
                  static_cast<void*>(weights), static_cast<void*>(ids), static_cast<void*>(ws)}) {
    cudaFree(p);
  }
  return r;
}

void ExpectSame(const LayerResult& got, const LayerResult& want) {
  EXPECT_EQ(got.ids, want.ids);
  ASSERT_EQ(got.weights.size(), want.weights.size());
  for (size_t i = 0; i < want.weights.size(); ++i) {
    ASSERT_NEAR(got.weights[i], want.weights[i], 1e-6) << "weight " << i;
  }
  float scale = 1.0f;
  for (float v : want.out) scale = std::max(scale, std::abs(v));
  ASSERT_EQ(got.out.size(), want.out.size());
  for (size_t i = 0; i < want.out.size(); ++i) {
    ASSERT_NEAR(got.out[i], want.out[i], 1e-5f * scale) << "out " << i;
  }
}

struct LayerCase {
  const char* name;
  PkmLookupShape shape;
  int d, tokens;
  ValueType type;
};

class CudaPkmLayerMatches : public ::testing::TestWithParam<LayerCase> {};

TEST_P(CudaPkmLayerMatches, TheCpuReferenceOnEveryPath) {
  SKIP_WITHOUT_GPU();
  const LayerCase& c = GetParam();
  const LayerInputs in = RandomInputs(c.shape, c.d, c.tokens, c.type,
                                      static_cast<uint32_t>(c.d * 7 + c.tokens));
  const LayerResult want = Reference(in);
  SCOPED_TRACE(c.name);
  {
    SCOPED_TRACE("scores in the selection blocks");
    ExpectSame(RunOnDevice(in, c.type, {1 << 30, false}), want);
  }
  {
    SCOPED_TRACE("scores from a GEMM");
    ExpectSame(RunOnDevice(in, c.type, {1, false}), want);
  }
  {
    SCOPED_TRACE("unfused chain");
    ExpectSame(RunOnDevice(in, c.type, {1 << 30, true}), want);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaPkmLayerMatches,
    ::testing::Values(LayerCase{"BundledModel", {4, 32, 128, 128, 256}, 256, 9, ValueType::kF32},
                      LayerCase{"OneToken", {2, 16, 16, 8, 8}, 8, 1, ValueType::kF32},
                      LayerCase{"OddSizes", {3, 5, 37, 18, 12}, 20, 7, ValueType::kF32},
                      LayerCase{"Half", {4, 32, 64, 32, 64}, 64, 5, ValueType::kF16},
                      LayerCase{"Bfloat16", {4, 32, 64, 32, 64}, 64, 5, ValueType::kBF16}),
    [](const ::testing::TestParamInfo<LayerCase>& param_info) {
      return std::string(param_info.param.name);
    });

// A token's result does not depend on the other tokens of the call (on one path).
TEST(CudaPkmLayer, ATokensResultDoesNotDependOnItsBatch) {
  SKIP_WITHOUT_GPU();
  const PkmLookupShape s{4, 32, 64, 32, 64};
  LayerInputs batch = RandomInputs(s, 64, 6, ValueType::kF16, 5);
  for (float& v : batch.x) v *= 0.37f;  // non-integer queries: summation order would show
  LayerInputs alone = batch;
  alone.n = 1;
  alone.x.assign(batch.x.end() - 64, batch.x.end());  // the batch's last token
  const LayerResult all = RunOnDevice(batch, ValueType::kF16, {1 << 30, false});
  const LayerResult one = RunOnDevice(alone, ValueType::kF16, {1 << 30, false});
  const size_t sel = static_cast<size_t>(s.heads) * s.knn;
  EXPECT_EQ(one.ids, std::vector<int32_t>(all.ids.end() - static_cast<long>(sel), all.ids.end()));
  EXPECT_EQ(one.weights,
            std::vector<float>(all.weights.end() - static_cast<long>(sel), all.weights.end()));
  EXPECT_EQ(one.out, std::vector<float>(all.out.end() - s.v_dim, all.out.end()));
}

TEST(CudaPkmLayer, RefusesBadShapesAndShortWorkspacesWithTheReason) {
  const PkmLookupShape paper{4, 32, 512, 512, 1024};
  const PkmLayerWeights none{nullptr, nullptr, nullptr, nullptr};
  char fake = 0;  // never dereferenced: the checks come first
  EXPECT_NE(PkmLayerForward({4, 33, 32, 512, 1024}, 1024, ValueType::kF16, none, nullptr, 1,
                            nullptr, nullptr, nullptr, &fake, 1, nullptr, nullptr)
                .find("pkm_knn must be in [1, 32]"),
            std::string::npos);
  const size_t need = PkmLayerWorkspaceBytes(paper, ValueType::kF16, 8);
  EXPECT_GT(need, PkmLayerWorkspaceBytes(paper, ValueType::kF16, 1));
  EXPECT_GT(PkmLayerWorkspaceBytes(paper, ValueType::kF16, 8, {1, true}), need)
      << "the unfused chain keeps its candidates in the workspace";
  EXPECT_NE(PkmLayerForward(paper, 1024, ValueType::kF16, none, nullptr, 8, nullptr, nullptr,
                            nullptr, &fake, need - 1, nullptr, nullptr)
                .find("workspace holds " + std::to_string(need - 1) + " bytes; 8 tokens need " +
                      std::to_string(need)),
            std::string::npos);
  EXPECT_NE(PkmLayerForward(paper, 0, ValueType::kF16, none, nullptr, 8, nullptr, nullptr,
                            nullptr, &fake, need, nullptr, nullptr)
                .find("d > 0"),
            std::string::npos);
}

}  // namespace
}  // namespace pkm::cuda
