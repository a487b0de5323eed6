// AVX-512 VNNI kernels of Q2_K / Q3_K / Q5_K, in the manner of Q4_K / Q6_K's
// (kernels_vnni_decode-inl.h, kernels_vnni_prefill-inl.h). Decode: a super-block's quants
// are unpacked to 4 vectors of 64 unsigned bytes in element order (Q3_K's q - 4 stored as
// q, the 4 cancelled with the activations' block sums), dotted with vpdpbusd and scaled
// per sub-block with vpdpwssd. Prefill: panels packed as Q4_K's (Q5_K) or Q6_K's (Q3_K,
// whose offset is 4 instead of 32) or SuperQ2_K, then the existing register tiles.
// Only compiled for HWY_AVX3_DL.
#if defined(DORMOUSE_ENGINE_KERNELS_VNNI_K_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DORMOUSE_ENGINE_KERNELS_VNNI_K_INL_H_
#undef DORMOUSE_ENGINE_KERNELS_VNNI_K_INL_H_
#else
#define DORMOUSE_ENGINE_KERNELS_VNNI_K_INL_H_
#endif

#if HWY_TARGET == HWY_AVX3_DL
#include <immintrin.h>

#include <cstddef>
#include <cstring>

#include "engine/kernels_internal.h"
#include "engine/kernels_vnni_decode-inl.h"
#include "engine/kernels_vnni_ops-inl.h"
#include "engine/kernels_vnni_prefill-inl.h"
#include "engine/kernels_x86_scales-inl.h"
#include "engine/quants_k.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dormouse {
namespace HWY_NAMESPACE {
namespace vnni {

// ---- Decode -----------------------------------------------------------------------------

// The 2-bit fields of Q2_K / Q3_K's qs in element order: wq[2h + k2] holds elements
// 128h + 64k2 .. + 63 (bits 4k2 of qs[32h..] in its low half, 4k2 + 2 in its high half).
inline void Unpack2Bits(const uint8_t* qs, __m512i* wq) {
  const __m512i three = _mm512_set1_epi8(3);
  const __m512i cnt0 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
  DM_UNROLL
  for (int h = 0; h < 2; ++h) {
    const __m512i q =
        _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * h)));
    DM_UNROLL
    for (int k2 = 0; k2 < 2; ++k2) {
      const __m512i cnt = _mm512_add_epi16(cnt0, _mm512_set1_epi16(static_cast<int16_t>(4 * k2)));
      wq[2 * h + k2] = _mm512_and_si512(_mm512_srlv_epi16(q, cnt), three);
    }
  }
}

// Adds Q3_K's high bits (4 * bit (4h + j) of hmask[l]) to Unpack2Bits's output.
inline void AddHighBitsQ3_K(const uint8_t* hmask, __m512i* wq) {
  const __m512i one = _mm512_set1_epi8(1);
  const __m512i hm =
      _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(hmask)));
  const __m512i cnt0 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(1), 1);
  DM_UNROLL
  for (int k = 0; k < 4; ++k) {
    const int base = 4 * (k / 2) + 2 * (k % 2);
    const __m512i cnt = _mm512_add_epi16(cnt0, _mm512_set1_epi16(static_cast<int16_t>(base)));
    const __m512i hb = _mm512_and_si512(_mm512_srlv_epi16(hm, cnt), one);
    wq[k] = _mm512_or_si512(wq[k], _mm512_slli_epi16(hb, 2));
  }
}

// sum_k wq[k] . y.qs[64k..] with the 16-element sub-block scales sc[k] (SpreadScales16).
inline __m512i ScaledDot16(const __m512i* wq, const __m512i* sc, const int8_t* yq) {
  __m512i isum = _mm512_setzero_si512();
  DM_UNROLL
  for (int k = 0; k < 4; ++k) {
    const __m512i prod = Dpbusd(_mm512_setzero_si512(), wq[k], _mm512_loadu_si512(yq + 64 * k));
    isum = Dpwssd(isum, prod, sc[k]);  // exact: |prod| <= 4 * 31 * 128 < 2^15
  }
  return isum;
}

