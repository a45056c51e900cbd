# The CUDA kernel sources, shared by the nvcc build (kernels/cuda) and the emulated build on the
# CPU (kernels/cuda/cpu_emu), so that both always build the same kernels.
set(PKM_CUDA_KERNEL_SOURCES
  ops.cu
  pkm_gather.cu
  pkm_layer.cu
  pkm_lookup.cu
  pkm_select.cu
  pkm_unfused.cu
)
