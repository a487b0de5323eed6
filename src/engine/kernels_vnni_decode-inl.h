// AVX-512 VNNI matmuls for few tokens (decode): weights are streamed once, row after row
// (rows are contiguous, so the hardware prefetcher sees one stream; a software prefetch
// runs ~1 KiB ahead), each 64-byte weight vector dotted with up to 4 tokens. Lanes hold
// consecutive elements; vpdpbusd wants unsigned x signed bytes, so Q8_0 weights are offset
// by +128 (Q4_0/Q4_K/Q6_K nibbles are unsigned already), the offset being cancelled with the
// prepared activation sums. Q8_0/Q4_0 reduce 16 blocks' integer sums to one vector before
// the single float scale multiply; K-quants apply the 6/8-bit sub-block scales exactly with
// vpdpwssd. Only compiled for HWY_AVX3_DL (kernels.cc includes it there).
#if defined(DORMOUSE_ENGINE_KERNELS_VNNI_DECODE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DORMOUSE_ENGINE_KERNELS_VNNI_DECODE_INL_H_
#undef DORMOUSE_ENGINE_KERNELS_VNNI_DECODE_INL_H_
#else
#define DORMOUSE_ENGINE_KERNELS_VNNI_DECODE_INL_H_
#endif

#if HWY_TARGET == HWY_AVX3_DL
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "engine/kernels_internal.h"
#include "engine/kernels_vnni_ops-inl.h"
#include "engine/kernels_x86_scales-inl.h"
#include "engine/quants.h"
#include "engine/quants_legacy.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dormouse {
namespace HWY_NAMESPACE {
namespace vnni {

#ifndef DM_UNROLL
#define DM_UNROLL _Pragma("GCC unroll 16")
#endif

inline int32_t Load32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

inline uint16_t Load16(const void* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// Lanes 0..7 take element 0 of a vector, lanes 8..15 element 1.
inline __m512i HalvesIdx() {
  return _mm512_set_epi64(0x100000001ll, 0x100000001ll, 0x100000001ll, 0x100000001ll, 0, 0, 0, 0);
}

// [x0 x8 | x1 x8] from two adjacent floats.
inline __m512 SplatPair(__m512i idx, const float* p) {
  return _mm512_permutexvar_ps(
      idx, _mm512_castps128_ps512(_mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(p)))));
}

inline float HalfToFloat(uint16_t h) { return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h))); }

// The f16 in the low half of each int32 lane, as float.
inline __m512 HalfToFloat16(__m512i v) { return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v)); }

// Q8_0 / Q4_0 weights of blocks b, b+1 as 64 unsigned bytes in element order.
template <bool kQ4>
inline __m512i LoadPairQ0(const uint8_t* b0, const uint8_t* b1) {
  if constexpr (kQ4) {
    const __m256i x = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b0 + 2))),
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(b1 + 2)), 1);
    const __m512i z =
        _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(x), _mm256_srli_epi16(x, 4), 1),
                         _mm512_set1_epi8(0x0f));
    // [b0 lo, b1 lo, b0 hi, b1 hi] -> [b0 lo, b0 hi, b1 lo, b1 hi]
    return _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));
  } else {
    const __m512i x = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b0 + 2))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b1 + 2)), 1);
    return _mm512_xor_si512(x, _mm512_set1_epi8(static_cast<char>(0x80)));
  }
}

// Sums of the 8-lane halves of z[0..7] (z[i]: block 2i in lanes 0..7, block 2i + 1 in
// lanes 8..15): lane j of the result is the sum of block j.
inline __m512i BlockSums16(const __m512i* z) {
  const __m512i a1 = _mm512_set_epi32(27, 26, 25, 24, 19, 18, 17, 16, 11, 10, 9, 8, 3, 2, 1, 0);
  const __m512i b1 = _mm512_add_epi32(a1, _mm512_set1_epi32(4));
  const __m512i a2 = _mm512_set_epi32(29, 28, 25, 24, 21, 20, 17, 16, 13, 12, 9, 8, 5, 4, 1, 0);
  const __m512i b2 = _mm512_add_epi32(a2, _mm512_set1_epi32(2));
  const __m512i a3 = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i b3 = _mm512_add_epi32(a3, _mm512_set1_epi32(1));
  __m512i y[4], x[2];
  DM_UNROLL
  for (int k = 0; k < 4; ++k) {
    y[k] = _mm512_add_epi32(_mm512_permutex2var_epi32(z[2 * k], a1, z[2 * k + 1]),
                            _mm512_permutex2var_epi32(z[2 * k], b1, z[2 * k + 1]));
  }
  DM_UNROLL
  for (int k = 0; k < 2; ++k) {
    x[k] = _mm512_add_epi32(_mm512_permutex2var_epi32(y[2 * k], a2, y[2 * k + 1]),
                            _mm512_permutex2var_epi32(y[2 * k], b2, y[2 * k + 1]));
  }
  return _mm512_add_epi32(_mm512_permutex2var_epi32(x[0], a3, x[1]),
                          _mm512_permutex2var_epi32(x[0], b3, x[1]));
}

