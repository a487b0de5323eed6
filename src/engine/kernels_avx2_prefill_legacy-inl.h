// AVX2 prefill (many tokens) matmuls of the quants_legacy.h types, on the panels of
// kernels_avx2_prefill-inl.h: 8 rows x up to 1024 columns gathered once, transposed so that
// each 32-byte vector holds 4 consecutive quants of 8 rows, and reused for every token.
//   - Q5_0's unsigned 5-bit quants go into Q4_0's BlockQ0x8 (the -16 comes from the
//     prepared corr, as Q4_0's -8); IQ4_NL too, as |level| and the level, whose sign
//     vpsignb moves onto the activations (as Q8_0's).
//   - Q4_1 / Q5_1: unsigned quants (nothing to correct), a float scale and min per block.
//   - IQ4_XS: the signed levels of a super-block. Its Q8_K activations reach -128, whose
//     sign vpsignb cannot flip, so the roles turn: |y| is the unsigned side and the level
//     takes y's sign (as KindIQ4_XS, kernels_avx2_k-inl.h). vpmaddwd widens each quad's
//     int16 pairs with the sub-block's ls - 32: the super-block's integer sum is the
//     reference's.
// The int16 sums stay below saturation: a vpmaddubsw pair is at most 2 * 31 * 127 for
// 5-bit quants (4 quads summed: 31,496), 2 * 15 * 127 for nibbles (8 quads: 30,480),
// 2 * 127 * 127 for IQ4_NL's levels and 2 * 128 * 127 for IQ4_XS's (widened every quad).
// Each lane (one row, one token) adds its floats in the reference's order
// (kernels_reference_legacy.cc), so the results are the reference's bits. Only compiled for
// HWY_AVX2.
#if defined(DORMOUSE_ENGINE_KERNELS_AVX2_PREFILL_LEGACY_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DORMOUSE_ENGINE_KERNELS_AVX2_PREFILL_LEGACY_INL_H_
#undef DORMOUSE_ENGINE_KERNELS_AVX2_PREFILL_LEGACY_INL_H_
#else
#define DORMOUSE_ENGINE_KERNELS_AVX2_PREFILL_LEGACY_INL_H_
#endif

#if HWY_TARGET == HWY_AVX2
#include <immintrin.h>

#include <cstring>

#include "engine/kernels_avx2_legacy-inl.h"
#include "engine/kernels_avx2_prefill-inl.h"
#include "engine/kernels_internal.h"
#include "engine/kernels_legacy.h"
#include "engine/quants_legacy.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dormouse {
namespace HWY_NAMESPACE {
namespace avx2 {

struct BlockQ1x8 {  // Q4_1 / Q5_1: per block of 32
  __m256i q[8];
  __m256 scale, min;
};

struct SuperIQ4_XSx8 {  // per super-block of 256
  __m256i level[8][8];  // sub-block j, quad k: the signed levels
  __m256i lspair[8];    // (ls[j] - 32) twice as int16: vpmaddwd's partner
  __m256 d;
};

static_assert(sizeof(BlockQ1x8) * (kChunkCols / 32) <= kPanelBytes &&
              sizeof(SuperIQ4_XSx8) * (kChunkCols / 256) <= kPanelBytes);

// Bits 0..3 of each int32 lane of t as bit 4 of its bytes 0..3.
inline __m256i SpreadBits(__m256i t) {
  const __m256i byte0 =
      _mm256_shuffle_epi8(t, _mm256_setr_epi8(0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12, 0,
                                              0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12));
  const __m256i bit = _mm256_set1_epi32(0x08040201);
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(byte0, bit), bit),
                          _mm256_set1_epi8(0x10));
}

