// AVX2 prefill (many tokens) panels of Q3_K and Q2_K, in the manner of
// kernels_avx2_prefill-inl.h, whose Q6_K panel and tile they share: Q3_K's quants + 4 (0..7)
// against its scales - 32, the 4 taken off with the scaled block sums; Q2_K's quants 0..3
// against its scales, with its mins' pairs against the block sums. Only compiled for HWY_AVX2.
#if defined(DORMOUSE_ENGINE_KERNELS_AVX2_PREFILL_K_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DORMOUSE_ENGINE_KERNELS_AVX2_PREFILL_K_INL_H_
#undef DORMOUSE_ENGINE_KERNELS_AVX2_PREFILL_K_INL_H_
#else
#define DORMOUSE_ENGINE_KERNELS_AVX2_PREFILL_K_INL_H_
#endif

#if HWY_TARGET == HWY_AVX2
#include <immintrin.h>

#include <cstddef>

#include "engine/kernels_avx2_prefill-inl.h"
#include "engine/kernels_internal.h"
#include "engine/quants_k.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dormouse {
namespace HWY_NAMESPACE {
namespace avx2 {

struct SuperQ2_Kx8 {
  SuperQ6_Kx8 k;  // quants 0..3, the scales, and in scpair the mins' pairs
  __m256 dmin;
};

static_assert(sizeof(SuperQ2_Kx8) * (kChunkCols / 256) <= kPanelBytes);

// Q3_K into Q6_K's panel: scales sc - 32, quants q + 4 (0..7; TileQ6_K<NT, 2> takes 4 times
// the scaled block sums off).
inline void PackQ3_K(const uint8_t* base, __m256i idx, const size_t* offs, int64_t nsb,
                     SuperQ6_Kx8* p) {
  const __m256i three = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
  for (int64_t s = 0; s < nsb; ++s, ++p) {
    const uint8_t* blk = base + s * sizeof(BlockQ3_K);
    alignas(32) float d[8];
    alignas(32) int32_t sc[16][8];
    for (int r = 0; r < 8; ++r) {
      const auto* x = reinterpret_cast<const BlockQ3_K*>(blk + offs[r]);
      d[r] = F16ToF32(LoadUnaligned(&x->d));
      for (int g = 0; g < 16; ++g) sc[g][r] = GetScaleK3(g, x->scales) - 32;
    }
    PackScales16(d, sc, sc, p);
    DM_UNROLL
    for (int h = 0; h < 2; ++h) {
      for (int l = 0; l < 32; l += 4) {
        const __m256i v = Gather(idx, blk + offsetof(BlockQ3_K, qs) + 32 * h + l);
        const __m256i hm = Gather(idx, blk + offsetof(BlockQ3_K, hmask) + l);
        DM_UNROLL
        for (int j = 0; j < 4; ++j) {  // bits 2j, 4h + j of each byte (never crossing a byte)
          const __m256i low = _mm256_and_si256(_mm256_srli_epi32(v, 2 * j), three);
          const __m256i hb = _mm256_and_si256(_mm256_srli_epi32(hm, 4 * h + j), one);
          const int e = 128 * h + 32 * j + l;  // first of the 4 elements
          p->q[e / 16][(e % 16) / 4] = _mm256_or_si256(low, _mm256_slli_epi32(hb, 2));
        }
      }
    }
  }
}

// Q2_K: quants 0..3 and scales in Q6_K's panel, the mins' pairs in its scpair.
inline void PackQ2_K(const uint8_t* base, __m256i idx, const size_t* offs, int64_t nsb,
                     SuperQ2_Kx8* p) {
  const __m256i three = _mm256_set1_epi8(3);
  for (int64_t s = 0; s < nsb; ++s, ++p) {
    const uint8_t* blk = base + s * sizeof(BlockQ2_K);
    alignas(32) float d[8], dmin[8];
    alignas(32) int32_t sc[16][8], mn[16][8];
    for (int r = 0; r < 8; ++r) {
      const auto* x = reinterpret_cast<const BlockQ2_K*>(blk + offs[r]);
      d[r] = F16ToF32(LoadUnaligned(&x->d));
      dmin[r] = F16ToF32(LoadUnaligned(&x->dmin));
      for (int g = 0; g < 16; ++g) {
        sc[g][r] = x->scales[g] & 0xf;
        mn[g][r] = x->scales[g] >> 4;
      }
    }
    PackScales16(d, sc, mn, &p->k);
    p->dmin = _mm256_load_ps(dmin);
    DM_UNROLL
    for (int h = 0; h < 2; ++h) {
      for (int l = 0; l < 32; l += 4) {
        const __m256i v = Gather(idx, blk + offsetof(BlockQ2_K, qs) + 32 * h + l);
        DM_UNROLL
        for (int j = 0; j < 4; ++j) {          // bits 2j of each byte (never crossing a byte)
          const int e = 128 * h + 32 * j + l;  // first of the 4 elements
          p->k.q[e / 16][(e % 16) / 4] = _mm256_and_si256(_mm256_srli_epi32(v, 2 * j), three);
        }
      }
    }
  }
}

// Q2_K in the reference's order: acc + ((d * y.d) * T - (dmin * y.d) * M).
template <int NT>
HWY_INLINE void TileQ2_K(const SuperQ2_Kx8* p, int64_t nsb, const BlockQ8_K* const* a, int64_t s0,
                         __m256* acc) {
  for (int64_t s = 0; s < nsb; ++s, ++p) {
    const BlockQ8_K* y[NT];
    DM_UNROLL
    for (int t = 0; t < NT; ++t) y[t] = a[t] + s0 + s;
    __m256i is[NT], mins[NT];
    GroupSums16<NT>(&p->k, y, is);
    BsumTerm<NT>(p->k.scpair, y, mins);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      const __m256 da = _mm256_set1_ps(y[t]->d);
      const __m256 tv = _mm256_mul_ps(_mm256_mul_ps(p->k.d, da), _mm256_cvtepi32_ps(is[t]));
      const __m256 mv = _mm256_mul_ps(_mm256_mul_ps(p->dmin, da), _mm256_cvtepi32_ps(mins[t]));
      acc[t] = _mm256_add_ps(acc[t], _mm256_sub_ps(tv, mv));
    }
  }
}

void PackKQuantLowBits(GgmlType wtype, const uint8_t* base, __m256i idx, const size_t* offs,
                       int64_t nsb, void* panel) {
  if (wtype == GgmlType::kQ2_K) {
    return PackQ2_K(base, idx, offs, nsb, static_cast<SuperQ2_Kx8*>(panel));
  }
  PackQ3_K(base, idx, offs, nsb, static_cast<SuperQ6_Kx8*>(panel));
}

template <int NT>
HWY_INLINE void TileKQuantLowBits(GgmlType wtype, const void* panel, int64_t nsb,
                                  const BlockQ8_K* const* a, int64_t s0, __m256* acc) {
  if (wtype == GgmlType::kQ2_K) {
    return TileQ2_K<NT>(static_cast<const SuperQ2_Kx8*>(panel), nsb, a, s0, acc);
  }
  TileQ6_K<NT, 2>(static_cast<const SuperQ6_Kx8*>(panel), nsb, a, s0, acc);
}

}  // namespace avx2
}  // namespace HWY_NAMESPACE
}  // namespace dormouse
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX2
#endif  // include guard toggle
