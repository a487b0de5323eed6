// The AVX2 variant of the grouped F16 attention (attention_avx512.cc's AttendGroup, with
// each 16-lane AVX-512 vector held as two 8-lane halves): the same operations in the same
// order as AttendF16Reference (16-lane FMA accumulators reduced as _mm512_reduce_add_ps
// does, F16 rounding after every accumulate, glibc's expf), so identical bits. The query
// heads that share one KV head go together, a block of keys at a time: scores, then the
// softmax bookkeeping, then the F16 accumulators in key order; each key and value row is
// converted once for every head of the group, and no per-key call goes through dispatch.
// Compiled with a target attribute and chosen at run time.
#if defined(__x86_64__)  // x86-only: on other CPUs attention_x86_absent.cc stands in
#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "engine/attention.h"
#include "engine/attention_avx2_ops.h"
#include "engine/attention_group-inl.h"
#include "engine/kernels.h"
#include "engine/quants.h"

namespace dormouse::attention_internal {
namespace {

using namespace avx2;  // NOLINT: this file's own kernels' steps
#define DM_UNROLL _Pragma("GCC unroll 16")
using group::HeadState;
using group::kBlock;

// ReduceLanes16 of the 16 lanes lo (0..7), hi (8..15).
DM_AVX2 inline double ReduceLanes16(__m256 lo, __m256 hi) {
  const __m256 t3 = _mm256_add_ps(hi, lo);
  const __m128 t6 = _mm_add_ps(_mm256_extractf128_ps(t3, 1), _mm256_castps256_ps128(t3));
  const __m128 t = _mm_add_ps(t6, _mm_movehl_ps(t6, t6));  // t6[0] + t6[2], t6[1] + t6[3]
  return static_cast<double>(_mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t))));
}

// The softmax bookkeeping of one block for one head (attention_group-inl.h).
DM_AVX2 void SoftmaxBlock(HeadState& h, int nb) { group::SoftmaxBlock(h, nb, ExpBatchAvx2); }

// The scores of one key for every head of the group: DotF16Reference's operations (the
// blocks of 64 in 4 accumulators of 16 lanes, the tail in double), with the key converted
// once for all heads.
template <int CH, int G>
DM_AVX2 __attribute__((always_inline)) inline void GroupScores(const uint16_t* k,
                                                               const __m256 (&q)[G][CH],
                                                               const uint16_t* const* q16,
                                                               float (&out)[G]) {
  constexpr int kFull = CH / 8 * 8;  // 8-lane halves in blocks of 64
  double sum[G];
  DM_UNROLL
  for (int g = 0; g < G; ++g) sum[g] = 0.0;
  if constexpr (kFull > 0) {
    __m256 acc[G][8];
    DM_UNROLL
    for (int g = 0; g < G; ++g) {
      DM_UNROLL
      for (int j = 0; j < 8; ++j) acc[g][j] = _mm256_setzero_ps();
    }
    DM_UNROLL
    for (int c = 0; c < kFull; ++c) {
      const __m256 kc = Load8(k + 8 * c);
      DM_UNROLL
      for (int g = 0; g < G; ++g) acc[g][c % 8] = _mm256_fmadd_ps(kc, q[g][c], acc[g][c % 8]);
    }
    DM_UNROLL
    for (int g = 0; g < G; ++g) {
      // Accumulator j of the reference: halves 2j (lanes 0..7) and 2j + 1 (lanes 8..15).
      const __m256 lo =
          _mm256_add_ps(_mm256_add_ps(acc[g][0], acc[g][4]), _mm256_add_ps(acc[g][2], acc[g][6]));
      const __m256 hi =
          _mm256_add_ps(_mm256_add_ps(acc[g][1], acc[g][5]), _mm256_add_ps(acc[g][3], acc[g][7]));
      sum[g] = ReduceLanes16(lo, hi);
    }
  }
  for (int i = 8 * kFull; i < 8 * CH; ++i) {
    const float kf = F16ToF32(k[i]);
    DM_UNROLL
    for (int g = 0; g < G; ++g) sum[g] += static_cast<double>(kf * F16ToF32(q16[g][i]));
  }
  DM_UNROLL
  for (int g = 0; g < G; ++g) out[g] = static_cast<float>(sum[g]);
}