// The 32-element blocks of the 8 rows at base + offs[r] (idx: the same offsets) into panel
// blocks p (BlockQ0x8 or BlockQ1x8): quad k is elements 4k..4k+3 (k < 4: low nibbles, else
// high ones), as the tiles read them.
template <GgmlType kType, typename Panel>
inline void Pack32(const uint8_t* base, __m256i idx, const size_t* offs, int64_t nblocks,
                   Panel* p) {
  using L = Block32<kType>;
  const __m256i nib = _mm256_set1_epi8(0x0f);
  const __m256i table = IQ4Table();
  for (int64_t g = 0; g < nblocks; ++g, ++p) {
    const uint8_t* blk = base + g * L::kBytes;
    alignas(32) float d[8], m[8];
    for (int r = 0; r < 8; ++r) {
      const auto* h = reinterpret_cast<const uint16_t*>(blk + offs[r]);
      d[r] = F16ToF32(LoadUnaligned(h));
      m[r] = L::kMin ? F16ToF32(LoadUnaligned(h + 1)) : 0.0f;
    }
    p->scale = _mm256_load_ps(d);
    if constexpr (L::kMin) p->min = _mm256_load_ps(m);
    const __m256i qh = L::kQ5 ? Gather(idx, blk + L::kQh) : _mm256_setzero_si256();
    DM_UNROLL
    for (int k = 0; k < 4; ++k) {
      const __m256i v = Gather(idx, blk + L::kQs + 4 * k);
      __m256i lo = _mm256_and_si256(v, nib);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi32(v, 4), nib);
      if constexpr (L::kQ5) {
        lo = _mm256_or_si256(lo, SpreadBits(_mm256_srli_epi32(qh, 4 * k)));
        hi = _mm256_or_si256(hi, SpreadBits(_mm256_srli_epi32(qh, 16 + 4 * k)));
      }
      if constexpr (L::kIQ4) {
        p->sign[k] = _mm256_shuffle_epi8(table, lo);
        p->sign[k + 4] = _mm256_shuffle_epi8(table, hi);
        lo = _mm256_abs_epi8(p->sign[k]);
        hi = _mm256_abs_epi8(p->sign[k + 4]);
      }
      p->q[k] = lo;
      p->q[k + 4] = hi;
    }
  }
}

inline void PackIQ4_XS(const uint8_t* base, __m256i idx, const size_t* offs, int64_t nsb,
                       SuperIQ4_XSx8* p) {
  const __m256i nib = _mm256_set1_epi8(0x0f), table = IQ4Table();
  for (int64_t s = 0; s < nsb; ++s, ++p) {
    const uint8_t* blk = base + s * sizeof(BlockIQ4_XS);
    alignas(32) float d[8];
    alignas(32) int32_t ls[8][8];
    for (int r = 0; r < 8; ++r) {
      BlockIQ4_XS x;
      std::memcpy(&x, blk + offs[r], sizeof(x));
      d[r] = F16ToF32(x.d);
      for (int j = 0; j < 8; ++j) ls[j][r] = IQ4XSScale(x, j) - 32;
    }
    p->d = _mm256_load_ps(d);
    for (int j = 0; j < 8; ++j) p->lspair[j] = Pairs(ls[j]);
    DM_UNROLL
    for (int j = 0; j < 8; ++j) {
      DM_UNROLL
      for (int k = 0; k < 4; ++k) {
        const __m256i v = Gather(idx, blk + offsetof(BlockIQ4_XS, qs) + 16 * j + 4 * k);
        p->level[j][k] = _mm256_shuffle_epi8(table, _mm256_and_si256(v, nib));
        p->level[j][k + 4] =
            _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi32(v, 4), nib));
      }
    }
  }
}

// MatMulQuantPrefill's packing step for the quants_legacy.h types.
void PackLegacy(GgmlType wtype, const uint8_t* base, __m256i idx, const size_t* offs, int64_t nu,
                void* panel) {
  auto* q0 = static_cast<BlockQ0x8*>(panel);
  auto* q1 = static_cast<BlockQ1x8*>(panel);
  switch (wtype) {
    case GgmlType::kQ5_0:
      return Pack32<GgmlType::kQ5_0>(base, idx, offs, nu, q0);
    case GgmlType::kIQ4_NL:
      return Pack32<GgmlType::kIQ4_NL>(base, idx, offs, nu, q0);
    case GgmlType::kQ4_1:
      return Pack32<GgmlType::kQ4_1>(base, idx, offs, nu, q1);
    case GgmlType::kQ5_1:
      return Pack32<GgmlType::kQ5_1>(base, idx, offs, nu, q1);
    default:
      return PackIQ4_XS(base, idx, offs, nu, static_cast<SuperIQ4_XSx8*>(panel));
  }
}

