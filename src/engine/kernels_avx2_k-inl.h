// AVX2 matmuls of the super-block types that had no hand-written AVX2 kernels (Q5_K, IQ4_XS,
// Q3_K, Q2_K), for any number of tokens, in the manner of RowQ4_K (kernels_avx2_decode-inl.h):
// one row at a time, each 256-element super-block's quants unpacked in registers once and dotted
// with a group of tokens through vpmaddubsw (one unsigned and one signed side, pairs summed to
// int16, kept below saturation: see each Kind) and vpmaddwd, which applies the sub-block's scale
// exactly. The integers are the reference's per super-block sums, and each row accumulates its
// floats in the reference's order (AddSuper; Q2_K's own order in KindQ2_K::Add), so the results
// are the reference's bits. Decode takes up to 4 tokens per pass; a short prefill 8, over row
// tiles that stay in L2 (only IQ4_XS's below 16 tokens: longer ones, and the other types, go
// to the packed panels of kernels_avx2_prefill*-inl.h, which kernels.cc picks first). Only
// compiled for HWY_AVX2.
#if defined(DORMOUSE_ENGINE_KERNELS_AVX2_K_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DORMOUSE_ENGINE_KERNELS_AVX2_K_INL_H_
#undef DORMOUSE_ENGINE_KERNELS_AVX2_K_INL_H_
#else
#define DORMOUSE_ENGINE_KERNELS_AVX2_K_INL_H_
#endif

#if HWY_TARGET == HWY_AVX2
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "engine/kernels_avx2_decode-inl.h"
#include "engine/kernels_internal.h"
#include "engine/kernels_x86_scales-inl.h"
#include "engine/quants.h"
#include "engine/quants_k.h"
#include "engine/quants_legacy.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dormouse {
namespace HWY_NAMESPACE {
namespace avx2 {

// sum_j m[j] * (bsums[2j] + bsums[2j + 1]) of each token, in 8 int32 lanes, with the mins
// in bytes 8..15 of sm (x86::ScalesMinsQ4_K).
template <int NT>
HWY_INLINE void MinSumsK4(__m256i sm, const BlockQ8_K* const* a, int64_t b, __m256i* mins) {
  // Word i <- min i / 2 (byte 8 + i / 2), zero-extended: pairs with bsums i.
  const __m256i mins16 = _mm256_shuffle_epi8(
      sm, _mm256_setr_epi16(0x8008, 0x8008, 0x8009, 0x8009, 0x800a, 0x800a, 0x800b, 0x800b, 0x800c,
                            0x800c, 0x800d, 0x800d, 0x800e, 0x800e, 0x800f, 0x800f));
  DM_UNROLL
  for (int t = 0; t < NT; ++t) {
    mins[t] = _mm256_madd_epi16(
        mins16, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[t][b].bsums)));
  }
}

// Bit `from` of every byte of v moved to bit `to` (other bits garbage; callers mask). 16-bit
// shifts: the moved bit never crosses a byte.
HWY_INLINE __m256i MoveBit(__m256i v, int from, int to) {
  if (from > to) return _mm256_srli_epi16(v, from - to);
  return from < to ? _mm256_slli_epi16(v, to - from) : v;
}

// Q5_K: SumsQ4_K with the fifth bit of every quant from qh (bit j of qh[l] for element
// 32j + l). The quants are 0..31 unsigned: a pair of products stays below 2 * 31 * 128,
// nothing saturates.
struct KindQ5_K {
  using Block = BlockQ5_K;

