// The fused CUDA PKM lookup's speed (issue 8), one run on one GPU: for the paper's memory
// (H=4, k=32, n_keys=512, k_dim=512, v_dim=1024, fp16) and the bundled model's (H=4, k=32,
// n_keys=128, k_dim=128, v_dim=256), at 1 to 8192 tokens per call, the kernel's time (CUDA
// events, median of --iters after warm-up) and the bandwidth of its value gather
// (tokens x H x k x v_dim x bytes / time) against the device's copy bandwidth measured in the
// same run (a device-to-device cudaMemcpy of 1 GiB). The PyTorch eager baseline is
// bench/cuda/pkm_torch.py; scripts/gpu-check.sh runs both and joins the JSON.
//
//   build/bin/pkm_cuda_bench [--iters N] [--out FILE]
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/cuda/pkm_lookup.h"

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

}  // namespace

int main(int argc, char** argv) {
  int iters = 20;
  std::string out;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--iters") iters = std::max(1, std::atoi(argv[i + 1]));
    else if (a == "--out") out = argv[i + 1];
  }
  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, 0));
  const double copy = CopyBandwidth(iters);
  std::printf("device: %s; copy bandwidth %.0f GB/s\n\n", prop.name, copy / 1e9);
  std::printf("| memory | tokens | ms | tokens/s | gather GB/s | of copy |\n"
              "| --- | --- | --- | --- | --- | --- |\n");
  nlohmann::json report = {{"device", prop.name}, {"copy_bandwidth_gbs", copy / 1e9}};
  const Config configs[] = {{"paper", {4, 32, 512, 512, 1024}}, {"bundled", {4, 32, 128, 128, 256}}};
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (const Config& c : configs) {
    const auto& s = c.shape;
    const int max_tokens = 8192;
    std::vector<float> q(static_cast<size_t>(max_tokens) * s.heads * s.k_dim);
    std::vector<__half> keys(static_cast<size_t>(s.heads) * 2 * s.n_keys * (s.k_dim / 2));
    std::vector<__half> values(static_cast<size_t>(s.n_keys) * s.n_keys * s.v_dim);
    for (float& v : q) v = normal(rng);
    for (__half& v : keys) v = __float2half(normal(rng));
    for (__half& v : values) v = __float2half(normal(rng) * 0.01f);
    float *d_q = nullptr, *d_out = nullptr;
    void *d_keys = nullptr, *d_values = nullptr;
    CHECK(cudaMalloc(&d_q, q.size() * sizeof(float)));
    CHECK(cudaMalloc(&d_out, static_cast<size_t>(max_tokens) * s.v_dim * sizeof(float)));
    CHECK(cudaMalloc(&d_keys, keys.size() * sizeof(__half)));
    CHECK(cudaMalloc(&d_values, values.size() * sizeof(__half)));
    CHECK(cudaMemcpy(d_q, q.data(), q.size() * sizeof(float), cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(d_keys, keys.data(), keys.size() * sizeof(__half), cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(d_values, values.data(), values.size() * sizeof(__half),
                     cudaMemcpyHostToDevice));
    for (int n : {1, 8, 64, 512, 1024, 4096, 8192}) {
      const double ms = MedianMs(iters, [&] {
        CHECK(pkm::cuda::PkmLookup(s, pkm::cuda::ValueType::kF16, d_q, n, d_keys, d_values,
                                   d_out, nullptr, nullptr, nullptr));
      });
      const double gathered = static_cast<double>(n) * s.heads * s.knn * s.v_dim * 2;
      const double gbs = gathered / (ms * 1e-3) / 1e9;
      std::printf("| %s | %d | %.4f | %.0f | %.0f | %.0f%% |\n", c.name, n, ms, n / (ms * 1e-3),
                  gbs, 100 * gbs * 1e9 / copy);
      report["runs"].push_back({{"memory", c.name}, {"tokens", n}, {"ms", ms},
                                {"gather_gbs", gbs}, {"of_copy", gbs * 1e9 / copy}});
    }
    for (void* p : {static_cast<void*>(d_q), static_cast<void*>(d_out), d_keys, d_values}) {
      CHECK(cudaFree(p));
    }
  }
  if (!out.empty()) std::ofstream(out) << report.dump(2) << "\n";
  return 0;
}