// One weight row of Q8_0/Q4_0 against NT tokens.
template <int NT, bool kQ4>
inline void RowQ0(const uint8_t* row, int64_t nb, const PreparedQ8_0* a, float* out,
                  int64_t out_stride) {
  constexpr size_t kBs = kQ4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
  // Into L2: 1B Q8_0 decode read 0.95-1.0 of a plain read's rate, against 0.89-0.93 into
  // L1 (kernels_internal.h); Q4_0, bound by its unpacking, read 0.70 of it either way.
  constexpr PrefetchTo kPrefetchTo = PrefetchTo::kL2;
  const __m512i idx = HalvesIdx();
  __m512 acc[NT];
  DM_UNROLL
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  int64_t b = 0;
  // 16 blocks at a time: integer block sums first, then one scale multiply per 16 blocks.
  const __m512i stride =
      _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                         _mm512_set1_epi32(static_cast<int>(kBs)));
  for (; b + 16 <= nb; b += 16) {
    const uint8_t* blk = row + b * kBs;
    PrefetchAhead<16 * kBs, kPrefetchTo>(blk);
    __m512i z[NT][8];
    DM_UNROLL
    for (int i = 0; i < 8; ++i) {
      const __m512i wv = LoadPairQ0<kQ4>(blk + 2 * i * kBs, blk + (2 * i + 1) * kBs);
      DM_UNROLL
      for (int t = 0; t < NT; ++t) {
        z[t][i] =
            Dpbusd(_mm512_setzero_si512(), wv, _mm512_loadu_si512(a[t].qs + 32 * (b + 2 * i)));
      }
    }
    const __m512 dw = HalfToFloat16(_mm512_i32gather_epi32(stride, blk, 1));
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      const __m512i isum = _mm512_add_epi32(BlockSums16(z[t]), _mm512_loadu_si512(a[t].corr + b));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum),
                               _mm512_mul_ps(dw, _mm512_loadu_ps(a[t].d + b)), acc[t]);
    }
  }
  for (; b + 2 <= nb; b += 2) {
    const uint8_t* b0 = row + b * kBs;
    const uint8_t* b1 = b0 + kBs;
    PrefetchAhead<2 * kBs, kPrefetchTo>(b0);
    const __m512i wv = LoadPairQ0<kQ4>(b0, b1);
    const __m128i h = _mm_cvtsi32_si128(Load16(b0) | (Load16(b1) << 16));
    const __m512 dw = _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(_mm_cvtph_ps(h)));
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      const __m512i av = _mm512_loadu_si512(a[t].qs + 32 * b);
      const __m512i corr = _mm512_maskz_permutexvar_epi32(
          0x0101, idx,
          _mm512_castsi128_si512(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(a[t].corr + b))));
      const __m512i iv = Dpbusd(corr, wv, av);
      const __m512 s = _mm512_mul_ps(dw, SplatPair(idx, a[t].d + b));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(iv), s, acc[t]);
    }
  }
  if (b < nb) {  // odd block count: last block alone in the low half
    const uint8_t* b0 = row + b * kBs;
    __m256i w;
    if constexpr (kQ4) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b0 + 2));
      w = _mm256_and_si256(
          _mm256_inserti128_si256(_mm256_castsi128_si256(x), _mm_srli_epi16(x, 4), 1),
          _mm256_set1_epi8(0x0f));
    } else {
      w = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b0 + 2)),
                           _mm256_set1_epi8(static_cast<char>(0x80)));
    }
    const float dw = HalfToFloat(Load16(b0));
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[t].qs + 32 * b));
      const __m256i corr = _mm256_zextsi128_si256(_mm_cvtsi32_si128(Load32(a[t].corr + b)));
      const __m256i iv = Dpbusd(corr, w, av);
      const __m512 v = _mm512_zextps256_ps512(_mm256_cvtepi32_ps(iv));
      acc[t] = _mm512_fmadd_ps(v, _mm512_set1_ps(dw * a[t].d[b]), acc[t]);
    }
  }
  DM_UNROLL
  for (int t = 0; t < NT; ++t) out[t * out_stride] = _mm512_reduce_add_ps(acc[t]);
}

