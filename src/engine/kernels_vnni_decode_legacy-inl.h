// AVX-512 VNNI decode (few tokens) matmuls of the quants_legacy.h types, in the manner of
// kernels_vnni_decode-inl.h: each weight row streamed once and every 64-byte weight vector
// dotted with up to 4 tokens. Weights become unsigned bytes in element order: nibbles
// (Q4_1, Q5_x) with the 5th bits of Q5_x set from qh through a mask, IQ4 levels + 128
// looked up with vpshufb; the +16 (Q5_0) / +128 (IQ4) offsets are cancelled with the
// prepared activation sums. 32-element blocks reduce 16 blocks' integer sums before one
// float multiply; Q4_1/Q5_1 add m * s per block. IQ4_XS applies its sub-block scales to
// the exact integer sums with vpmulld. Only for HWY_AVX3_DL.
#if defined(DORMOUSE_ENGINE_KERNELS_VNNI_DECODE_LEGACY_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DORMOUSE_ENGINE_KERNELS_VNNI_DECODE_LEGACY_INL_H_
#undef DORMOUSE_ENGINE_KERNELS_VNNI_DECODE_LEGACY_INL_H_
#else
#define DORMOUSE_ENGINE_KERNELS_VNNI_DECODE_LEGACY_INL_H_
#endif

#if HWY_TARGET == HWY_AVX3_DL
#include <immintrin.h>

#include <cstring>

#include "engine/kernels_internal.h"
#include "engine/kernels_legacy.h"
#include "engine/kernels_vnni_decode-inl.h"
#include "engine/kernels_vnni_ops-inl.h"
#include "engine/quants_legacy.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dormouse {
namespace HWY_NAMESPACE {
namespace vnni {

// IQ4 levels + 128 (unsigned), in every 128-bit lane for vpshufb.
inline __m512i IQ4Table() {
  alignas(16) uint8_t t[16];
  for (int k = 0; k < 16; ++k) t[k] = static_cast<uint8_t>(kIQ4NLValues[k] + 128);
  return _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(t)));
}

// Byte layout of a 32-element block type.
template <GgmlType kType>
struct Layout32 {
  static constexpr bool kMin = kType == GgmlType::kQ4_1 || kType == GgmlType::kQ5_1;
  static constexpr bool kQ5 = kType == GgmlType::kQ5_0 || kType == GgmlType::kQ5_1;
  static constexpr bool kIQ4 = kType == GgmlType::kIQ4_NL;
  static constexpr size_t kQh = kMin ? 4 : 2;                    // Q5_x only
  static constexpr size_t kQs = (kMin ? 4 : 2) + (kQ5 ? 4 : 0);  // nibbles
  static constexpr size_t kBytes = kQs + 16;
};

// Blocks b0, b1 as 64 unsigned bytes in element order ([b0 e0..31 | b1 e0..31]).
template <GgmlType kType>
inline __m512i LoadPairLegacy(const uint8_t* b0, const uint8_t* b1, __m512i table) {
  using L = Layout32<kType>;
  const __m256i x = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b0 + L::kQs))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(b1 + L::kQs)), 1);
  const __m512i z =
      _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(x), _mm256_srli_epi16(x, 4), 1),
                       _mm512_set1_epi8(0x0f));
  // [b0 lo, b1 lo, b0 hi, b1 hi] -> [b0 lo, b0 hi, b1 lo, b1 hi]
  __m512i v = _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));
  if constexpr (L::kIQ4) v = _mm512_shuffle_epi8(table, v);
  if constexpr (L::kQ5) {
    const uint64_t h = static_cast<uint32_t>(Load32(b0 + L::kQh)) |
                       (static_cast<uint64_t>(static_cast<uint32_t>(Load32(b1 + L::kQh))) << 32);
    v = _mm512_or_si512(v, _mm512_maskz_mov_epi8(h, _mm512_set1_epi8(0x10)));
  }
  return v;
}

