// __half on HIP-CPU (half.hpp, round to nearest even), for the emulated CUDA build.
#pragma once

#include "kernels/cuda/cpu_emu/cuda_emu.h"
