// Linear: our batch-invariant AVX2 kernel against OpenBLAS's cblas_sgemm, on the bundled
// model's shapes (in→out 256→1024, 1024→256, 256→8000), for decode (n = 1) and a large
// scoring batch (n = 32·256). Before timing, it checks both for batch invariance: row i of an
// n = 1 call against row i of n = 37 and n = 256 calls, bitwise.
//
//   build/bin/linear_bench [--benchmark_filter=...]      (threads: OMP_NUM_THREADS and
//                                                         OPENBLAS_NUM_THREADS, default all cores)
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/kernels.h"

namespace {

struct Shape {
  int in, out;
};
constexpr Shape kShapes[] = {{256, 1024}, {1024, 256}, {256, 8000}};

void OpenBlasLinear(const float* x, int n, int in, const float* w, const float* b, int out,
                    float* y) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, w, in, 0.0f, y,
              out);
  if (b) {
    for (int t = 0; t < n; ++t) {
      for (int o = 0; o < out; ++o) y[static_cast<size_t>(t) * out + o] += b[o];
    }
  }
}

using LinearFn = void (*)(const float*, int, int, const float*, const float*, int, float*);

// pkm::cpu::Linear on fp32 weights, as a LinearFn.
void PkmLinear(const float* x, int n, int in, const float* w, const float* b, int out, float* y) {
  pkm::cpu::Linear(x, n, in, w, b, out, y);
}

std::vector<float> Random(size_t count, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(count);
  for (float& x : v) x = dist(rng);
  return v;
}

// How many rows of an n-token call differ (bitwise) from the same row computed alone.
int RowsDifferingFromAlone(LinearFn f, Shape s, int n) {
  std::vector<float> x = Random(static_cast<size_t>(n) * s.in, 1);
  std::vector<float> w = Random(static_cast<size_t>(s.out) * s.in, 2);
  std::vector<float> b = Random(static_cast<size_t>(s.out), 3);
  std::vector<float> batch(static_cast<size_t>(n) * s.out), alone(static_cast<size_t>(s.out));
  f(x.data(), n, s.in, w.data(), b.data(), s.out, batch.data());
  int differing = 0;
  for (int i = 0; i < n; ++i) {
    f(x.data() + static_cast<size_t>(i) * s.in, 1, s.in, w.data(), b.data(), s.out, alone.data());
    differing += std::memcmp(alone.data(), batch.data() + static_cast<size_t>(i) * s.out,
                             sizeof(float) * s.out) != 0;
  }
  return differing;
}

void ReportInvariance() {
  std::printf("Batch invariance (rows of an n-token call not bitwise equal to the row alone):\n");
  for (Shape s : kShapes) {
    for (int n : {37, 256}) {
      std::printf("  in %4d out %4d n %3d:  OpenBLAS %3d/%d   pkm::cpu::Linear %3d/%d\n", s.in,
                  s.out, n, RowsDifferingFromAlone(OpenBlasLinear, s, n), n,
                  RowsDifferingFromAlone(PkmLinear, s, n), n);
    }
  }
  std::printf("OpenBLAS: %s, core %s, %d threads\n\n", openblas_get_config(),
              openblas_get_corename(), openblas_get_num_threads());
}

// args: shape index, n
void BM_Linear(benchmark::State& state, LinearFn f) {
  const Shape s = kShapes[state.range(0)];
  const int n = static_cast<int>(state.range(1));
  std::vector<float> x = Random(static_cast<size_t>(n) * s.in, 1);
  std::vector<float> w = Random(static_cast<size_t>(s.out) * s.in, 2);
  std::vector<float> b = Random(static_cast<size_t>(s.out), 3);
  std::vector<float> y(static_cast<size_t>(n) * s.out);
  for (auto _ : state) {
    f(x.data(), n, s.in, w.data(), b.data(), s.out, y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * n * s.in * s.out, benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1000);
  state.SetLabel("in " + std::to_string(s.in) + " out " + std::to_string(s.out));
}

void Args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"shape", "n"})->UseRealTime()->Unit(benchmark::kMicrosecond);
  for (int shape = 0; shape < 3; ++shape) {
    for (int n : {1, 32 * 256}) b->Args({shape, n});
  }
}

BENCHMARK_CAPTURE(BM_Linear, pkm, PkmLinear)->Apply(Args);
BENCHMARK_CAPTURE(BM_Linear, openblas, OpenBlasLinear)->Apply(Args);

}  // namespace

int main(int argc, char** argv) {
  ReportInvariance();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