// Prepared activations of one token: Q8_0 (corr) or Q8_1 (s) arrays.
struct Act32 {
  const int8_t* qs;
  const float* d;
  const void* extra;  // int32 corr (Q8_0) or float s (Q8_1)
};

// One weight row of a 32-element block type against NT tokens.
template <int NT, GgmlType kType>
inline void RowLegacy32(const uint8_t* row, int64_t nb, const Act32* a, float* out,
                        int64_t out_stride) {
  using L = Layout32<kType>;
  constexpr size_t kBs = L::kBytes;
  const __m512i table = L::kIQ4 ? IQ4Table() : _mm512_setzero_si512();
  const __m512i idx = HalvesIdx();
  __m512 acc[NT];
  DM_UNROLL
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  int64_t b = 0;
  const __m512i stride =
      _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                         _mm512_set1_epi32(static_cast<int>(kBs)));
  for (; b + 16 <= nb; b += 16) {
    const uint8_t* blk = row + b * kBs;
    PrefetchAhead<16 * kBs>(blk);
    __m512i z[NT][8];
    DM_UNROLL
    for (int i = 0; i < 8; ++i) {
      const __m512i wv = LoadPairLegacy<kType>(blk + 2 * i * kBs, blk + (2 * i + 1) * kBs, table);
      DM_UNROLL
      for (int t = 0; t < NT; ++t) {
        z[t][i] =
            Dpbusd(_mm512_setzero_si512(), wv, _mm512_loadu_si512(a[t].qs + 32 * (b + 2 * i)));
      }
    }
    const __m512i hdr = _mm512_i32gather_epi32(stride, blk, 1);  // d | m << 16
    const __m512 dw = HalfToFloat16(hdr);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      __m512i isum = BlockSums16(z[t]);
      if constexpr (!L::kMin) {
        isum =
            _mm512_add_epi32(isum, _mm512_loadu_si512(static_cast<const int32_t*>(a[t].extra) + b));
      }
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum),
                               _mm512_mul_ps(dw, _mm512_loadu_ps(a[t].d + b)), acc[t]);
      if constexpr (L::kMin) {
        const __m512 m = HalfToFloat16(_mm512_srli_epi32(hdr, 16));
        acc[t] =
            _mm512_fmadd_ps(m, _mm512_loadu_ps(static_cast<const float*>(a[t].extra) + b), acc[t]);
      }
    }
  }
  for (; b + 2 <= nb; b += 2) {  // pairs: block b in lanes 0..7, b + 1 in lanes 8..15
    const uint8_t* b0 = row + b * kBs;
    const uint8_t* b1 = b0 + kBs;
    const __m512i wv = LoadPairLegacy<kType>(b0, b1, table);
    const __m128i h = _mm_cvtsi32_si128(Load16(b0) | (Load16(b1) << 16));
    const __m512 dw = _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(_mm_cvtph_ps(h)));
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      __m512i init = _mm512_setzero_si512();
      if constexpr (!L::kMin) {
        init = _mm512_maskz_permutexvar_epi32(
            0x0101, idx,
            _mm512_castsi128_si512(_mm_loadl_epi64(
                reinterpret_cast<const __m128i*>(static_cast<const int32_t*>(a[t].extra) + b))));
      }
      const __m512i iv = Dpbusd(init, wv, _mm512_loadu_si512(a[t].qs + 32 * b));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(iv),
                               _mm512_mul_ps(dw, SplatPair(idx, a[t].d + b)), acc[t]);
      if constexpr (L::kMin) {
        const float* s = static_cast<const float*>(a[t].extra) + b;
        const float ms = HalfToFloat(Load16(b0 + 2)) * LoadUnaligned(s) +
                         HalfToFloat(Load16(b1 + 2)) * LoadUnaligned(s + 1);
        acc[t] = _mm512_add_ps(acc[t], _mm512_zextps128_ps512(_mm_set_ss(ms)));
      }
    }
  }
  if (b < nb) {  // odd block count: the last block alone in the low 8 lanes

    const uint8_t* b0 = row + b * kBs;
    const __m512i wv = LoadPairLegacy<kType>(b0, b0, table);
    const float dw = HalfToFloat(Load16(b0));
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      const __m512i av = _mm512_maskz_loadu_epi8(0xffffffffull, a[t].qs + 32 * b);
      __m512i init = _mm512_setzero_si512();
      if constexpr (!L::kMin) {
        init = _mm512_zextsi128_si512(
            _mm_cvtsi32_si128(Load32(static_cast<const int32_t*>(a[t].extra) + b)));
      }
      const __m512i iv = Dpbusd(init, wv, av);
      const float da = LoadUnaligned(a[t].d + b);
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(iv), _mm512_set1_ps(dw * da), acc[t]);
      if constexpr (L::kMin) {
        const float ms =
            HalfToFloat(Load16(b0 + 2)) * LoadUnaligned(static_cast<const float*>(a[t].extra) + b);
        acc[t] = _mm512_add_ps(acc[t], _mm512_zextps128_ps512(_mm_set_ss(ms)));
      }
    }
  }
  DM_UNROLL
  for (int t = 0; t < NT; ++t) out[t * out_stride] = _mm512_reduce_add_ps(acc[t]);
}

