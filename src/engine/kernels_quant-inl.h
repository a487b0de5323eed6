// Per-target (Highway) quantized matmuls for targets without AVX-512 VNNI: the weights of a
// block are unpacked to int8 once and dotted with up to 4 tokens' activations via int16
// widening multiply-adds. Integer sums are exact and the float accumulation follows the
// reference's order, so these variants match the reference bit for bit.
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

template <int NT>
HWY_INLINE void RowQ0(GgmlType wtype, const uint8_t* row, int64_t n, const PreparedQ8_0* a,
                      float* out, int64_t out_stride) {
  const bool q4 = wtype == GgmlType::kQ4_0;
  const size_t bs = q4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
  float acc[NT] = {};
  HWY_ALIGN int8_t wq[32];
  for (int64_t b = 0; b < n / 32; ++b) {
    const uint8_t* blk = row + b * bs;
    const float dw = F16ToF32(LoadUnaligned(reinterpret_cast<const uint16_t*>(blk)));
    const int8_t* w8;
    if (q4) {
      for (int j = 0; j < 16; ++j) {
        wq[j] = static_cast<int8_t>((blk[2 + j] & 0xf) - 8);
        wq[j + 16] = static_cast<int8_t>((blk[2 + j] >> 4) - 8);
      }
      w8 = wq;
    } else {
      w8 = reinterpret_cast<const int8_t*>(blk + 2);
    }
    for (int t = 0; t < NT; ++t) {
      const int32_t isum = DotI8<32>(w8, a[t].qs + 32 * b);
      acc[t] += static_cast<float>(isum) * (dw * LoadUnaligned(a[t].d + b));
    }
  }
  for (int t = 0; t < NT; ++t) out[t * out_stride] = acc[t];
}

template <int NT>
HWY_INLINE void RowQ4_K(const BlockQ4_K* w, int64_t n, const BlockQ8_K* const* a, float* out,
                        int64_t out_stride) {
  float acc[NT] = {};
  HWY_ALIGN int8_t q[kQK_K];
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const BlockQ4_K& x = w[b];
    uint8_t sc[8], m[8];
    for (int j = 0; j < 8; ++j) {
      GetScaleMinK4(j, x.scales, &sc[j], &m[j]);
      for (int l = 0; l < 32; ++l) q[32 * j + l] = (x.qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0xf;
    }
    const float d = F16ToF32(x.d), dmin = F16ToF32(x.dmin);
    for (int t = 0; t < NT; ++t) {
      const BlockQ8_K& y = a[t][b];
      int32_t scaled = 0, mins = 0;
      for (int j = 0; j < 8; ++j) {
        scaled += sc[j] * DotI8<32>(q + 32 * j, y.qs + 32 * j);
        mins += m[j] * (y.bsums[2 * j] + y.bsums[2 * j + 1]);
      }
      acc[t] += d * y.d * static_cast<float>(scaled);
      acc[t] -= dmin * y.d * static_cast<float>(mins);
    }
  }
  for (int t = 0; t < NT; ++t) out[t * out_stride] = acc[t];
}

template <int NT>
HWY_INLINE void RowQ6_K(const BlockQ6_K* w, int64_t n, const BlockQ8_K* const* a, float* out,
                        int64_t out_stride) {
  float acc[NT] = {};
  HWY_ALIGN int8_t q[kQK_K];
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const BlockQ6_K& x = w[b];
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = x.ql + 64 * h;
      const uint8_t* qh = x.qh + 32 * h;
      int8_t* o = q + 128 * h;
      for (int l = 0; l < 32; ++l) {
        o[l] = static_cast<int8_t>(((ql[l] & 0xf) | ((qh[l] & 3) << 4)) - 32);
        o[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32);
        o[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
        o[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
      }
    }
    const float d = F16ToF32(x.d);
    for (int t = 0; t < NT; ++t) {
      const BlockQ8_K& y = a[t][b];
      int32_t isum = 0;
      for (int g = 0; g < 16; ++g) isum += x.scales[g] * DotI8<16>(q + 16 * g, y.qs + 16 * g);
      acc[t] += d * y.d * static_cast<float>(isum);
    }
  }
  for (int t = 0; t < NT; ++t) out[t * out_stride] = acc[t];
}

// The quants_legacy.h types (kernels_quant_legacy-inl.h).
template <int NT>
void LegacyRowsNT(GgmlType wtype, const uint8_t* w, int64_t n, int64_t r0, int64_t r1,
                  const uint8_t* act, size_t arow, float* out, int64_t out_stride);

template <int NT>
HWY_INLINE void QuantRowsNT(GgmlType wtype, const uint8_t* w, int64_t n, int64_t r0, int64_t r1,
                            const uint8_t* act, size_t arow, float* out, int64_t out_stride) {
  if (IsLegacyQuant(wtype))
    return LegacyRowsNT<NT>(wtype, w, n, r0, r1, act, arow, out, out_stride);
  const size_t wrow = RowBytes(wtype, n);
  if (wtype == GgmlType::kQ8_0 || wtype == GgmlType::kQ4_0) {
    PreparedQ8_0 a[NT];
    for (int t = 0; t < NT; ++t) a[t] = PreparedQ8_0::At(act + t * arow, n);
    for (int64_t r = r0; r < r1; ++r) RowQ0<NT>(wtype, w + r * wrow, n, a, out + r, out_stride);
    return;
  }
  const BlockQ8_K* a[NT];
  for (int t = 0; t < NT; ++t) a[t] = reinterpret_cast<const BlockQ8_K*>(act + t * arow);
  for (int64_t r = r0; r < r1; ++r) {
    if (wtype == GgmlType::kQ4_K) {
      RowQ4_K<NT>(reinterpret_cast<const BlockQ4_K*>(w + r * wrow), n, a, out + r, out_stride);
    } else {
      RowQ6_K<NT>(reinterpret_cast<const BlockQ6_K*>(w + r * wrow), n, a, out + r, out_stride);
    }
  }
}

void MatMulQuantPortable(GgmlType wtype, const void* w, int64_t n, int64_t r0, int64_t r1,
                         const void* act, size_t arow, int64_t n_tokens, float* out,
                         int64_t out_stride) {
  const auto* w8 = static_cast<const uint8_t*>(w);
  const auto* a8 = static_cast<const uint8_t*>(act);
  for (int64_t t = 0; t < n_tokens; t += 4) {
    const uint8_t* at = a8 + t * arow;
    float* o = out + t * out_stride;
    switch (std::min<int64_t>(4, n_tokens - t)) {
      case 1:
        QuantRowsNT<1>(wtype, w8, n, r0, r1, at, arow, o, out_stride);
        break;
      case 2:
        QuantRowsNT<2>(wtype, w8, n, r0, r1, at, arow, o, out_stride);
        break;
      case 3:
        QuantRowsNT<3>(wtype, w8, n, r0, r1, at, arow, o, out_stride);
        break;
      default:
        QuantRowsNT<4>(wtype, w8, n, r0, r1, at, arow, o, out_stride);
        break;
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace dormouse
HWY_AFTER_NAMESPACE();

#endif  // include guard toggle
