// The AVX-512 variant of the F16 attention path: the same operations in the same order
// as AttendF16Reference (16-lane FMA accumulators, _mm512_reduce_add_ps, F16 rounding
// after every accumulate), so the two give identical bits; only faster. Compiled with a
// target attribute and chosen at run time, so the binary still runs on older CPUs.
#include <immintrin.h>

#include <cmath>

#include "engine/attention.h"
#include "engine/kernels.h"
#include "engine/quants.h"

namespace dormouse::attention_internal {
namespace {

#define DM_AVX512 __attribute__((target("avx512f,avx512vl,f16c,fma")))
constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

DM_AVX512 inline __m512 Load16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
DM_AVX512 inline void Store16(uint16_t* p, __m512 v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph(v, kRound));
}

DM_AVX512 float DotF16(const uint16_t* x, const uint16_t* y, int64_t n) {
  const int64_t np = n & ~int64_t{63};
  double sum = 0.0;
  if (np > 0) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                     _mm512_setzero_ps()};
    for (int64_t i = 0; i < np; i += 64) {
      for (int j = 0; j < 4; ++j) {
        acc[j] = _mm512_fmadd_ps(Load16(x + i + 16 * j), Load16(y + i + 16 * j), acc[j]);
      }
    }
    acc[0] = _mm512_add_ps(acc[0], acc[2]);
    acc[1] = _mm512_add_ps(acc[1], acc[3]);
    acc[0] = _mm512_add_ps(acc[0], acc[1]);
    sum = static_cast<double>(_mm512_reduce_add_ps(acc[0]));
  }
  for (int64_t i = np; i < n; ++i) sum += static_cast<double>(F16ToF32(x[i]) * F16ToF32(y[i]));
  return static_cast<float>(sum);
}

DM_AVX512 void ScaleF16(uint16_t* y, float v, int64_t n) {
  const __m512 vv = _mm512_set1_ps(v);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) Store16(y + i, _mm512_mul_ps(Load16(y + i), vv));
  for (; i < n; ++i) y[i] = F32ToF16(F16ToF32(y[i]) * v);
}

DM_AVX512 void MadF16(uint16_t* y, const uint16_t* x, float v, int64_t n) {
  const __m512 vv = _mm512_set1_ps(v);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) Store16(y + i, _mm512_fmadd_ps(Load16(x + i), vv, Load16(y + i)));
  for (; i < n; ++i) y[i] = F32ToF16(std::fma(F16ToF32(x[i]), v, F16ToF32(y[i])));
}

}  // namespace

bool HaveAvx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("f16c") && __builtin_cpu_supports("fma");
}

DM_AVX512 void AttendF16Avx512(const AttentionArgs& a, const AttentionScratch& s, float* out) {
  const int64_t hd = a.head_dim;
  ConvertF32ToF16(a.q, s.q16, hd);
  for (int64_t d = 0; d < hd; ++d) s.acc16[d] = 0;
  float M = -INFINITY, S = 0.0f;
  for (int64_t j = 0; j < a.n_keys; ++j) {
    const uint16_t* k = reinterpret_cast<const uint16_t*>(a.k_base + j * a.row_bytes) + a.offset;
    const uint16_t* v = reinterpret_cast<const uint16_t*>(a.v_base + j * a.row_bytes) + a.offset;
    const float score = DotF16(k, s.q16, hd) * a.scale;
    float ms = 1.0f, vs = 1.0f;
    if (score > M) {
      const float old = M;
      M = score;
      ms = std::exp(old - M);
      ScaleF16(s.acc16, ms, hd);
    } else {
      vs = std::exp(score - M);
    }
    MadF16(s.acc16, v, vs, hd);
    S = std::fma(S, ms, vs);  // contracted, as ggml's -O3 -march=native build does
  }
  const float inv = S == 0.0f ? 0.0f : 1.0f / S;
  for (int64_t d = 0; d < hd; ++d) out[d] = F16ToF32(s.acc16[d]) * inv;
}

}  // namespace dormouse::attention_internal
