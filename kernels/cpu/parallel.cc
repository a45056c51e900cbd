// Thread count and the CPU feature check. Compiled without -mavx2 so that the check itself
// runs on any x86-64 CPU.
#include "kernels/cpu/parallel.h"

#include <cpuid.h>
#include <omp.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "kernels/cpu/kernels.h"

namespace pkm::cpu {
namespace {

// 0: not set, use OpenMP's default. Atomic: set once at startup, read by every kernel call,
// possibly from other threads than the one that set it.
std::atomic<int> g_threads{0};

// F16C is read from CPUID leaf 1 (ECX bit 29) because clang's __builtin_cpu_supports does not
// know the name "f16c" (GCC's does); the fuzz builds use clang.
bool HasF16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
}

bool HasAvx2Fma() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && HasF16c();
}

}  // namespace

void SetNumThreads(int n) { g_threads.store(n > 0 ? n : 0, std::memory_order_relaxed); }

int NumThreads() {
  int n = g_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : omp_get_max_threads();
}

void RequireAvx2Fma() {
  static const bool ok = HasAvx2Fma();
  if (!ok) {
    std::fprintf(stderr,
                 "pkmserve: the CPU kernels need a CPU with AVX2, FMA and F16C (x86-64-v3)\n");
    std::abort();
  }
}

}  // namespace pkm::cpu
