// Per-target (Highway) kernels of the quants_legacy.h types for targets without AVX-512
// VNNI, and the Q8_1 activation quantization for every target. As kernels_quant-inl.h:
// a block's weights are unpacked to int8 once and dotted with up to 4 tokens via int16
// widening multiply-adds; integer sums are exact and the float accumulation follows the
// reference's order, so these match the reference bit for bit.
#if defined(DORMOUSE_ENGINE_KERNELS_QUANT_LEGACY_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DORMOUSE_ENGINE_KERNELS_QUANT_LEGACY_INL_H_
#undef DORMOUSE_ENGINE_KERNELS_QUANT_LEGACY_INL_H_
#else
#define DORMOUSE_ENGINE_KERNELS_QUANT_LEGACY_INL_H_
#endif

#include <cstring>

#include "engine/kernels_legacy.h"
#include "engine/kernels_quant-inl.h"
#include "engine/quants_legacy.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dormouse {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Signed (Q5_0, IQ4_NL) or unsigned (Q4_1, Q5_1) integer weights of one 32-block.
HWY_INLINE void UnpackLegacy32(GgmlType wtype, const uint8_t* blk, int8_t* q) {
  switch (wtype) {
    case GgmlType::kQ4_1:
      for (int j = 0; j < 16; ++j) {
        q[j] = static_cast<int8_t>(blk[4 + j] & 0xf);
        q[j + 16] = static_cast<int8_t>(blk[4 + j] >> 4);
      }
      return;
    case GgmlType::kQ5_0:
    case GgmlType::kQ5_1: {
      const bool q5_1 = wtype == GgmlType::kQ5_1;
      const uint8_t* qs = blk + (q5_1 ? 8 : 6);
      uint32_t h;
      std::memcpy(&h, blk + (q5_1 ? 4 : 2), 4);
      const int offset = q5_1 ? 0 : 16;
      for (int j = 0; j < 16; ++j) {
        q[j] = static_cast<int8_t>(((qs[j] & 0xf) | (((h >> j) & 1) << 4)) - offset);
        q[j + 16] = static_cast<int8_t>(((qs[j] >> 4) | (((h >> (j + 16)) & 1) << 4)) - offset);
      }
      return;
    }
    default:  // IQ4_NL
      for (int j = 0; j < 16; ++j) {
        q[j] = kIQ4NLValues[blk[2 + j] & 0xf];
        q[j + 16] = kIQ4NLValues[blk[2 + j] >> 4];
      }
      return;
  }
}

// One row of a 32-element-block type against NT tokens (Q8_0 or Q8_1 activations: both
// layouts start with qs and d; Q8_1's third array is s).
template <int NT>
HWY_INLINE void RowLegacy32(GgmlType wtype, const uint8_t* row, int64_t n,
                            const uint8_t* const* act, float* out, int64_t out_stride) {
  const size_t bs = TraitsOf(wtype).block_bytes;
  const bool q8_1 = UsesQ8_1(wtype);
  float acc[NT] = {};
  HWY_ALIGN int8_t wq[32];
  for (int64_t b = 0; b < n / 32; ++b) {
    const uint8_t* blk = row + b * bs;
    const float dw = F16ToF32(LoadUnaligned(reinterpret_cast<const uint16_t*>(blk)));
    UnpackLegacy32(wtype, blk, wq);
    for (int t = 0; t < NT; ++t) {
      if (q8_1) {
        const PreparedQ8_1 a = PreparedQ8_1::At(act[t], n);
        const float m = F16ToF32(LoadUnaligned(reinterpret_cast<const uint16_t*>(blk + 2)));
        const int32_t isum = DotI8<32>(wq, a.qs + 32 * b);
        const float scaled = (dw * LoadUnaligned(a.d + b)) * static_cast<float>(isum);
        acc[t] += scaled + m * LoadUnaligned(a.s + b);
      } else {
        const PreparedQ8_0 a = PreparedQ8_0::At(act[t], n);
        const int32_t isum = DotI8<32>(wq, a.qs + 32 * b);
        acc[t] += static_cast<float>(isum) * (dw * LoadUnaligned(a.d + b));
      }
    }
  }
  for (int t = 0; t < NT; ++t) out[t * out_stride] = acc[t];
}

