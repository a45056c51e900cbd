// The CUDA PKM layer's speed (issue 8), one run on one GPU: for the paper's memory
// (d=1024, H=4, k=32, n_keys=512, k_dim=512, v_dim=1024, fp16) and the bundled model's (d=256,
// H=4, k=32, n_keys=128, k_dim=128, v_dim=256), at 1 to 8192 tokens per call: the whole layer
// (query projection to output; CUDA events, median of --iters after warm-up) on the fused path
// and on the unfused chain, and the value gather alone, whose bandwidth
// (tokens x H x k x v_dim x bytes / time) is set against the device's copy bandwidth measured
// in the same run (a device-to-device cudaMemcpy of 1 GiB). The PyTorch eager baseline is
// bench/cuda/pkm_torch.py; scripts/gpu-check.sh runs both and joins the JSON.
//
//   build/bin/pkm_cuda_bench [--iters N] [--out FILE]
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cublas_v2.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/cuda/pkm_layer.h"
#include "kernels/cuda/pkm_stages.h"

namespace {

#define CHECK(call)                                                                   \
  do {                                                                                \
    const cudaError_t e_ = (call);                                                    \
    if (e_ != cudaSuccess) {                                                          \
      std::fprintf(stderr, "pkm_cuda_bench: %s: %s\n", #call, cudaGetErrorString(e_)); \
      std::exit(1);                                                                   \
    }                                                                                 \
  } while (0)

struct Config {
  const char* name;
  pkm::cuda::PkmLookupShape shape;
  int d;
};

template <typename F>
double MedianMs(int iters, F&& launch) {
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));
  for (int i = 0; i < 3; ++i) launch();  // warm-up
  std::vector<float> ms;
  for (int i = 0; i < iters; ++i) {
    CHECK(cudaEventRecord(start));
    launch();
    CHECK(cudaEventRecord(stop));
    CHECK(cudaEventSynchronize(stop));
    float t = 0;
    CHECK(cudaEventElapsedTime(&t, start, stop));
    ms.push_back(t);
  }
  CHECK(cudaEventDestroy(start));
  CHECK(cudaEventDestroy(stop));
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// Device-to-device copy bandwidth (read + write bytes per second), 1 GiB.
double CopyBandwidth(int iters) {
  const size_t bytes = size_t{1} << 30;
  void *a = nullptr, *b = nullptr;
  CHECK(cudaMalloc(&a, bytes));
  CHECK(cudaMalloc(&b, bytes));
  CHECK(cudaMemset(a, 1, bytes));
  const double ms = MedianMs(iters, [&] { CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice)); });
  CHECK(cudaFree(a));
  CHECK(cudaFree(b));
  return 2.0 * static_cast<double>(bytes) / (ms * 1e-3);
}

// n values drawn from normal * scale, uploaded as fp16.
void* UploadHalf(size_t n, float scale, std::mt19937& rng, std::normal_distribution<float>& normal) {
  std::vector<__half> host(n);
  for (__half& v : host) v = __float2half(normal(rng) * scale);
  void* device = nullptr;
  CHECK(cudaMalloc(&device, n * sizeof(__half)));
  CHECK(cudaMemcpy(device, host.data(), n * sizeof(__half), cudaMemcpyHostToDevice));
  return device;
}

}  // namespace