// CH: head_dim / 8.
template <int CH, int G>
DM_AVX2 void AttendGroup(const AttentionArgs* a, const AttentionScratch& s, float* const* out) {
  const int64_t hd = 8 * CH;
  HeadState st[G];
  const uint16_t* q16[G];
  __m256 acc[G][CH];
  __m256 qf[G][CH];  // the F16-rounded queries, as F32
  DM_UNROLL
  for (int g = 0; g < G; ++g) {
    uint16_t* q = s.q16 + g * hd;
    ConvertF32ToF16(a[g].q, q, hd);
    q16[g] = q;
    DM_UNROLL
    for (int c = 0; c < CH; ++c) {
      acc[g][c] = _mm256_setzero_ps();
      qf[g][c] = Load8(q + 8 * c);
    }
  }
  for (int64_t j0 = a[0].first_key; j0 < a[0].n_keys; j0 += kBlock) {
    const int nb = static_cast<int>(std::min<int64_t>(kBlock, a[0].n_keys - j0));
    a[0].PrefetchF16<CH * 8>(j0 + kBlock, std::min(a[0].n_keys, j0 + 2 * kBlock));
    for (int j = 0; j < nb; ++j) {
      const uint16_t* k = reinterpret_cast<const uint16_t*>(a[0].KRow(j0 + j)) + a[0].offset;
      float sc[G];
      GroupScores<CH, G>(k, qf, q16, sc);
      DM_UNROLL
      for (int g = 0; g < G; ++g) st[g].score[j] = a[g].Score(sc[g]);
    }
    DM_UNROLL
    for (int g = 0; g < G; ++g) SoftmaxBlock(st[g], nb);
    for (int j = 0; j < nb; ++j) {
      const uint16_t* v = reinterpret_cast<const uint16_t*>(a[0].VRow(j0 + j)) + a[0].offset;
      __m256 vj[CH];
      DM_UNROLL
      for (int c = 0; c < CH; ++c) vj[c] = Load8(v + 8 * c);
      DM_UNROLL
      for (int g = 0; g < G; ++g) {
        const __m256 e = _mm256_set1_ps(st[g].e[j]);
        if (st[g].new_max[j]) {
          DM_UNROLL
          for (int c = 0; c < CH; ++c) acc[g][c] = RoundF16(_mm256_mul_ps(acc[g][c], e));
          DM_UNROLL
          for (int c = 0; c < CH; ++c) acc[g][c] = RoundF16(_mm256_add_ps(vj[c], acc[g][c]));
        } else {
          DM_UNROLL
          for (int c = 0; c < CH; ++c) acc[g][c] = RoundF16(_mm256_fmadd_ps(vj[c], e, acc[g][c]));
        }
      }
    }
  }
  DM_UNROLL
  for (int g = 0; g < G; ++g) {
    const float inv = st[g].S == 0.0f ? 0.0f : 1.0f / st[g].S;
    const __m256 vinv = _mm256_set1_ps(inv);
    DM_UNROLL
    for (int c = 0; c < CH; ++c) _mm256_storeu_ps(out[g] + 8 * c, _mm256_mul_ps(acc[g][c], vinv));
    if (a[g].stats != nullptr) *a[g].stats = {st[g].M, st[g].S};
  }
}

template <int CH>
DM_AVX2 bool AttendGroupOf(const AttentionArgs* a, int n, const AttentionScratch& s,
                           float* const* out) {
  for (int i = 0; i < n;) {
    const int left = n - i;
    if (left >= 4) {
      AttendGroup<CH, 4>(a + i, s, out + i);
      i += 4;
    } else if (left >= 2) {
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

bool HaveAvx2() {
  // As HaveAvx512: clang before 15 does not know "f16c" in __builtin_cpu_supports.
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
}

DM_AVX2 bool AttendGroupF16Avx2(const AttentionArgs* a, int n, const AttentionScratch& s,
                                float* const* out) {
  switch (a[0].head_dim) {
    case 32:
      return AttendGroupOf<4>(a, n, s, out);
    case 64:
      return AttendGroupOf<8>(a, n, s, out);
    case 80:
      return AttendGroupOf<10>(a, n, s, out);
    case 96:
      return AttendGroupOf<12>(a, n, s, out);
    case 128:
      return AttendGroupOf<16>(a, n, s, out);
    default:
      return false;
  }
}

DM_AVX2 void ExpBatchAvx2(const float* x, float* out, int64_t n) {
  int64_t i = 0;
  const uint64_t* table = ExpfTable();
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, Exp8(_mm256_loadu_ps(x + i), table));
  if (i < n) {  // the last few, with zeros after them (their exps are dropped)
    alignas(32) float xs[8] = {}, es[8];
    std::copy(x + i, x + n, xs);
    _mm256_store_ps(es, Exp8(_mm256_load_ps(xs), table));
    std::copy(es, es + (n - i), out + i);
  }
}

}  // namespace dormouse::attention_internal
#endif  // defined(__x86_64__)