  template <int NT>
  static HWY_INLINE void Sums(const Block& x, const BlockQ8_K* const* a, int64_t b, __m256i* tot,
                              __m256i* mins) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), bit4 = _mm256_set1_epi8(0x10);
    const __m256i sm = x86::ScalesMinsQ4_K(x.scales);
    const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qh));
    DM_UNROLL
    for (int t = 0; t < NT; ++t) tot[t] = _mm256_setzero_si256();
    DM_UNROLL
    for (int k = 0; k < 4; ++k) {  // 32 bytes: sub-blocks 2k (low nibbles), 2k + 1 (high)
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs + 32 * k));
      const __m256i lo =
          _mm256_or_si256(_mm256_and_si256(v, m4), _mm256_and_si256(MoveBit(hb, 2 * k, 4), bit4));
      const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4),
                                         _mm256_and_si256(MoveBit(hb, 2 * k + 1, 4), bit4));
      const __m256i s_lo =
          _mm256_shuffle_epi8(sm, _mm256_set1_epi16(static_cast<int16_t>(0x8000 | (2 * k))));
      const __m256i s_hi =
          _mm256_shuffle_epi8(sm, _mm256_set1_epi16(static_cast<int16_t>(0x8001 | (2 * k))));
      DM_UNROLL
      for (int t = 0; t < NT; ++t) {
        const auto* q = reinterpret_cast<const __m256i*>(a[t][b].qs + 64 * k);
        const __m256i p_lo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256(q));
        const __m256i p_hi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256(q + 1));
        tot[t] = _mm256_add_epi32(
            tot[t], _mm256_add_epi32(_mm256_madd_epi16(p_lo, s_lo), _mm256_madd_epi16(p_hi, s_hi)));
      }
    }
    MinSumsK4<NT>(sm, a, b, mins);
  }

  // The reference's acc += (d * y.d) * T; acc -= (dmin * y.d) * M.
  static HWY_INLINE __m128 Add(__m128 acc, __m256i tot, __m256i mins, const Block& x, float yd) {
    const uint32_t d_dmin = x.d | (static_cast<uint32_t>(x.dmin) << 16);
    return AddSuper<true>(acc, tot, mins, SuperScales(d_dmin, yd));
  }
};

// IQ4_XS: each sub-block's 16 bytes in both halves, shifted by 4 in the upper one, give its
// 32 nibbles in element order; vpshufb looks up the signed levels (-127..113). vpmaddubsw
// wants one unsigned side: the activations' magnitudes |y| <= 128, with their signs moved
// onto the weights (|level| <= 127, so vpsignb never overflows, even for y = -128): a pair
// stays below 2 * 128 * 127 < 32767. vpmaddwd applies the multiplier ls - 32 (-32..31).
struct KindIQ4_XS {
  using Block = BlockIQ4_XS;

  // The 8 sub-block multipliers ls_j - 32 as int16 words 0..7, in both 128-bit lanes.
  static HWY_INLINE __m256i Scales(const Block& x) {
    const __m256i lo = _mm256_and_si256(
        _mm256_srlv_epi32(
            _mm256_set1_epi32(LoadUnaligned(reinterpret_cast<const int32_t*>(x.scales_l))),
            _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)),
        _mm256_set1_epi32(0x0f));
    const __m256i hi =
        _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(x.scales_h),
                                           _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14)),
                         _mm256_set1_epi32(3));
    const __m256i ls =
        _mm256_sub_epi32(_mm256_or_si256(lo, _mm256_slli_epi32(hi, 4)), _mm256_set1_epi32(32));
    const __m256i p = _mm256_packs_epi32(ls, ls);  // words [0-3 0-3 | 4-7 4-7]
    return _mm256_permute4x64_epi64(p, 0x88);      // qwords 0, 2, 0, 2
  }

  template <int NT>
  static HWY_INLINE void Sums(const Block& x, const BlockQ8_K* const* a, int64_t b, __m256i* tot,
                              __m256i*) {
    const __m256i table = IQ4Table();
    const __m256i m4 = _mm256_set1_epi8(0x0f), shift = _mm256_setr_epi64x(0, 0, 4, 4);
    const __m256i ls = Scales(x);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) tot[t] = _mm256_setzero_si256();
    DM_UNROLL
    for (int j = 0; j < 8; ++j) {
      const __m256i v = _mm256_broadcastsi128_si256(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.qs + 16 * j)));
      const __m256i wv =
          _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srlv_epi64(v, shift), m4));
      const __m256i sc = _mm256_shuffle_epi8(
          ls, _mm256_set1_epi16(static_cast<int16_t>(((2 * j + 1) << 8) | (2 * j))));
      DM_UNROLL
      for (int t = 0; t < NT; ++t) {
        const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[t][b].qs + 32 * j));
        const __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(y), _mm256_sign_epi8(wv, y));
        tot[t] = _mm256_add_epi32(tot[t], _mm256_madd_epi16(p, sc));
      }
    }
  }

  // The reference's acc += (d * y.d) * T.
  static HWY_INLINE __m128 Add(__m128 acc, __m256i tot, __m256i, const Block& x, float yd) {
    return AddSuper<false>(acc, tot, tot, SuperScales(x.d, yd));
  }
};

