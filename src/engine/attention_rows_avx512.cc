// The multi-row AVX-512 F16 attention: up to kMaxAttentionRows query rows that share a KV
// head and a first key, each with its own end (a prefill's consecutive tokens, or one
// token's heads). Per row it does AttendF16Reference's operations in its order, so the bits
// are the same; what changes is how the work is laid out (attention.h, AttendRowsF16):
//   - each block of keys and values is converted from F16 once for all the rows;
//   - a row's scores come 16 keys at a time, and the 16 horizontal sums that end ggml's dot
//     products are done together, transposed (ReduceLanes16's adds, lane for lane), instead
//     of one shuffle chain per key;
//   - the online softmax's running max is a prefix max over those 16 scores, so a block's
//     exponents and exps are vector work; only the sum S stays one FMA per key;
//   - the F16 accumulators of several rows are updated together, so their rounding chains
//     (FMA, then F16 and back, after every key) overlap instead of waiting on each other.
// GCC 12 reports its own _mm512_undefined_* helpers as "used uninitialized" once these
// loops are unrolled: a known false positive (as in attention_avx512.cc).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#if defined(__x86_64__)  // x86-only: on other CPUs attention_x86_absent.cc stands in
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "engine/attention.h"
#include "engine/attention_avx512_ops.h"
#include "engine/attention_rows-inl.h"
#include "engine/attention_rows_tail_avx2.h"
#include "engine/kernels.h"

namespace dormouse::attention_internal {
namespace {

using namespace avx512;    // NOLINT: this file's own kernels' steps
using namespace multirow;  // NOLINT: the driver's and the kernels' shared parts

// s[k] = ReduceLanes16(a[k]) for 16 vectors, computed together: each level's adds are the
// same as ReduceLanes16's (t3 = hi8 + lo8, t6 = hi4 + lo4, (t6[0] + t6[2]) + (t6[1] + t6[3])),
// with the shuffles putting several keys' halves side by side.
DM_AVX512 inline __m512 ReduceLanes16x16(const __m512 (&a)[16]) {
  __m512 p[8], q[4], r[2];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {  // lanes 0-7: key 2i's t3, 8-15: key 2i+1's
    p[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE),
                         _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44));
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {  // 128-bit lane m: key 4i+m's t6
    q[i] = _mm512_add_ps(_mm512_shuffle_f32x4(p[2 * i], p[2 * i + 1], 0xDD),
                         _mm512_shuffle_f32x4(p[2 * i], p[2 * i + 1], 0x88));
  }
#pragma GCC unroll 2
  for (int i = 0; i < 2; ++i) {  // lane m: t6[0]+t6[2], t6[1]+t6[3] of keys 8i+m, 8i+4+m
    r[i] = _mm512_add_ps(_mm512_shuffle_ps(q[2 * i], q[2 * i + 1], 0x44),
                         _mm512_shuffle_ps(q[2 * i], q[2 * i + 1], 0xEE));
  }
  // Lane 4m + i: key 4i + m.
  const __m512 f =
      _mm512_add_ps(_mm512_shuffle_ps(r[0], r[1], 0x88), _mm512_shuffle_ps(r[0], r[1], 0xDD));
  const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
  return _mm512_permutexvar_ps(order, f);
}

// Lanes shifted up by n (lane k gets lane k - n), the first n lanes from `fill`.
template <int N>
DM_AVX512 inline __m512 ShiftUp(__m512 v, __m512 fill) {
  return _mm512_castsi512_ps(
      _mm512_alignr_epi32(_mm512_castps_si512(v), _mm512_castps_si512(fill), 16 - N));
}

// The online softmax's steps for 16 scores (lanes past the row's keys hold -inf): per key the
// max before it (a prefix max, exact in any order), whether the key raises it, and the exp.
DM_AVX512 __attribute__((always_inline)) inline void Softmax16(__m512 s, RowState& r, int g,
                                                               const uint64_t* table) {
  // The prefix max of the scores alone, then the running max once: the chain from one
  // group's max to the next stays short.
  const __m512 neg = _mm512_set1_ps(-INFINITY);
  __m512 upto = _mm512_max_ps(s, ShiftUp<1>(s, neg));
  upto = _mm512_max_ps(upto, ShiftUp<2>(upto, neg));
  upto = _mm512_max_ps(upto, ShiftUp<4>(upto, neg));
  upto = _mm512_max_ps(upto, ShiftUp<8>(upto, neg));
  const __m512 before = _mm512_max_ps(ShiftUp<1>(upto, neg), _mm512_set1_ps(r.M));
  const __mmask16 raise = _mm512_cmp_ps_mask(s, before, _CMP_GT_OQ);
  const __m512 arg =
      _mm512_mask_blend_ps(raise, _mm512_sub_ps(s, before), _mm512_sub_ps(before, s));
  _mm256_store_ps(r.e + g, Exp8(_mm512_castps512_ps256(arg), table));
  _mm256_store_ps(r.e + g + 8, Exp8(_mm512_extractf32x8_ps(arg, 1), table));
  r.new_max |= static_cast<uint32_t>(raise) << g;
  r.M = std::max(r.M, _mm512_cvtss_f32(_mm512_permutexvar_ps(_mm512_set1_epi32(15), upto)));
}

// Softmax16 of one row's dot products for keys [g, g + 16), scaled, those from the row's n on
// masked.
DM_AVX512 __attribute__((always_inline)) inline void Softmax16Of(__m512 dot, __m512 vscale, int n,
                                                                 RowState& r, int g,
                                                                 const uint64_t* table) {
  const int left = std::max(0, n - g);
  const __mmask16 valid = left >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << left) - 1);
  if (valid == 0) return;
  const __m512 scaled = _mm512_mul_ps(dot, vscale);
  Softmax16(_mm512_mask_blend_ps(valid, _mm512_set1_ps(-INFINITY), scaled), r, g, table);
}

