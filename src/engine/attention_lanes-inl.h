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

HWY_BEFORE_NAMESPACE();
namespace dormouse {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
namespace lanes {

#ifndef DM_UNROLL
#define DM_UNROLL _Pragma("GCC unroll 16")
#endif

// F16C (x86 from AVX2 on) converts exactly, rounding to nearest even; without it there is no
// lane kernel (the callers fall back to the per-head ones).
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
#define DM_HAVE_ATTENTION_LANES 1

using DF = hn::ScalableTag<float>;
using DH = hn::Half<DF>;
using DD = hn::Rebind<double, DH>;  // half as many lanes as DF, in double
using DI = hn::RebindToSigned<DF>;
using VF = hn::Vec<DF>;
using VD = hn::Vec<DD>;
constexpr size_t kMaxLanes = HWY_MAX_BYTES / sizeof(float);

// glibc's expf (the FMA build, sysdeps/ieee754/flt-32/e_expf.c) of arguments in [-inf, 0],
// as attention_avx512.cc's Exp8: x*32/ln2 = k + r, 2^(k/32) from the 32-entry table, a
// cubic in r, all in double.
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
  VD kd = hn::Add(z, shift);
  const auto ki = hn::BitCast(du, kd);
  kd = hn::Sub(kd, shift);
  const VD r = hn::MulAdd(inv_ln2_n, xd, hn::Sub(hn::Zero(dd), kd));
  const auto idx = hn::BitCast(di, hn::And(ki, hn::Set(du, 31)));
  auto t = hn::GatherIndex(du, table, idx);
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

// n F16 values at p into floats (n a multiple of 4).
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

// One vector of rows: a[0, m), m <= Lanes(DF).
template <int HD>
void AttendBlock(const AttentionArgs* a, int m, float* const* out, const uint64_t* table) {
  const DF df;
  const DI di;
  const DD dd;
  const size_t L = hn::Lanes(df), Ld = hn::Lanes(dd);
  // Each lane's query rounded to F16, in double (exact), dimension-major.
  HWY_ALIGN double qd[HD][kMaxLanes];
  HWY_ALIGN int32_t begin[kMaxLanes], end[kMaxLanes];
  int64_t jmin = INT64_MAX, jmax = 0;
  for (size_t l = 0; l < L; ++l) {
    const bool used = static_cast<int>(l) < m && a[l].first_key < a[l].n_keys;
    begin[l] = used ? static_cast<int32_t>(a[l].first_key) : 0;
    end[l] = used ? static_cast<int32_t>(a[l].n_keys) : 0;
    if (used) {
      jmin = std::min(jmin, a[l].first_key);
      jmax = std::max(jmax, a[l].n_keys);
    }
    for (int d = 0; d < HD; ++d) {
      qd[d][l] = static_cast<int>(l) < m ? F16ToF32(F32ToF16(a[l].q[d])) : 0.0;
    }
  }
  const auto vbegin = hn::Load(di, begin), vend = hn::Load(di, end);
  const VF scale = hn::Set(df, a[0].scale), one = hn::Set(df, 1.0f);
  VF M = hn::Set(df, -INFINITY), S = hn::Zero(df);
  VF acc[HD];
  DM_UNROLL
  for (int d = 0; d < HD; ++d) acc[d] = hn::Zero(df);
  HWY_ALIGN float kf[HD], vf[HD];
  for (int64_t j = jmin; j < jmax; ++j) {
    LoadRow<HD>(reinterpret_cast<const uint16_t*>(a[0].KRow(j)) + a[0].offset, kf);
    LoadRow<HD>(reinterpret_cast<const uint16_t*>(a[0].VRow(j)) + a[0].offset, vf);
    VD lo = hn::Zero(dd), hi = hn::Zero(dd);
    DM_UNROLL
    for (int d = 0; d < HD; ++d) {
      const VD k = hn::Set(dd, static_cast<double>(kf[d]));
      lo = hn::MulAdd(hn::Load(dd, qd[d]), k, lo);
      hi = hn::MulAdd(hn::Load(dd, qd[d] + Ld), k, hi);
    }
    const DH dh;
    const VF score = hn::Mul(hn::Combine(df, hn::DemoteTo(dh, hi), hn::DemoteTo(dh, lo)), scale);
    const auto vj = hn::Set(di, static_cast<int32_t>(j));
    const auto active = hn::RebindMask(df, hn::AndNot(hn::Gt(vbegin, vj), hn::Gt(vend, vj)));
    const auto new_max = hn::And(active, hn::Gt(score, M));
    // A new maximum rescales what was accumulated by exp(old - new) and adds the value
    // with weight 1; otherwise the value's weight is exp(score - max).
    const VF e = Exp(hn::IfThenElse(new_max, hn::Sub(M, score), hn::Sub(score, M)), table);
    const VF ms = hn::IfThenElse(new_max, e, one), vs = hn::IfThenElse(new_max, one, e);
    M = hn::IfThenElse(new_max, score, M);
    if (!hn::AllFalse(df, new_max)) {
      // ms is 1 in the other lanes: their F16 values come back unchanged.
      DM_UNROLL
      for (int d = 0; d < HD; ++d) acc[d] = RoundF16(hn::Mul(acc[d], ms));
    }
    if (hn::AllTrue(df, active)) {
      S = hn::MulAdd(S, ms, vs);
      DM_UNROLL
      for (int d = 0; d < HD; ++d) acc[d] = RoundF16(hn::MulAdd(hn::Set(df, vf[d]), vs, acc[d]));
    } else {
      S = hn::IfThenElse(active, hn::MulAdd(S, ms, vs), S);
      DM_UNROLL
      for (int d = 0; d < HD; ++d) {
        acc[d] =
            hn::IfThenElse(active, RoundF16(hn::MulAdd(hn::Set(df, vf[d]), vs, acc[d])), acc[d]);
      }
    }
  }
  const VF inv = hn::IfThenZeroElse(hn::Eq(S, hn::Zero(df)), hn::Div(one, S));
  HWY_ALIGN float o[HD][kMaxLanes], mv[kMaxLanes], sv[kMaxLanes];
  DM_UNROLL
  for (int d = 0; d < HD; ++d) hn::Store(hn::Mul(acc[d], inv), df, o[d]);
  hn::Store(M, df, mv);
  hn::Store(S, df, sv);
  for (int l = 0; l < m; ++l) {
    for (int d = 0; d < HD; ++d) out[l][d] = o[d][l];
    if (a[l].stats != nullptr) *a[l].stats = {mv[l], sv[l]};
  }
}

template <int HD>
void AttendRows(const AttentionArgs* a, int n, float* const* out) {
  const int L = static_cast<int>(hn::Lanes(DF()));
  const uint64_t* table = attention_internal::ExpfTable();
  for (int i = 0; i < n; i += L) AttendBlock<HD>(a + i, std::min(L, n - i), out + i, table);
}

#endif  // F16C

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