// Words of sh (8 int16 scales in both 128-bit lanes): lane 0 <- word 2j, lane 1 <- 2j + 1.
HWY_INLINE __m256i PairScales(__m256i sh, int j) {
  return _mm256_shuffle_epi8(
      sh, _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>(((4 * j + 3) << 8) | (4 * j + 2))),
                           _mm_set1_epi16(static_cast<int16_t>(((4 * j + 1) << 8) | (4 * j)))));
}

// Q2_K / Q3_K quants of one super-block against NT tokens: tot[t] = 8 int32 lanes summing
// to sum_g s16[g] * sum_{e in g} q_e * y_e over the 16-element groups g, with q_e the 2 bits
// 2j of qs[32h + l] for element 128h + 32j + l plus, with kQ3, 4 * bit 4h + j of hmask[l]:
// 0..7 unsigned, so a pair of products stays below 2 * 7 * 128. A 32-element chunk spans two
// groups, one per 128-bit lane (as in SumsQ6_K).
template <int NT, bool kQ3>
HWY_INLINE void Sums2Bits(const uint8_t* qs, const uint8_t* hmask, __m256i s16,
                          const BlockQ8_K* const* a, int64_t b, __m256i* tot) {
  const __m256i m3 = _mm256_set1_epi8(3), bit2 = _mm256_set1_epi8(4);
  const __m256i hm =
      kQ3 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hmask)) : _mm256_setzero_si256();
  DM_UNROLL
  for (int t = 0; t < NT; ++t) tot[t] = _mm256_setzero_si256();
  DM_UNROLL
  for (int h = 0; h < 2; ++h) {  // elements [128h, +128): groups 8h..8h+7
    const __m256i sh = _mm256_permute4x64_epi64(s16, h == 0 ? 0x44 : 0xee);
    const __m256i q2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * h));
    DM_UNROLL
    for (int j = 0; j < 4; ++j) {  // elements 128h + 32j + [0, 32): groups 8h + 2j, + 1
      __m256i q = _mm256_and_si256(_mm256_srli_epi16(q2, 2 * j), m3);
      if constexpr (kQ3) {
        q = _mm256_or_si256(q, _mm256_and_si256(MoveBit(hm, 4 * h + j, 2), bit2));
      }
      const __m256i sc = PairScales(sh, j);
      DM_UNROLL
      for (int t = 0; t < NT; ++t) {
        const __m256i y =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[t][b].qs + 128 * h + 32 * j));
        tot[t] = _mm256_add_epi32(tot[t], _mm256_madd_epi16(_mm256_maddubs_epi16(q, y), sc));
      }
    }
  }
}

// Q2_K: scales (low nibbles) and mins (high nibbles) of the 16 groups, 0..15.
struct KindQ2_K {
  using Block = BlockQ2_K;

  template <int NT>
  static HWY_INLINE void Sums(const Block& x, const BlockQ8_K* const* a, int64_t b, __m256i* tot,
                              __m256i* mins) {
    const __m128i s8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.scales));
    const __m128i nib = _mm_set1_epi8(0x0f);
    Sums2Bits<NT, false>(x.qs, nullptr, _mm256_cvtepu8_epi16(_mm_and_si128(s8, nib)), a, b, tot);
    const __m256i m16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s8, 4), nib));
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      mins[t] = _mm256_madd_epi16(
          m16, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[t][b].bsums)));
    }
  }

  // The reference's acc += (d * y.d) * T - (dmin * y.d) * M (one rounding more than
  // AddSuper's order).
  static HWY_INLINE __m128 Add(__m128 acc, __m256i tot, __m256i mins, const Block& x, float yd) {
    const __m256i h = _mm256_hadd_epi32(tot, mins);  // [T01 T23 M01 M23 | T45 T67 M45 M67]
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    s = _mm_hadd_epi32(s, s);  // [T M T M]
    const uint32_t d_dmin = x.d | (static_cast<uint32_t>(x.dmin) << 16);
    const __m128 p = _mm_mul_ps(SuperScales(d_dmin, yd), _mm_cvtepi32_ps(s));
    return _mm_add_ss(acc, _mm_sub_ss(p, _mm_movehdup_ps(p)));
  }
};

// Q3_K: q - 4 with the signed scales sc - 32 (-32..31): sum sc * q * y, less 4 * sum sc *
// bsums.
struct KindQ3_K {
  using Block = BlockQ3_K;

