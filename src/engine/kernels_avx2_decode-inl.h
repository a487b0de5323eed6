// AVX2 matmuls of Q8_0, Q4_K and Q6_K weights for a few tokens (decode), read straight from
// the mmap (Q4_0 and the other 32-element types: kernels_avx2_legacy-inl.h). Q8_0 goes 8 rows
// at a time: each row's 32-element block goes through vpmaddubsw (with the weight's sign
// moved onto the activation by vpsignb) and vpmaddwd into 8 int32 lanes; the 8 rows' lanes
// are then summed horizontally all at once (vphaddd), giving one exact block sum per row in
// one vector. K-quants go one row at a time
// (RowQ4_K, RowQ6_K): a 256-element super-block is work enough to pay for its own
// horizontal sum, and one stream per thread is what the prefetch ahead covers. Either way
// each row accumulates its floats in the reference's order, so the results are the
// reference's bits. Only compiled for HWY_AVX2.
#if defined(DORMOUSE_ENGINE_KERNELS_AVX2_DECODE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DORMOUSE_ENGINE_KERNELS_AVX2_DECODE_INL_H_
#undef DORMOUSE_ENGINE_KERNELS_AVX2_DECODE_INL_H_
#else
#define DORMOUSE_ENGINE_KERNELS_AVX2_DECODE_INL_H_
#endif

#if HWY_TARGET == HWY_AVX2
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>

#include "engine/kernels_internal.h"
#include "engine/kernels_x86_scales-inl.h"
#include "engine/quants.h"
#include "engine/quants_legacy.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dormouse {
namespace HWY_NAMESPACE {
namespace avx2 {

#ifndef DM_UNROLL
#define DM_UNROLL _Pragma("GCC unroll 16")
#endif

// IQ4_NL's 16 signed levels in both 128-bit lanes: vpshufb's table from nibbles to levels.
inline __m256i IQ4Table() {
  return _mm256_broadcastsi128_si256(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIQ4NLValues)));
}

// v[r] (8 int32 lanes each) -> lane r = sum of v[r]'s lanes.
inline __m256i SumLanes8(const __m256i* v) {
  const __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
  const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
  // a = [r0 r1 r2 r3 | r0 r1 r2 r3] halves, b likewise for r4..r7.
  return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20),
                          _mm256_permute2x128_si256(a, b, 0x31));
}

// The f16 scales at the start of the 8 blocks p[r] + off, as floats (inserts: a gather is
// several times slower here).
inline __m256 BlockScales8(const uint8_t* const* p, size_t off) {
  const auto h = [&](int r) {
    return static_cast<int16_t>(LoadUnaligned(reinterpret_cast<const uint16_t*>(p[r] + off)));
  };
  return _mm256_cvtph_ps(_mm_setr_epi16(h(0), h(1), h(2), h(3), h(4), h(5), h(6), h(7)));
}

// The first `rows` lanes of acc[t] to out + t * out_stride.
template <int NT>
inline void StoreRows(const __m256 (&acc)[NT], int rows, float* out, int64_t out_stride) {
  if (rows == 8) {
    DM_UNROLL
    for (int t = 0; t < NT; ++t) _mm256_storeu_ps(out + t * out_stride, acc[t]);
  } else {
    alignas(32) float tmp[8];
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      _mm256_store_ps(tmp, acc[t]);
      std::memcpy(out + t * out_stride, tmp, sizeof(float) * static_cast<size_t>(rows));
    }
  }
}

// The token and row loop of the kernels that read weights as stored (no packed panels):
// calls rows(std::integral_constant<int, NT>{}, t, rb, re) for the NT tokens from t and rows
// [rb, re), 8 tokens at a time, the rest in groups of up to 4. With more than 4 tokens the
// rows go in tiles of about 128 KB of weights (a multiple of `granule` rows), streamed from
// memory once and kept in L2 while every group reads them.
template <typename F>
HWY_INLINE void ForTokenGroups(int64_t r0, int64_t r1, size_t wrow, int64_t granule,
                               int64_t n_tokens, F&& rows) {
  constexpr int64_t kTileBytes = int64_t{128} << 10;
  const int64_t fit = kTileBytes / static_cast<int64_t>(wrow) / granule * granule;
  const int64_t tile = n_tokens <= 4 ? r1 - r0 : std::max(granule, fit);
  for (int64_t rb = r0; rb < r1; rb += tile) {
    const int64_t re = std::min(r1, rb + tile);
    for (int64_t t = 0; t < n_tokens;) {
      const int64_t group = n_tokens - t >= 8 ? 8 : std::min<int64_t>(4, n_tokens - t);
      if (group == 8) {
        rows(std::integral_constant<int, 8>{}, t, rb, re);
      } else {
        WithTokenCount<4>(group, [&](auto nt) { rows(nt, t, rb, re); });
      }
      t += group;
    }
  }
}

