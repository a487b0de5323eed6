// The multi-row F16 attention on AVX2: attention_rows_avx512.cc's kernel (see there and
// attention.h, AttendRowsF16), each 16-lane vector held as two 8-lane halves (lo = lanes
// 0-7, hi = 8-15). Per row AttendF16Reference's operations in its order, so the same bits.
// What changes for 8 lanes and 16 registers instead of 32:
//   - a row's scores come 8 keys at a time: per key t3 = hi + lo (ReduceLanes16's first
//     level), then its other levels for the 8 keys together, transposed;
//   - the softmax's prefix max runs over those 8 scores;
//   - the F16 accumulators are updated in tiles of rows by halves, one pass over the block's
//     values per tile (each half is its own rounding chain), and the softmax sum in a pass
//     of its own.
#if defined(__x86_64__)  // x86-only: on other CPUs attention_x86_absent.cc stands in
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "engine/attention.h"
#include "engine/attention_avx2_ops.h"
#include "engine/attention_rows-inl.h"
#include "engine/attention_rows_tail_avx2.h"
#include "engine/kernels.h"

namespace dormouse::attention_internal {
namespace {

using namespace avx2;      // NOLINT: this file's own kernels' steps
using namespace multirow;  // NOLINT: the driver's and the kernels' shared parts
// An accumulator tile: kTileRows rows by kTileHalves halves. The F16 rounding (two
// conversions) makes each accumulator's step a long chain, so a tile wants many of them in
// flight: 16 accumulators (a few spilled) beat 8 in registers by 5-15%; on this Zen 4 the
// 8-lane conversions then bound the update (measured: 2 cycles per vector).
constexpr int kTileRows = 2;
constexpr int kTileHalves = 8;

// Lane k of the result: ReduceLanes16 of key k, from each key's t3 (its first level,
// hi + lo). The adds are ReduceLanes16's (t6 = hi4 + lo4 of t3, then (t6[0] + t6[2]) +
// (t6[1] + t6[3])), with the shuffles putting several keys' halves side by side.
DM_AVX2 inline __m256 ReduceT3x8(const __m256 (&t3)[8]) {
  __m256 p[4], r[2];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {  // 128-bit lane 0: key i's t6, lane 1: key i + 4's
    p[i] = _mm256_add_ps(_mm256_permute2f128_ps(t3[i], t3[i + 4], 0x31),
                         _mm256_permute2f128_ps(t3[i], t3[i + 4], 0x20));
  }
#pragma GCC unroll 2
  for (int i = 0; i < 2; ++i) {  // t6[0] + t6[2], t6[1] + t6[3] of keys 2i, 2i + 1 (+ 4)
    r[i] = _mm256_add_ps(_mm256_shuffle_ps(p[2 * i], p[2 * i + 1], 0x44),
                         _mm256_shuffle_ps(p[2 * i], p[2 * i + 1], 0xEE));
  }
  return _mm256_add_ps(_mm256_shuffle_ps(r[0], r[1], 0x88), _mm256_shuffle_ps(r[0], r[1], 0xDD));
}

// Lanes shifted up by N (lane k gets lane k - N), the first N lanes from `fill`.
template <int N>
DM_AVX2 inline __m256 ShiftUp(__m256 v, __m256 fill) {
  static_assert(N == 1 || N == 2 || N == 4);
  if constexpr (N == 4) {
    return _mm256_permute2f128_ps(v, fill, 0x02);
  } else {
    const __m256i from = N == 1 ? _mm256_setr_epi32(0, 0, 1, 2, 3, 4, 5, 6)
                                : _mm256_setr_epi32(0, 0, 0, 1, 2, 3, 4, 5);
    return _mm256_blend_ps(_mm256_permutevar8x32_ps(v, from), fill, (1 << N) - 1);
  }
}

// The online softmax's steps for the 8 scores of keys [g, g + 8) (lanes past the row's keys
// hold -inf): per key the max before it (a prefix max, exact in any order), whether the key
// raises it (bit g + k of new_max), and the exp (e[g + k]). M: the running max in every lane,
// kept in a register (a float in memory would be reloaded after every store to e).
DM_AVX2 __attribute__((always_inline)) inline void Softmax8(__m256 s, __m256& M, uint32_t& new_max,
                                                            float* e, int g,
                                                            const uint64_t* table) {
  const __m256 neg = _mm256_set1_ps(-INFINITY);
  __m256 upto = _mm256_max_ps(s, ShiftUp<1>(s, neg));
  upto = _mm256_max_ps(upto, ShiftUp<2>(upto, neg));
  upto = _mm256_max_ps(upto, ShiftUp<4>(upto, neg));
  const __m256 before = _mm256_max_ps(ShiftUp<1>(upto, neg), M);
  const __m256 raise = _mm256_cmp_ps(s, before, _CMP_GT_OQ);
  const __m256 arg = _mm256_blendv_ps(_mm256_sub_ps(s, before), _mm256_sub_ps(before, s), raise);
  _mm256_store_ps(e + g, Exp8(arg, table));
  new_max |= static_cast<uint32_t>(_mm256_movemask_ps(raise)) << g;
  M = _mm256_max_ps(M, _mm256_permutevar8x32_ps(upto, _mm256_set1_epi32(7)));
}

// Half c (8 lanes) of a key or value row: F32Rows' or F16Rows'.
DM_AVX2 inline __m256 LoadChunk(const float* row, int c) { return _mm256_load_ps(row + 8 * c); }
DM_AVX2 inline __m256 LoadChunk(const uint16_t* row, int c) { return Load8(row + 8 * c); }

// The first level of ReduceLanes16 (hi + lo) of one key's dot product with q (H halves):
// DotF16's four 16-lane accumulators, reduced pairwise. F16 x F16 products are exact in F32,
// so an accumulator's first FMA (onto zero) is a multiply; with head_dim 64 the add of
// accumulators 0 and 2 (1 and 3) is the FMA of product 2 (3) onto product 0 (1).
template <int H, class Keys>
DM_AVX2 __attribute__((always_inline)) inline __m256 KeyT3(const Keys& keys, int j,
                                                           const __m256 (&q)[H]) {
  constexpr int kChunks = H / 2;  // 16-lane vectors
  const auto* key = keys.Row(j);
  __m256 acc[4][2];
#pragma GCC unroll 16
  for (int h = 0; h < H; ++h) {
    const int c = h / 2, part = h % 2;
    const int slot = kChunks == 4 ? c % 2 : c % 4;
    const __m256 kh = LoadChunk(key, h);
    acc[slot][part] =
        c == slot ? _mm256_mul_ps(kh, q[h]) : _mm256_fmadd_ps(kh, q[h], acc[slot][part]);
  }
  __m256 a[2];
#pragma GCC unroll 2
  for (int part = 0; part < 2; ++part) {
    a[part] = kChunks == 4 ? _mm256_add_ps(acc[0][part], acc[1][part])
                           : _mm256_add_ps(_mm256_add_ps(acc[0][part], acc[2][part]),
                                           _mm256_add_ps(acc[1][part], acc[3][part]));
  }
  return _mm256_add_ps(a[1], a[0]);
}

// Scores (scaled, as AttentionArgs::Score) and softmax steps of one row for the first n of
// the block's keys (rows up to a multiple of 8 readable), 8 keys at a time. H: the head's
// halves; those past a multiple of 8 (head_dim 96) are summed from `tail` (AddTail).
template <int H, class Keys>
DM_AVX2 void ScoreRow(const Keys& keys, const double* tail, const float* qf, int n, float scale,
                      float softcap, RowState& rs, const uint64_t* table) {
  constexpr int kVecHalves = H / 8 * 8, kTailDims = (H - kVecHalves) * 8;
  __m256 q[kVecHalves];
#pragma GCC unroll 16
  for (int h = 0; h < kVecHalves; ++h) q[h] = _mm256_load_ps(qf + 8 * h);
  __m256 M = _mm256_set1_ps(rs.M);
  uint32_t new_max = 0;
  __m256 vscale = _mm256_set1_ps(scale);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  alignas(32) float dot[kKeys];
  for (int g = 0; g < n; g += 8) {
    __m256 t3[8];
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) t3[k] = KeyT3<kVecHalves>(keys, g + k, q);
    _mm256_store_ps(dot + g, ReduceT3x8(t3));
  }
  if constexpr (kTailDims > 0) {
    for (int g = (n + 7) / 8 * 8; g < kKeys; g += 8) _mm256_store_ps(dot + g, _mm256_setzero_ps());
    AddTail<kTailDims>(tail, qf + 8 * kVecHalves, dot);
  }
  if (softcap > 0.0f) {  // AttentionArgs::Score, key by key (std::tanh); then scaled by 1
    for (int j = 0; j < n; ++j) dot[j] = softcap * std::tanh(dot[j] * scale);
    vscale = _mm256_set1_ps(1.0f);
  }
  for (int g = 0; g < n; g += 8) {
    const __m256 scaled = _mm256_mul_ps(_mm256_load_ps(dot + g), vscale);
    const __m256i valid = _mm256_cmpgt_epi32(_mm256_set1_epi32(n - g), lane);
    Softmax8(_mm256_blendv_ps(_mm256_set1_ps(-INFINITY), scaled, _mm256_castsi256_ps(valid)), M,
             new_max, rs.e, g, table);
  }
  rs.M = _mm256_cvtss_f32(M);
  rs.new_max = new_max;
}

// One key's update of one row's tile of D halves: AttendF16Reference's rescale (on a new
// max) and multiply-add, with the F16 rounding after each.
template <int D>
DM_AVX2 inline void Accumulate(__m256 (&acc)[D], const __m256 (&v)[D], const RowState& r, int j) {
  const __m256 e = _mm256_set1_ps(r.e[j]);
  if ((r.new_max >> j & 1) != 0) {
#pragma GCC unroll 8
    for (int c = 0; c < D; ++c) acc[c] = RoundF16(_mm256_mul_ps(acc[c], e));
#pragma GCC unroll 8
    for (int c = 0; c < D; ++c) acc[c] = RoundF16(_mm256_add_ps(v[c], acc[c]));
  } else {
#pragma GCC unroll 8
    for (int c = 0; c < D; ++c) acc[c] = RoundF16(_mm256_fmadd_ps(v[c], e, acc[c]));
  }
}

// Halves [c0, c0 + D) of R rows' accumulators (accp: each row's F32 values, F16 exact)
// through the block's values, row i through key n[i] - 1, in key order.
template <int D, int R, class Values>
DM_AVX2 void AccumulateTile(const Values& values, const RowState* const* rows, float* const* accp,
                            const int* n, int c0) {
  __m256 acc[R][D];
  uint32_t any_new_max = 0;
  int common = kKeys, most = 0;
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int c = 0; c < D; ++c) acc[r][c] = _mm256_load_ps(accp[r] + 8 * (c0 + c));
    any_new_max |= rows[r]->new_max;
    common = std::min(common, n[r]);
    most = std::max(most, n[r]);
  }
  for (int j = 0; j < most; ++j) {
    const auto* row = values.Row(j);
    if (j < common && (any_new_max >> j & 1) == 0) {  // the usual case: no row's max moves
      // The values are loaded where used: F32 ones become the FMA's memory operand.
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __m256 e = _mm256_set1_ps(rows[r]->e[j]);
#pragma GCC unroll 8
        for (int c = 0; c < D; ++c) {
          acc[r][c] = RoundF16(_mm256_fmadd_ps(LoadChunk(row, c0 + c), e, acc[r][c]));
        }
      }
    } else {
      __m256 v[D];
#pragma GCC unroll 8
      for (int c = 0; c < D; ++c) v[c] = LoadChunk(row, c0 + c);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        if (j < n[r]) Accumulate<D>(acc[r], v, *rows[r], j);
      }
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int c = 0; c < D; ++c) _mm256_store_ps(accp[r] + 8 * (c0 + c), acc[r][c]);
  }
}