// Chunk c (16 lanes) of a key or value row: F32Rows' or F16Rows'.
DM_AVX512 inline __m512 LoadChunk(const float* row, int c) { return _mm512_load_ps(row + 16 * c); }
DM_AVX512 inline __m512 LoadChunk(const uint16_t* row, int c) { return Load16(row + 16 * c); }

// Scores (scaled, as AttentionArgs::Score) and softmax steps of R rows (1 or 2) for the
// first n[i] of the block's keys (rows up to a multiple of 16 readable). Per key and row: DotF16's
// four accumulators, then its reduction, 16 at a time: 16 keys of one row, or 8 keys of two rows,
// whose key loads are then shared. CH: the 16-lane chunks of the dot's vector part; kTailDims
// more (head_dim 96's 32) are summed from `tail` (avx2::AddTail) before the softmax.
template <int CH, int kTailDims, int R, class Keys>
DM_AVX512 void ScoreRows(const Keys& keys, const double* tail, const float* const* qf, const int* n,
                         float scale, float softcap, RowState* const* rs) {
  constexpr int kPer = 16 / R;  // keys per reduction
  __m512 q[R][CH];
  int most = 0;
#pragma GCC unroll 2
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 8
    for (int c = 0; c < CH; ++c) q[i][c] = _mm512_load_ps(qf[i] + 16 * c);
    rs[i]->new_max = 0;
    most = std::max(most, n[i]);
  }
  const __m512 vscale = _mm512_set1_ps(scale);
  const uint64_t* table = ExpfTable();
  // With a tail or a soft-cap, the dot products wait in `dot` for their last steps.
  const bool later = kTailDims > 0 || softcap > 0.0f;
  alignas(64) float dot[R][kKeys];
  for (int g = 0; g < most; g += 16) {
    __m512 half[R];
#pragma GCC unroll 2
    for (int h = 0; h < R; ++h) {
      __m512 a[16];
#pragma GCC unroll 16
      for (int k = 0; k < kPer; ++k) {
        const auto* key = keys.Row(g + h * kPer + k);
        // F16 x F16 products are exact in F32, so an accumulator's first FMA (onto zero) is
        // a multiply; and with head_dim 64 the add of accumulators 0 and 2 (1 and 3) is the
        // FMA of product 2 (3) onto product 0 (1): the same roundings, two steps fewer.
        __m512 acc[R][4];
#pragma GCC unroll 8
        for (int c = 0; c < CH; ++c) {
          const __m512 kc = LoadChunk(key, c);
          const int slot = CH == 4 ? c % 2 : c % 4;
#pragma GCC unroll 2
          for (int i = 0; i < R; ++i) {
            acc[i][slot] =
                c == slot ? _mm512_mul_ps(kc, q[i][c]) : _mm512_fmadd_ps(kc, q[i][c], acc[i][slot]);
          }
        }
#pragma GCC unroll 2
        for (int i = 0; i < R; ++i) {
          a[i * kPer + k] = CH == 4 ? _mm512_add_ps(acc[i][0], acc[i][1])
                                    : _mm512_add_ps(_mm512_add_ps(acc[i][0], acc[i][2]),
                                                    _mm512_add_ps(acc[i][1], acc[i][3]));
        }
      }
      half[h] = ReduceLanes16x16(a);  // lane i * kPer + k: row i's key h * kPer + k
    }
    __m512 s[R];
    if constexpr (R == 1) {
      s[0] = half[0];
    } else {
      const __m512i first =
          _mm512_set_epi32(23, 22, 21, 20, 19, 18, 17, 16, 7, 6, 5, 4, 3, 2, 1, 0);
      const __m512i second = _mm512_add_epi32(first, _mm512_set1_epi32(8));
      s[0] = _mm512_permutex2var_ps(half[0], first, half[1]);
      s[1] = _mm512_permutex2var_ps(half[0], second, half[1]);
    }
#pragma GCC unroll 2
    for (int i = 0; i < R; ++i) {
      if (later) {
        _mm512_store_ps(dot[i] + g, s[i]);
      } else {
        Softmax16Of(s[i], vscale, n[i], *rs[i], g, table);
      }
    }
  }
  if (!later) return;
  const __m512 one = _mm512_set1_ps(1.0f);