// Rows [r, r + rows) (rows <= 8; the missing ones repeat the last) against NT tokens.
template <int NT>
inline void Rows8Q8_0(const uint8_t* w, size_t wrow, int rows, int64_t nb, const PreparedQ8_0* a,
                      float* out, int64_t out_stride) {
  constexpr size_t kBs = sizeof(BlockQ8_0);
  const __m256i ones = _mm256_set1_epi16(1);
  const uint8_t* rp[8];
  for (int r = 0; r < 8; ++r) rp[r] = w + static_cast<size_t>(std::min(r, rows - 1)) * wrow;
  __m256 acc[NT];
  DM_UNROLL
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  // The 8 rows are one contiguous range, read as 8 streams: prefetch the next 8 rows
  // linearly, 8 blocks' worth per block step, so that they arrive as this group ends.
  const char* next = reinterpret_cast<const char*>(w + 8 * wrow);
  for (int64_t b = 0; b < nb; ++b) {
    DM_UNROLL
    for (int l = 0; l < static_cast<int>(8 * kBs); l += 64) {
      _mm_prefetch(next + 8 * kBs * b + l, _MM_HINT_T0);
    }
    __m256i wq[8], ws[8];
    DM_UNROLL
    for (int r = 0; r < 8; ++r) {
      ws[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rp[r] + b * kBs + 2));
      wq[r] = _mm256_abs_epi8(ws[r]);
    }
    const __m256 dw = BlockScales8(rp, b * kBs);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[t].qs + 32 * b));
      __m256i p[8];
      DM_UNROLL
      for (int r = 0; r < 8; ++r) {
        p[r] = _mm256_madd_epi16(_mm256_maddubs_epi16(wq[r], _mm256_sign_epi8(y, ws[r])), ones);
      }
      const __m256i is = SumLanes8(p);
      const __m256 s = _mm256_mul_ps(dw, _mm256_set1_ps(LoadUnaligned(a[t].d + b)));  // dw * da
      acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(_mm256_cvtepi32_ps(is), s));
    }
  }
  StoreRows(acc, rows, out, out_stride);
}

// Rows [r0, r1) of Q8_0 weights against NT tokens, 8 rows at a time.
template <int NT>
inline void RowsQ8_0(const uint8_t* w, size_t wrow, int64_t r0, int64_t r1, int64_t nb,
                     const PreparedQ8_0* a, float* out, int64_t out_stride) {
  for (int64_t r = r0; r < r1; r += 8) {
    const int rows = static_cast<int>(std::min<int64_t>(8, r1 - r));
    Rows8Q8_0<NT>(w + r * wrow, wrow, rows, nb, a, out + r, out_stride);
  }
}

// One super-block's integer sums, 8 int32 lanes each: `tot` (scaled quants) and, with
// kMins, `mins` -> floats times dd = [d * y.d, dmin * y.d], added to lane 0 of acc in the
// reference's order (acc + dd0 * T - dd1 * M), so the row's result is the reference's bits.
// (Reducing two super-blocks' sums together measured slower: 3 vphaddd ymm instead of 2
// plus 2 xmm.)
template <bool kMins>
HWY_INLINE __m128 AddSuper(__m128 acc, __m256i tot, __m256i mins, __m128 dd) {
  __m128i s;
  if constexpr (kMins) {
    const __m256i h = _mm256_hadd_epi32(tot, mins);  // [T01 T23 M01 M23 | T45 T67 M45 M67]
    s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    s = _mm_hadd_epi32(s, s);  // [T M T M]
  } else {
    s = _mm_add_epi32(_mm256_castsi256_si128(tot), _mm256_extracti128_si256(tot, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  }
  const __m128 p = _mm_mul_ps(dd, _mm_cvtepi32_ps(s));
  acc = _mm_add_ss(acc, p);
  return kMins ? _mm_sub_ss(acc, _mm_movehdup_ps(p)) : acc;
}

// [d, dmin] (f16 bits: d low, dmin high) times y.d.
HWY_INLINE __m128 SuperScales(uint32_t d_dmin, float yd) {
  return _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(d_dmin))), _mm_set1_ps(yd));
}

// Super-block x (index b) of one Q4_K row against NT tokens: 8 int32 lanes summing to
// sum(sc * q * a) (tot) and to sum(m * bsums) (mins). The 8 scales and 8 mins are unpacked
// once (ScalesMinsQ4_K) and spread to words by vpshufb. vpmaddubsw takes the nibbles as
// unsigned bytes: a pair of products stays below 2 * 15 * 128, nothing saturates; vpmaddwd
// applies the sub-block's scale exactly.
template <int NT>
HWY_INLINE void SumsQ4_K(const BlockQ4_K& x, const BlockQ8_K* const* a, int64_t b, __m256i* tot,
                         __m256i* mins) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m256i sm = x86::ScalesMinsQ4_K(x.scales);
  DM_UNROLL
  for (int t = 0; t < NT; ++t) tot[t] = _mm256_setzero_si256();
  DM_UNROLL
  for (int k = 0; k < 4; ++k) {  // 32 bytes: sub-blocks 2k (low nibbles), 2k + 1 (high)
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs + 32 * k));
    const __m256i lo = _mm256_and_si256(v, m4);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
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

