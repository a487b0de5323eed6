// Per-target (Highway) lane-parallel F16 attention for tiny heads (head_dim 4, 8 or 16), and
// glibc's expf in vector lanes. Included once per target by kernels.cc (foreach_target); no
// include guard on purpose.
//
// With head_dim 8 a head's dot product is 8 multiply-adds and its accumulator half a
// register, so the per-head kernels spend their time on conversions, calls and the exp.
// Here each vector lane is one query row (a token's head; all rows share a KV head): lane l
// does AttendF16Reference's operations for its row, in its order, on a whole vector of
// rows at once:
//   - the score is ggml's F16 dot for n < 64, a plain double sum of exact F16 x F16
//     products in element order (exact products: an FMA in double gives the same sum);
//   - one expf per key and row (the rescale's or the weight's), glibc's algorithm;
//   - the F16 accumulator is kept as F32 lanes rounded to F16 after every step.
// A row sees only its own keys [first_key, n_keys): other lanes' keys leave it untouched.
#if defined(DORMOUSE_ENGINE_ATTENTION_LANES_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DORMOUSE_ENGINE_ATTENTION_LANES_INL_H_
#undef DORMOUSE_ENGINE_ATTENTION_LANES_INL_H_
#else
#define DORMOUSE_ENGINE_ATTENTION_LANES_INL_H_
#endif

#include <algorithm>
#include <cmath>