int main(int argc, char** argv) {
  int iters = 20;
  std::string out_path;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--iters") iters = std::max(1, std::atoi(argv[i + 1]));
    else if (a == "--out") out_path = argv[i + 1];
  }
  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, 0));
  const double copy = CopyBandwidth(iters);
  std::printf("device: %s; copy bandwidth %.0f GB/s\n\n", prop.name, copy / 1e9);
  std::printf("| memory | tokens | fused ms | unfused ms | unfused/fused | tokens/s | "
              "gather ms | gather GB/s | of copy |\n"
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
  nlohmann::json report = {{"device", prop.name}, {"copy_bandwidth_gbs", copy / 1e9}};
  const Config configs[] = {{"paper", {4, 32, 512, 512, 1024}, 1024},
                            {"bundled", {4, 32, 128, 128, 256}, 256}};
  constexpr int kMaxTokens = 8192;
  const pkm::cuda::ValueType f16 = pkm::cuda::ValueType::kF16;
  const pkm::cuda::PkmLayerOptions fused{}, unfused{1, true};
  cublasHandle_t cublas = nullptr;
  if (cublasCreate(&cublas) != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "pkm_cuda_bench: cublasCreate failed\n");
    return 1;
  }
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (const Config& c : configs) {
    const auto& s = c.shape;
    const size_t q_width = static_cast<size_t>(s.heads) * s.k_dim;
    const size_t sel = static_cast<size_t>(kMaxTokens) * s.heads * s.knn;
    const float key_scale = 1.0f / std::sqrt(static_cast<float>(s.k_dim / 2));
    void* x = UploadHalf(static_cast<size_t>(kMaxTokens) * c.d, 1.0f, rng, normal);
    void* wq = UploadHalf(q_width * c.d, 1.0f / std::sqrt(static_cast<float>(c.d)), rng, normal);
    void* keys = UploadHalf(q_width * s.n_keys, key_scale, rng, normal);
    void* values = UploadHalf(static_cast<size_t>(s.n_keys) * s.n_keys * s.v_dim,
                              1.0f / std::sqrt(static_cast<float>(s.v_dim)), rng, normal);
    float *bq = nullptr, *out = nullptr, *weights = nullptr;
    int32_t* ids = nullptr;
    void* workspace = nullptr;
    const size_t ws_bytes = pkm::cuda::PkmLayerWorkspaceBytes(s, f16, kMaxTokens, unfused);
    CHECK(cudaMalloc(&bq, q_width * sizeof(float)));
    CHECK(cudaMemset(bq, 0, q_width * sizeof(float)));
    CHECK(cudaMalloc(&out, static_cast<size_t>(kMaxTokens) * s.v_dim * sizeof(float)));
    CHECK(cudaMalloc(&weights, sel * sizeof(float)));
    CHECK(cudaMalloc(&ids, sel * sizeof(int32_t)));
    CHECK(cudaMalloc(&workspace, ws_bytes));
    const pkm::cuda::PkmLayerWeights layer{wq, bq, keys, values};
    for (int n : {1, 8, 64, 512, 1024, 4096, 8192}) {
      auto forward = [&](const pkm::cuda::PkmLayerOptions& o) {
        const std::string e = pkm::cuda::PkmLayerForward(s, c.d, f16, layer, x, n, out, ids,
                                                         weights, workspace, ws_bytes, cublas,
                                                         nullptr, o);
        if (!e.empty()) {
          std::fprintf(stderr, "pkm_cuda_bench: %s\n", e.c_str());
          std::exit(1);
        }
      };
      const double fused_ms = MedianMs(iters, [&] { forward(fused); });
      const double unfused_ms = MedianMs(iters, [&] { forward(unfused); });
      // The gather alone, on the ids and weights the last call selected.
      const double gather_ms = MedianMs(iters, [&] {
        CHECK(pkm::cuda::detail::LaunchGather(s, f16, ids, weights, n, values, out, nullptr));
      });
      const double gathered = static_cast<double>(n) * s.heads * s.knn * s.v_dim * 2;
      const double gbs = gathered / (gather_ms * 1e-3) / 1e9;
      std::printf("| %s | %d | %.4f | %.4f | %.2f | %.0f | %.4f | %.0f | %.0f%% |\n", c.name, n,
                  fused_ms, unfused_ms, unfused_ms / fused_ms, n / (fused_ms * 1e-3), gather_ms,
                  gbs, 100 * gbs * 1e9 / copy);
      report["runs"].push_back({{"memory", c.name}, {"tokens", n}, {"fused_ms", fused_ms},
                                {"unfused_ms", unfused_ms}, {"gather_ms", gather_ms},
                                {"gather_gbs", gbs}, {"gather_of_copy", gbs * 1e9 / copy}});
    }
    for (void* p : {x, wq, keys, values, static_cast<void*>(bq), static_cast<void*>(out),
                    static_cast<void*>(weights), static_cast<void*>(ids), workspace}) {
      CHECK(cudaFree(p));
    }
  }
  cublasDestroy(cublas);
  if (!out_path.empty()) std::ofstream(out_path) << report.dump(2) << "\n";
  return 0;
}
