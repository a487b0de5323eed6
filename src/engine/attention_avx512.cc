// The AVX-512 variants of the F16 attention path. They do the same operations in the same
// order as AttendF16Reference (16-lane FMA accumulators, _mm512_reduce_add_ps, F16
// rounding after every accumulate, glibc's expf), so they give identical bits; only
// faster. Compiled with a target attribute and chosen at run time, so the binary still
// runs on older CPUs.
//
// The grouped variant handles the query heads that share one KV head (GQA) together, a
// block of keys at a time: scores first (independent dot products), then the online
// softmax's running max and the block's exponentials (vectorized), then the F16
// accumulators, kept in registers, in key order. Each value row is converted once for
// every head of the group, and the heads' dependency chains interleave.
// GCC 12 reports its own _mm512_undefined_* helpers (deliberately uninitialized) as
// "used uninitialized" once these loops are unrolled: a known false positive.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#if defined(__x86_64__)  // x86-only: on other CPUs attention_x86_absent.cc stands in
#include <cpuid.h>
#include <immintrin.h>

#include <cmath>

#include "engine/attention.h"
#include "engine/attention_avx512_ops.h"
#include "engine/attention_group-inl.h"
#include "engine/kernels.h"
#include "engine/quants.h"

namespace dormouse::attention_internal {
namespace {

using namespace avx512;  // NOLINT: this file's own kernels' steps
using group::HeadState;
using group::kBlock;

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

// The softmax bookkeeping of one block for one head (attention_group-inl.h).
DM_AVX512 void SoftmaxBlock(HeadState& h, int nb) { group::SoftmaxBlock(h, nb, ExpBatchAvx512); }

// The scores of one key for every head of the group, when head_dim is a multiple of 64:
// DotF16's operations exactly (same FMA operands, same reduction), with the key's
// chunks converted once for all heads and the queries already in registers.
template <int CH, int G>
DM_AVX512 __attribute__((always_inline)) inline void GroupScores(const uint16_t* k,
                                                                 const __m512 (&q)[G][CH],
                                                                 float (&out)[G]) {
  __m512 acc[G][4];
#pragma GCC unroll 16
  for (int g = 0; g < G; ++g) {
#pragma GCC unroll 16
    for (int j = 0; j < 4; ++j) acc[g][j] = _mm512_setzero_ps();
  }
#pragma GCC unroll 16
  for (int c = 0; c < CH; ++c) {
    const __m512 kc = Load16(k + 16 * c);
#pragma GCC unroll 16
    for (int g = 0; g < G; ++g) acc[g][c % 4] = _mm512_fmadd_ps(kc, q[g][c], acc[g][c % 4]);
  }
#pragma GCC unroll 16
  for (int g = 0; g < G; ++g) {
    const __m512 a =
        _mm512_add_ps(_mm512_add_ps(acc[g][0], acc[g][2]), _mm512_add_ps(acc[g][1], acc[g][3]));
    out[g] = static_cast<float>(static_cast<double>(_mm512_reduce_add_ps(a)));
  }
}

template <int CH, int G>
DM_AVX512 void AttendGroup(const AttentionArgs* a, const AttentionScratch& s, float* const* out) {
  const int64_t hd = a[0].head_dim;
  HeadState st[G];
  uint16_t* q16[G];
#pragma GCC unroll 16
  for (int g = 0; g < G; ++g) {
    q16[g] = s.q16 + g * hd;
    ConvertF32ToF16(a[g].q, q16[g], hd);
  }
  __m512 acc[G][CH];
  __m512 qf[G][CH];  // the F16-rounded queries, as F32
#pragma GCC unroll 16
  for (int g = 0; g < G; ++g) {
#pragma GCC unroll 16
    for (int c = 0; c < CH; ++c) {
      acc[g][c] = _mm512_setzero_ps();
      qf[g][c] = Load16(q16[g] + 16 * c);
    }
  }
  for (int64_t j0 = a[0].first_key; j0 < a[0].n_keys; j0 += kBlock) {
    const int nb = static_cast<int>(std::min<int64_t>(kBlock, a[0].n_keys - j0));
    a[0].PrefetchF16<CH * 16>(j0 + kBlock, std::min(a[0].n_keys, j0 + 2 * kBlock));
    for (int j = 0; j < nb; ++j) {
      const uint16_t* k = reinterpret_cast<const uint16_t*>(a[0].KRow(j0 + j)) + a[0].offset;
      if constexpr (CH % 4 == 0) {
        float sc[G];
        GroupScores<CH, G>(k, qf, sc);
#pragma GCC unroll 16
        for (int g = 0; g < G; ++g) st[g].score[j] = a[g].Score(sc[g]);
      } else {
#pragma GCC unroll 16
        for (int g = 0; g < G; ++g) st[g].score[j] = a[g].Score(DotF16(k, q16[g], hd));
      }
    }
#pragma GCC unroll 16
    for (int g = 0; g < G; ++g) SoftmaxBlock(st[g], nb);
    for (int j = 0; j < nb; ++j) {
      const uint16_t* v = reinterpret_cast<const uint16_t*>(a[0].VRow(j0 + j)) + a[0].offset;
      __m512 vj[CH];
#pragma GCC unroll 16
      for (int c = 0; c < CH; ++c) vj[c] = Load16(v + 16 * c);
#pragma GCC unroll 16
      for (int g = 0; g < G; ++g) {
        const __m512 e = _mm512_set1_ps(st[g].e[j]);
        if (st[g].new_max[j]) {
#pragma GCC unroll 16
          for (int c = 0; c < CH; ++c) acc[g][c] = RoundF16(_mm512_mul_ps(acc[g][c], e));
#pragma GCC unroll 16
          for (int c = 0; c < CH; ++c) acc[g][c] = RoundF16(_mm512_add_ps(vj[c], acc[g][c]));
        } else {
#pragma GCC unroll 16
          for (int c = 0; c < CH; ++c) acc[g][c] = RoundF16(_mm512_fmadd_ps(vj[c], e, acc[g][c]));
        }
      }
    }
  }
#pragma GCC unroll 16
  for (int g = 0; g < G; ++g) {
    const float inv = st[g].S == 0.0f ? 0.0f : 1.0f / st[g].S;
    const __m512 vinv = _mm512_set1_ps(inv);
#pragma GCC unroll 16
    for (int c = 0; c < CH; ++c) _mm512_storeu_ps(out[g] + 16 * c, _mm512_mul_ps(acc[g][c], vinv));
    if (a[g].stats != nullptr) *a[g].stats = {st[g].M, st[g].S};
  }
}

template <int CH>
DM_AVX512 bool AttendGroupOf(const AttentionArgs* a, int n, const AttentionScratch& s,
                             float* const* out) {
  for (int i = 0; i < n;) {
    const int left = n - i;
    if (left >= 4 && CH * 4 <= 24) {
      AttendGroup<CH, 4>(a + i, s, out + i);
      i += 4;
    } else if (left >= 2 && CH * 2 <= 24) {
      AttendGroup<CH, 2>(a + i, s, out + i);
      i += 2;
    } else {
      AttendGroup<CH, 1>(a + i, s, out + i);
      i += 1;
    }
  }
  return true;
}

}  // namespace

bool HaveAvx512() {
  // clang before 15 does not know "f16c" here (and fails to compile: the fuzz build);
  // CPUID leaf 1, ECX bit 29 is the same question.
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq") && f16c && __builtin_cpu_supports("fma");
}

DM_AVX512 void AttendF16Avx512(const AttentionArgs& a, const AttentionScratch& s, float* out) {
  const int64_t hd = a.head_dim;
  ConvertF32ToF16(a.q, s.q16, hd);
  for (int64_t d = 0; d < hd; ++d) s.acc16[d] = 0;
  float M = -INFINITY, S = 0.0f;
  for (int64_t j = a.first_key; j < a.n_keys; ++j) {
    const uint16_t* k = reinterpret_cast<const uint16_t*>(a.KRow(j)) + a.offset;
    const uint16_t* v = reinterpret_cast<const uint16_t*>(a.VRow(j)) + a.offset;
    const float score = a.Score(DotF16(k, s.q16, hd));
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
  if (a.stats != nullptr) *a.stats = {M, S};
}

DM_AVX512 bool AttendGroupF16Avx512(const AttentionArgs* a, int n, const AttentionScratch& s,
                                    float* const* out) {
  switch (a[0].head_dim) {
    case 32:
      return AttendGroupOf<2>(a, n, s, out);
    case 64:
      return AttendGroupOf<4>(a, n, s, out);
    case 80:
      return AttendGroupOf<5>(a, n, s, out);
    case 96:
      return AttendGroupOf<6>(a, n, s, out);
    case 128:
      return AttendGroupOf<8>(a, n, s, out);
    default:
      return false;
  }
}

DM_AVX512 void ExpBatchAvx512(const float* x, float* out, int64_t n) {
  int64_t i = 0;
  const uint64_t* table = ExpfTable();
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, Exp8(_mm256_loadu_ps(x + i), table));
  for (; i < n; ++i) out[i] = std::exp(x[i]);
}

}  // namespace dormouse::attention_internal
#endif  // defined(__x86_64__)
