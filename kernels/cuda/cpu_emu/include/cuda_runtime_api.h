// The CUDA runtime API on HIP-CPU (the emulated CUDA build).
#pragma once

#include "kernels/cuda/cpu_emu/cuda_emu.h"
