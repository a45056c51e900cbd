// Dot products of contiguous rows with AVX2/FMA: the one piece of arithmetic behind Linear,
// the PKM sub-key scores and the attention scores. Private to kernels/cpu; include only from
// files compiled with -mavx2 -mfma -mf16c.
//
// The tiles (DotTile and what is built on it) read their weight rows as float, Half, BFloat16
// or Int8 and widen them in registers (F16C; bf16 by a shift; int8 to its integer value).
// Widening is exact, so a dot product over 16-bit weights is the same bits as over their fp32
// widening; over int8 it is Σ x·q, which the caller scales by the row's scale.
//
// Every dot product over `len` floats is computed the same way wherever it sits in a tile:
// eight lane sums, lane l accumulating elements l, l+8, l+16, ... with one FMA each, in order
// (the last partial chunk through a masked load, its missing lanes read as zero); then the
// fixed tree ((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7)); then + bias. Tiles only decide how many
// independent dot products share the loads, never the order of one: so a result does not
// depend on the tile shape, the number of rows in the call or the threads.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace pkm::cpu::avx2 {

// 16-bit weight elements, as stored.
struct Half {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};
// int8 weights, widened to their integer value (the row's scale is applied by the caller).
struct Int8 {
  int8_t q;
};

// Eight weights from p, widened.
inline __m256 Load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 Load8(const Half* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m256 Load8(const BFloat16* p) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}
inline __m256 Load8(const Int8* p) {
  const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
}

// Mask of the first `rem` lanes (0 <= rem <= 8), for the partial chunk at the end of a row.
inline __m256i FirstLanes(int rem) {
  static constexpr int32_t kBits[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kBits + 8 - rem));
}