template <int NT>
HWY_INLINE void RowIQ4_XS(const BlockIQ4_XS* w, int64_t n, const uint8_t* const* act, float* out,
                          int64_t out_stride) {
  float acc[NT] = {};
  HWY_ALIGN int8_t q[kQK_K];
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const BlockIQ4_XS& x = w[b];
    int ls[8];
    for (int j = 0; j < 8; ++j) {
      ls[j] = IQ4XSScale(x, j) - 32;
      for (int k = 0; k < 16; ++k) {
        q[32 * j + k] = kIQ4NLValues[x.qs[16 * j + k] & 0xf];
        q[32 * j + k + 16] = kIQ4NLValues[x.qs[16 * j + k] >> 4];
      }
    }
    const float d = F16ToF32(x.d);
    for (int t = 0; t < NT; ++t) {
      const BlockQ8_K& y = reinterpret_cast<const BlockQ8_K*>(act[t])[b];
      int32_t isum = 0;
      for (int j = 0; j < 8; ++j) isum += ls[j] * DotI8<32>(q + 32 * j, y.qs + 32 * j);
      acc[t] += d * y.d * static_cast<float>(isum);
    }
  }
  for (int t = 0; t < NT; ++t) out[t * out_stride] = acc[t];
}

// Rows [r0, r1) of a quants_legacy.h type against NT tokens (MatMulLegacyPortable).
template <int NT>
void LegacyRowsNT(GgmlType wtype, const uint8_t* w, int64_t n, int64_t r0, int64_t r1,
                  const uint8_t* act, size_t arow, float* out, int64_t out_stride) {
  const size_t wrow = RowBytes(wtype, n);
  const uint8_t* a[NT];
  for (int t = 0; t < NT; ++t) a[t] = act + t * arow;
  for (int64_t r = r0; r < r1; ++r) {
    if (wtype == GgmlType::kIQ4_XS) {
      RowIQ4_XS<NT>(reinterpret_cast<const BlockIQ4_XS*>(w + r * wrow), n, a, out + r, out_stride);
    } else {
      RowLegacy32<NT>(wtype, w + r * wrow, n, a, out + r, out_stride);
    }
  }
}

// llama.cpp's x86 quantize_row_q8_1 into the PreparedQ8_1 arrays.
void PrepareQ8_1(const float* x, int64_t n, uint8_t* out) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<int8_t, decltype(df)> d8;
  const int N = static_cast<int>(hn::Lanes(df));
  auto* qs = reinterpret_cast<int8_t*>(out);
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x + 32 * b;
    auto vmax = hn::Zero(df);
    for (int i = 0; i < 32; i += N) vmax = hn::Max(vmax, hn::Abs(hn::LoadU(df, xb + i)));
    const float amax = hn::GetLane(hn::MaxOfLanes(df, vmax));
    const float d = amax / 127.0f;
    const auto id = hn::Set(df, amax != 0.0f ? 127.0f / amax : 0.0f);
    auto sum = hn::Zero(di);
    for (int i = 0; i < 32; i += N) {
      const auto q = hn::NearestInt(hn::Mul(hn::LoadU(df, xb + i), id));
      sum = hn::Add(sum, q);
      hn::StoreU(hn::DemoteTo(d8, q), d8, qs + 32 * b + i);
    }
    const int32_t isum = hn::GetLane(hn::SumOfLanes(di, sum));
    const float dr = F16ToF32(F32ToF16(d));
    const float s = F16ToF32(F32ToF16(d * static_cast<float>(isum)));
    std::memcpy(out + n + 4 * b, &dr, 4);
    std::memcpy(out + n + 4 * (n / 32) + 4 * b, &s, 4);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace dormouse
HWY_AFTER_NAMESPACE();

#endif  // include guard toggle
