// The emulated CUDA device itself (HIP-CPU with the project's patch, kernels/cuda/cpu_emu): the
// CUDA semantics the kernels rely on, each of which upstream HIP-CPU or a naive shim gets wrong.
// Built only in the emulated build (translate_cuda.py rewrites its launches like the kernels').
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <vector>

#include "tests/kernels/cuda/cuda_test_util.h"

namespace {

using pkm::cuda::Download;
using pkm::cuda::Upload;

// Warp w sums its lanes' values w + 1 times over: warps shuffle different numbers of times
// between two block barriers, as the selection's sub-key dots do.
__global__ void UnevenWarpSums(float* out) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float total = 0.0f;
  for (int round = 0; round <= warp; ++round) {
    float v = static_cast<float>(lane + round);
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xFFFFFFFFu, v, offset);
    total += v;
  }
  __syncthreads();
  if (lane == 0) out[warp] = total;
}

TEST(EmulatedDevice, WarpsShuffleIndependently) {
  float* out = Upload(std::vector<float>(8, -1.0f));
  UnevenWarpSums<<<1, 256>>>(out);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const std::vector<float> got = Download(out, 8);
  for (int w = 0; w < 8; ++w) {
    float want = 0.0f;  // sum over rounds r <= w of sum over lanes (lane + r)
    for (int r = 0; r <= w; ++r) want += 496.0f + 32.0f * static_cast<float>(r);
    EXPECT_EQ(got[w], want) << "warp " << w;
  }
  cudaFree(out);
}

// Shuffles within 8-lane segments: down past the segment's end and xor keep the lane's value.
__global__ void SegmentShuffles(int* down, int* xor_out, int* src) {
  const int lane = threadIdx.x;
  down[lane] = __shfl_down_sync(0xFFFFFFFFu, lane, 3, 8);
  xor_out[lane] = __shfl_xor_sync(0xFFFFFFFFu, lane, 4, 8);
  src[lane] = __shfl_sync(0xFFFFFFFFu, lane, 9, 8);  // source lane 9 % 8 = 1 of each segment
}

TEST(EmulatedDevice, SubWarpShufflesStayInTheirSegment) {
  int* down = Upload(std::vector<int>(32));
  int* xr = Upload(std::vector<int>(32));
  int* src = Upload(std::vector<int>(32));
  SegmentShuffles<<<1, 32>>>(down, xr, src);
  const std::vector<int> d = Download(down, 32), x = Download(xr, 32), s = Download(src, 32);
  for (int lane = 0; lane < 32; ++lane) {
    EXPECT_EQ(d[lane], lane % 8 + 3 < 8 ? lane + 3 : lane) << lane;
    EXPECT_EQ(x[lane], lane ^ 4) << lane;
    EXPECT_EQ(s[lane], lane / 8 * 8 + 1) << lane;
  }
  for (int* p : {down, xr, src}) cudaFree(p);
}

__global__ void AffineStep(float* x, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] = x[i] * 2.0f + 1.0f;
}

// Launches on one stream run in order, each after the one before has finished.
TEST(EmulatedDevice, LaunchesOnAStreamRunInOrder) {
  constexpr int kN = 1000, kSteps = 20;
  float* x = Upload(std::vector<float>(kN, 0.0f));
  for (int s = 0; s < kSteps; ++s) AffineStep<<<(kN + 255) / 256, 256>>>(x, kN);
  const std::vector<float> got = Download(x, kN);
  for (int i = 0; i < kN; ++i) ASSERT_EQ(got[i], static_cast<float>((1 << kSteps) - 1)) << i;
  cudaFree(x);
}

// cudaMemcpyAsync from host memory copies it before returning: the caller may reuse it.
TEST(EmulatedDevice, AsyncHostToDeviceCopiesStageTheSource) {
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  std::vector<float> host(4096, 1.0f);
  float* x = Upload(std::vector<float>(host.size(), 0.0f));
  // Work queued ahead of the copy, so that it is still pending when the caller reuses `host`.
  for (int i = 0; i < 50; ++i) AffineStep<<<16, 256, 0, stream>>>(x, 4096);
  ASSERT_EQ(cudaMemcpyAsync(x, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice,
                            stream),
            cudaSuccess);
  std::fill(host.begin(), host.end(), 7.0f);
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  EXPECT_EQ(Download(x, host.size()), std::vector<float>(host.size(), 1.0f));
  cudaFree(x);
  cudaStreamDestroy(stream);
}

__global__ void FillShared(int* out) {
  extern __shared__ int scratch[];
  scratch[threadIdx.x] = static_cast<int>(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = scratch[blockDim.x - 1 - threadIdx.x];
}

// Launches a GPU refuses are refused, and cudaGetLastError reports the error once.
TEST(EmulatedDevice, LaunchLimitsAreTheGpus) {
  int* out = Upload(std::vector<int>(1024, -1));
  ASSERT_EQ(cudaFuncSetAttribute(FillShared, cudaFuncAttributeMaxDynamicSharedMemorySize, 48 * 1024),
            cudaSuccess);
  FillShared<<<1, 1025, 1025 * sizeof(int)>>>(out);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration) << "over 1024 threads";
  EXPECT_EQ(cudaGetLastError(), cudaSuccess) << "the error is reported once";
  FillShared<<<1, 64, 64 * 1024>>>(out);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration) << "64 KiB without the attribute";
  EXPECT_EQ(Download(out, 1), std::vector<int>{-1}) << "a refused launch does not run";
  EXPECT_EQ(cudaFuncSetAttribute(FillShared, cudaFuncAttributeMaxDynamicSharedMemorySize, 228 * 1024),
            cudaErrorInvalidValue);
  ASSERT_EQ(cudaFuncSetAttribute(FillShared, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024),
            cudaSuccess);
  FillShared<<<1, 64, 64 * 1024>>>(out);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const std::vector<int> got = Download(out, 64);
  for (int i = 0; i < 64; ++i) EXPECT_EQ(got[i], 63 - i);
  cudaFree(out);
}

// The loop cuBLAS: a transposed GEMM equals the plain sum, and bad leading dimensions are refused.
TEST(EmulatedDevice, CublasGemmFollowsItsDocumentedSemantics) {
  constexpr int m = 5, n = 3, k = 4;
  std::vector<float> a(k * m), b(k * n);  // A stored k x m (used transposed), B k x n
  std::iota(a.begin(), a.end(), 1.0f);
  std::iota(b.begin(), b.end(), -3.0f);
  float *da = Upload(a), *db = Upload(b), *dc = Upload(std::vector<float>(m * n, 0.0f));
  cublasHandle_t h = nullptr;
  ASSERT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
  const float one = 1.0f, zero = 0.0f;
  ASSERT_EQ(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, da, k, db, k, &zero, dc, m),
            CUBLAS_STATUS_SUCCESS);
  const std::vector<float> c = Download(dc, m * n);
  for (int j = 0; j < n; ++j) {
    for (int i = 0; i < m; ++i) {
      float want = 0.0f;
      for (int l = 0; l < k; ++l) want += a[l + i * k] * b[l + j * k];
      EXPECT_EQ(c[i + j * m], want) << i << "," << j;
    }
  }
  EXPECT_EQ(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, da, k - 1, db, k, &zero, dc, m),
            CUBLAS_STATUS_INVALID_VALUE)
      << "lda below k for a transposed A";
  EXPECT_EQ(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, da, m, db, k, &zero, dc, m - 1),
            CUBLAS_STATUS_INVALID_VALUE)
      << "ldc below m";
  cublasDestroy(h);
  for (float* p : {da, db, dc}) cudaFree(p);
}

}  // namespace