#include "engine/attention.h"
#include "engine/quants.h"
#include "hwy/highway.h"

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace dormouse {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
namespace lanes {

#ifndef DM_UNROLL
#define DM_UNROLL _Pragma("GCC unroll 16")
#endif

// F16C (x86 from AVX2 on) and 64-bit ARM's NEON (fcvtl/fcvtn) convert exactly, rounding to
// nearest even, and both have the fused multiply-add that glibc's expf uses there; without
// them there is no lane kernel (the callers fall back to the per-head ones).
#if (HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2) || (HWY_ARCH_ARM_A64 && HWY_TARGET == HWY_NEON)
#define DM_HAVE_ATTENTION_LANES 1

using DF = hn::ScalableTag<float>;
using DH = hn::Half<DF>;
using DD = hn::Rebind<double, DH>;  // half as many lanes as DF, in double
using DI = hn::RebindToSigned<DF>;
using VF = hn::Vec<DF>;
using VD = hn::Vec<DD>;
constexpr size_t kMaxLanes = HWY_MAX_BYTES / sizeof(float);

// glibc's expf (sysdeps/ieee754/flt-32/e_expf.c) of arguments in [-inf, 0], as
// attention_avx512.cc's Exp8: x*32/ln2 = k + r, 2^(k/32) from the 32-entry table, a cubic in
// r, all in double. x86's FMA build rounds z = x*32/ln2 to k by the 1.5*2^52 shift (ties to
// even) and contracts r = z - k into an FMA of x; aarch64's (TOINT_INTRINSICS) rounds with
// frinta/fcvtas (ties away from zero) and subtracts the rounded z: r then differs by z's
// rounding error, which flips about one float result in 10^8 with |x| > 22.
HWY_INLINE VD ExpCore(VD xd, const uint64_t* table) {
  const DD dd;
  const hn::RebindToUnsigned<DD> du;
  const hn::RebindToSigned<DD> di;
  const VD inv_ln2_n = hn::Set(dd, 0x1.71547652b82fep+0 * 32);
  const VD shift = hn::Set(dd, 0x1.8p+52);
  const VD c0 = hn::Set(dd, 0x1.c6af84b912394p-5 / 32 / 32 / 32);
  const VD c1 = hn::Set(dd, 0x1.ebfce50fac4f3p-3 / 32 / 32);
  const VD c2 = hn::Set(dd, 0x1.62e42ff0c52d6p-1 / 32);
  const VD z = hn::Mul(inv_ln2_n, xd);
#if HWY_ARCH_ARM_A64
  (void)shift;
  const VD kd{vrndaq_f64(z.raw)};
  const auto ki = hn::BitCast(du, hn::Vec<decltype(di)>{vcvtaq_s64_f64(z.raw)});
  const VD r = hn::Sub(z, kd);
#else
  VD kd = hn::Add(z, shift);
  const auto ki = hn::BitCast(du, kd);
  kd = hn::Sub(kd, shift);
  const VD r = hn::MulAdd(inv_ln2_n, xd, hn::Sub(hn::Zero(dd), kd));
#endif
  const auto idx = hn::BitCast(di, hn::And(ki, hn::Set(du, 31)));
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  // Two-table permutes: a gather of 8 lanes costs several times as much here.
  const __m512i t0 =
      _mm512_permutex2var_epi64(_mm512_load_si512(table), idx.raw, _mm512_load_si512(table + 8));
  const __m512i t1 = _mm512_permutex2var_epi64(_mm512_load_si512(table + 16), idx.raw,
                                               _mm512_load_si512(table + 24));
  const __mmask8 upper = _mm512_test_epi64_mask(idx.raw, _mm512_set1_epi64(16));
  hn::Vec<decltype(du)> t{_mm512_mask_blend_epi64(upper, t0, t1)};
#else
  auto t = hn::GatherIndex(du, table, idx);
#endif
  t = hn::Add(t, hn::ShiftLeft<47>(ki));
  const VD s = hn::BitCast(dd, t);
  const VD r2 = hn::Mul(r, r);
  const VD p = hn::MulAdd(c0, r, c1);
  VD y = hn::MulAdd(c2, r, hn::Set(dd, 1.0));
  y = hn::MulAdd(p, r2, y);
  return hn::Mul(y, s);
}

HWY_INLINE VF Exp(VF x, const uint64_t* table) {
  const DF df;
  const DH dh;
  const DD dd;
  const VD lo = ExpCore(hn::PromoteTo(dd, hn::LowerHalf(dh, x)), table);
  const VD hi = ExpCore(hn::PromoteTo(dd, hn::UpperHalf(dh, x)), table);
  const VF e = hn::Combine(df, hn::DemoteTo(dh, hi), hn::DemoteTo(dh, lo));
  // Below log(2^-150) (and -inf) the result is 0, as the library's underflow path.
  return hn::IfThenZeroElse(hn::Lt(x, hn::Set(df, -0x1.9fe368p6f)), e);
}

// Rounds every lane to the nearest F16 value (kept as F32).
HWY_INLINE VF RoundF16(VF v) {
  const DF df;
  const hn::Rebind<hwy::float16_t, DF> dh;
  return hn::PromoteTo(df, hn::DemoteTo(dh, v));
}

// HD F16 values at p into floats (HD a multiple of 4).
template <int HD>
HWY_INLINE void LoadRow(const uint16_t* p, float* out) {
  const hn::CappedTag<float, HD> dc;
  const hn::Rebind<hwy::float16_t, decltype(dc)> dh;
  const int N = static_cast<int>(hn::Lanes(dc));
  for (int i = 0; i < HD; i += N) {
    hn::Store(hn::PromoteTo(dc, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(p + i))), dc,
              out + i);
  }
}

constexpr int kKeyBlock = 16;

// One vector of rows and its online-softmax state. Keys that every row sees go through
// Keys() a block at a time, in stages whose iterations are independent (scores, the running
// max, the exps, then the accumulators in key order), so the out-of-order core overlaps
// keys; keys at the edges of the rows' ranges go through MaskedKey() one at a time.
template <int HD>
class RowBlock {
 public:
  RowBlock(const AttentionArgs* a, int m, const uint64_t* table) : a_(a), m_(m), table_(table) {
    const DF df;
    const DI di;
    HWY_ALIGN int32_t begin[kMaxLanes], end[kMaxLanes];
    for (size_t l = 0; l < hn::Lanes(df); ++l) {
      const bool used = Used(static_cast<int>(l));
      begin[l] = used ? static_cast<int32_t>(a[l].first_key) : 0;
      end[l] = used ? static_cast<int32_t>(a[l].n_keys) : 0;
      for (int d = 0; d < HD; ++d) {
        qd_[d][l] = static_cast<int>(l) < m ? F16ToF32(F32ToF16(a[l].q[d])) : 0.0;
      }
    }
    begin_ = hn::Load(di, begin);
    end_ = hn::Load(di, end);
    scale_ = hn::Set(df, a[0].scale);
    M_ = hn::Set(df, -INFINITY);
    S_ = hn::Zero(df);
    for (int d = 0; d < HD; ++d) acc_[d] = hn::Zero(df);
  }

  // Lanes past m and rows without keys compute nothing anyone reads.
  bool Used(int l) const { return l < m_ && a_[l].first_key < a_[l].n_keys; }

  void Run() {
    int64_t jmin = INT64_MAX, jmax = 0, all_begin = 0, all_end = INT64_MAX;
    for (int l = 0; l < m_; ++l) {
      if (!Used(l)) continue;
      jmin = std::min(jmin, a_[l].first_key);
      jmax = std::max(jmax, a_[l].n_keys);
      all_begin = std::max(all_begin, a_[l].first_key);
      all_end = std::min(all_end, a_[l].n_keys);
    }
    if (jmin >= jmax) return;
    if (all_begin >= all_end) all_begin = all_end = jmax;
    for (int64_t j = jmin; j < all_begin; ++j) MaskedKey(j);
    for (int64_t j = all_begin; j < all_end; j += kKeyBlock) {
      Keys(j, static_cast<int>(std::min<int64_t>(kKeyBlock, all_end - j)));
    }
    for (int64_t j = std::max(all_end, all_begin); j < jmax; ++j) MaskedKey(j);
  }

  void Finish(float* const* out) {
    const DF df;
    const VF inv = hn::IfThenZeroElse(hn::Eq(S_, hn::Zero(df)), hn::Div(hn::Set(df, 1.0f), S_));
    HWY_ALIGN float o[HD][kMaxLanes], mv[kMaxLanes], sv[kMaxLanes];
    for (int d = 0; d < HD; ++d) hn::Store(hn::Mul(acc_[d], inv), df, o[d]);
    hn::Store(M_, df, mv);
    hn::Store(S_, df, sv);
    for (int l = 0; l < m_; ++l) {
      const bool used = Used(l);  // a row without keys: 0, as the reference's empty sum
      for (int d = 0; d < HD; ++d) out[l][d] = used ? o[d][l] : 0.0f;
      if (a_[l].stats != nullptr) *a_[l].stats = {used ? mv[l] : -INFINITY, used ? sv[l] : 0.0f};
    }
  }

 private:
  const uint16_t* Row(const uint8_t* base, size_t slot) const {
    return reinterpret_cast<const uint16_t*>(base + slot * a_[0].row_bytes) + a_[0].offset;
  }

  // The scores of every lane for a key whose elements are kd.
  HWY_INLINE VF Score(const double* kd) const {
    const DF df;
    const DH dh;
    const DD dd;
    const size_t Ld = hn::Lanes(dd);
    VD lo = hn::Zero(dd), hi = hn::Zero(dd);
    DM_UNROLL
    for (int d = 0; d < HD; ++d) {
      const VD k = hn::Set(dd, kd[d]);
      lo = hn::MulAdd(hn::Load(dd, qd_[d]), k, lo);
      hi = hn::MulAdd(hn::Load(dd, qd_[d] + Ld), k, hi);
    }
    return hn::Mul(hn::Combine(df, hn::DemoteTo(dh, hi), hn::DemoteTo(dh, lo)), scale_);
  }

  // A new maximum rescales what was accumulated by exp(old - new) and adds the value with
  // weight 1; otherwise the value's weight is exp(score - max). ms is 1 in the lanes
  // without a new maximum: their F16 values come back unchanged from the rescale.
  template <class Mask>
  HWY_INLINE void Rescale(Mask new_max, VF ms) {
    if (hn::AllFalse(DF(), new_max)) return;
    DM_UNROLL
    for (int d = 0; d < HD; ++d) acc_[d] = RoundF16(hn::Mul(acc_[d], ms));
  }

  // Keys [j0, j0 + nb) that every used lane sees.
  void Keys(int64_t j0, int nb) {
    const DF df;
    HWY_ALIGN double kd[kKeyBlock][HD];
    HWY_ALIGN float kf[HD], vf[kKeyBlock][HD];
    HWY_ALIGN float x[kKeyBlock][kMaxLanes], ms[kKeyBlock][kMaxLanes], vs[kKeyBlock][kMaxLanes];
    HWY_ALIGN float is_new[kKeyBlock][kMaxLanes];
    bool any_new[kKeyBlock];
    const int64_t ring = a_[0].ring;
    size_t slot = a_[0].Slot(j0);
    for (int jj = 0; jj < nb; ++jj, ++slot) {
      if (ring > 0 && slot >= static_cast<size_t>(ring)) slot = 0;
      LoadRow<HD>(Row(a_[0].k_base, slot), kf);
      LoadRow<HD>(Row(a_[0].v_base, slot), vf[jj]);
      const hn::CappedTag<double, HD> dc;
      for (int d = 0; d < HD; d += static_cast<int>(hn::Lanes(dc))) {
        hn::Store(hn::PromoteTo(dc, hn::Load(hn::Rebind<float, decltype(dc)>(), kf + d)), dc,
                  kd[jj] + d);
      }
    }
    for (int jj = 0; jj < nb; ++jj) hn::Store(Score(kd[jj]), df, x[jj]);
    for (int jj = 0; jj < nb; ++jj) {  // the running max: x becomes the exp's argument
      const VF score = hn::Load(df, x[jj]);
      const auto new_max = hn::Gt(score, M_);
      hn::Store(hn::IfThenElse(new_max, hn::Sub(M_, score), hn::Sub(score, M_)), df, x[jj]);
      hn::Store(hn::VecFromMask(df, new_max), df, is_new[jj]);
      any_new[jj] = !hn::AllFalse(df, new_max);
      M_ = hn::IfThenElse(new_max, score, M_);
    }
    const VF one = hn::Set(df, 1.0f);
    for (int jj = 0; jj < nb; ++jj) {
      const VF e = Exp(hn::Load(df, x[jj]), table_);
      const auto new_max = hn::MaskFromVec(hn::Load(df, is_new[jj]));
      hn::Store(hn::IfThenElse(new_max, e, one), df, ms[jj]);
      hn::Store(hn::IfThenElse(new_max, one, e), df, vs[jj]);
    }
    for (int jj = 0; jj < nb; ++jj) {
      const VF m = hn::Load(df, ms[jj]), v = hn::Load(df, vs[jj]);
      S_ = hn::MulAdd(S_, m, v);
      if (any_new[jj]) {
        DM_UNROLL
        for (int d = 0; d < HD; ++d) acc_[d] = RoundF16(hn::Mul(acc_[d], m));
      }
      DM_UNROLL
      for (int d = 0; d < HD; ++d)
        acc_[d] = RoundF16(hn::MulAdd(hn::Set(df, vf[jj][d]), v, acc_[d]));
    }
  }

  // Key j for the lanes whose range holds it; the others are left as they are.
  void MaskedKey(int64_t j) {
    const DF df;
    const DI di;
    HWY_ALIGN float kf[HD], vf[HD];
    HWY_ALIGN double kd[HD];
    LoadRow<HD>(Row(a_[0].k_base, a_[0].Slot(j)), kf);
    LoadRow<HD>(Row(a_[0].v_base, a_[0].Slot(j)), vf);
    for (int d = 0; d < HD; ++d) kd[d] = kf[d];
    const VF score = Score(kd);
    const auto vj = hn::Set(di, static_cast<int32_t>(j));
    const auto active = hn::RebindMask(df, hn::AndNot(hn::Gt(begin_, vj), hn::Gt(end_, vj)));
    const auto new_max = hn::And(active, hn::Gt(score, M_));
    const VF one = hn::Set(df, 1.0f);
    const VF e = Exp(hn::IfThenElse(new_max, hn::Sub(M_, score), hn::Sub(score, M_)), table_);
    const VF ms = hn::IfThenElse(new_max, e, one), vs = hn::IfThenElse(new_max, one, e);
    M_ = hn::IfThenElse(new_max, score, M_);
    Rescale(new_max, ms);
    S_ = hn::IfThenElse(active, hn::MulAdd(S_, ms, vs), S_);
    DM_UNROLL
    for (int d = 0; d < HD; ++d) {
      acc_[d] =
          hn::IfThenElse(active, RoundF16(hn::MulAdd(hn::Set(df, vf[d]), vs, acc_[d])), acc_[d]);
    }
  }

  const AttentionArgs* a_;
  int m_;
  const uint64_t* table_;
  // Each lane's query rounded to F16, in double (exact), dimension-major.
  HWY_ALIGN double qd_[HD][kMaxLanes];
  hn::Vec<DI> begin_, end_;
  VF scale_, M_, S_;
  VF acc_[HD];
};

template <int HD>
void AttendRows(const AttentionArgs* a, int n, float* const* out) {
  const int L = static_cast<int>(hn::Lanes(DF()));
  const uint64_t* table = attention_internal::ExpfTable();
  for (int i = 0; i < n; i += L) {
    RowBlock<HD> block(a + i, std::min(L, n - i), table);
    block.Run();
    block.Finish(out + i);
  }
}

#endif  // F16C or NEON

}  // namespace lanes

