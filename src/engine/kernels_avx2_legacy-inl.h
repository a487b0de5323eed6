// AVX2 matmuls of Q4_0 and the 32-element block types of quants_legacy.h (Q5_0, IQ4_NL, Q4_1,
// Q5_1), read straight from the mmap, after Rows8Q8_0 (kernels_avx2_decode-inl.h): 8 rows at a
// time, rows k and k + 4 sharing a vector (one 128-bit lane each), a block's elements 0..15 and
// 16..31 in separate vectors dotted by vpmaddubsw with broadcast halves of the activations,
// then vpmaddwd; three vphaddd leave the 8 rows' exact block sums in one vector. The weights
// stay in their own value range:
//   Q4_1 / Q5_1: unsigned q (0..15 / 0..31), nothing to correct;
//   Q4_0 / Q5_0: unsigned q (0..15 / 0..31); the -8 / -16 comes from the prepared corr;
//   IQ4_NL: the signed levels looked up by vpshufb, their sign moved onto the activation
//     by vpsignb as Q8_0 does (|level| <= 127: a pair stays below 2 * 127 * 127; the +128
//     form the prepared corr is made for would pass 2 * 241 * 127 and saturate).
// Activations are within +-127, so nothing saturates (DotPair32 has the bounds). Each row
// then accumulates its floats in the reference's order (kernels_reference_legacy.cc), so
// the results are the reference's bits. A short prefill goes in groups of 8 tokens over
// tiles of rows that stay in cache across the groups; from 64 tokens on (IQ4_XS: 16),
// kernels.cc takes the packed panels of kernels_avx2_prefill_legacy-inl.h instead. Only
// compiled for HWY_AVX2.
#if defined(DORMOUSE_ENGINE_KERNELS_AVX2_LEGACY_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DORMOUSE_ENGINE_KERNELS_AVX2_LEGACY_INL_H_
#undef DORMOUSE_ENGINE_KERNELS_AVX2_LEGACY_INL_H_
#else
#define DORMOUSE_ENGINE_KERNELS_AVX2_LEGACY_INL_H_
#endif

#if HWY_TARGET == HWY_AVX2
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "engine/ggml_types.h"
#include "engine/kernels_avx2_decode-inl.h"
#include "engine/kernels_internal.h"
#include "engine/quants_legacy.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dormouse {
namespace HWY_NAMESPACE {
namespace avx2 {

inline bool HasLegacyKernel(GgmlType t) {
  return t == GgmlType::kQ4_0 || t == GgmlType::kQ5_0 || t == GgmlType::kIQ4_NL ||
         t == GgmlType::kQ4_1 || t == GgmlType::kQ5_1;
}

// Byte layout of a 32-element block type: f16 d (and f16 m), 32 bits of qh, 16 nibble bytes.
template <GgmlType kType>
struct Block32 {
  static constexpr bool kMin = kType == GgmlType::kQ4_1 || kType == GgmlType::kQ5_1;
  static constexpr bool kQ5 = kType == GgmlType::kQ5_0 || kType == GgmlType::kQ5_1;
  static constexpr bool kIQ4 = kType == GgmlType::kIQ4_NL;
  static constexpr size_t kQh = kMin ? 4 : 2;
  static constexpr size_t kQs = kQh + (kQ5 ? 4 : 0);
  static constexpr size_t kBytes = kQs + 16;
};

// The 32-bit words at p[r] + off of the 8 rows, in lane r.
inline __m256i Words8(const uint8_t* const* p, size_t off) {
  const auto h = [&](int r) { return LoadUnaligned(reinterpret_cast<const int32_t*>(p[r] + off)); };
  return _mm256_setr_epi32(h(0), h(1), h(2), h(3), h(4), h(5), h(6), h(7));
}

// Q4_1 / Q5_1: the f16 d and m of the 8 rows' blocks at p[r] + off, as floats.
inline void BlockScalesMin8(const uint8_t* const* p, size_t off, __m256* d, __m256* m) {
  const __m256i dm = Words8(p, off);          // d | m << 16
  const __m256i split = _mm256_shuffle_epi8(  // [d0-3 m0-3 | d4-7 m4-7]
      dm, _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15, 0, 1, 4, 5, 8, 9,
                           12, 13, 2, 3, 6, 7, 10, 11, 14, 15));
  const __m256i v = _mm256_permute4x64_epi64(split, 0xd8);  // [d0-7 | m0-7]
  *d = _mm256_cvtph_ps(_mm256_castsi256_si128(v));
  *m = _mm256_cvtph_ps(_mm256_extracti128_si256(v, 1));
}

// 0x10 in the bytes whose 5th bit is set, for the vectors of LoadPair32 k: bits
// 16h..16h+15 of row k's qh in the low lane, of row k + 4's in the high lane (qh8: the 8
// rows' qh words as Words8 gives them).
HWY_INLINE __m256i Q5HighBits(__m256i qh8, int k, int h) {
  const __m256i idx = _mm256_add_epi8(  // byte e <- the qh byte holding its bit
      _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1,
                       1, 1, 1, 1, 1, 1),
      _mm256_set1_epi8(static_cast<char>(4 * k + 2 * h)));
  const __m256i bit = _mm256_set1_epi64x(0x8040201008040201);  // byte e <- 1 << (e % 8)
  const __m256i bytes = _mm256_shuffle_epi8(qh8, idx);
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit),
                          _mm256_set1_epi8(0x10));
}

