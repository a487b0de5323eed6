// Per-target (Highway) F16 conversions and the fused multiply-add that give quants.h's scalar
// bits on every target, for the F16 attention steps and F16 loads. Included by the per-target
// headers; no include guard on purpose.
//
// x86 from AVX2 on has F16C, which converts exactly and rounds to nearest even, and FMA;
// so does 64-bit ARM's NEON (fcvtl/fcvtn, FPCR's default rounding) with its fused vfma.
// Elsewhere Highway 1.0.3's emulated conversions truncate and turn inf and NaN into finite
// values, and SSE4's MulAdd rounds twice. So these are written here, in portable ops, as the
// same IEEE operations as F16ToF32, F32ToF16 and std::fma: SSE4, EMU128 and the rest get the
// references' bits, and the kernel tests check that on every compiled target (NEON's and
// the scalar fallback's under qemu: make test-arm).
#if defined(DORMOUSE_ENGINE_F16_VEC_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DORMOUSE_ENGINE_F16_VEC_INL_H_
#undef DORMOUSE_ENGINE_F16_VEC_INL_H_
#else
#define DORMOUSE_ENGINE_F16_VEC_INL_H_
#endif

#include <cmath>
#include <cstdint>

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dormouse {
namespace HWY_NAMESPACE {
namespace f16 {
namespace hn = hwy::HWY_NAMESPACE;

#undef DM_F16_NATIVE
#if (HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2) || (HWY_ARCH_ARM_A64 && HWY_TARGET == HWY_NEON)
#define DM_F16_NATIVE 1
#else
#define DM_F16_NATIVE 0
#endif

// F16 bits (u16 lanes, one per float lane of df) to floats: F16ToF32's steps.
template <class DF>
HWY_INLINE hn::Vec<DF> ToF32(DF df, hn::Vec<hn::Rebind<uint16_t, DF>> h) {
#if DM_F16_NATIVE
  const hn::Rebind<hwy::float16_t, DF> dh;
  return hn::PromoteTo(df, hn::BitCast(dh, h));
#else
  const hn::RebindToUnsigned<DF> du;
  const auto w = hn::ShiftLeft<16>(hn::PromoteTo(du, h));
  const auto two_w = hn::Add(w, w);
  // Normal, inf and NaN: rebias the exponent by scaling; subnormal: exact via a magic add.
  const auto normalized =
      hn::Mul(hn::BitCast(df, hn::Add(hn::ShiftRight<4>(two_w), hn::Set(du, 0xe0u << 23))),
              hn::Set(df, 0x1p-112f));
  const auto denormalized =
      hn::Sub(hn::BitCast(df, hn::Or(hn::ShiftRight<17>(two_w), hn::Set(du, 126u << 23))),
              hn::Set(df, 0.5f));
  const auto r = hn::IfThenElse(hn::Lt(two_w, hn::Set(du, 1u << 27)), hn::BitCast(du, denormalized),
                                hn::BitCast(du, normalized));
  return hn::BitCast(df, hn::Or(hn::And(w, hn::Set(du, 0x80000000u)), r));
#endif
}

// Floats to F16 bits, rounding to nearest even and overflowing to inf: F32ToF16's steps
// (NaN becomes the quiet 0x7e00 with its sign, where F16C keeps the payload's top bits).
template <class DF>
HWY_INLINE hn::Vec<hn::Rebind<uint16_t, DF>> ToF16(DF df, hn::Vec<DF> f) {
  const hn::Rebind<uint16_t, DF> d16;
#if DM_F16_NATIVE
  const hn::Rebind<hwy::float16_t, DF> dh;
  return hn::BitCast(d16, hn::DemoteTo(dh, f));
#else
  const hn::RebindToUnsigned<DF> du;
  const hn::RebindToSigned<DF> di;
  // Scaling up then down lets the FPU round to the half grid (nearest even) and saturate.
  auto base = hn::Mul(hn::Mul(hn::Abs(f), hn::Set(df, 0x1p+112f)), hn::Set(df, 0x1p-110f));
  const auto w = hn::BitCast(du, f);
  const auto shl1_w = hn::Add(w, w);
  const auto bias = hn::Max(hn::And(shl1_w, hn::Set(du, 0xff000000u)), hn::Set(du, 0x71000000u));
  base = hn::Add(hn::BitCast(df, hn::Add(hn::ShiftRight<1>(bias), hn::Set(du, 0x07800000u))), base);
  const auto bits = hn::BitCast(du, base);
  const auto nonsign = hn::Add(hn::And(hn::ShiftRight<13>(bits), hn::Set(du, 0x7c00u)),
                               hn::And(bits, hn::Set(du, 0xfffu)));
  const auto magnitude =
      hn::IfThenElse(hn::Gt(shl1_w, hn::Set(du, 0xff000000u)), hn::Set(du, 0x7e00u), nonsign);
  const auto h = hn::Or(hn::ShiftRight<16>(hn::And(w, hn::Set(du, 0x80000000u))), magnitude);
  return hn::DemoteTo(d16, hn::BitCast(di, h));  // every lane is below 0x10000
#endif
}

// f rounded to F16 and back (ToF32(ToF16(f)), NaN payloads aside), as an F16 accumulator holds
// it. Without native conversions, in float arithmetic: adding C = 2^(e + 13) to |f| (2^e <= |f|
// < 2^(e + 1)) lands in [2^(e + 13), 2^(e + 14)), whose float spacing is F16's there, 2^(e - 10),
// so the add rounds to F16's grid, to nearest even (C is an even multiple of it), and
// subtracting C is exact. e is clamped to F16's normal exponents [-14, 15]: below them F16's
// spacing stays 2^-24 (subnormals), above them everything from 65520 on rounds past 65504, to
// inf, as do inf itself and every larger float. The sign is |f|'s, put back (so -0 stays -0).
template <class DF>
HWY_INLINE hn::Vec<DF> Round(DF df, hn::Vec<DF> f) {
#if DM_F16_NATIVE
  return ToF32(df, ToF16(df, f));
#else
  const hn::RebindToSigned<DF> di;
  const auto af = hn::Abs(f);
  auto e = hn::And(hn::BitCast(di, af), hn::Set(di, 0x7f800000));
  e = hn::Min(hn::Max(e, hn::Set(di, (127 - 14) << 23)), hn::Set(di, (127 + 15) << 23));
  const auto c = hn::BitCast(df, hn::Add(e, hn::Set(di, 13 << 23)));
  auto r = hn::Sub(hn::Add(af, c), c);
  r = hn::IfThenElse(hn::Gt(r, hn::Set(df, 65504.0f)), hn::Set(df, HUGE_VALF), r);
  return hn::Or(r, hn::And(f, hn::Set(df, -0.0f)));  // NaN stays NaN: r is, and so is f
#endif
}

template <class DF>
HWY_INLINE hn::Vec<DF> LoadF16(DF df, const uint16_t* p) {
  return ToF32(df, hn::LoadU(hn::Rebind<uint16_t, DF>(), p));
}

template <class DF>
HWY_INLINE void StoreF16(DF df, hn::Vec<DF> v, uint16_t* p) {
  hn::StoreU(ToF16(df, v), hn::Rebind<uint16_t, DF>(), p);
}

// std::fma(a, b, c) lane by lane as far as its F16 rounding can tell, where a and c are F16
// values (b any float). Not on HWY_SCALAR, whose callers run the scalar references. Without an FMA
// unit, a * b (11 x 24 bits) is exact in double and only the sum rounds, to double, then to float.
// Two roundings can differ from one only when the exact sum lies within half a double ulp of a
// float tie; for F16 rounding to notice, its bits would have to reach from an F16 tie to beyond the
// 53rd, a span of over 40 bits that a 35-bit product and an 11-bit addend within F16's range (2^-24
// to 65504) cannot make.
#if HWY_TARGET != HWY_SCALAR
template <class DF>
HWY_INLINE hn::Vec<DF> FmaForF16(DF df, hn::Vec<DF> a, hn::Vec<DF> b, hn::Vec<DF> c) {
#if HWY_NATIVE_FMA
  (void)df;
  return hn::MulAdd(a, b, c);
#else
  const hn::Half<DF> dh;
  const hn::Rebind<double, decltype(dh)> dd;
  const auto lo =
      hn::MulAdd(hn::PromoteTo(dd, hn::LowerHalf(dh, a)), hn::PromoteTo(dd, hn::LowerHalf(dh, b)),
                 hn::PromoteTo(dd, hn::LowerHalf(dh, c)));
  const auto hi =
      hn::MulAdd(hn::PromoteTo(dd, hn::UpperHalf(dh, a)), hn::PromoteTo(dd, hn::UpperHalf(dh, b)),
                 hn::PromoteTo(dd, hn::UpperHalf(dh, c)));
  return hn::Combine(df, hn::DemoteTo(dh, hi), hn::DemoteTo(dh, lo));
#endif
}
#endif  // HWY_TARGET != HWY_SCALAR

}  // namespace f16
// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace dormouse
HWY_AFTER_NAMESPACE();

#endif  // DORMOUSE_ENGINE_F16_VEC_INL_H_
