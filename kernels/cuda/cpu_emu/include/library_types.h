// CUDA's data-type tags (library_types.h), as cuBLAS's Ex calls take them.
#pragma once

enum cudaDataType_t { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 };
