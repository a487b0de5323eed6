// Per-target (Highway) multi-row F16 attention (attention.h, AttendRowsF16) for the targets
// without an intrinsics kernel: SSE4 and SSSE3 on x86, NEON on ARM. Included once per target
// by kernels.cc (foreach_target); no include guard on purpose.
//
// attention_rows_avx512.cc's layout in 4-lane vectors, through multirow::AttendRows (the
// driver, attention_rows-inl.h). Per row AttendF16Reference's operations in its order, so the
// same bits, where the per-head path (AttendF16Portable) pays, for every key of every row, a
// call per step, the query's conversion from F16 again, and ReduceLanes16 in scalar code:
//   - each block of keys and values is converted from F16 once for all the rows;
//   - a key's dot product is ggml's four 16-lane accumulators as 4 x 4 lanes; ReduceLanes16's
//     first two levels are vector adds, and its last for 4 keys at once, transposed;
//   - the online softmax stays scalar, with std::exp: x86 without FMA has no vector expf
//     that matches glibc's there (on NEON the lane kernel's could serve: not measured);
//   - a row's F16 accumulators stay in registers across a block's values, a tile at a time,
//     their rounding chains (multiply-add, then F16 and back) side by side.
#if defined(DORMOUSE_ENGINE_ATTENTION_ROWS_VEC_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DORMOUSE_ENGINE_ATTENTION_ROWS_VEC_INL_H_
#undef DORMOUSE_ENGINE_ATTENTION_ROWS_VEC_INL_H_
#else
#define DORMOUSE_ENGINE_ATTENTION_ROWS_VEC_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "engine/attention.h"
#include "engine/attention_rows-inl.h"
#include "engine/f16_vec-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dormouse {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
namespace rows_vec {

#ifndef DM_UNROLL
#define DM_UNROLL _Pragma("GCC unroll 16")
#endif

// Not on HWY_SCALAR (one lane): the callers run the per-head path there.
#if HWY_TARGET != HWY_SCALAR
#define DM_HAVE_ATTENTION_ROWS_VEC 1

using attention_internal::multirow::kKeys;
using attention_internal::multirow::kTail;
using attention_internal::multirow::RowState;
using D4 = hn::FixedTag<float, 4>;
using V4 = hn::Vec<D4>;

// Accumulator vectors per tile of a row: all of a head_dim 64 row in NEON's 32 registers;
// half of that in x86's 16.
#if HWY_ARCH_ARM
constexpr int kTileVecs = 16;
#else
constexpr int kTileVecs = 8;
#endif

// 4 lanes of a key or value row, from F32Rows (converted, 64-byte aligned) or F16Rows.
HWY_INLINE V4 Load4(const float* row, int i) { return hn::Load(D4(), row + 4 * i); }
HWY_INLINE V4 Load4(const uint16_t* row, int i) { return f16::LoadF16(D4(), row + 4 * i); }

// x rounded to F16 and back, as the F16 accumulator stores it.
HWY_INLINE V4 RoundF16(V4 x) { return f16::Round(D4(), x); }

// ReduceLanes16's first two levels of one key's 16-lane sum: t6 = (a3 + a1) + (a2 + a0), a
// the sum's four quarters. The 16 lanes of each of ggml's four accumulators are four vectors:
// DotF16Reference's acc[j] for j < 4 is product j (x * y is exact, so its FMA onto zero is
// a multiply), and with head_dim 128 product 4 + j added by FMA; with head_dim 64 the add of
// accumulators 0 and 2 (1 and 3) is the FMA of product 2 (3) onto product 0 (1): the same
// roundings, fewer steps.
template <int CH, class Row>
HWY_INLINE V4 KeyT6(const Row* key, const float* q) {
  const D4 d;
  constexpr int kSlots = CH == 4 ? 2 : 4;
  V4 a[4];
  DM_UNROLL
  for (int qq = 0; qq < 4; ++qq) {
    V4 s[kSlots];
    DM_UNROLL
    for (int c = 0; c < kSlots; ++c)
      s[c] = hn::Mul(Load4(key, 4 * c + qq), hn::Load(d, q + 16 * c + 4 * qq));
    DM_UNROLL
    for (int c = kSlots; c < CH; ++c) {
      s[c % kSlots] =
          hn::MulAdd(Load4(key, 4 * c + qq), hn::Load(d, q + 16 * c + 4 * qq), s[c % kSlots]);
    }
    a[qq] = kSlots == 2 ? hn::Add(s[0], s[1]) : hn::Add(hn::Add(s[0], s[2]), hn::Add(s[1], s[3]));
  }
  return hn::Add(hn::Add(a[3], a[1]), hn::Add(a[2], a[0]));
}

// Head_dim 96 (attention_rows-inl.h, kTail): the last 32 dimensions in double, one key per lane.
#if !HWY_HAVE_FLOAT64
#error \
    "the row kernel's head_dim 96 needs double vectors (every x86 and 64-bit ARM target has them)"
#endif
using D2 = hn::FixedTag<double, 2>;
using F2 = hn::FixedTag<float, 2>;

// The tails of keys [0, n) of a block transposed into doubles: tail[i * kKeys + j] =
// dimension i of key j's tail, zero past n rounded up to 4 (keys up to there readable).
template <int kHeadDim, class Keys>
HWY_INLINE void TransposeTail(const Keys& keys, int n, double* tail) {
  const D4 d;
  const D2 dd;
  constexpr int kFrom = kHeadDim / 64 * 16;
  const int padded = (n + 3) / 4 * 4;
  for (int g = 0; g < padded; g += 4) {
    for (int c = 0; c < kTail<kHeadDim> / 4; ++c) {
      const V4 r0 = Load4(keys.Row(g), kFrom + c), r1 = Load4(keys.Row(g + 1), kFrom + c);
      const V4 r2 = Load4(keys.Row(g + 2), kFrom + c), r3 = Load4(keys.Row(g + 3), kFrom + c);
      const V4 lo01 = hn::InterleaveLower(d, r0, r1), hi01 = hn::InterleaveUpper(d, r0, r1);
      const V4 lo23 = hn::InterleaveLower(d, r2, r3), hi23 = hn::InterleaveUpper(d, r2, r3);
      const V4 dims[4] = {hn::ConcatLowerLower(d, lo23, lo01), hn::ConcatUpperUpper(d, lo23, lo01),
                          hn::ConcatLowerLower(d, hi23, hi01), hn::ConcatUpperUpper(d, hi23, hi01)};
      DM_UNROLL
      for (int i = 0; i < 4; ++i) {
        double* out = tail + (4 * c + i) * kKeys + g;
        hn::Store(hn::PromoteTo(dd, hn::LowerHalf(dims[i])), dd, out);
        hn::Store(hn::PromoteTo(dd, hn::UpperHalf(F2(), dims[i])), dd, out + 2);
      }
    }
  }
  for (int i = 0; i < kTail<kHeadDim>; ++i) {
    for (int g = padded; g < kKeys; g += 2) hn::Store(hn::Zero(dd), dd, tail + i * kKeys + g);
  }
}

// DotF16Reference's last steps for all of a block's keys: dot[j] = float(V + k[0] * q[0] +
// k[1] * q[1] + ...), one product at a time in double (exact, so MulAdd gives the sum's
// rounding, fused or not), V = dot[j], k key j's tail, q (qt) the row's. Chains of 2 keys, 8
// at a time.
template <int kTailDims>
HWY_INLINE void AddTail(const double* tail, const float* qt, float* dot) {
  const D2 dd;
  const F2 df;
  constexpr int kChains = 8;
  HWY_ALIGN double qd[kTailDims];
  for (int i = 0; i < kTailDims; ++i) qd[i] = qt[i];
  for (int p = 0; p < kKeys; p += 2 * kChains) {
    hn::Vec<D2> s[kChains];
    DM_UNROLL
    for (int c = 0; c < kChains; ++c) s[c] = hn::PromoteTo(dd, hn::Load(df, dot + p + 2 * c));
    for (int i = 0; i < kTailDims; ++i) {
      const hn::Vec<D2> q = hn::Set(dd, qd[i]);
      DM_UNROLL
      for (int c = 0; c < kChains; ++c) {
        s[c] = hn::MulAdd(hn::Load(dd, tail + i * kKeys + p + 2 * c), q, s[c]);
      }
    }
    DM_UNROLL
    for (int c = 0; c < kChains; ++c) hn::Store(hn::DemoteTo(df, s[c]), df, dot + p + 2 * c);
  }
}

// Scores and softmax steps of one row for the block's first n keys (rows up to a multiple of
// 4 readable): per key AttendF16Reference's dot, scale, running max, exp and sum S. CH: the
// head's 16-lane chunks; with head_dim 96 the 32 dimensions past them come from `tail`.
template <int kHeadDim, class Keys>
HWY_INLINE void ScoreRow(const Keys& keys, const double* tail, const float* q, int n, float scale,
                         float softcap, RowState& r) {
  const D4 d;
  constexpr int CH = kHeadDim / 64 * 4, kTailDims = kTail<kHeadDim>;
  HWY_ALIGN float score[kKeys];
  const V4 vscale = hn::Set(d, scale);
  for (int g = 0; g < n; g += 4) {
    V4 t6[4];
    DM_UNROLL
    for (int k = 0; k < 4; ++k) t6[k] = KeyT6<CH>(keys.Row(g + k), q);
    // ReduceLanes16's last level for the 4 keys: (t6[0] + t6[2]) + (t6[1] + t6[3]), with the
    // 4 x 4 transpose folded into the adds (lane-wise, so in either order the same sums).
    const V4 lo01 = hn::InterleaveLower(d, t6[0], t6[1]),
             hi01 = hn::InterleaveUpper(d, t6[0], t6[1]);
    const V4 lo23 = hn::InterleaveLower(d, t6[2], t6[3]),
             hi23 = hn::InterleaveUpper(d, t6[2], t6[3]);
    const V4 s02 = hn::Add(lo01, hi01);  // keys 0, 1: t6[0] + t6[2], t6[1] + t6[3]
    const V4 s13 = hn::Add(lo23, hi23);  // keys 2, 3
    const V4 dot = hn::Add(hn::ConcatLowerLower(d, s13, s02), hn::ConcatUpperUpper(d, s13, s02));
    if constexpr (kTailDims > 0) {
      hn::Store(dot, d, score + g);
    } else {
      hn::Store(hn::Mul(dot, vscale), d, score + g);
    }
  }
  if constexpr (kTailDims > 0) {
    for (int g = (n + 3) / 4 * 4; g < kKeys; g += 4) hn::Store(hn::Zero(d), d, score + g);
    AddTail<kTailDims>(tail, q + 16 * CH, score);
    for (int g = 0; g < n; g += 4) hn::Store(hn::Mul(hn::Load(d, score + g), vscale), d, score + g);
  }
  if (softcap > 0.0f) {  // AttentionArgs::Score's last step, key by key (std::tanh)
    for (int j = 0; j < n; ++j) score[j] = softcap * std::tanh(score[j]);
  }
  float M = r.M, S = r.S;
  uint32_t new_max = 0;
  for (int j = 0; j < n; ++j) {
    const float s = score[j];
    if (s > M) {  // a new maximum: what was accumulated is rescaled
      const float e = std::exp(M - s);
      M = s;
      r.e[j] = e;
      new_max |= 1u << j;
      S = std::fma(S, e, 1.0f);
    } else {
      const float e = std::exp(s - M);
      r.e[j] = e;
      S = std::fma(S, 1.0f, e);
    }
  }
  r.M = M;
  r.S = S;
  r.new_max = new_max;
}

// Vectors [c0, c0 + kVecs) of one row's accumulator through the block's first n values, in
// key order: AttendF16Reference's rescale (on a new max) and multiply-add, each rounded to
// F16.
template <int kVecs, class Values>
HWY_INLINE void AccumulateTile(const Values& values, const RowState& r, int n, float* acc, int c0) {
  const D4 d;
  V4 a[kVecs];
  DM_UNROLL
  for (int c = 0; c < kVecs; ++c) a[c] = hn::Load(d, acc + 4 * (c0 + c));
  for (int j = 0; j < n; ++j) {
    const auto* row = values.Row(j);
    const V4 e = hn::Set(d, r.e[j]);
    if ((r.new_max >> j & 1) == 0) {
      DM_UNROLL
      for (int c = 0; c < kVecs; ++c)
        a[c] = RoundF16(f16::FmaForF16(d, Load4(row, c0 + c), e, a[c]));
    } else {
      DM_UNROLL
      for (int c = 0; c < kVecs; ++c)
        a[c] = RoundF16(hn::Add(Load4(row, c0 + c), RoundF16(hn::Mul(a[c], e))));
    }
  }
  DM_UNROLL
  for (int c = 0; c < kVecs; ++c) hn::Store(a[c], d, acc + 4 * (c0 + c));
}

// The vector steps of multirow::AttendRows (attention_rows-inl.h).
struct RowsVec {
  static constexpr int kScoreKeys = 4;
  // One row reads each key and value once anyway: straight from the cache. More rows share
  // one conversion per block.
  static bool Convert(int /*head_dim*/, int n) { return n > 1; }
  template <int kHeadDim>
  static void LoadF16(const uint16_t* x, float* out) {
    const D4 d;
    DM_UNROLL
    for (int c = 0; c < kHeadDim / 4; ++c) hn::Store(Load4(x, c), d, out + 4 * c);
  }
  template <int kHeadDim>
  static HWY_NOINLINE void ConvertBlock(const AttentionArgs& a, const uint8_t* base, int64_t j0,
                                        int n, float* out) {
    attention_internal::multirow::ConvertRows<RowsVec, kHeadDim>(a, base, j0, n, out);
  }
  template <int kHeadDim, class Keys>
  static void TransposeTail(const Keys& keys, int n, double* tail) {
    rows_vec::TransposeTail<kHeadDim>(keys, n, tail);
  }
  template <int kHeadDim, class Keys, class Values>
  static void AttendBlock(const Keys& keys, const Values& values, const double* tail, float scale,
                          float softcap, int m, const float* const* qf, RowState* const* rows,
                          float* const* accs, const int* n) {
    constexpr int kVecs = kHeadDim / 4, kFull = kVecs / kTileVecs * kTileVecs;
    for (int i = 0; i < m; ++i)
      ScoreRow<kHeadDim>(keys, tail, qf[i], n[i], scale, softcap, *rows[i]);
    for (int i = 0; i < m; ++i) {
      for (int c0 = 0; c0 < kFull; c0 += kTileVecs) {
        AccumulateTile<kTileVecs>(values, *rows[i], n[i], accs[i], c0);
      }
      if constexpr (kVecs > kFull) {
        AccumulateTile<kVecs - kFull>(values, *rows[i], n[i], accs[i], kFull);
      }
    }
  }
  template <int kHeadDim>
  static HWY_NOINLINE void Attend(const AttentionArgs* a, int n, float* const* out) {
    attention_internal::multirow::AttendRows<RowsVec, kHeadDim>(a, n, out);
  }
};

#endif  // HWY_TARGET != HWY_SCALAR

}  // namespace rows_vec

// AttendRowsF16 on this target (false, computing nothing, for the shapes it does not take, and
// on HWY_SCALAR).
bool AttendRowsF16VecT(const AttentionArgs* a, int n, float* const* out) {
#ifdef DM_HAVE_ATTENTION_ROWS_VEC
  return attention_internal::multirow::AttendRowsWith<rows_vec::RowsVec>(a, n, out);
#else
  (void)a;
  (void)n;
  (void)out;
  return false;
#endif
}

bool HaveAttentionRowsVecT() {
#ifdef DM_HAVE_ATTENTION_ROWS_VEC
  return true;
#else
  return false;
#endif
}

#undef DM_HAVE_ATTENTION_ROWS_VEC

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace dormouse
HWY_AFTER_NAMESPACE();

#endif  // DORMOUSE_ENGINE_ATTENTION_ROWS_VEC_INL_H_
