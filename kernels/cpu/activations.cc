// Gelu: the reference's exact expression, split over threads. Every element goes through the
// same scalar code (no vector erf with a scalar tail), so the result is the reference's, bit
// for bit, whatever the count or the threads.
#include <cmath>
#include <cstddef>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/parallel.h"

namespace pkm::cpu {
namespace {

constexpr float kSqrtHalf = 0.70710678118654752f;  // x/√2 as x·(1/√2), like PyTorch
// Below this many elements a parallel region costs more than it saves.
constexpr size_t kMinParallel = 16 * 1024;

}  // namespace

void Gelu(float* x, size_t count) {
  const auto total = static_cast<ptrdiff_t>(count);
#pragma omp parallel for schedule(static) num_threads(NumThreads()) if (count >= kMinParallel)
  for (ptrdiff_t i = 0; i < total; ++i) {
    x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * kSqrtHalf));
  }
}

}  // namespace pkm::cpu
