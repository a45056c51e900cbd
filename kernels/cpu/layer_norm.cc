// LayerNorm with AVX2: the two statistics passes are 8-lane sums reduced by the fixed tree of
// dot_avx2.h; the normalisation is the reference's expression, element by element (beta may be
// null: no bias). A row's
// result depends only on that row, so it is batch-invariant by construction.
#include <immintrin.h>

#include <cmath>
#include <cstddef>

#include "kernels/cpu/dot_avx2.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/parallel.h"

namespace pkm::cpu {
namespace {

void NormalizeRow(const float* x, int d, const float* gamma, const float* beta, float eps,
                  float* y) {
  const int full = d / 8 * 8;
  const __m256i tail = avx2::FirstLanes(d - full);

  __m256 acc = _mm256_setzero_ps();
  for (int i = 0; i < full; i += 8) acc = _mm256_add_ps(acc, _mm256_loadu_ps(x + i));
  if (full < d) acc = _mm256_add_ps(acc, _mm256_maskload_ps(x + full, tail));
  const float mean = avx2::Reduce1(acc) / static_cast<float>(d);

  const __m256 vmean = _mm256_set1_ps(mean);
  acc = _mm256_setzero_ps();
  for (int i = 0; i < full; i += 8) {
    __m256 c = _mm256_sub_ps(_mm256_loadu_ps(x + i), vmean);
    acc = _mm256_fmadd_ps(c, c, acc);
  }
  if (full < d) {
    // Lanes past d must add zero, not mean².
    __m256 c = _mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(x + full, tail), vmean),
                             _mm256_castsi256_ps(tail));
    acc = _mm256_fmadd_ps(c, c, acc);
  }
  const float var = avx2::Reduce1(acc) / static_cast<float>(d);
  const float denom = std::sqrt(var + eps);

  // (x − mean) / denom · gamma [+ beta], as the reference; y may alias x, each element is read
  // before it is written. Without beta there is no addition at all (+ 0 would turn −0 into +0).
  const __m256 vdenom = _mm256_set1_ps(denom);
  for (int i = 0; i < full; i += 8) {
    __m256 v = _mm256_div_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmean), vdenom);
    v = _mm256_mul_ps(v, _mm256_loadu_ps(gamma + i));
    if (beta) v = _mm256_add_ps(v, _mm256_loadu_ps(beta + i));
    _mm256_storeu_ps(y + i, v);
  }
  for (int i = full; i < d; ++i) {
    const float scaled = (x[i] - mean) / denom * gamma[i];
    y[i] = beta ? scaled + beta[i] : scaled;
  }
}

}  // namespace

void LayerNorm(const float* x, int n, int d, const float* gamma, const float* beta, float eps,
               float* y) {
  RequireAvx2Fma();
  const bool parallel = static_cast<size_t>(n) * d >= 64 * 1024;  // else not worth a region
#pragma omp parallel for schedule(static) num_threads(NumThreads()) if (parallel)
  for (int t = 0; t < n; ++t) {
    const size_t row = static_cast<size_t>(t) * d;
    NormalizeRow(x + row, d, gamma, beta, eps, y + row);
  }
}

}  // namespace pkm::cpu
