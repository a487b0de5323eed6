// AVX2 matmuls of Q8_0, Q4_0, Q4_K and Q6_K weights for a few tokens (decode), 8 rows at a
// time, read straight from the mmap (K-quants: see Rows8K). Each row's 32-element block goes
// through vpmaddubsw (Q8_0 with the weight's sign moved onto the activation by vpsignb; Q4_0's
// nibbles are unsigned as they are, and -8 * sum(a) comes from the prepared activations) and
// vpmaddwd into 8 int32 lanes; the 8 rows' lanes are then summed horizontally all at once
// (vphaddd), giving one exact block sum per row in one vector. Each lane (a row) accumulates its
// floats in the reference's order, so the results are the reference's bits. Only compiled for
// HWY_AVX2.
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

#include "engine/kernels_internal.h"
#include "engine/quants.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dormouse {
namespace HWY_NAMESPACE {
namespace avx2 {

#ifndef DM_UNROLL
#define DM_UNROLL _Pragma("GCC unroll 16")
#endif

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

// Rows [r, r + rows) (rows <= 8; the missing ones repeat the last) against NT tokens.
template <int NT, bool kQ4>
inline void Rows8Q0(const uint8_t* w, size_t wrow, int rows, int64_t nb, const PreparedQ8_0* a,
                    float* out, int64_t out_stride) {
  constexpr size_t kBs = kQ4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
  const __m256i ones = _mm256_set1_epi16(1), nib = _mm256_set1_epi8(0x0f);
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
      const uint8_t* q = rp[r] + b * kBs + 2;
      if constexpr (kQ4) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
        wq[r] = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), nib);
      } else {
        ws[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
        wq[r] = _mm256_abs_epi8(ws[r]);
      }
    }
    const __m256 dw = BlockScales8(rp, b * kBs);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[t].qs + 32 * b));
      __m256i p[8];
      DM_UNROLL
      for (int r = 0; r < 8; ++r) {
        p[r] = _mm256_madd_epi16(_mm256_maddubs_epi16(wq[r], kQ4 ? y : _mm256_sign_epi8(y, ws[r])),
                                 ones);
      }
      __m256i is = SumLanes8(p);
      if constexpr (kQ4) is = _mm256_add_epi32(is, _mm256_set1_epi32(LoadUnaligned(a[t].corr + b)));
      const __m256 s = _mm256_mul_ps(dw, _mm256_set1_ps(LoadUnaligned(a[t].d + b)));  // dw * da
      acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(_mm256_cvtepi32_ps(is), s));
    }
  }
  StoreRows(acc, rows, out, out_stride);
}

// Rows [r0, r1) of Q8_0 or Q4_0 weights against NT tokens, 8 rows at a time.
template <int NT>
inline void RowsQ0(bool q4, const uint8_t* w, size_t wrow, int64_t r0, int64_t r1, int64_t nb,
                   const PreparedQ8_0* a, float* out, int64_t out_stride) {
  for (int64_t r = r0; r < r1; r += 8) {
    const int rows = static_cast<int>(std::min<int64_t>(8, r1 - r));
    if (q4) {
      Rows8Q0<NT, true>(w + r * wrow, wrow, rows, nb, a, out + r, out_stride);
    } else {
      Rows8Q0<NT, false>(w + r * wrow, wrow, rows, nb, a, out + r, out_stride);
    }
  }
}

// One Q4_K super-block of one row against one token: 8 int32 lanes summing to
// sum(sc * q * a) (tot) and to sum(m * bsums) (mins). vpmaddubsw takes the nibbles as
// unsigned bytes: a pair of products stays below 2 * 15 * 128, nothing saturates.
inline void SuperQ4_K(const BlockQ4_K& x, const BlockQ8_K& y, __m256i* tot, __m256i* mins) {
  const __m256i m4 = _mm256_set1_epi8(0xf);
  uint8_t sc[8], mn[8];
  DM_UNROLL
  for (int j = 0; j < 8; ++j) GetScaleMinK4(j, x.scales, &sc[j], &mn[j]);
  __m256i t = _mm256_setzero_si256();
  DM_UNROLL
  for (int k = 0; k < 4; ++k) {  // 32 bytes: sub-blocks 2k (low nibbles), 2k + 1 (high)
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs + 32 * k));
    const auto* q = reinterpret_cast<const __m256i*>(y.qs + 64 * k);
    const __m256i p_lo = _mm256_maddubs_epi16(_mm256_and_si256(v, m4), _mm256_loadu_si256(q));
    const __m256i p_hi = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4),
                                              _mm256_loadu_si256(q + 1));
    t = _mm256_add_epi32(
        t, _mm256_add_epi32(_mm256_madd_epi16(p_lo, _mm256_set1_epi16(sc[2 * k])),
                            _mm256_madd_epi16(p_hi, _mm256_set1_epi16(sc[2 * k + 1]))));
  }
  const __m256i mins16 = _mm256_setr_epi16(mn[0], mn[0], mn[1], mn[1], mn[2], mn[2], mn[3], mn[3],
                                           mn[4], mn[4], mn[5], mn[5], mn[6], mn[6], mn[7], mn[7]);
  *tot = t;
  *mins = _mm256_madd_epi16(mins16, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.bsums)));
}

