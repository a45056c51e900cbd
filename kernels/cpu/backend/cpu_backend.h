// The CPU backend: kernels/backend.h on the kernels of kernels/cpu.
#pragma once

#include <memory>

#include "kernels/backend.h"

namespace pkm {

// Uses `threads` threads for the ops that are multithreaded (<= 0: one per core).
std::unique_ptr<Backend> MakeCpuBackend(int threads);

}  // namespace pkm
