// RmsNorm with AVX2: the sum of squares is an 8-lane FMA sum reduced by the fixed tree of
// dot_avx2.h (as LayerNorm's variance); the normalisation is the reference's expression, element
// by element. A row's result depends only on that row, so it is batch-invariant by construction.
#include <immintrin.h>

#include <cmath>
#include <cstddef>

#include "kernels/cpu/dot_avx2.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/parallel.h"

namespace pkm::cpu {
namespace {

void RmsNormalizeRow(const float* x, int d, const float* gamma, float eps, float* y) {
  const int full = d / 8 * 8;
  __m256 acc = _mm256_setzero_ps();
  for (int i = 0; i < full; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    acc = _mm256_fmadd_ps(v, v, acc);
  }
  if (full < d) {
    // Masked-off lanes load as zero and add zero.
    const __m256 v = _mm256_maskload_ps(x + full, avx2::FirstLanes(d - full));
    acc = _mm256_fmadd_ps(v, v, acc);
  }
  const float denom = std::sqrt(avx2::Reduce1(acc) / static_cast<float>(d) + eps);

  // x / denom · gamma, as the reference; y may alias x, each element is read before it is
  // written.
  const __m256 vdenom = _mm256_set1_ps(denom);
  for (int i = 0; i < full; i += 8) {
    const __m256 v = _mm256_div_ps(_mm256_loadu_ps(x + i), vdenom);
    _mm256_storeu_ps(y + i, _mm256_mul_ps(v, _mm256_loadu_ps(gamma + i)));
  }
  for (int i = full; i < d; ++i) y[i] = x[i] / denom * gamma[i];
}

}  // namespace

void RmsNorm(const float* x, int n, int d, const float* gamma, float eps, float* y) {
  RequireAvx2Fma();
  const bool parallel = static_cast<size_t>(n) * d >= 64 * 1024;  // else not worth a region
#pragma omp parallel for schedule(static) num_threads(NumThreads()) if (parallel)
  for (int t = 0; t < n; ++t) {
    const size_t row = static_cast<size_t>(t) * d;
    RmsNormalizeRow(x + row, d, gamma, eps, y + row);
  }
}

}  // namespace pkm::cpu