bool AttendLanesF16T(const AttentionArgs* a, int n, float* const* out) {
#ifdef DM_HAVE_ATTENTION_LANES
  if (a[0].softcap > 0.0f) return false;
  switch (a[0].head_dim) {
    case 4:
      lanes::AttendRows<4>(a, n, out);
      return true;
    case 8:
      lanes::AttendRows<8>(a, n, out);
      return true;
    case 16:
      lanes::AttendRows<16>(a, n, out);
      return true;
  }
#endif
  return false;
}

int AttentionLaneWidthT() {
#ifdef DM_HAVE_ATTENTION_LANES
  return static_cast<int>(hn::Lanes(lanes::DF()));
#else
  return 0;
#endif
}

// expf of n arguments in [-inf, 0] through the lane kernel's exp (std::exp without one).
void ExpfBatchT(const float* x, float* out, int64_t n) {
  int64_t i = 0;
#ifdef DM_HAVE_ATTENTION_LANES
  const lanes::DF df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const uint64_t* table = attention_internal::ExpfTable();
  for (; i + L <= n; i += L) hn::StoreU(lanes::Exp(hn::LoadU(df, x + i), table), df, out + i);
#endif
  for (; i < n; ++i) out[i] = std::exp(x[i]);
}

#undef DM_HAVE_ATTENTION_LANES

}  // namespace HWY_NAMESPACE
}  // namespace dormouse
HWY_AFTER_NAMESPACE();

#endif  // include guard toggle
