// Rope: the reference's arithmetic, with the angles' cos/sin computed once per token (they
// depend on the position only) instead of once per head. Same bits as the reference.
#include <cmath>
#include <cstddef>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/parallel.h"

namespace pkm::cpu {

void Rope(float* x, int n, int heads, int head_dim, const int32_t* positions, float theta) {
  const int half = head_dim / 2;
  // As training/model.py: inv_freq = 1 / theta^(2j/head_dim) in double.
  std::vector<double> inv_freq(static_cast<size_t>(half));
  for (int j = 0; j < half; ++j) {
    inv_freq[j] = 1.0 / std::pow(static_cast<double>(theta), 2.0 * j / head_dim);
  }
  const bool parallel = static_cast<size_t>(n) * heads * head_dim >= 16 * 1024;
#pragma omp parallel num_threads(NumThreads()) if (parallel)
  {
    std::vector<float> cos_t(static_cast<size_t>(half)), sin_t(static_cast<size_t>(half));
#pragma omp for schedule(static)
    for (int t = 0; t < n; ++t) {
      for (int j = 0; j < half; ++j) {
        double angle = static_cast<double>(positions[t]) * inv_freq[j];
        cos_t[j] = static_cast<float>(std::cos(angle));
        sin_t[j] = static_cast<float>(std::sin(angle));
      }
      for (int h = 0; h < heads; ++h) {
        float* v = x + (static_cast<size_t>(t) * heads + h) * head_dim;
        for (int j = 0; j < half; ++j) {
          float a = v[j], b = v[j + half];
          v[j] = a * cos_t[j] - b * sin_t[j];
          v[j + half] = a * sin_t[j] + b * cos_t[j];
        }
      }
    }
  }
}

}  // namespace pkm::cpu