// Q4_K/Q5_K scales (bytes 0..7) and mins (bytes 8..15) of a block (x86::ScalesMinsQ4_K).
inline __m128i ScalesMinsK4(const uint8_t* s) {
  return _mm256_castsi256_si128(x86::ScalesMinsQ4_K(s));
}

// Byte shuffles that spread a Q4_K block's scales (bytes 0..7 of every 128-bit lane) over
// int32 lanes, zero-extended: lane i gets byte lo (lanes 0..7) or hi (lanes 8..15). An in-lane
// vpshufb of a broadcast instead of a cross-lane vpermb per pattern: on Zen 4 the four vpermb
// per block were what bounded the Q4_K decode kernel.
inline __m512i ScaleSpread(int lo, int hi) {
  const int64_t a = 0x8080800080808000ll | lo | int64_t{lo} << 32;
  const int64_t b = 0x8080800080808000ll | hi | int64_t{hi} << 32;
  return _mm512_set_epi64(b, b, b, b, a, a, a, a);
}

// 16 int16 sub-block scales -> 4 vectors: low int16 of int32 lane i of vector k holds scale
// 4k + i / 4 (the 4 lanes that vpdpbusd fills from those 16 elements); high halves zero. As
// ScaleSpread: vpshufb of each 128-bit half, broadcast, rather than a vpermw per vector.
inline void SpreadScales16(__m256i s16, __m512i* sc) {
  const __m512i half[2] = {_mm512_broadcast_i32x4(_mm256_castsi256_si128(s16)),
                           _mm512_broadcast_i32x4(_mm256_extracti128_si256(s16, 1))};
  DM_UNROLL
  for (int k = 0; k < 4; ++k) {
    // 128-bit lane L: word 4 (k % 2) + L of the half, in each int32's low word.
    int32_t w[4];
    DM_UNROLL
    for (int l = 0; l < 4; ++l) {
      const int b = 2 * (4 * (k % 2) + l);
      w[l] = static_cast<int32_t>(0x80800000u | static_cast<uint32_t>((b + 1) << 8 | b));
    }
    const __m512i spread = _mm512_set_epi32(w[3], w[3], w[3], w[3], w[2], w[2], w[2], w[2], w[1],
                                            w[1], w[1], w[1], w[0], w[0], w[0], w[0]);
    sc[k] = _mm512_shuffle_epi8(half[k / 2], spread);
  }
}

// sc[p]: int32 lane i holds the scale of sub-block 2p (lanes 0..7) or 2p + 1 (lanes 8..15),
// the lanes of a Dpbusd over 64 activations of those two sub-blocks.
inline void ScaleLanesK4(__m128i scm, __m512i (&sc)[4]) {
  const __m512i v = _mm512_broadcast_i32x4(scm);
  DM_UNROLL
  for (int p = 0; p < 4; ++p) sc[p] = _mm512_shuffle_epi8(v, ScaleSpread(2 * p, 2 * p + 1));
}

// The 8 mins, each twice, as int16: one per bsum (16 activations).
inline __m256i MinsK4(__m128i scm) {
  const __m128i dup = _mm_set_epi64x(0x0f0f0e0e0d0d0c0cll, 0x0b0b0a0a09090808ll);
  return _mm256_cvtepu8_epi16(_mm_shuffle_epi8(scm, dup));
}

// Sub-blocks 2p and 2p + 1 of a Q4_K/Q5_K block in natural order: the low and the high
// nibbles of its 32 bytes qs[32p..32p + 32). One broadcast load and a masked shift; the cross-lane
// shuffles that reordered two 64-byte loads cost the kernel a quarter of its time on Zen 4.
inline __m512i NibblesK4(const uint8_t* q32) {
  const __m512i t =
      _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q32)));
  return _mm512_and_si512(_mm512_mask_srli_epi16(t, 0xffff0000u, t, 4), _mm512_set1_epi8(0x0f));
}