// The softmax sum of one row over its first n keys of the block (AttendF16Reference's
// fma(S, ms, vs)).
DM_AVX2 inline void AddSum(RowState& r, int n) {
  float S = r.S;
  for (int j = 0; j < n; ++j) {
    const bool raised = (r.new_max >> j & 1) != 0;
    S = std::fma(S, raised ? r.e[j] : 1.0f, raised ? 1.0f : r.e[j]);
  }
  r.S = S;
}

// Halves [c0, c0 + D) of the m rows' accumulators through the block's values, in tiles of
// as many rows as make kTileRows * kTileHalves accumulators.
template <int D, class Values>
DM_AVX2 void AccumulateHalves(const Values& values, int m, RowState* const* rows,
                              float* const* accs, const int* n, int c0) {
  constexpr int R = kTileRows * kTileHalves / D;
  int i = 0;
  for (; i + R <= m; i += R) AccumulateTile<D, R>(values, rows + i, accs + i, n + i, c0);
  for (; i < m; ++i) AccumulateTile<D, 1>(values, rows + i, accs + i, n + i, c0);
}

// One block of keys for the m rows that see some of it (row i: its first n[i] keys).
template <int H, class Keys, class Values>
DM_AVX2 void AttendRowsBlock(const Keys& keys, const Values& values, const double* tail,
                             float scale, float softcap, int m, const float* const* qf,
                             RowState* const* rows, float* const* accs, const int* n) {
  const uint64_t* table = ExpfTable();
  for (int i = 0; i < m; ++i) {
    ScoreRow<H>(keys, tail, qf[i], n[i], scale, softcap, *rows[i], table);
  }
  constexpr int kFull = H / kTileHalves * kTileHalves;
  for (int c0 = 0; c0 < kFull; c0 += kTileHalves) {
    AccumulateHalves<kTileHalves>(values, m, rows, accs, n, c0);
  }
  if constexpr (H > kFull) AccumulateHalves<H - kFull>(values, m, rows, accs, n, kFull);
  for (int i = 0; i < m; ++i) AddSum(*rows[i], n[i]);
}

