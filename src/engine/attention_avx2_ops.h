// The AVX2 steps that the F16 attention kernels share (attention_avx2.cc, the grouped one;
// attention_rows_avx2.cc, the multi-row one): F16 loads and rounding, and glibc's expf in
// vector lanes. Each has a target attribute, so a file that includes this header compiles
// for older CPUs and calls these only after dispatch. (Highway's AVX2 ops, as in
// attention_lanes-inl.h, carry a wider target attribute: GCC will not inline them here.)
#pragma once

#include <immintrin.h>

#include <cstdint>

#define DM_AVX2 __attribute__((target("avx2,f16c,fma")))

namespace dormouse::attention_internal::avx2 {

constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

DM_AVX2 inline __m256 Load8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
// Rounds every lane to the nearest F16 value (kept as F32).
DM_AVX2 inline __m256 RoundF16(__m256 v) { return _mm256_cvtph_ps(_mm256_cvtps_ph(v, kRound)); }

// attention_avx512_ops.h's Exp8 (glibc's expf for arguments in [-inf, 0]) on 4 lanes in
// double, with the table read by a gather.
DM_AVX2 inline __m256d Exp4(__m256d xd, const uint64_t* table) {
  const __m256d inv_ln2_n = _mm256_set1_pd(0x1.71547652b82fep+0 * 32);
  const __m256d shift = _mm256_set1_pd(0x1.8p+52);
  const __m256d c0 = _mm256_set1_pd(0x1.c6af84b912394p-5 / 32 / 32 / 32);
  const __m256d c1 = _mm256_set1_pd(0x1.ebfce50fac4f3p-3 / 32 / 32);
  const __m256d c2 = _mm256_set1_pd(0x1.62e42ff0c52d6p-1 / 32);
  const __m256d z = _mm256_mul_pd(inv_ln2_n, xd);
  __m256d kd = _mm256_add_pd(z, shift);
  const __m256i ki = _mm256_castpd_si256(kd);
  kd = _mm256_sub_pd(kd, shift);
  const __m256d r = _mm256_fmadd_pd(inv_ln2_n, xd, _mm256_sub_pd(_mm256_setzero_pd(), kd));
  const __m256i idx = _mm256_and_si256(ki, _mm256_set1_epi64x(31));
  __m256i t = _mm256_i64gather_epi64(reinterpret_cast<const long long*>(table), idx, 8);
  t = _mm256_add_epi64(t, _mm256_slli_epi64(ki, 47));
  const __m256d s = _mm256_castsi256_pd(t);
  const __m256d r2 = _mm256_mul_pd(r, r);
  const __m256d p = _mm256_fmadd_pd(c0, r, c1);
  __m256d y = _mm256_fmadd_pd(c2, r, _mm256_set1_pd(1.0));
  y = _mm256_fmadd_pd(p, r2, y);
  return _mm256_mul_pd(y, s);
}

// glibc's expf lane for lane, for arguments in [-inf, 0]. `table` is ExpfTable(), fetched
// once by the caller. Checked against the library on every float in [-104, 0].
DM_AVX2 inline __m256 Exp8(__m256 x, const uint64_t* table) {
  const __m128 lo = _mm256_cvtpd_ps(Exp4(_mm256_cvtps_pd(_mm256_castps256_ps128(x)), table));
  const __m128 hi = _mm256_cvtpd_ps(Exp4(_mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)), table));
  // Below log(2^-150) (and -inf) the result is 0, as the library's underflow path.
  const __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(-0x1.9fe368p6f), _CMP_LT_OQ);
  return _mm256_andnot_ps(tiny, _mm256_set_m128(hi, lo));
}

}  // namespace dormouse::attention_internal::avx2