#pragma GCC unroll 2
  for (int i = 0; i < R; ++i) {
    if constexpr (kTailDims > 0) {
      for (int g = (most + 15) / 16 * 16; g < kKeys; g += 16) {
        _mm512_store_ps(dot[i] + g, _mm512_setzero_ps());
      }
      avx2::AddTail<kTailDims>(tail, qf[i] + 16 * CH, dot[i]);
    }
    if (softcap > 0.0f) {  // AttentionArgs::Score, key by key (std::tanh); then scaled by 1
      for (int j = 0; j < n[i]; ++j) dot[i][j] = softcap * std::tanh(dot[i][j] * scale);
    }
    for (int g = 0; g < n[i]; g += 16) {
      Softmax16Of(_mm512_load_ps(dot[i] + g), softcap > 0.0f ? one : vscale, n[i], *rs[i], g,
                  table);
    }
  }
}

// One key's update of one row: AttendF16Reference's rescale (on a new max) and multiply-add,
// with the F16 rounding after each, and its sum.
template <int CH>
DM_AVX512 inline void Accumulate(__m512 (&acc)[CH], const __m512 (&v)[CH], RowState& r, int j,
                                 float& S) {
  const float ej = r.e[j];
  const __m512 e = _mm512_set1_ps(ej);
  if ((r.new_max >> j & 1) != 0) {
#pragma GCC unroll 8
    for (int c = 0; c < CH; ++c) acc[c] = RoundF16(_mm512_mul_ps(acc[c], e));
#pragma GCC unroll 8
    for (int c = 0; c < CH; ++c) acc[c] = RoundF16(_mm512_add_ps(v[c], acc[c]));
    S = std::fma(S, ej, 1.0f);
  } else {
#pragma GCC unroll 8
    for (int c = 0; c < CH; ++c) acc[c] = RoundF16(_mm512_fmadd_ps(v[c], e, acc[c]));
    S = std::fma(S, 1.0f, ej);
  }
}

// The value rows of a block into R rows' accumulators (acc: each row's F32 values, F16
// exact), row i through key n[i] - 1 of the block, in key order.
template <int CH, int R, class Values>
DM_AVX512 void AccumulateRows(const Values& values, RowState* const* rows, float* const* accp,
                              const int* n) {
  __m512 acc[R][CH];
  float S[R];
  uint32_t any_new_max = 0;
  int common = kKeys, most = 0;
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int c = 0; c < CH; ++c) acc[r][c] = _mm512_load_ps(accp[r] + 16 * c);
    S[r] = rows[r]->S;
    any_new_max |= rows[r]->new_max;
    common = std::min(common, n[r]);
    most = std::max(most, n[r]);
  }
  for (int j = 0; j < common; ++j) {
    __m512 v[CH];
    const auto* row = values.Row(j);
#pragma GCC unroll 8
    for (int c = 0; c < CH; ++c) v[c] = LoadChunk(row, c);
    if ((any_new_max >> j & 1) == 0) {  // the usual case: no row's max moves
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const float ej = rows[r]->e[j];
        const __m512 e = _mm512_set1_ps(ej);
#pragma GCC unroll 8
        for (int c = 0; c < CH; ++c) acc[r][c] = RoundF16(_mm512_fmadd_ps(v[c], e, acc[r][c]));
        S[r] = std::fma(S[r], 1.0f, ej);
      }
    } else {
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) Accumulate<CH>(acc[r], v, *rows[r], j, S[r]);
    }
  }
  for (int j = common; j < most; ++j) {  // keys only some rows see
    __m512 v[CH];
    const auto* row = values.Row(j);
#pragma GCC unroll 8
    for (int c = 0; c < CH; ++c) v[c] = LoadChunk(row, c);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      if (j < n[r]) Accumulate<CH>(acc[r], v, *rows[r], j, S[r]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int c = 0; c < CH; ++c) _mm512_store_ps(accp[r] + 16 * c, acc[r][c]);
    rows[r]->S = S[r];
  }
}