// One Q6_K super-block of one row against one token: 8 int32 lanes summing to
// sum(sc * (q - 32) * a). The 6-bit weights are taken unsigned (q, as stored; a pair stays
// below 2 * 63 * 128), and 32 * sum(sc * bsums) is taken off.
inline __m256i SuperQ6_K(const BlockQ6_K& x, const BlockQ8_K& y) {
  const __m256i m4 = _mm256_set1_epi8(0xf), m3 = _mm256_set1_epi8(3);
  __m256i tot = _mm256_setzero_si256();
  DM_UNROLL
  for (int h = 0; h < 2; ++h) {  // elements [128h, +128)
    const uint8_t* ql = x.ql + 64 * h;
    const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
    const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
    const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qh + 32 * h));
    const __m256i q[4] = {
        _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hb, m3), 4)),
        _mm256_or_si256(_mm256_and_si256(l1, m4),
                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m3), 4)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m3), 4)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m3), 4))};
    DM_UNROLL
    for (int k = 0; k < 4; ++k) {  // elements 128h + 32k + [0, 32): 2 scale groups
      const int g = 8 * h + 2 * k;
      const __m256i sc =
          _mm256_set_m128i(_mm_set1_epi16(x.scales[g + 1]), _mm_set1_epi16(x.scales[g]));
      const __m256i yv =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.qs + 128 * h + 32 * k));
      tot = _mm256_add_epi32(tot, _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], yv), sc));
    }
  }
  const __m256i sc16 =
      _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x.scales)));
  const __m256i corr =
      _mm256_madd_epi16(sc16, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.bsums)));
  return _mm256_sub_epi32(tot, _mm256_slli_epi32(corr, 5));
}

// Rows [r, r + rows) of Q4_K (kQ4) or Q6_K weights (rows <= 8; the missing ones repeat the
// last) against NT tokens: each row's super-block sums as above, the 8
// rows reduced at once, the floats per lane in the reference's order.
template <int NT, bool kQ4>
inline void Rows8K(const uint8_t* w, size_t wrow, int rows, int64_t nsb, const BlockQ8_K* const* a,
                   float* out, int64_t out_stride) {
  constexpr size_t kBs = kQ4 ? sizeof(BlockQ4_K) : sizeof(BlockQ6_K);
  const uint8_t* rp[8];
  for (int r = 0; r < 8; ++r) rp[r] = w + static_cast<size_t>(std::min(r, rows - 1)) * wrow;
  __m256 acc[NT];
  DM_UNROLL
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  const char* next = reinterpret_cast<const char*>(w + 8 * wrow);  // as Rows8Q0
  for (int64_t b = 0; b < nsb; ++b) {
    for (int l = 0; l < static_cast<int>(8 * kBs); l += 64) {
      _mm_prefetch(next + 8 * kBs * b + l, _MM_HINT_T0);
    }
    __m256i tot[NT][8], mins[NT][8];
    for (int r = 0; r < 8; ++r) {
      DM_UNROLL
      for (int t = 0; t < NT; ++t) {
        if constexpr (kQ4) {
          SuperQ4_K(reinterpret_cast<const BlockQ4_K*>(rp[r])[b], a[t][b], &tot[t][r], &mins[t][r]);
        } else {
          tot[t][r] = SuperQ6_K(reinterpret_cast<const BlockQ6_K*>(rp[r])[b], a[t][b]);
        }
      }
    }
    const size_t off = b * kBs + (kQ4 ? offsetof(BlockQ4_K, d) : offsetof(BlockQ6_K, d));
    const __m256 d = BlockScales8(rp, off);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      const __m256 yd = _mm256_set1_ps(a[t][b].d);
      acc[t] = _mm256_add_ps(
          acc[t], _mm256_mul_ps(_mm256_mul_ps(d, yd), _mm256_cvtepi32_ps(SumLanes8(tot[t]))));
      if constexpr (kQ4) {
        const __m256 dmin = BlockScales8(rp, b * kBs + offsetof(BlockQ4_K, dmin));
        acc[t] = _mm256_sub_ps(
            acc[t], _mm256_mul_ps(_mm256_mul_ps(dmin, yd), _mm256_cvtepi32_ps(SumLanes8(mins[t]))));
      }
    }
  }
  StoreRows(acc, rows, out, out_stride);
}

// Rows [r0, r1) of Q4_K or Q6_K weights against NT tokens, 8 rows at a time.
template <int NT>
inline void RowsK(bool q4, const uint8_t* w, size_t wrow, int64_t r0, int64_t r1, int64_t nsb,
                  const BlockQ8_K* const* a, float* out, int64_t out_stride) {
  for (int64_t r = r0; r < r1; r += 8) {
    const int rows = static_cast<int>(std::min<int64_t>(8, r1 - r));
    if (q4) {
      Rows8K<NT, true>(w + r * wrow, wrow, rows, nsb, a, out + r, out_stride);
    } else {
      Rows8K<NT, false>(w + r * wrow, wrow, rows, nsb, a, out + r, out_stride);
    }
  }
}

}  // namespace avx2
}  // namespace HWY_NAMESPACE
}  // namespace dormouse
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX2
#endif  // include guard toggle