// The four lane-sum trees of a, b, c, d at once (result lane i is the tree of argument i).
// Lanes do not mix, so passing a duplicate for an unused argument changes nothing.
inline __m128 Reduce4(__m256 a, __m256 b, __m256 c, __m256 d) {
  __m256 ab = _mm256_hadd_ps(a, b);      // a0+a1 a2+a3 b0+b1 b2+b3 | a4+a5 a6+a7 b4+b5 b6+b7
  __m256 cd = _mm256_hadd_ps(c, d);      // likewise for c, d
  __m256 abcd = _mm256_hadd_ps(ab, cd);  // (a0+a1)+(a2+a3) b.. c.. d.. | (a4+a5)+(a6+a7) ...
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// The tree of one accumulator: the same arithmetic as its lane in Reduce4.
inline float Reduce1(__m256 a) { return _mm_cvtss_f32(Reduce4(a, a, a, a)); }

// The first `rem` (< 8) weights from p, widened, the other lanes +0 (as a masked load gives).
inline __m256 LoadFirst(const float* p, int rem) { return _mm256_maskload_ps(p, FirstLanes(rem)); }
template <typename W>
inline __m256 LoadFirst(const W* p, int rem) {
  W padded[8] = {};
  for (int i = 0; i < rem; ++i) padded[i] = p[i];
  return Load8(padded);
}

// y[r·ldy + c] = x[r·ldx, :len] · w[c·ldw, :len] (+ b[c]) for r < R, c < C (C <= 8).
// prefetch, when set, is the next tile's first row (same ldw): its C rows are prefetched at the
// pace this tile reads its own. Decode (R = 1) reads each row of w once, rows a few KiB long,
// too short for the hardware prefetcher to ramp up on; without this, 16-bit and int8 rows
// reach under half the machine's read bandwidth. Prefetching changes no result.
template <int R, int C, typename W>
inline void DotTile(const float* x, size_t ldx, const W* w, size_t ldw, int len, const float* b,
                    float* y, size_t ldy, const W* prefetch = nullptr) {
  constexpr int kPerLine = static_cast<int>(64 / sizeof(W));  // elements per cache line
  static_assert(R >= 1 && C >= 1 && C <= 8, "tile shape");
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  }
  int k = 0;
  for (; k + 8 <= len; k += 8) {
    if (prefetch != nullptr && k % kPerLine == 0) {
      for (int c = 0; c < C; ++c) {
        _mm_prefetch(reinterpret_cast<const char*>(prefetch + c * ldw + k), _MM_HINT_T0);
      }
    }
    __m256 xv[R];
    for (int r = 0; r < R; ++r) xv[r] = _mm256_loadu_ps(x + r * ldx + k);
    for (int c = 0; c < C; ++c) {
      __m256 wv = Load8(w + c * ldw + k);
      for (int r = 0; r < R; ++r) acc[r][c] = _mm256_fmadd_ps(xv[r], wv, acc[r][c]);
    }
  }
  if (k < len) {
    __m256i mask = FirstLanes(len - k);
    __m256 xv[R];
    for (int r = 0; r < R; ++r) xv[r] = _mm256_maskload_ps(x + r * ldx + k, mask);
    for (int c = 0; c < C; ++c) {
      __m256 wv = LoadFirst(w + c * ldw + k, len - k);
      for (int r = 0; r < R; ++r) acc[r][c] = _mm256_fmadd_ps(xv[r], wv, acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int c0 = 0; c0 < C; c0 += 4) {
      // Columns past C repeat column c0; their lanes are computed and dropped.
      auto col = [&](int c) { return acc[r][c < C ? c : c0]; };
      alignas(16) float sums[4];
      _mm_store_ps(sums, Reduce4(col(c0), col(c0 + 1), col(c0 + 2), col(c0 + 3)));
      for (int c = c0; c < C && c < c0 + 4; ++c) {
        y[r * ldy + c] = b ? sums[c - c0] + b[c] : sums[c - c0];
      }
    }
  }
}

// One DotTile of R rows and `width` columns, 0 <= width <= W (templates need the width fixed).
template <int R, int Width, typename W>
inline void DotTileOfWidth(int width, const float* x, size_t ldx, const W* w, size_t ldw,
                           int len, const float* b, float* y, size_t ldy) {
  if constexpr (Width > 0) {
    if (width == Width) {
      DotTile<R, Width>(x, ldx, w, ldw, len, b, y, ldy);
    } else {
      DotTileOfWidth<R, Width - 1>(width, x, ldx, w, ldw, len, b, y, ldy);
    }
  }
}

// DotTile over R rows and any number of columns, in tiles of C columns then a narrower tail;
// with `prefetch`, each full tile prefetches the next (DotTile).
template <int R, int C, typename W>
inline void DotRowsAllCols(const float* x, size_t ldx, const W* w, size_t ldw, int cols,
                           int len, const float* b, float* y, size_t ldy, bool prefetch = false) {
  int c = 0;
  for (; c + C <= cols; c += C) {
    const W* next = prefetch && c + 3 * C <= cols ? w + (c + 2 * C) * ldw : nullptr;
    DotTile<R, C>(x, ldx, w + c * ldw, ldw, len, b ? b + c : nullptr, y + c, ldy, next);
  }
  DotTileOfWidth<R, C - 1>(cols - c, x, ldx, w + c * ldw, ldw, len, b ? b + c : nullptr, y + c,
                           ldy);
}

// y[i·ldy + j] = x[i·ldx, :len] · w[j·ldw, :len] (+ b[j]) for i < rows, j < cols; serial.
// Columns outermost: a tile's few rows of w stay in L1 while the rows of x stream past.
template <typename W>
inline void DotBlock(const float* x, size_t ldx, int rows, const W* w, size_t ldw, int cols,
                     int len, const float* b, float* y, size_t ldy) {
  constexpr int kCols = 4;  // 3 rows × 4 columns: 12 accumulators + 3 x + 1 w = 16 registers
  for (int c = 0; c < cols; c += kCols) {
    int nc = cols - c < kCols ? cols - c : kCols;
    const W* wc = w + c * ldw;
    const float* bc = b ? b + c : nullptr;
    int r = 0;
    for (; r + 3 <= rows; r += 3) {
      DotRowsAllCols<3, kCols>(x + r * ldx, ldx, wc, ldw, nc, len, bc, y + r * ldy + c, ldy);
    }
    if (rows - r == 2) {
      DotRowsAllCols<2, kCols>(x + r * ldx, ldx, wc, ldw, nc, len, bc, y + r * ldy + c, ldy);
    } else if (rows - r == 1) {
      DotRowsAllCols<1, kCols>(x + r * ldx, ldx, wc, ldw, nc, len, bc, y + r * ldy + c, ldy);
    }
  }
}

// One row against many: y[j] = x · w[j·ldw, :len] (+ b[j]), 8 columns at a time so that eight
// independent FMA chains hide the latency (the decode case, n = 1).
template <typename W>
inline void DotRow(const float* x, const W* w, size_t ldw, int cols, int len, const float* b,
                   float* y) {
  DotRowsAllCols<1, 8>(x, 0, w, ldw, cols, len, b, y, 0, /*prefetch=*/true);
}

// x · w[i] for four rows w[0..3] anywhere in memory, e.g. keys of four positions scattered
// over cache blocks: the same arithmetic per dot product as DotTile.
inline __m128 Dot4(const float* x, const float* const* w, int len) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  int k = 0;
  for (; k + 8 <= len; k += 8) {
    __m256 xv = _mm256_loadu_ps(x + k);
    for (int c = 0; c < 4; ++c) acc[c] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w[c] + k), acc[c]);
  }
  if (k < len) {
    __m256i mask = FirstLanes(len - k);
    __m256 xv = _mm256_maskload_ps(x + k, mask);
    for (int c = 0; c < 4; ++c) {
      acc[c] = _mm256_fmadd_ps(xv, _mm256_maskload_ps(w[c] + k, mask), acc[c]);
    }
  }
  return Reduce4(acc[0], acc[1], acc[2], acc[3]);
}