template <int NT>
inline void RowQ2_K(const BlockQ2_K* w, int64_t nsb, const BlockQ8_K* const* a, float* out,
                    int64_t out_stride) {
  __m512 acc[NT];
  __m256 accm[NT];
  DM_UNROLL
  for (int t = 0; t < NT; ++t) {
    acc[t] = _mm512_setzero_ps();
    accm[t] = _mm256_setzero_ps();
  }
  for (int64_t b = 0; b < nsb; ++b) {
    const BlockQ2_K& x = w[b];
    PrefetchAhead<sizeof(BlockQ2_K)>(&x);
    __m512i wq[4], sc[4];
    Unpack2Bits(x.qs, wq);
    const __m128i s8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.scales));
    const __m128i nib = _mm_set1_epi8(0x0f);
    SpreadScales16(_mm256_cvtepu8_epi16(_mm_and_si128(s8, nib)), sc);
    const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s8, 4), nib));
    const float d = HalfToFloat(x.d), dmin = HalfToFloat(x.dmin);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      const BlockQ8_K& y = a[t][b];
      const __m512i isum = ScaledDot16(wq, sc, y.qs);
      const __m256i mp =
          _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.bsums)), mins);
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * y.d), acc[t]);
      accm[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mp), _mm256_set1_ps(dmin * y.d), accm[t]);
    }
  }
  DM_UNROLL
  for (int t = 0; t < NT; ++t) {
    out[t * out_stride] =
        _mm512_reduce_add_ps(acc[t]) - _mm512_reduce_add_ps(_mm512_zextps256_ps512(accm[t]));
  }
}

template <int NT>
inline void RowQ3_K(const BlockQ3_K* w, int64_t nsb, const BlockQ8_K* const* a, float* out,
                    int64_t out_stride) {
  __m512 acc[NT];
  DM_UNROLL
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nsb; ++b) {
    const BlockQ3_K& x = w[b];
    PrefetchAhead<sizeof(BlockQ3_K)>(&x);
    __m512i wq[4], sc[4];
    Unpack2Bits(x.qs, wq);
    AddHighBitsQ3_K(x.hmask, wq);
    const __m256i s16 = _mm256_cvtepi8_epi16(x86::ScalesQ3_K(x.scales));
    SpreadScales16(s16, sc);
    const float d = HalfToFloat(x.d);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      const BlockQ8_K& y = a[t][b];
      __m512i isum = ScaledDot16(wq, sc, y.qs);
      // q - 4: subtract 4 * sum_g scale_g * bsum_g.
      const __m256i corr =
          _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.bsums)), s16);
      isum = _mm512_sub_epi32(isum, _mm512_zextsi256_si512(_mm256_slli_epi32(corr, 2)));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * y.d), acc[t]);
    }
  }
  DM_UNROLL
  for (int t = 0; t < NT; ++t) out[t * out_stride] = _mm512_reduce_add_ps(acc[t]);
}

template <int NT>
inline void RowQ5_K(const BlockQ5_K* w, int64_t nsb, const BlockQ8_K* const* a, float* out,
                    int64_t out_stride) {
  __m512 acc[NT];
  __m256 accm[NT];
  DM_UNROLL
  for (int t = 0; t < NT; ++t) {
    acc[t] = _mm512_setzero_ps();
    accm[t] = _mm256_setzero_ps();
  }
  const __m512i bit4 = _mm512_set1_epi8(0x10);
  for (int64_t b = 0; b < nsb; ++b) {
    const BlockQ5_K& x = w[b];
    PrefetchAhead<sizeof(BlockQ5_K)>(&x);
    const __m128i scm = ScalesMinsK4(x.scales);
    __m512i sc[4];
    ScaleLanesK4(scm, sc);
    const __m256i mins = MinsK4(scm);
    // [qh, qh >> 1]: bit 2p of each byte is the fifth bit of sub-block 2p (low half) and
    // 2p + 1 (high half).
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qh));
    const __m512i hv = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 1), 1);
    const __m512i hb[4] = {_mm512_slli_epi16(hv, 4), _mm512_slli_epi16(hv, 2), hv,
                           _mm512_srli_epi16(hv, 2)};
    __m512i wq[4];
    DM_UNROLL
    for (int p = 0; p < 4; ++p) {
      wq[p] = _mm512_ternarylogic_epi32(NibblesK4(x.qs + 32 * p), hb[p], bit4, 0xf8);
    }
    const float d = HalfToFloat(x.d), dmin = HalfToFloat(x.dmin);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      const BlockQ8_K& y = a[t][b];
      __m512i isum = _mm512_setzero_si512();
      DM_UNROLL
      for (int p = 0; p < 4; ++p) {
        const __m512i prod =
            Dpbusd(_mm512_setzero_si512(), wq[p], _mm512_loadu_si512(y.qs + 64 * p));
        isum = Dpwssd(isum, prod, sc[p]);  // exact: |prod| <= 4 * 31 * 128 < 2^15
      }
      const __m256i mp =
          _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.bsums)), mins);
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * y.d), acc[t]);
      accm[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mp), _mm256_set1_ps(dmin * y.d), accm[t]);
    }
  }
  DM_UNROLL
  for (int t = 0; t < NT; ++t) {
    out[t * out_stride] =
        _mm512_reduce_add_ps(acc[t]) - _mm512_reduce_add_ps(_mm512_zextps256_ps512(accm[t]));
  }
}