template <int NT>
inline void RowIQ4_XS(const BlockIQ4_XS* w, int64_t nsb, const BlockQ8_K* const* a, float* out,
                      int64_t out_stride) {
  const __m512i table = IQ4Table(), nib = _mm512_set1_epi8(0x0f);
  __m512 acc[NT];
  DM_UNROLL
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  const __m512i shift_l =
      _mm512_set_epi32(28, 24, 20, 16, 12, 8, 4, 0, 28, 24, 20, 16, 12, 8, 4, 0);
  const __m512i shift_h = _mm512_set_epi32(14, 12, 10, 8, 6, 4, 2, 0, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i halves = HalvesIdx();
  for (int64_t b = 0; b < nsb; ++b) {
    const BlockIQ4_XS& x = w[b];
    PrefetchAhead<sizeof(BlockIQ4_XS)>(&x);
    // Sub-block scales ls[j] - 32 in int32 lanes j (and j + 8) from scales_l / scales_h.
    const __m512i lsl = _mm512_and_si512(
        _mm512_srlv_epi32(_mm512_set1_epi32(Load32(x.scales_l)), shift_l), _mm512_set1_epi32(0xf));
    const __m512i lsh = _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32(x.scales_h), shift_h),
                                         _mm512_set1_epi32(3));
    const __m512i ls =
        _mm512_sub_epi32(_mm512_or_si512(lsl, _mm512_slli_epi32(lsh, 4)), _mm512_set1_epi32(32));
    // Per 64 weights v: lanes 0..7 sub-block 2v, 8..15 sub-block 2v + 1.
    __m512i sc[4];
    DM_UNROLL
    for (int v = 0; v < 4; ++v) {
      sc[v] = _mm512_permutexvar_epi32(_mm512_add_epi32(halves, _mm512_set1_epi32(2 * v)), ls);
    }
    // (ls[j], ls[j]) as int16 pairs against the activations' bsums[2j], bsums[2j + 1].
    const __m256i lsv = _mm512_castsi512_si256(_mm512_or_si512(
        _mm512_and_si512(ls, _mm512_set1_epi32(0xffff)), _mm512_slli_epi32(ls, 16)));
    __m512i wq[4];
    DM_UNROLL
    for (int h = 0; h < 2; ++h) {
      // Sub-blocks 4h + k in 128-bit lane k (lo: elements 0..15, hi: 16..31).
      const __m512i q = _mm512_loadu_si512(x.qs + 64 * h);
      const __m512i lo = _mm512_shuffle_epi8(table, _mm512_and_si512(q, nib));
      const __m512i hi = _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srli_epi16(q, 4), nib));
      // [lo0 lo1 lo2 lo3], [hi0 hi1 hi2 hi3] -> [lo0 hi0 lo1 hi1], [lo2 hi2 lo3 hi3]
      const __m512i a01 = _mm512_shuffle_i64x2(lo, hi, _MM_SHUFFLE(1, 0, 1, 0));
      const __m512i a23 = _mm512_shuffle_i64x2(lo, hi, _MM_SHUFFLE(3, 2, 3, 2));
      wq[2 * h] = _mm512_shuffle_i64x2(a01, a01, _MM_SHUFFLE(3, 1, 2, 0));
      wq[2 * h + 1] = _mm512_shuffle_i64x2(a23, a23, _MM_SHUFFLE(3, 1, 2, 0));
    }
    const float d = HalfToFloat(x.d);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      const BlockQ8_K& y = a[t][b];
      __m512i isum = _mm512_setzero_si512();
      DM_UNROLL
      for (int v = 0; v < 4; ++v) {
        const __m512i prod =
            Dpbusd(_mm512_setzero_si512(), wq[v], _mm512_loadu_si512(y.qs + 64 * v));
        isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(prod, sc[v]));
      }
      // The +128 offset: subtract 128 * sum_j ls_j * (bsums[2j] + bsums[2j + 1]).
      const __m256i corr =
          _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.bsums)), lsv);
      isum = _mm512_sub_epi32(isum, _mm512_zextsi256_si512(_mm256_slli_epi32(corr, 7)));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * y.d), acc[t]);
    }
  }
  DM_UNROLL
  for (int t = 0; t < NT; ++t) out[t * out_stride] = _mm512_reduce_add_ps(acc[t]);
}

