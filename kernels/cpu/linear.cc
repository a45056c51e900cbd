// Linear: y = x·wᵀ + b with our own AVX2 dot-product kernel (dot_avx2.h).
//
// Why not OpenBLAS: its sgemm is not batch-invariant. With the same weights, row i of an
// n = 1 call differs in the last bits from row i of an n = 37 or n = 256 call (n = 1 takes a
// GEMV path, larger n different blockings and K splits), and the engine needs a token's row to
// be the same whatever it is batched with. Here every y element is one dot product in a fixed
// order, so the result is bitwise independent of n and of the thread count by construction
// (tests/kernels/cpu/linear_test.cc; bench/cpu/linear_bench.cc measures both).
//
// 16-bit weights (fp16, bf16) are read as stored, half the bytes, and widened in registers:
// the same bits as on their fp32 widening, at up to twice the speed where reading the weights
// is the bound (decode). Where arithmetic is the bound (several rows), each column block is
// widened once into a per-thread buffer and the fp32 tiles run on it. int8 weights (a quarter) are widened to integers, and each output is
// scaled by its row's scale after the dot product.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/cpu/dot_avx2.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/parallel.h"

namespace pkm::cpu {
namespace {

// Work is split into (column block × row block) tasks; a thread takes a contiguous run of
// them, i.e. its own column blocks. A column block of w (~256 KiB, at most kMaxColBlock rows)
// stays in L2 while the row blocks of x stream past it. Blocks shrink until every thread has
// a few tasks (decode, n = 1, has a single row block). None of this changes any result.
constexpr int kRowBlock = 48;
constexpr int kMaxColBlock = 256;
constexpr int kMinColBlock = 16;
constexpr int kColBlockFloats = 64 * 1024;
constexpr int kTasksPerThread = 4;
// Below this many multiply-adds (~50 µs on one core) a parallel region saves little and, on a
// busy machine, a thread descheduled at the barrier can cost a whole time slice.
constexpr double kMinParallelMacs = 1024.0 * 1024;

int ColumnBlock(int in, int out, int row_blocks, int threads) {
  int block = std::clamp(kColBlockFloats / std::max(in, 1), kMinColBlock, kMaxColBlock) / 4 * 4;
  while (block > kMinColBlock &&
         static_cast<int64_t>((out + block - 1) / block) * row_blocks < kTasksPerThread * threads) {
    block /= 2;
  }
  return block;
}

// int8 rows: y = (x · q) · scale + b, the scale and bias applied after the dot product, to
// the tile just computed (so still one fixed sequence of operations per element).
void ScaleTile(const float* scales, const float* b, int rows, int cols, size_t ldy, float* y) {
  for (int r = 0; r < rows; ++r) {
    float* yr = y + static_cast<size_t>(r) * ldy;
    for (int c = 0; c < cols; ++c) yr[c] = b ? yr[c] * scales[c] + b[c] : yr[c] * scales[c];
  }
}

template <typename W>
void LinearOf(const float* x, int n, int in, const W* w, const float* scales, const float* b,
              int out, float* y) {
  constexpr bool kScaled = std::is_same_v<W, avx2::Int8>;
  const int threads = NumThreads();
  const int row_blocks = (n + kRowBlock - 1) / kRowBlock;
  const int col_block = ColumnBlock(in, out, row_blocks, threads);
  const int col_blocks = (out + col_block - 1) / col_block;
  const int tasks = col_blocks * row_blocks;
  const bool parallel = tasks > 1 && static_cast<double>(n) * in * out >= kMinParallelMacs;
  const size_t ld = static_cast<size_t>(in);

#pragma omp parallel for schedule(static) num_threads(threads) if (parallel)
  for (int task = 0; task < tasks; ++task) {
    const int c0 = task / row_blocks * col_block;
    const int r0 = task % row_blocks * kRowBlock;
    const int cols = out - c0 < col_block ? out - c0 : col_block;
    const int rows = n - r0 < kRowBlock ? n - r0 : kRowBlock;
    const float* bias = b ? b + c0 : nullptr;
    float* yt = y + static_cast<size_t>(r0) * out + c0;
    const float* dot_bias = kScaled ? nullptr : bias;
    if (rows == 1) {
      avx2::DotRow(x + r0 * ld, w + c0 * ld, ld, cols, in, dot_bias, yt);
    } else if constexpr (!std::is_same_v<W, float>) {
      // Several rows (prefill, scoring, batched decode) are bound by arithmetic: widening in
      // the tile loop would cost one more instruction per 3 FMAs. The column block (~256 KiB
      // as fp32) is widened once per task instead, exactly, so the same bits (3-5% faster).
      thread_local std::vector<float> wide;
      wide.resize(static_cast<size_t>(cols) * ld);
      avx2::Widen(w + c0 * ld, static_cast<size_t>(cols) * ld, wide.data());
      avx2::DotBlock(x + r0 * ld, ld, rows, wide.data(), ld, cols, in, dot_bias, yt,
                     static_cast<size_t>(out));
    } else {
      avx2::DotBlock(x + r0 * ld, ld, rows, w + c0 * ld, ld, cols, in, dot_bias, yt,
                     static_cast<size_t>(out));
    }
    if constexpr (kScaled) ScaleTile(scales + c0, bias, rows, cols, static_cast<size_t>(out), yt);
  }
}

}  // namespace

void Linear(const float* x, int n, int in, WeightMatrix w, const float* b, int out, float* y) {
  RequireAvx2Fma();
  if (n <= 0 || out <= 0) return;
  switch (w.type) {
    case WeightType::kF32:
      return LinearOf(x, n, in, w.f32(), nullptr, b, out, y);
    case WeightType::kF16:
      return LinearOf(x, n, in, static_cast<const avx2::Half*>(w.data), nullptr, b, out, y);
    case WeightType::kBF16:
      return LinearOf(x, n, in, static_cast<const avx2::BFloat16*>(w.data), nullptr, b, out, y);
    case WeightType::kI8:
      return LinearOf(x, n, in, static_cast<const avx2::Int8*>(w.data), w.scales, b, out, y);
  }
}

}  // namespace pkm::cpu