// ---- Prefill: packing 16 rows of a chunk --------------------------------------------------

struct SuperQ2_K {
  __m512i quads[16][4];
  __m512 scale[16];    // d * sc[g]
  __m512i minpair[8];  // (m[2p], m[2p+1]) as int16 pairs, against bsums[2p], bsums[2p+1]
  __m512 dmin;
};
static_assert(sizeof(SuperQ2_K) == sizeof(SuperQ6_K));  // fits MatMulQuantPrefill's panel

// Lane-wise: the 4 bytes of v (each a 2-bit field at bit `shift`) -> 4 bytes 0..3.
inline __m512i Bits2(__m512i v, int shift) {
  return _mm512_and_si512(_mm512_srli_epi32(v, shift), _mm512_set1_epi8(3));
}

// 2-bit quants (qs at `qs`) of 16 rows into quads[e / 16][(e % 16) / 4] of 4 elements.
inline void PackBits2(const uint8_t* qs, __m512i idx, __m512i (*quads)[4]) {
  for (int h = 0; h < 2; ++h) {
    DM_UNROLL
    for (int l = 0; l < 32; l += 4) {
      const __m512i v = Gather(idx, qs + 32 * h + l);
      DM_UNROLL
      for (int j = 0; j < 4; ++j) {
        const int e = 128 * h + 32 * j + l;
        quads[e / 16][(e % 16) / 4] = Bits2(v, 2 * j);
      }
    }
  }
}

void PackQ2_K(const uint8_t* base, __m512i idx, int64_t nsb, void* panel) {
  auto* p = static_cast<SuperQ2_K*>(panel);
  for (int64_t s = 0; s < nsb; ++s, ++p) {
    const uint8_t* blk = base + s * sizeof(BlockQ2_K);
    const __m512i hdr = Gather(idx, blk + offsetof(BlockQ2_K, d));
    const __m512 d = HalfToFloat<false>(hdr);
    p->dmin = HalfToFloat<true>(hdr);
    __m512i m[16];
    DM_UNROLL
    for (int i = 0; i < 4; ++i) {
      const __m512i v = Gather(idx, blk + 4 * i);
      DM_UNROLL
      for (int k = 0; k < 4; ++k) {
        const __m512i sb = Byte(v, k);
        p->scale[4 * i + k] =
            _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_and_si512(sb, _mm512_set1_epi32(15))));
        m[4 * i + k] = _mm512_srli_epi32(sb, 4);
      }
    }
    DM_UNROLL
    for (int q = 0; q < 8; ++q) {
      p->minpair[q] = _mm512_or_si512(m[2 * q], _mm512_slli_epi32(m[2 * q + 1], 16));
    }
    PackBits2(blk + offsetof(BlockQ2_K, qs), idx, p->quads);
  }
}

// Q3_K into Q6_K's panel: scales sc - 32, quants q + 4 (0..7), offset 4 in d32.
void PackQ3_K(const uint8_t* base, __m512i idx, int64_t nsb, void* panel) {
  auto* p = static_cast<SuperQ6_K*>(panel);
  const __m512i m4 = _mm512_set1_epi32(15), m2 = _mm512_set1_epi32(3);
  for (int64_t s = 0; s < nsb; ++s, ++p) {
    const uint8_t* blk = base + s * sizeof(BlockQ3_K);
    // Bytes 106..109: scales[10..11], d (a gather at d itself would read past the block).
    const __m512 d = HalfToFloat<true>(Gather(idx, blk + offsetof(BlockQ3_K, d) - 2));
    p->d32 = _mm512_mul_ps(d, _mm512_set1_ps(4.0f));
    const uint8_t* sp = blk + offsetof(BlockQ3_K, scales);
    const __m512i s0 = Gather(idx, sp), s1 = Gather(idx, sp + 4), s2 = Gather(idx, sp + 8);
    __m512i sc[16];
    DM_UNROLL
    for (int g = 0; g < 16; ++g) {
      const __m512i low = (g / 8) == 0 ? Byte(g % 8 < 4 ? s0 : s1, g % 4)
                                       : _mm512_srli_epi32(Byte(g % 8 < 4 ? s0 : s1, g % 4), 4);
      const __m512i hi = _mm512_and_si512(_mm512_srli_epi32(Byte(s2, g % 4), 2 * (g / 4)), m2);
      sc[g] = _mm512_sub_epi32(_mm512_or_si512(_mm512_and_si512(low, m4), _mm512_slli_epi32(hi, 4)),
                               _mm512_set1_epi32(32));
      p->scale[g] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc[g]));
    }
    DM_UNROLL
    for (int q = 0; q < 8; ++q) {
      p->scpair[q] = _mm512_or_si512(_mm512_and_si512(sc[2 * q], _mm512_set1_epi32(0xffff)),
                                     _mm512_slli_epi32(sc[2 * q + 1], 16));
    }
    PackBits2(blk + offsetof(BlockQ3_K, qs), idx, p->quads);
    const __m512i one = _mm512_set1_epi8(1);
    for (int l = 0; l < 32; l += 4) {
      const __m512i hm = Gather(idx, blk + l);
      DM_UNROLL
      for (int bit = 0; bit < 8; ++bit) {
        const int e = 128 * (bit / 4) + 32 * (bit % 4) + l;
        const __m512i hb = _mm512_and_si512(_mm512_srli_epi32(hm, bit), one);
        __m512i& quad = p->quads[e / 16][(e % 16) / 4];
        quad = _mm512_or_si512(quad, _mm512_slli_epi32(hb, 2));
      }
    }
  }
}