// A token's Q8_K quants reordered to match Q4_K's nibbles as stored: per 128 activations,
// [0..32) [64..96) | [32..64) [96..128). Then the low and the high nibbles of a 64-byte load
// of weights each meet one 64-byte load of activations, and the weights need no shuffle:
// done once per token and row range instead of once per row and block, where the shuffles
// cost the 1B decode's Q4_K kernel a quarter of its time. `out` holds nsb * 256 bytes.
inline void PermuteForQ4_K(const BlockQ8_K* a, int64_t nsb, int8_t* out) {
  for (int64_t b = 0; b < nsb; ++b) {
    DM_UNROLL
    for (int h = 0; h < 2; ++h) {
      const __m512i x = _mm512_loadu_si512(a[b].qs + 128 * h);
      const __m512i y = _mm512_loadu_si512(a[b].qs + 128 * h + 64);
      int8_t* o = out + 256 * b + 128 * h;
      _mm512_storeu_si512(o, _mm512_shuffle_i64x2(x, y, _MM_SHUFFLE(1, 0, 1, 0)));
      _mm512_storeu_si512(o + 64, _mm512_shuffle_i64x2(x, y, _MM_SHUFFLE(3, 2, 3, 2)));
    }
  }
}

// One Q4_K weight row against NT tokens; aq[t]: token t's quants in PermuteForQ4_K's order.
template <int NT>
inline void RowQ4_K(const BlockQ4_K* w, int64_t nsb, const BlockQ8_K* const* a,
                    const int8_t* const* aq, float* out, int64_t out_stride) {
  __m512 acc[NT];
  __m256 accm[NT];
  DM_UNROLL
  for (int t = 0; t < NT; ++t) {
    acc[t] = _mm512_setzero_ps();
    accm[t] = _mm256_setzero_ps();
  }
  const __m512i nib = _mm512_set1_epi8(0x0f);
  // Int32 lane i <- the scale of sub-block k[p] (lanes 0..7) or k[p] + 2: the low nibbles of
  // bytes [64h, 64h + 64) are sub-blocks 4h and 4h + 2, the high ones 4h + 1, 4h + 3.
  __m512i spread[4];
  DM_UNROLL
  for (int p = 0; p < 4; ++p) {
    const int k = 4 * (p / 2) + p % 2;
    spread[p] = ScaleSpread(k, k + 2);
  }
  for (int64_t b = 0; b < nsb; ++b) {
    const BlockQ4_K& x = w[b];
    PrefetchAhead<sizeof(BlockQ4_K)>(&x);
    const __m128i scm = ScalesMinsK4(x.scales);
    const __m512i scv = _mm512_broadcast_i32x4(scm);
    __m512i sc[4], wq[4];
    DM_UNROLL
    for (int p = 0; p < 4; ++p) sc[p] = _mm512_shuffle_epi8(scv, spread[p]);
    const __m256i mins = MinsK4(scm);
    DM_UNROLL
    for (int h = 0; h < 2; ++h) {
      const __m512i q = _mm512_loadu_si512(x.qs + 64 * h);
      wq[2 * h] = _mm512_and_si512(q, nib);
      wq[2 * h + 1] = _mm512_and_si512(_mm512_srli_epi16(q, 4), nib);
    }
    const float d = HalfToFloat(x.d), dmin = HalfToFloat(x.dmin);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      const BlockQ8_K& y = a[t][b];
      const int8_t* yq = aq[t] + 256 * b;
      __m512i isum = _mm512_setzero_si512();
      DM_UNROLL
      for (int p = 0; p < 4; ++p) {
        const __m512i prod = Dpbusd(_mm512_setzero_si512(), wq[p], _mm512_loadu_si512(yq + 64 * p));
        isum = Dpwssd(isum, prod, sc[p]);  // exact: |prod| < 2^15
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

template <int NT>
inline void RowQ6_K(const BlockQ6_K* w, int64_t nsb, const BlockQ8_K* const* a, float* out,
                    int64_t out_stride) {
  __m512 acc[NT];
  DM_UNROLL
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  const __m512i nib = _mm512_set1_epi8(0x0f), hmask = _mm512_set1_epi8(0x30);
  for (int64_t b = 0; b < nsb; ++b) {
    const BlockQ6_K& x = w[b];
    PrefetchAhead<sizeof(BlockQ6_K)>(&x);
    const __m512i qh = _mm512_loadu_si512(x.qh);
    __m512i wq[4];
    DM_UNROLL
    for (int h = 0; h < 2; ++h) {
      const __m512i l = _mm512_loadu_si512(x.ql + 64 * h);
      const __m256i hb = h == 0 ? _mm512_castsi512_si256(qh) : _mm512_extracti64x4_epi64(qh, 1);
      const __m512i ha =
          _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(_mm256_slli_epi16(hb, 4)),
                                              _mm256_slli_epi16(hb, 2), 1),
                           hmask);
      const __m512i hc = _mm512_and_si512(
          _mm512_inserti64x4(_mm512_castsi256_si512(hb), _mm256_srli_epi16(hb, 2), 1), hmask);
      wq[2 * h] = _mm512_or_si512(_mm512_and_si512(l, nib), ha);
      wq[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), nib), hc);
    }
    const __m128i s8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.scales));
    const __m256i s16 = _mm256_cvtepi8_epi16(s8);
    __m512i sc[4];
    SpreadScales16(s16, sc);
    const float d = HalfToFloat(x.d);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      const BlockQ8_K& y = a[t][b];
      __m512i isum = _mm512_setzero_si512();
      DM_UNROLL
      for (int k = 0; k < 4; ++k) {
        const __m512i prod =
            Dpbusd(_mm512_setzero_si512(), wq[k], _mm512_loadu_si512(y.qs + 64 * k));
        isum = Dpwssd(isum, prod, sc[k]);  // exact: |prod| <= 4*63*127 < 2^15
      }
      // q - 32: subtract 32 * sum_k scale_k * bsum_k.
      const __m256i corr =
          _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.bsums)), s16);
      isum = _mm512_sub_epi32(isum, _mm512_zextsi256_si512(_mm256_slli_epi32(corr, 5)));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * y.d), acc[t]);
    }
  }
  DM_UNROLL
  for (int t = 0; t < NT; ++t) out[t * out_stride] = _mm512_reduce_add_ps(acc[t]);
}

