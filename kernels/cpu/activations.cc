// The element-wise activations: the reference's exact expressions, split over threads. Every
// element goes through the same scalar code (no vector erf/tanh/exp with a scalar tail), so the
// result is the reference's, bit for bit, whatever the count or the threads.
#include <cmath>
#include <cstddef>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/parallel.h"

namespace pkm::cpu {
namespace {

constexpr float kSqrtHalf = 0.70710678118654752f;       // x/√2 as x·(1/√2), like PyTorch
constexpr float kSqrtTwoOverPi = 0.79788456080286536f;  // √(2/π)
constexpr float kCubic = 0.044715f;
// Below this many elements a parallel region costs more than it saves (for the cheap Relu,
// which is memory-bound, a region only pays off much later).
constexpr size_t kMinParallel = 16 * 1024;
constexpr size_t kMinParallelRelu = 1024 * 1024;

}  // namespace

void Gelu(float* x, size_t count) {
  const auto total = static_cast<ptrdiff_t>(count);
#pragma omp parallel for schedule(static) num_threads(NumThreads()) if (count >= kMinParallel)
  for (ptrdiff_t i = 0; i < total; ++i) {
    x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * kSqrtHalf));
  }
}

void GeluTanh(float* x, size_t count) {
  const auto total = static_cast<ptrdiff_t>(count);
#pragma omp parallel for schedule(static) num_threads(NumThreads()) if (count >= kMinParallel)
  for (ptrdiff_t i = 0; i < total; ++i) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(kSqrtTwoOverPi * (v + kCubic * (v * v * v))));
  }
}

void Relu(float* x, size_t count) {
  const auto total = static_cast<ptrdiff_t>(count);
#pragma omp parallel for schedule(static) num_threads(NumThreads()) if (count >= kMinParallelRelu)
  for (ptrdiff_t i = 0; i < total; ++i) {
    if (x[i] < 0.0f) x[i] = 0.0f;
  }
}

void SiluMul(const float* gate, const float* up, size_t count, float* y) {
  const auto total = static_cast<ptrdiff_t>(count);
  // y may alias gate or up: each element is read before it is written, by the same thread.
#pragma omp parallel for schedule(static) num_threads(NumThreads()) if (count >= kMinParallel)
  for (ptrdiff_t i = 0; i < total; ++i) {
    const float g = gate[i];
    y[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

}  // namespace pkm::cpu