  template <int NT>
  static HWY_INLINE void Sums(const Block& x, const BlockQ8_K* const* a, int64_t b, __m256i* tot,
                              __m256i*) {
    const __m256i s16 = _mm256_cvtepi8_epi16(x86::ScalesQ3_K(x.scales));
    Sums2Bits<NT, true>(x.qs, x.hmask, s16, a, b, tot);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      const __m256i corr = _mm256_madd_epi16(
          s16, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[t][b].bsums)));
      tot[t] = _mm256_sub_epi32(tot[t], _mm256_slli_epi32(corr, 2));
    }
  }

  // The reference's acc += (d * y.d) * T.
  static HWY_INLINE __m128 Add(__m128 acc, __m256i tot, __m256i, const Block& x, float yd) {
    return AddSuper<false>(acc, tot, tot, SuperScales(x.d, yd));
  }
};

// One row of a Kind's super-blocks against NT tokens (one stream, prefetched ahead).
template <int NT, typename Kind>
inline void RowSuper(const typename Kind::Block* w, int64_t nsb, const BlockQ8_K* const* a,
                     float* out, int64_t out_stride) {
  __m128 acc[NT];
  DM_UNROLL
  for (int t = 0; t < NT; ++t) acc[t] = _mm_setzero_ps();
  for (int64_t b = 0; b < nsb; ++b) {
    const typename Kind::Block& x = w[b];
    PrefetchAhead<sizeof(x)>(&x);
    __m256i tot[NT], mins[NT];
    Kind::template Sums<NT>(x, a, b, tot, mins);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) acc[t] = Kind::Add(acc[t], tot[t], mins[t], x, a[t][b].d);
  }
  DM_UNROLL
  for (int t = 0; t < NT; ++t) out[t * out_stride] = _mm_cvtss_f32(acc[t]);
}

inline bool HasSuperBlockKernel(GgmlType t) {
  return t == GgmlType::kQ5_K || t == GgmlType::kIQ4_XS || t == GgmlType::kQ3_K ||
         t == GgmlType::kQ2_K;
}

// Rows [r0, r1) against the NT tokens at act.
template <int NT>
inline void SuperBlockRowsNT(GgmlType wtype, const uint8_t* w, size_t wrow, int64_t nsb, int64_t r0,
                             int64_t r1, const uint8_t* act, size_t arow, float* out,
                             int64_t out_stride) {
  const BlockQ8_K* a[NT];
  DM_UNROLL
  for (int t = 0; t < NT; ++t) a[t] = reinterpret_cast<const BlockQ8_K*>(act + t * arow);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w + r * wrow;
    float* o = out + r;
    switch (wtype) {
      case GgmlType::kQ2_K:
        RowSuper<NT, KindQ2_K>(reinterpret_cast<const BlockQ2_K*>(row), nsb, a, o, out_stride);
        break;
      case GgmlType::kQ3_K:
        RowSuper<NT, KindQ3_K>(reinterpret_cast<const BlockQ3_K*>(row), nsb, a, o, out_stride);
        break;
      case GgmlType::kIQ4_XS:
        RowSuper<NT, KindIQ4_XS>(reinterpret_cast<const BlockIQ4_XS*>(row), nsb, a, o, out_stride);
        break;
      default:
        RowSuper<NT, KindQ5_K>(reinterpret_cast<const BlockQ5_K*>(row), nsb, a, o, out_stride);
        break;
    }
  }
}

// Rows [r0, r1) of a HasSuperBlockKernel type against n_tokens tokens (ForTokenGroups).
void MatMulSuperBlock(GgmlType wtype, const void* w, int64_t n, int64_t r0, int64_t r1,
                      const void* act, size_t arow, int64_t n_tokens, float* out,
                      int64_t out_stride) {
  const auto* w8 = static_cast<const uint8_t*>(w);
  const auto* a8 = static_cast<const uint8_t*>(act);
  const size_t wrow = RowBytes(wtype, n);
  ForTokenGroups(r0, r1, wrow, 1, n_tokens, [&](auto nt, int64_t t, int64_t rb, int64_t re) {
    SuperBlockRowsNT<nt>(wtype, w8, wrow, n / kQK_K, rb, re, a8 + t * arow, arow,
                         out + t * out_stride, out_stride);
  });
}

}  // namespace avx2
}  // namespace HWY_NAMESPACE
}  // namespace dormouse
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX2
#endif  // include guard toggle
