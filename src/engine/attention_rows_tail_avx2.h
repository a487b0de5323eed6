// Head_dim 96's last 32 dimensions (attention_rows-inl.h, kTail) for the AVX2 and AVX-512
// multi-row kernels (attention_rows_avx2.cc, attention_rows_avx512.cc): the keys' tails
// transposed into doubles, and DotF16Reference's sum over them in double, one key per lane.
// Each has AVX2's target attribute (AVX-512 includes it), so the files that include this
// header compile for older CPUs and call these only after dispatch.
#pragma once
#if defined(__x86_64__)
#include <immintrin.h>

#include <cstdint>

#include "engine/attention_avx2_ops.h"
#include "engine/attention_rows-inl.h"

namespace dormouse::attention_internal::avx2 {

// Eight lanes (chunk c) of a converted (F32) or cache (F16) row.
DM_AVX2 inline __m256 Load8Of(const float* row, int c) { return _mm256_loadu_ps(row + 8 * c); }
DM_AVX2 inline __m256 Load8Of(const uint16_t* row, int c) { return Load8(row + 8 * c); }

using multirow::kKeys;
using multirow::kTail;

// The tails (kTail dimensions: head_dim 96's last 32) of keys [0, n) of a block, transposed
// into doubles: tail[i * kKeys + j] = dimension i of key j's tail, zero past n rounded up to 8
// (keys up to there readable). 8 keys by 8 dimensions at a time.
template <int kHeadDim, class Keys>
DM_AVX2 inline void TransposeTail(const Keys& keys, int n, double* tail) {
  constexpr int kFrom = kHeadDim / 64 * 8, kTailHalves = kTail<kHeadDim> / 8;
  const int padded = (n + 7) / 8 * 8;
  for (int g = 0; g < padded; g += 8) {
#pragma GCC unroll 1
    for (int c = 0; c < kTailHalves; ++c) {
      __m256 t[8], u[8];
#pragma GCC unroll 4
      for (int k = 0; k < 8; k += 2) {  // t[k]: keys k, k + 1 interleaved; t[k + 1] their highs
        const __m256 r0 = Load8Of(keys.Row(g + k), kFrom + c);
        const __m256 r1 = Load8Of(keys.Row(g + k + 1), kFrom + c);
        t[k] = _mm256_unpacklo_ps(r0, r1);
        t[k + 1] = _mm256_unpackhi_ps(r0, r1);
      }
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {  // u[4h + d]: keys 4h..4h + 3 of dimensions d | d + 4
        u[4 * h + 0] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
        u[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xEE);
        u[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
        u[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
      }
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) {
        double* out = tail + (8 * c + i) * kKeys + g;
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
          const __m256 x = u[4 * h + i % 4];
          const __m128 keys4 = i < 4 ? _mm256_castps256_ps128(x) : _mm256_extractf128_ps(x, 1);
          _mm256_store_pd(out + 4 * h, _mm256_cvtps_pd(keys4));
        }
      }
    }
  }
  for (int i = 0; i < kTail<kHeadDim>; ++i) {
    for (int g = padded; g < kKeys; g += 4)
      _mm256_store_pd(tail + i * kKeys + g, _mm256_setzero_pd());
  }
}

// DotF16Reference's last steps for all of a block's keys: dot[j] = float(V + k[0] * q[0] +
// k[1] * q[1] + ...), summed one product at a time in double, V = dot[j] (its 16-lane
// part), k key j's tail, q (qt) the row's. Eight chains of 4 keys.
template <int kTailDims>
DM_AVX2 inline void AddTail(const double* tail, const float* qt, float* dot) {
  alignas(32) double qd[kTailDims];
#pragma GCC unroll 8
  for (int i = 0; i < kTailDims; i += 4)
    _mm256_store_pd(qd + i, _mm256_cvtps_pd(_mm_load_ps(qt + i)));
  __m256d s[kKeys / 4];
#pragma GCC unroll 8
  for (int c = 0; c < kKeys / 4; ++c) s[c] = _mm256_cvtps_pd(_mm_load_ps(dot + 4 * c));
  for (int i = 0; i < kTailDims; ++i) {
    const __m256d q = _mm256_broadcast_sd(qd + i);
#pragma GCC unroll 8
    for (int c = 0; c < kKeys / 4; ++c) {
      s[c] = _mm256_fmadd_pd(_mm256_load_pd(tail + i * kKeys + 4 * c), q, s[c]);
    }
  }
#pragma GCC unroll 8
  for (int c = 0; c < kKeys / 4; ++c) _mm_store_ps(dot + 4 * c, _mm256_cvtpd_ps(s[c]));
}

}  // namespace dormouse::attention_internal::avx2
#endif  // defined(__x86_64__)