// The quants_legacy.h types (kernels_vnni_decode_legacy-inl.h).
template <int NT>
void DecodeRowsLegacy(GgmlType wtype, const uint8_t* w, int64_t n, int64_t r0, int64_t r1,
                      const uint8_t* act, size_t arow, float* out, int64_t out_stride);

template <int NT>
inline void DecodeRowsNT(GgmlType wtype, const uint8_t* w, int64_t n, int64_t r0, int64_t r1,
                         const uint8_t* act, size_t arow, float* out, int64_t out_stride) {
  if (IsLegacyQuant(wtype)) {
    return DecodeRowsLegacy<NT>(wtype, w, n, r0, r1, act, arow, out, out_stride);
  }
  const size_t wrow = RowBytes(wtype, n);
  if (wtype == GgmlType::kQ8_0 || wtype == GgmlType::kQ4_0) {
    PreparedQ8_0 a[NT];
    DM_UNROLL
    for (int t = 0; t < NT; ++t) a[t] = PreparedQ8_0::At(act + t * arow, n);
    for (int64_t r = r0; r < r1; ++r) {
      if (wtype == GgmlType::kQ4_0) {
        RowQ0<NT, true>(w + r * wrow, n / 32, a, out + r, out_stride);
      } else {
        RowQ0<NT, false>(w + r * wrow, n / 32, a, out + r, out_stride);
      }
    }
    return;
  }
  const BlockQ8_K* a[NT];
  DM_UNROLL
  for (int t = 0; t < NT; ++t) a[t] = reinterpret_cast<const BlockQ8_K*>(act + t * arow);
  if (wtype == GgmlType::kQ4_K) {
    // Per thread, grown once to the widest row it meets (no allocation while decoding).
    thread_local std::vector<int8_t> permuted;
    if (permuted.size() < static_cast<size_t>(NT * n)) permuted.resize(NT * n);
    const int8_t* aq[NT];
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      PermuteForQ4_K(a[t], n / kQK_K, permuted.data() + t * n);
      aq[t] = permuted.data() + t * n;
    }
    for (int64_t r = r0; r < r1; ++r) {
      RowQ4_K<NT>(reinterpret_cast<const BlockQ4_K*>(w + r * wrow), n / kQK_K, a, aq, out + r,
                  out_stride);
    }
    return;
  }
  for (int64_t r = r0; r < r1; ++r) {
    RowQ6_K<NT>(reinterpret_cast<const BlockQ6_K*>(w + r * wrow), n / kQK_K, a, out + r,
                out_stride);
  }
}

void MatMulQuantDecode(GgmlType wtype, const void* w, int64_t n, int64_t r0, int64_t r1,
                       const void* act, size_t arow, int64_t n_tokens, float* out,
                       int64_t out_stride) {
  const auto* w8 = static_cast<const uint8_t*>(w);
  const auto* a8 = static_cast<const uint8_t*>(act);
  ForTokenTiles<4>(n_tokens, [&](auto nt, int64_t t) {
    const uint8_t* at = a8 + t * arow;
    float* o = out + t * out_stride;
    DecodeRowsNT<nt>(wtype, w8, n, r0, r1, at, arow, o, out_stride);
  });
}

}  // namespace vnni
}  // namespace HWY_NAMESPACE
}  // namespace dormouse
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX3_DL
#endif  // include guard toggle
