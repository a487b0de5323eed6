// Shared by the per-target (Highway) quantized matmuls for targets without AVX-512 VNNI:
// DotI8, and the driver of the quants_legacy.h types (kernels_quant_legacy-inl.h), whose
// blocks are unpacked to int8 once and dotted with up to 4 tokens' activations via int16
// widening multiply-adds. Q8_0, Q4_0, Q4_K and Q6_K have their own tiled kernels
// (kernels_portable-inl.h).
#if defined(DORMOUSE_ENGINE_KERNELS_QUANT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DORMOUSE_ENGINE_KERNELS_QUANT_INL_H_
#undef DORMOUSE_ENGINE_KERNELS_QUANT_INL_H_
#else
#define DORMOUSE_ENGINE_KERNELS_QUANT_INL_H_
#endif

#include <algorithm>
#include <cstring>

#include "engine/kernels_internal.h"
#include "engine/quants.h"
#include "engine/quants_legacy.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dormouse {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// sum_{i < kLen} a[i] * b[i] for int8 inputs.
template <int kLen>
HWY_INLINE int32_t DotI8(const int8_t* a, const int8_t* b) {
  const hn::CappedTag<int16_t, kLen> d16;
  const hn::Rebind<int8_t, decltype(d16)> d8;
  const hn::RepartitionToWide<decltype(d16)> d32;
  const int N = static_cast<int>(hn::Lanes(d16));
  auto s0 = hn::Zero(d32), s1 = hn::Zero(d32);
  for (int i = 0; i < kLen; i += N) {
    const auto va = hn::PromoteTo(d16, hn::LoadU(d8, a + i));
    const auto vb = hn::PromoteTo(d16, hn::LoadU(d8, b + i));
    s0 = hn::ReorderWidenMulAccumulate(d32, va, vb, s0, s1);
  }
  return hn::GetLane(hn::SumOfLanes(d32, hn::Add(s0, s1)));
}

// kernels_quant_legacy-inl.h
template <int NT>
void LegacyRowsNT(GgmlType wtype, const uint8_t* w, int64_t n, int64_t r0, int64_t r1,
                  const uint8_t* act, size_t arow, float* out, int64_t out_stride);

// The quants_legacy.h types: weights streamed once per group of 4 tokens.
void MatMulLegacyPortable(GgmlType wtype, const void* w, int64_t n, int64_t r0, int64_t r1,
                          const void* act, size_t arow, int64_t n_tokens, float* out,
                          int64_t out_stride) {
  const auto* w8 = static_cast<const uint8_t*>(w);
  const auto* a8 = static_cast<const uint8_t*>(act);
  ForTokenTiles<4>(n_tokens, [&](auto nt, int64_t t) {
    const uint8_t* at = a8 + t * arow;
    float* o = out + t * out_stride;
    LegacyRowsNT<nt>(wtype, w8, n, r0, r1, at, arow, o, out_stride);
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace dormouse
HWY_AFTER_NAMESPACE();

#endif  // include guard toggle
