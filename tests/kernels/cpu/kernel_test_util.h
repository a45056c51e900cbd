// Helpers shared by the CPU kernel tests: random inputs, comparisons, thread counts.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/kernels.h"

namespace pkm::cpu::testing {

// printf into a std::string, for test names (GCC 12 -O3 warns falsely on "a" + std::string).
template <typename... Args>
std::string Format(const char* format, Args... args) {
  char buffer[128];
  std::snprintf(buffer, sizeof(buffer), format, args...);
  return buffer;
}

// Uniform floats in [lo, hi), reproducible from the seed.
inline std::vector<float> RandomFloats(size_t count, uint32_t seed, float lo = -1.0f,
                                       float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(count);
  for (float& x : v) x = dist(rng);
  return v;
}

// Integers in [lo, hi] as floats: sums and products stay exact, so scores tie exactly.
inline std::vector<float> RandomIntegers(size_t count, uint32_t seed, int lo, int hi) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<float> v(count);
  for (float& x : v) x = static_cast<float>(dist(rng));
  return v;
}

// Same bits (NaN included), reported at the first difference.
inline ::testing::AssertionResult BitwiseEqual(const float* got, const float* want, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    if (std::memcmp(got + i, want + i, sizeof(float)) != 0) {
      return ::testing::AssertionFailure()
             << "element " << i << " of " << count << ": " << got[i] << " vs " << want[i];
    }
  }
  return ::testing::AssertionSuccess();
}

// |got − want| <= tol · (1 + |want|) for every element, reported at the worst one.
inline ::testing::AssertionResult AllClose(const float* got, const float* want, size_t count,
                                           double tol) {
  double worst = 0.0;
  size_t at = 0;
  for (size_t i = 0; i < count; ++i) {
    double err = std::abs(static_cast<double>(got[i]) - want[i]) / (1.0 + std::abs(want[i]));
    if (std::isnan(err) || err > worst) {
      worst = err;
      at = i;
      if (std::isnan(err)) break;
    }
  }
  if (worst <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "element " << at << " of " << count << ": " << got[at] << " vs " << want[at]
         << " (scaled error " << worst << " > " << tol << ")";
}

// Runs the body with the kernels' thread count set, then restores the default.
class ScopedThreads {
 public:
  explicit ScopedThreads(int n) { SetNumThreads(n); }
  ~ScopedThreads() { SetNumThreads(0); }
  ScopedThreads(const ScopedThreads&) = delete;
  ScopedThreads& operator=(const ScopedThreads&) = delete;
};

// Thread counts every invariance test runs with (more threads than cores is allowed).
inline constexpr int kThreadCounts[] = {1, 2, 3};

}  // namespace pkm::cpu::testing