// The weights of one block of two rows a, b: lo = elements 0..15 ([a | b] by 128-bit lane),
// hi = elements 16..31, as the unsigned bytes vpmaddubsw takes; for IQ4_NL also the signed
// levels (slo, shi), whose signs go onto the activations.
struct Pair32 {
  __m256i lo, hi, slo, shi;
};

template <GgmlType kType>
HWY_INLINE Pair32 LoadPair32(const uint8_t* a, const uint8_t* b, __m256i table, __m256i qh8,
                             int k) {
  using L = Block32<kType>;
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m256i v = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + L::kQs))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + L::kQs)), 1);
  Pair32 w;
  w.lo = _mm256_and_si256(v, m4);
  w.hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
  if constexpr (L::kIQ4) {
    w.slo = _mm256_shuffle_epi8(table, w.lo);
    w.shi = _mm256_shuffle_epi8(table, w.hi);
    w.lo = _mm256_abs_epi8(w.slo);
    w.hi = _mm256_abs_epi8(w.shi);
  } else if constexpr (L::kQ5) {
    w.lo = _mm256_or_si256(w.lo, Q5HighBits(qh8, k, 0));
    w.hi = _mm256_or_si256(w.hi, Q5HighBits(qh8, k, 1));
  }
  return w;
}

// Block sums of a row pair against one token's y: 8 int32 lanes, [a | b] by 128-bit lane.
// Q4/Q5: the two int16 halves are added before vpmaddwd (pairs stay below 2 * 31 * 127,
// two of them below 2^15); IQ4_NL's pairs reach 2 * 127 * 127 and are widened apart.
template <GgmlType kType>
HWY_INLINE __m256i DotPair32(const Pair32& w, __m256i ylo, __m256i yhi) {
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (Block32<kType>::kIQ4) {
    const __m256i plo = _mm256_maddubs_epi16(w.lo, _mm256_sign_epi8(ylo, w.slo));
    const __m256i phi = _mm256_maddubs_epi16(w.hi, _mm256_sign_epi8(yhi, w.shi));
    return _mm256_add_epi32(_mm256_madd_epi16(plo, ones), _mm256_madd_epi16(phi, ones));
  } else {
    const __m256i plo = _mm256_maddubs_epi16(w.lo, ylo);
    const __m256i phi = _mm256_maddubs_epi16(w.hi, yhi);
    return _mm256_madd_epi16(_mm256_add_epi16(plo, phi), ones);
  }
}

// Prepared activations of one token (kernels_internal.h / kernels_legacy.h): qs, d, and
// the third array, int32 corr (Q8_0) or float s (Q8_1).
struct Act32 {
  const int8_t* qs;
  const float* d;
  const void* extra;
};

// acc (lanes = rows) + the reference's float step for block b of one token, is = the exact
// block sums: Q4_0 / Q5_0 / IQ4_NL acc + isum * (dw * da); Q4_1 / Q5_1 acc + ((dw * da) * isum +
// m * s).
template <GgmlType kType>
HWY_INLINE __m256 AddBlock(__m256 acc, __m256i is, __m256 dw, __m256 m, const Act32& a, int64_t b) {
  if constexpr (kType == GgmlType::kQ4_0 || kType == GgmlType::kQ5_0) {
    is = _mm256_add_epi32(
        is, _mm256_set1_epi32(LoadUnaligned(static_cast<const int32_t*>(a.extra) + b)));
  }
  const __m256 s = _mm256_mul_ps(dw, _mm256_set1_ps(LoadUnaligned(a.d + b)));  // dw * da
  if constexpr (Block32<kType>::kMin) {
    const __m256 ms =
        _mm256_mul_ps(m, _mm256_set1_ps(LoadUnaligned(static_cast<const float*>(a.extra) + b)));
    return _mm256_add_ps(acc, _mm256_add_ps(_mm256_mul_ps(s, _mm256_cvtepi32_ps(is)), ms));
  } else {
    return _mm256_add_ps(acc, _mm256_mul_ps(_mm256_cvtepi32_ps(is), s));
  }
}