// One block of keys for the m rows that see some of it (row i: its first n[i] keys).
template <int kHeadDim, class Keys, class Values>
DM_AVX512 void AttendRowsBlock(const Keys& keys, const Values& values, const double* tail,
                               float scale, float softcap, int m, const float* const* qf,
                               RowState* const* rows, float* const* accs, const int* n) {
  constexpr int CH = kHeadDim / 16, CS = kHeadDim / 64 * 4, kTailDims = kTail<kHeadDim>;
  for (int i = 0; i < m;) {
    if (m - i >= 2 && CS <= 4) {
      ScoreRows<CS, kTailDims, 2>(keys, tail, qf + i, n + i, scale, softcap, rows + i);
      i += 2;
    } else {
      ScoreRows<CS, kTailDims, 1>(keys, tail, qf + i, n + i, scale, softcap, rows + i);
      i += 1;
    }
  }
  for (int i = 0; i < m;) {
    if (m - i >= 4 && CH <= 4) {  // 4 rows' accumulators fit in registers with head_dim 64
      AccumulateRows<CH, 4>(values, rows + i, accs + i, n + i);
      i += 4;
    } else if (m - i >= 2 && CH <= 8) {  // and 2 rows' up to 128
      AccumulateRows<CH, 2>(values, rows + i, accs + i, n + i);
      i += 2;
    } else {
      AccumulateRows<CH, 1>(values, rows + i, accs + i, n + i);
      i += 1;
    }
  }
}

// The vector steps of multirow::AttendRows (attention_rows-inl.h).
struct Avx512 {
  static constexpr int kScoreKeys = 16;
  // Up to one tile of rows (a decode's heads) reads each key and value once anyway: straight
  // from the cache. More rows share one conversion per block.
  static bool Convert(int head_dim, int n) { return n > (head_dim <= 64 ? 4 : 2); }
  template <int kHeadDim>
  DM_AVX512 static void LoadF16(const uint16_t* x, float* out) {
#pragma GCC unroll 8
    for (int c = 0; c < kHeadDim / 16; ++c) _mm512_store_ps(out + 16 * c, Load16(x + 16 * c));
  }
  template <int kHeadDim>
  DM_AVX512 __attribute__((noinline)) static void ConvertBlock(const AttentionArgs& a,
                                                               const uint8_t* base, int64_t j0,
                                                               int n, float* out) {
    ConvertRows<Avx512, kHeadDim>(a, base, j0, n, out);
  }
  template <int kHeadDim, class Keys>
  DM_AVX512 static void TransposeTail(const Keys& keys, int n, double* tail) {
    avx2::TransposeTail<kHeadDim>(keys, n, tail);
  }
  template <int kHeadDim, class Keys, class Values>
  DM_AVX512 static void AttendBlock(const Keys& keys, const Values& values, const double* tail,
                                    float scale, float softcap, int m, const float* const* qf,
                                    RowState* const* rows, float* const* accs, const int* n) {
    AttendRowsBlock<kHeadDim>(keys, values, tail, scale, softcap, m, qf, rows, accs, n);
  }
  template <int kHeadDim>
  DM_AVX512 static void Attend(const AttentionArgs* a, int n, float* const* out) {
    AttendRows<Avx512, kHeadDim>(a, n, out);
  }
};

}  // namespace

DM_AVX512 bool AttendRowsF16Avx512(const AttentionArgs* a, int n, float* const* out) {
  return AttendRowsWith<Avx512>(a, n, out);
}

}  // namespace dormouse::attention_internal
#endif  // defined(__x86_64__)
