// The AVX-512 steps that the F16 attention kernels share (attention_avx512.cc, the
// per-head and grouped ones; attention_rows_avx512.cc, the multi-row one): F16 loads and
// rounding, and glibc's expf in vector lanes. Each has a target attribute, so a file that
// includes this header compiles for older CPUs and calls these only after dispatch.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "engine/attention.h"

#define DM_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,f16c,fma")))

namespace dormouse::attention_internal::avx512 {

constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

DM_AVX512 inline __m512 Load16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
DM_AVX512 inline void Store16(uint16_t* p, __m512 v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph(v, kRound));
}
// Rounds every lane to the nearest F16 value (kept as F32).
DM_AVX512 inline __m512 RoundF16(__m512 v) { return _mm512_cvtph_ps(_mm512_cvtps_ph(v, kRound)); }

// glibc's expf (the FMA build, sysdeps/ieee754/flt-32/e_expf.c) for arguments in
// [-inf, 0], lane for lane: x*32/ln2 = k + r, 2^(k/32) from a 32-entry table, a cubic in
// r, all in double. Checked against the library on every float in [-104, 0]. `table` is
// ExpfTable(), fetched once by the caller (a call here would spill every vector register).
DM_AVX512 inline __m256 Exp8(__m256 xf, const uint64_t* table) {
  const __m512d inv_ln2_n = _mm512_set1_pd(0x1.71547652b82fep+0 * 32);
  const __m512d shift = _mm512_set1_pd(0x1.8p+52);
  const __m512d c0 = _mm512_set1_pd(0x1.c6af84b912394p-5 / 32 / 32 / 32);
  const __m512d c1 = _mm512_set1_pd(0x1.ebfce50fac4f3p-3 / 32 / 32);
  const __m512d c2 = _mm512_set1_pd(0x1.62e42ff0c52d6p-1 / 32);
  const __m512d xd = _mm512_cvtps_pd(xf);
  const __m512d z = _mm512_mul_pd(inv_ln2_n, xd);
  __m512d kd = _mm512_add_pd(z, shift);
  const __m512i ki = _mm512_castpd_si512(kd);
  kd = _mm512_sub_pd(kd, shift);
  const __m512d r = _mm512_fmadd_pd(inv_ln2_n, xd, _mm512_sub_pd(_mm512_setzero_pd(), kd));
  const __m512i idx = _mm512_and_si512(ki, _mm512_set1_epi64(31));
  const __m512i lo = _mm512_load_si512(table), hi = _mm512_load_si512(table + 8);
  const __m512i lo2 = _mm512_load_si512(table + 16), hi2 = _mm512_load_si512(table + 24);
  const __m512i t16a = _mm512_permutex2var_epi64(lo, idx, hi);
  const __m512i t16b = _mm512_permutex2var_epi64(lo2, idx, hi2);
  const __mmask8 upper = _mm512_test_epi64_mask(idx, _mm512_set1_epi64(16));
  __m512i t = _mm512_mask_blend_epi64(upper, t16a, t16b);
  t = _mm512_add_epi64(t, _mm512_slli_epi64(ki, 47));
  const __m512d s = _mm512_castsi512_pd(t);
  const __m512d r2 = _mm512_mul_pd(r, r);
  const __m512d p = _mm512_fmadd_pd(c0, r, c1);
  __m512d y = _mm512_fmadd_pd(c2, r, _mm512_set1_pd(1.0));
  y = _mm512_fmadd_pd(p, r2, y);
  y = _mm512_mul_pd(y, s);
  __m256 out = _mm512_cvtpd_ps(y);
  // Below log(2^-150) (and -inf) the result is 0, as the library's underflow path.
  const __mmask8 tiny = _mm256_cmp_ps_mask(xf, _mm256_set1_ps(-0x1.9fe368p6f), _CMP_LT_OQ);
  return _mm256_mask_blend_ps(tiny, out, _mm256_setzero_ps());
}

}  // namespace dormouse::attention_internal::avx512