template <int NT, GgmlType kType>
inline void Rows32(const uint8_t* w, int64_t n, int64_t r0, int64_t r1, const uint8_t* act,
                   size_t arow, float* out, int64_t out_stride) {
  const size_t wrow = RowBytes(kType, n);
  Act32 a[NT];
  DM_UNROLL
  for (int t = 0; t < NT; ++t) {
    const uint8_t* p = act + t * arow;
    a[t] = {reinterpret_cast<const int8_t*>(p), reinterpret_cast<const float*>(p + n),
            p + n + 4 * (n / 32)};
  }
  for (int64_t r = r0; r < r1; ++r) {
    RowLegacy32<NT, kType>(w + r * wrow, n / 32, a, out + r, out_stride);
  }
}

// DecodeRowsNT (kernels_vnni_decode-inl.h) for the quants_legacy.h types.
template <int NT>
void DecodeRowsLegacy(GgmlType wtype, const uint8_t* w, int64_t n, int64_t r0, int64_t r1,
                      const uint8_t* act, size_t arow, float* out, int64_t out_stride) {
  switch (wtype) {
    case GgmlType::kQ4_1:
      return Rows32<NT, GgmlType::kQ4_1>(w, n, r0, r1, act, arow, out, out_stride);
    case GgmlType::kQ5_0:
      return Rows32<NT, GgmlType::kQ5_0>(w, n, r0, r1, act, arow, out, out_stride);
    case GgmlType::kQ5_1:
      return Rows32<NT, GgmlType::kQ5_1>(w, n, r0, r1, act, arow, out, out_stride);
    case GgmlType::kIQ4_NL:
      return Rows32<NT, GgmlType::kIQ4_NL>(w, n, r0, r1, act, arow, out, out_stride);
    default: {  // IQ4_XS
      const size_t wrow = RowBytes(wtype, n);
      const BlockQ8_K* a[NT];
      DM_UNROLL
      for (int t = 0; t < NT; ++t) a[t] = reinterpret_cast<const BlockQ8_K*>(act + t * arow);
      for (int64_t r = r0; r < r1; ++r) {
        RowIQ4_XS<NT>(reinterpret_cast<const BlockIQ4_XS*>(w + r * wrow), n / kQK_K, a, out + r,
                      out_stride);
      }
    }
  }
}

}  // namespace vnni
}  // namespace HWY_NAMESPACE
}  // namespace dormouse
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX3_DL
#endif  // include guard toggle