// x · w: the same arithmetic as one dot product of Dot4 or DotTile.
inline float Dot1(const float* x, const float* w, int len) {
  __m256 acc = _mm256_setzero_ps();
  int k = 0;
  for (; k + 8 <= len; k += 8) {
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(x + k), _mm256_loadu_ps(w + k), acc);
  }
  if (k < len) {
    __m256i mask = FirstLanes(len - k);
    acc = _mm256_fmadd_ps(_mm256_maskload_ps(x + k, mask), _mm256_maskload_ps(w + k, mask), acc);
  }
  return Reduce1(acc);
}

// dst[0..len) = src[0..len) widened to float (exact: the values Load8 gives).
template <typename W>
inline void Widen(const W* src, size_t len, float* dst) {
  size_t k = 0;
  for (; k + 8 <= len; k += 8) _mm256_storeu_ps(dst + k, Load8(src + k));
  for (; k < len; ++k) dst[k] = _mm256_cvtss_f32(LoadFirst(src + k, 1));
}

// y[0..len) += a · x[0..len), one FMA per element (the tail through masked loads and stores);
// x is float, Half or BFloat16, widened.
template <typename W>
inline void Axpy(float a, const W* x, int len, float* y) {
  const __m256 va = _mm256_set1_ps(a);
  int k = 0;
  for (; k + 8 <= len; k += 8) {
    _mm256_storeu_ps(y + k, _mm256_fmadd_ps(va, Load8(x + k), _mm256_loadu_ps(y + k)));
  }
  if (k < len) {
    __m256i mask = FirstLanes(len - k);
    __m256 v = _mm256_fmadd_ps(va, LoadFirst(x + k, len - k), _mm256_maskload_ps(y + k, mask));
    _mm256_maskstore_ps(y + k, mask, v);
  }
}

}  // namespace pkm::cpu::avx2