// Q5_K into Q4_K's panel (quants 0..31).
void PackQ5_K(const uint8_t* base, __m512i idx, int64_t nsb, void* panel) {
  auto* p = static_cast<SuperQ4_K*>(panel);
  const __m512i nib = _mm512_set1_epi8(0x0f), one = _mm512_set1_epi8(1);
  for (int64_t s = 0; s < nsb; ++s, ++p) {
    const uint8_t* blk = base + s * sizeof(BlockQ5_K);
    // Header and scales are laid out as Q4_K's: reuse its packer for one super-block, then
    // overwrite the quants.
    PackQ4_KHeader(blk, idx, p);
    DM_UNROLL
    for (int q = 0; q < 8; ++q) {
      const __m512i hv = Gather(idx, blk + offsetof(BlockQ5_K, qh) + 4 * q);
      DM_UNROLL
      for (int c = 0; c < 4; ++c) {
        const __m512i v = Gather(idx, blk + offsetof(BlockQ5_K, qs) + 32 * c + 4 * q);
        const __m512i h0 = _mm512_and_si512(_mm512_srli_epi32(hv, 2 * c), one);
        const __m512i h1 = _mm512_and_si512(_mm512_srli_epi32(hv, 2 * c + 1), one);
        p->quads[2 * c][q] = _mm512_or_si512(_mm512_and_si512(v, nib), _mm512_slli_epi32(h0, 4));
        p->quads[2 * c + 1][q] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(v, 4), nib),
                                                 _mm512_slli_epi32(h1, 4));
      }
    }
  }
}

void PackKQuantLowBits(GgmlType wtype, const uint8_t* base, __m512i idx, int64_t nsb, void* panel) {
  switch (wtype) {
    case GgmlType::kQ2_K:
      return PackQ2_K(base, idx, nsb, panel);
    case GgmlType::kQ3_K:
      return PackQ3_K(base, idx, nsb, panel);
    default:
      return PackQ5_K(base, idx, nsb, panel);
  }
}

// ---- Prefill: register tiles -------------------------------------------------------------

template <int NT>
inline void TileQ2_K(const SuperQ2_K* p, int64_t nsb, const BlockQ8_K* const* a, int64_t s0,
                     __m512* acc) {
  for (int64_t s = 0; s < nsb; ++s) {
    const BlockQ8_K* y[NT];
    DM_UNROLL
    for (int t = 0; t < NT; ++t) y[t] = a[t] + s0 + s;
    __m512 sb[NT];
    SuperGroups<NT, 16, 4>(p[s], y, sb);
    __m512i mins[NT];
    BsumTerm<NT>(p[s].minpair, y, mins);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      const __m512 da = _mm512_set1_ps(y[t]->d);
      acc[t] = _mm512_fmadd_ps(sb[t], da, acc[t]);
      acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(mins[t]), _mm512_mul_ps(p[s].dmin, da), acc[t]);
    }
  }
}

template <int NT>
void TileKQuantLowBits(GgmlType wtype, const void* panel, int64_t nsb, const BlockQ8_K* const* a,
                       int64_t s0, __m512* acc) {
  switch (wtype) {
    case GgmlType::kQ2_K:
      return TileQ2_K<NT>(static_cast<const SuperQ2_K*>(panel), nsb, a, s0, acc);
    case GgmlType::kQ3_K:
      return TileQ6_K<NT>(static_cast<const SuperQ6_K*>(panel), nsb, a, s0, acc);
    default:
      return TileQ4_K<NT>(static_cast<const SuperQ4_K*>(panel), nsb, a, s0, acc);
  }
}

}  // namespace vnni
}  // namespace HWY_NAMESPACE
}  // namespace dormouse
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX3_DL
#endif  // include guard toggle
