// Thread count of the multithreaded kernels (private to kernels/cpu).
#pragma once

namespace pkm::cpu {

// Threads for a parallel region: SetNumThreads' value, or OpenMP's default when unset.
int NumThreads();

// Aborts with a clear message when the CPU lacks AVX2 or FMA, which the fast kernels are
// compiled for: better than dying of SIGILL somewhere inside a kernel. Cheap after the first
// call.
void RequireAvx2Fma();

}  // namespace pkm::cpu