// Q4_1 / Q5_1 in the reference's order: acc + ((d * a.d) * isum + m * a.s).
template <int NT, int kQuads>
HWY_INLINE void TileQ1(const BlockQ1x8* p, int64_t nblocks, const PreparedQ8_1* a, int64_t b0,
                       __m256* acc) {
  for (int64_t g = 0; g < nblocks; ++g, ++p) {
    const int64_t b = b0 + g;
    __m256i is[NT];
    UnsignedQuadSums<NT, kQuads>(p->q, a, b, is);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      const __m256 s = _mm256_mul_ps(p->scale, _mm256_set1_ps(LoadUnaligned(a[t].d + b)));
      const __m256 ms = _mm256_mul_ps(p->min, _mm256_set1_ps(LoadUnaligned(a[t].s + b)));
      acc[t] =
          _mm256_add_ps(acc[t], _mm256_add_ps(_mm256_mul_ps(s, _mm256_cvtepi32_ps(is[t])), ms));
    }
  }
}

// IQ4_XS in the reference's order: acc + (d * y.d) * isum.
template <int NT>
HWY_INLINE void TileIQ4_XS(const SuperIQ4_XSx8* p, int64_t nsb, const BlockQ8_K* const* a,
                           int64_t s0, __m256* acc) {
  for (int64_t s = 0; s < nsb; ++s, ++p) {
    __m256i is[NT];
    DM_UNROLL
    for (int t = 0; t < NT; ++t) is[t] = _mm256_setzero_si256();
    for (int j = 0; j < 8; ++j) {
      const __m256i ls = _mm256_load_si256(&p->lspair[j]);
      DM_QUAD_LOOP
      for (int k = 0; k < 8; ++k) {
        const __m256i lv = _mm256_load_si256(&p->level[j][k]);
        DM_UNROLL
        for (int t = 0; t < NT; ++t) {
          const __m256i y = Bcast32(a[t][s0 + s].qs + 32 * j + 4 * k);
          const __m256i w = _mm256_sign_epi8(lv, y);
          is[t] = _mm256_add_epi32(
              is[t], _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(y), w), ls));
        }
      }
    }
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      const __m256 dy = _mm256_mul_ps(p->d, _mm256_set1_ps(a[t][s0 + s].d));
      acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(dy, _mm256_cvtepi32_ps(is[t])));
    }
  }
}

// TileTokens' step for the quants_legacy.h types: units blocks from u0 into acc.
template <int NT>
HWY_INLINE void TileLegacy(GgmlType wtype, const void* panel, int64_t units, int64_t u0,
                           const uint8_t* act, size_t arow, int64_t n, __m256* acc) {
  if (wtype == GgmlType::kQ5_0 || wtype == GgmlType::kIQ4_NL) {
    PreparedQ8_0 a[NT];
    DM_UNROLL
    for (int t = 0; t < NT; ++t) a[t] = PreparedQ8_0::At(act + t * arow, n);
    const auto* p = static_cast<const BlockQ0x8*>(panel);
    if (wtype == GgmlType::kQ5_0) return TileQ0<NT, 4>(p, units, a, u0, acc);
    return TileQ0<NT, 0>(p, units, a, u0, acc);
  }
  if (UsesQ8_1(wtype)) {
    PreparedQ8_1 a[NT];
    DM_UNROLL
    for (int t = 0; t < NT; ++t) a[t] = PreparedQ8_1::At(act + t * arow, n);
    const auto* p = static_cast<const BlockQ1x8*>(panel);
    if (wtype == GgmlType::kQ5_1) return TileQ1<NT, 4>(p, units, a, u0, acc);
    return TileQ1<NT, 8>(p, units, a, u0, acc);
  }
  const BlockQ8_K* a[NT];
  DM_UNROLL
  for (int t = 0; t < NT; ++t) a[t] = reinterpret_cast<const BlockQ8_K*>(act + t * arow);
  TileIQ4_XS<NT>(static_cast<const SuperIQ4_XSx8*>(panel), units, a, u0, acc);
}

}  // namespace avx2
}  // namespace HWY_NAMESPACE
}  // namespace dormouse
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX2
#endif  // include guard toggle