// One Q4_K row against NT tokens, super-block after super-block (one stream, prefetched
// kDecodePrefetchBytes ahead).
template <int NT>
inline void RowQ4_K(const BlockQ4_K* w, int64_t nsb, const BlockQ8_K* const* a, float* out,
                    int64_t out_stride) {
  __m128 acc[NT];
  DM_UNROLL
  for (int t = 0; t < NT; ++t) acc[t] = _mm_setzero_ps();
  for (int64_t b = 0; b < nsb; ++b) {
    const BlockQ4_K& x = w[b];
    PrefetchAhead<sizeof(BlockQ4_K)>(&x);
    __m256i tot[NT], mins[NT];
    SumsQ4_K<NT>(x, a, b, tot, mins);
    const uint32_t d_dmin = x.d | (static_cast<uint32_t>(x.dmin) << 16);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      acc[t] = AddSuper<true>(acc[t], tot[t], mins[t], SuperScales(d_dmin, a[t][b].d));
    }
  }
  DM_UNROLL
  for (int t = 0; t < NT; ++t) out[t * out_stride] = _mm_cvtss_f32(acc[t]);
}

// Super-block x (index b) of one Q6_K row against NT tokens: 8 int32 lanes summing to
// sum(sc * (q - 32) * a), with the 6-bit q taken unsigned (as stored; a pair stays below
// 2 * 63 * 128) and 32 * sum(sc * bsums) taken off. A 32-element chunk spans two
// 16-element scale groups, one per 128-bit lane.
template <int NT>
HWY_INLINE void SumsQ6_K(const BlockQ6_K& x, const BlockQ8_K* const* a, int64_t b, __m256i* tot) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
  const __m256i s16 =
      _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x.scales)));
  DM_UNROLL
  for (int t = 0; t < NT; ++t) {
    const __m256i corr =
        _mm256_madd_epi16(s16, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[t][b].bsums)));
    tot[t] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(corr, 5));
  }
  DM_UNROLL
  for (int h = 0; h < 2; ++h) {  // elements [128h, +128): scales 8h..8h+7 in both lanes
    const __m256i sh = _mm256_permute4x64_epi64(s16, h == 0 ? 0x44 : 0xee);
    const uint8_t* ql = x.ql + 64 * h;
    const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
    const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
    const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qh + 32 * h));
    const __m256i q[4] = {
        _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30)),
        _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hb, m30)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                        _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30))};
    DM_UNROLL
    for (int k = 0; k < 4; ++k) {  // elements 128h + 32k + [0, 32): groups 8h + 2k, + 1
      const __m256i sc = _mm256_shuffle_epi8(
          sh,
          _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>(((4 * k + 3) << 8) | (4 * k + 2))),
                           _mm_set1_epi16(static_cast<int16_t>(((4 * k + 1) << 8) | (4 * k)))));
      DM_UNROLL
      for (int t = 0; t < NT; ++t) {
        const __m256i yv =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[t][b].qs + 128 * h + 32 * k));
        tot[t] = _mm256_add_epi32(tot[t], _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], yv), sc));
      }
    }
  }
}

// One Q6_K row against NT tokens, as RowQ4_K.
template <int NT>
inline void RowQ6_K(const BlockQ6_K* w, int64_t nsb, const BlockQ8_K* const* a, float* out,
                    int64_t out_stride) {
  __m128 acc[NT];
  DM_UNROLL
  for (int t = 0; t < NT; ++t) acc[t] = _mm_setzero_ps();
  for (int64_t b = 0; b < nsb; ++b) {
    const BlockQ6_K& x = w[b];
    PrefetchAhead<sizeof(BlockQ6_K)>(&x);
    __m256i tot[NT];
    SumsQ6_K<NT>(x, a, b, tot);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      acc[t] = AddSuper<false>(acc[t], tot[t], tot[t], SuperScales(x.d, a[t][b].d));
    }
  }
  DM_UNROLL
  for (int t = 0; t < NT; ++t) out[t * out_stride] = _mm_cvtss_f32(acc[t]);
}

// Rows [r0, r1) of Q4_K or Q6_K weights against NT tokens, one row at a time.
template <int NT>
inline void RowsK(bool q4, const uint8_t* w, size_t wrow, int64_t r0, int64_t r1, int64_t nsb,
                  const BlockQ8_K* const* a, float* out, int64_t out_stride) {
  for (int64_t r = r0; r < r1; ++r) {
    if (q4) {
      RowQ4_K<NT>(reinterpret_cast<const BlockQ4_K*>(w + r * wrow), nsb, a, out + r, out_stride);
    } else {
      RowQ6_K<NT>(reinterpret_cast<const BlockQ6_K*>(w + r * wrow), nsb, a, out + r, out_stride);
    }
  }
}

}  // namespace avx2
}  // namespace HWY_NAMESPACE
}  // namespace dormouse
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX2
#endif  // include guard toggle
