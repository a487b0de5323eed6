// Per-target matmuls of Q2_K / Q3_K / Q5_K weights against Q8_K activations, for few tokens
// (decode; prefill goes through vnni::MatMulQuantPrefill on AVX3_DL). On AVX3_DL the rows
// are kernels_vnni_k-inl.h's; every other target unpacks a super-block's quants to int8
// once and dots them with up to 4 tokens via Highway's widening multiply-adds (DotI8), in
// the reference's order (integer sums per super-block, then one float multiply-add).
#if defined(DORMOUSE_ENGINE_KERNELS_K_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DORMOUSE_ENGINE_KERNELS_K_INL_H_
#undef DORMOUSE_ENGINE_KERNELS_K_INL_H_
#else
#define DORMOUSE_ENGINE_KERNELS_K_INL_H_
#endif

#include <algorithm>

#include "engine/kernels_internal.h"
#include "engine/kernels_quant-inl.h"
#include "engine/kernels_vnni_k-inl.h"
#include "engine/quants_k.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dormouse {
namespace HWY_NAMESPACE {
namespace portable_k {

template <int NT>
HWY_INLINE void RowQ2_K(const BlockQ2_K* w, int64_t nsb, const BlockQ8_K* const* a, float* out,
                        int64_t out_stride) {
  float acc[NT] = {};
  HWY_ALIGN int8_t q[kQK_K];
  for (int64_t b = 0; b < nsb; ++b) {
    const BlockQ2_K& x = w[b];
    for (int h = 0; h < 2; ++h) {
      for (int j = 0; j < 4; ++j) {
        for (int l = 0; l < 32; ++l) q[128 * h + 32 * j + l] = (x.qs[32 * h + l] >> (2 * j)) & 3;
      }
    }
    const float d = F16ToF32(x.d), dmin = F16ToF32(x.dmin);
    for (int t = 0; t < NT; ++t) {
      const BlockQ8_K& y = a[t][b];
      int32_t scaled = 0, mins = 0;
      for (int g = 0; g < 16; ++g) {
        scaled += (x.scales[g] & 0xf) * DotI8<16>(q + 16 * g, y.qs + 16 * g);
        mins += (x.scales[g] >> 4) * y.bsums[g];
      }
      acc[t] += (y.d * d) * static_cast<float>(scaled) - (y.d * dmin) * static_cast<float>(mins);
    }
  }
  for (int t = 0; t < NT; ++t) out[t * out_stride] = acc[t];
}

template <int NT>
HWY_INLINE void RowQ3_K(const BlockQ3_K* w, int64_t nsb, const BlockQ8_K* const* a, float* out,
                        int64_t out_stride) {
  float acc[NT] = {};
  HWY_ALIGN int8_t q[kQK_K];
  for (int64_t b = 0; b < nsb; ++b) {
    const BlockQ3_K& x = w[b];
    for (int h = 0; h < 2; ++h) {
      for (int j = 0; j < 4; ++j) {
        const int bit = 4 * h + j;
        for (int l = 0; l < 32; ++l) {
          const int low = (x.qs[32 * h + l] >> (2 * j)) & 3;
          q[128 * h + 32 * j + l] = static_cast<int8_t>(low - 4 + 4 * ((x.hmask[l] >> bit) & 1));
        }
      }
    }
    int sc[16];
    for (int g = 0; g < 16; ++g) sc[g] = GetScaleK3(g, x.scales) - 32;
    const float d = F16ToF32(x.d);
    for (int t = 0; t < NT; ++t) {
      const BlockQ8_K& y = a[t][b];
      int32_t isum = 0;
      for (int g = 0; g < 16; ++g) isum += sc[g] * DotI8<16>(q + 16 * g, y.qs + 16 * g);
      acc[t] += d * y.d * static_cast<float>(isum);
    }
  }
  for (int t = 0; t < NT; ++t) out[t * out_stride] = acc[t];
}

template <int NT>
HWY_INLINE void RowQ5_K(const BlockQ5_K* w, int64_t nsb, const BlockQ8_K* const* a, float* out,
                        int64_t out_stride) {
  float acc[NT] = {};
  HWY_ALIGN int8_t q[kQK_K];
  for (int64_t b = 0; b < nsb; ++b) {
    const BlockQ5_K& x = w[b];
    uint8_t sc[8], m[8];
    for (int j = 0; j < 8; ++j) {
      GetScaleMinK4(j, x.scales, &sc[j], &m[j]);
      const int shift = 4 * (j % 2);
      for (int l = 0; l < 32; ++l) {
        q[32 * j + l] = static_cast<int8_t>(((x.qs[32 * (j / 2) + l] >> shift) & 0xf) |
                                            (((x.qh[l] >> j) & 1) << 4));
      }
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

}  // namespace portable_k

#if HWY_TARGET == HWY_AVX3_DL
namespace krows = vnni;
#else
namespace krows = portable_k;
#endif

inline bool IsKQuantLowBits(GgmlType t) {
  return t == GgmlType::kQ2_K || t == GgmlType::kQ3_K || t == GgmlType::kQ5_K;
}

template <int NT>
HWY_INLINE void KQuantRowsNT(GgmlType wtype, const uint8_t* w, int64_t n, int64_t r0, int64_t r1,
                             const uint8_t* act, size_t arow, float* out, int64_t out_stride) {
  const size_t wrow = RowBytes(wtype, n);
  const BlockQ8_K* a[NT];
  for (int t = 0; t < NT; ++t) a[t] = reinterpret_cast<const BlockQ8_K*>(act + t * arow);
  const int64_t nsb = n / kQK_K;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w + r * wrow;
    float* o = out + r;
    switch (wtype) {
      case GgmlType::kQ2_K:
        krows::RowQ2_K<NT>(reinterpret_cast<const BlockQ2_K*>(row), nsb, a, o, out_stride);
        break;
      case GgmlType::kQ3_K:
        krows::RowQ3_K<NT>(reinterpret_cast<const BlockQ3_K*>(row), nsb, a, o, out_stride);
        break;
      default:
        krows::RowQ5_K<NT>(reinterpret_cast<const BlockQ5_K*>(row), nsb, a, o, out_stride);
        break;
    }
  }
}

// Decode path of Q2_K / Q3_K / Q5_K on every target: weights streamed once per 4 tokens.
void MatMulKQuantDecode(GgmlType wtype, const void* w, int64_t n, int64_t r0, int64_t r1,
                        const void* act, size_t arow, int64_t n_tokens, float* out,
                        int64_t out_stride) {
  const auto* w8 = static_cast<const uint8_t*>(w);
  const auto* a8 = static_cast<const uint8_t*>(act);
  ForTokenTiles<4>(n_tokens, [&](auto nt, int64_t t) {
    const uint8_t* at = a8 + t * arow;
    float* o = out + t * out_stride;
    KQuantRowsNT<nt>(wtype, w8, n, r0, r1, at, arow, o, out_stride);
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace dormouse
HWY_AFTER_NAMESPACE();

#endif  // include guard toggle