// Rows [0, rows) of w (rows <= 8; the missing ones repeat the last) against NT tokens.
// Rows k and k + 4 share vectors, so that two levels of vphaddd leave row r in lane r.
template <int NT, GgmlType kType>
inline void Rows8Legacy(const uint8_t* w, size_t wrow, int rows, int64_t nb, const Act32* a,
                        float* out, int64_t out_stride) {
  using L = Block32<kType>;
  constexpr size_t kBs = L::kBytes;
  const __m256i table = IQ4Table();
  const uint8_t* rp[8];
  for (int r = 0; r < 8; ++r) rp[r] = w + static_cast<size_t>(std::min(r, rows - 1)) * wrow;
  __m256 acc[NT];
  DM_UNROLL
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  const char* next = reinterpret_cast<const char*>(w + 8 * wrow);  // as Rows8Q8_0
  for (int64_t b = 0; b < nb; ++b) {
    DM_UNROLL
    for (int l = 0; l < static_cast<int>(8 * kBs); l += 64) {
      _mm_prefetch(next + 8 * kBs * b + l, _MM_HINT_T0);
    }
    const size_t off = static_cast<size_t>(b) * kBs;
    const __m256i qh8 = L::kQ5 ? Words8(rp, off + L::kQh) : table;
    Pair32 wv[4];
    DM_UNROLL
    for (int k = 0; k < 4; ++k) {
      wv[k] = LoadPair32<kType>(rp[k] + off, rp[k + 4] + off, table, qh8, k);
    }
    __m256 dw, m;
    if constexpr (L::kMin) {
      BlockScalesMin8(rp, off, &dw, &m);
    } else {
      dw = m = BlockScales8(rp, off);
    }
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      const int8_t* y = a[t].qs + 32 * b;
      const __m256i ylo =
          _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y)));
      const __m256i yhi =
          _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y + 16)));
      __m256i p[4];
      DM_UNROLL
      for (int k = 0; k < 4; ++k) p[k] = DotPair32<kType>(wv[k], ylo, yhi);
      const __m256i is =
          _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
      acc[t] = AddBlock<kType>(acc[t], is, dw, m, a[t], b);
    }
  }
  StoreRows(acc, rows, out, out_stride);
}

// Rows [r0, r1) against NT tokens (prepared rows arow apart), 8 rows at a time.
template <int NT, GgmlType kType>
inline void RowsLegacy(const uint8_t* w, int64_t n, int64_t r0, int64_t r1, const uint8_t* act,
                       size_t arow, float* out, int64_t out_stride) {
  const size_t wrow = static_cast<size_t>(n / 32) * Block32<kType>::kBytes;
  Act32 a[NT];
  DM_UNROLL
  for (int t = 0; t < NT; ++t) {
    const uint8_t* p = act + t * arow;
    a[t] = {reinterpret_cast<const int8_t*>(p), reinterpret_cast<const float*>(p + n),
            p + n + 4 * (n / 32)};
  }
  for (int64_t r = r0; r < r1; r += 8) {
    const int rows = static_cast<int>(std::min<int64_t>(8, r1 - r));
    Rows8Legacy<NT, kType>(w + r * wrow, wrow, rows, n / 32, a, out + r, out_stride);
  }
}

// Rows [r0, r1) against any number of tokens (ForTokenGroups; the unpacking shared by 8
// tokens, twice a decode group, measured 1.2-1.6x faster at 64 tokens despite the spills).
template <GgmlType kType>
void MatMulLegacyT(const uint8_t* w, int64_t n, int64_t r0, int64_t r1, const uint8_t* act,
                   size_t arow, int64_t n_tokens, float* out, int64_t out_stride) {
  const size_t wrow = static_cast<size_t>(n / 32) * Block32<kType>::kBytes;
  ForTokenGroups(r0, r1, wrow, 8, n_tokens, [&](auto nt, int64_t t, int64_t rb, int64_t re) {
    RowsLegacy<nt, kType>(w, n, rb, re, act + t * arow, arow, out + t * out_stride, out_stride);
  });
}

// MatMulRows of a HasLegacyKernel type.
inline void MatMulLegacy(GgmlType wtype, const void* w, int64_t n, int64_t r0, int64_t r1,
                         const void* act, size_t arow, int64_t n_tokens, float* out,
                         int64_t out_stride) {
  const auto* w8 = static_cast<const uint8_t*>(w);
  const auto* a8 = static_cast<const uint8_t*>(act);
  switch (wtype) {
    case GgmlType::kQ4_0:
      return MatMulLegacyT<GgmlType::kQ4_0>(w8, n, r0, r1, a8, arow, n_tokens, out, out_stride);
    case GgmlType::kQ5_0:
      return MatMulLegacyT<GgmlType::kQ5_0>(w8, n, r0, r1, a8, arow, n_tokens, out, out_stride);
    case GgmlType::kIQ4_NL:
      return MatMulLegacyT<GgmlType::kIQ4_NL>(w8, n, r0, r1, a8, arow, n_tokens, out, out_stride);
    case GgmlType::kQ4_1:
      return MatMulLegacyT<GgmlType::kQ4_1>(w8, n, r0, r1, a8, arow, n_tokens, out, out_stride);
    default:  // Q5_1
      return MatMulLegacyT<GgmlType::kQ5_1>(w8, n, r0, r1, a8, arow, n_tokens, out, out_stride);
  }
}

}  // namespace avx2
}  // namespace HWY_NAMESPACE
}  // namespace dormouse
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX2
#endif  // include guard toggle
