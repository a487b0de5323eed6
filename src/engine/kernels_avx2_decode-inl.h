// AVX2 matmuls of Q8_0 and Q4_0 weights for a few tokens (decode), 8 rows at a time, read
// straight from the mmap. Each row's 32-element block goes through vpmaddubsw (Q8_0 with the
// weight's sign moved onto the activation by vpsignb; Q4_0's nibbles are unsigned as they
// are, and -8 * sum(a) comes from the prepared activations) and vpmaddwd into 8 int32
// lanes; the 8 rows' lanes are then summed horizontally all at once (vphaddd), giving one
// exact block sum per row in one vector. Each lane (a row) accumulates its floats in the
// reference's order, so the results are the reference's bits. Only compiled for HWY_AVX2.
#if defined(DORMOUSE_ENGINE_KERNELS_AVX2_DECODE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DORMOUSE_ENGINE_KERNELS_AVX2_DECODE_INL_H_
#undef DORMOUSE_ENGINE_KERNELS_AVX2_DECODE_INL_H_
#else
#define DORMOUSE_ENGINE_KERNELS_AVX2_DECODE_INL_H_
#endif

#if HWY_TARGET == HWY_AVX2
#include <immintrin.h>

#include <algorithm>
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

}  // namespace avx2
}  // namespace HWY_NAMESPACE
}  // namespace dormouse
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX2
#endif  // include guard toggle