// The vector steps of multirow::AttendRows (attention_rows-inl.h).
struct Avx2 {
  static constexpr int kScoreKeys = 8;
  // A few rows (a decode's heads) read each key about once anyway: straight from the cache.
  // More rows share one conversion per block.
  static bool Convert(int /*head_dim*/, int n) { return n > 2; }
  template <int kHeadDim>
  DM_AVX2 static void LoadF16(const uint16_t* x, float* out) {
#pragma GCC unroll 16
    for (int c = 0; c < kHeadDim / 8; ++c) _mm256_store_ps(out + 8 * c, Load8(x + 8 * c));
  }
  template <int kHeadDim>
  DM_AVX2 __attribute__((noinline)) static void ConvertBlock(const AttentionArgs& a,
                                                             const uint8_t* base, int64_t j0, int n,
                                                             float* out) {
    ConvertRows<Avx2, kHeadDim>(a, base, j0, n, out);
  }
  template <int kHeadDim, class Keys>
  DM_AVX2 static void TransposeTail(const Keys& keys, int n, double* tail) {
    avx2::TransposeTail<kHeadDim>(keys, n, tail);
  }
  template <int kHeadDim, class Keys, class Values>
  DM_AVX2 static void AttendBlock(const Keys& keys, const Values& values, const double* tail,
                                  float scale, float softcap, int m, const float* const* qf,
                                  RowState* const* rows, float* const* accs, const int* n) {
    AttendRowsBlock<kHeadDim / 8>(keys, values, tail, scale, softcap, m, qf, rows, accs, n);
  }
  template <int kHeadDim>
  DM_AVX2 static void Attend(const AttentionArgs* a, int n, float* const* out) {
    AttendRows<Avx2, kHeadDim>(a, n, out);
  }
};

}  // namespace

DM_AVX2 bool AttendRowsF16Avx2(const AttentionArgs* a, int n, float* const* out) {
  return AttendRowsWith<Avx2>(a, n, out);
}

}  // namespace dormouse::attention_internal
#endif  // defined(__x86_64__)
