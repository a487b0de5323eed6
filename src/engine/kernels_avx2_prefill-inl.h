// AVX2 matmuls of quantized weights for many tokens (prefill): Q8_0, Q4_0, Q4_K, Q5_K and
// Q6_K here, Q3_K and Q2_K in kernels_avx2_prefill_k-inl.h, the quants_legacy.h types in
// kernels_avx2_prefill_legacy-inl.h. Organized as the AVX-512 VNNI ones
// (kernels_vnni_prefill-inl.h): lanes hold 8 weight rows; a panel of 8 rows x up to 1024
// columns is gathered once from the mmap into a stack buffer (transposed: each 32-byte
// vector holds 4 consecutive quants of 8 rows), then reused for every token, whose 4
// activation bytes per vpmaddubsw are broadcast. AVX2 has no VNNI: u8 x i8 products go
// through vpmaddubsw (pairs summed to int16) and vpmaddwd, whose int16 sums are kept below
// saturation:
//   - Q4_0 / Q4_K nibbles: a pair is at most 2 * 15 * 127, so the int16 sums of a whole
//     32-element block (8 quads) stay below 32767 and are widened once per block, for Q4_K
//     by vpmaddwd with the sub-block's scale; Q5_K's 5-bit quants go in Q4_K's panel, their
//     int16 sums widened every 4 quads (4 * 2 * 31 * 128 < 32767);
//   - Q6_K's unsigned 6-bit quants: a pair is at most 2 * 63 * 127, so 2 quads are summed in
//     int16 before vpmaddwd with the 16-element group's scale; the +32 offset is taken off
//     with the activations' block sums, as RowQ6_K (kernels_avx2_decode-inl.h) does; Q3_K's
//     quants + 4 (0..7) go in the same panel, the 4 taken off likewise, and Q2_K's 0..3,
//     with their mins;
//   - Q8_0: signed weights, so the weight's sign is moved onto the activation (vpsignb) and
//     |w| is the unsigned side: a pair is at most 2 * 128 * 127, widened every quad.
// Every integer is the reference's block sum, and each lane (one row, one token) accumulates
// its floats in the reference's order with separate multiplies and adds, so the results are
// the reference's bits. Only compiled for HWY_AVX2.
#if defined(DORMOUSE_ENGINE_KERNELS_AVX2_PREFILL_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DORMOUSE_ENGINE_KERNELS_AVX2_PREFILL_INL_H_
#undef DORMOUSE_ENGINE_KERNELS_AVX2_PREFILL_INL_H_
#else
#define DORMOUSE_ENGINE_KERNELS_AVX2_PREFILL_INL_H_
#endif

#if HWY_TARGET == HWY_AVX2
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "engine/kernels_internal.h"
#include "engine/quants.h"
#include "engine/quants_k.h"
#include "engine/quants_legacy.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dormouse {
namespace HWY_NAMESPACE {
namespace avx2 {

#ifndef DM_UNROLL
#define DM_UNROLL _Pragma("GCC unroll 16")
#endif
// The loops over a block's quads are unrolled only twice: fully unrolled, GCC computes all
// 32 products of a block before summing them, and spills them to the stack.
#define DM_QUAD_LOOP _Pragma("GCC unroll 2")

constexpr int kTileTokens = 4;
constexpr int kChunkCols = 1024;  // columns per packed panel (a multiple of 256)

inline __m256i Bcast32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

inline __m256i Gather(__m256i idx, const uint8_t* base) {
  return _mm256_i32gather_epi32(reinterpret_cast<const int*>(base), idx, 1);
}

// int16 pairs (v, v) per row: vpmaddwd's partner of a per-row int16 sum.
inline __m256i Pairs(const int32_t* v8) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v8));
  return _mm256_or_si256(_mm256_and_si256(v, _mm256_set1_epi32(0xffff)), _mm256_slli_epi32(v, 16));
}

// ---- Packed panels ----------------------------------------------------------------------

struct BlockQ0x8 {  // Q8_0, Q4_0, Q5_0, IQ4_NL: per block of 32
  __m256i q[8];     // Q8_0 / IQ4_NL: |w|; Q4_0 / Q5_0: the unsigned quants
  __m256i sign[8];  // Q8_0 / IQ4_NL: w, whose sign vpsignb moves onto the activations
  __m256 scale;
};

struct SuperQ4_Kx8 {  // per super-block of 256
  __m256i q[8][8];
  __m256i scale[8];    // (sc[j], sc[j]) as int16 pairs
  __m256i minpair[8];  // (m[j], m[j]) as int16 pairs, against bsums[2j], bsums[2j+1]
  __m256 d, dmin;
};

struct SuperQ6_Kx8 {
  __m256i q[16][4];   // q + 32, as stored
  __m256i scale[16];  // (sc[g], sc[g]) as int16 pairs
  __m256i scpair[8];  // (sc[2p], sc[2p+1]) as int16 pairs, against bsums[2p], bsums[2p+1]
  __m256 d;
};

// Also holds the panels of kernels_avx2_prefill_k-inl.h and _legacy-inl.h (asserted there).
constexpr size_t kPanelBytes =
    std::max(sizeof(BlockQ0x8) * (kChunkCols / 32), sizeof(SuperQ4_Kx8) * (kChunkCols / 256));

// Q8_0 (|w| and w, whose sign vpsignb moves onto the activations) or Q4_0 (the nibbles).
// Q5_0 and IQ4_NL pack into the same panel in kernels_avx2_prefill_legacy-inl.h.
template <bool kQ4>
inline void PackQ0(const uint8_t* base, __m256i idx, const size_t* offs, int64_t nblocks,
                   BlockQ0x8* p) {
  constexpr size_t kBs = kQ4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
  const __m256i nib = _mm256_set1_epi8(0x0f);
  for (int64_t g = 0; g < nblocks; ++g, ++p) {
    const uint8_t* blk = base + g * kBs;
    alignas(32) float d[8];
    for (int r = 0; r < 8; ++r) {
      d[r] = F16ToF32(LoadUnaligned(reinterpret_cast<const uint16_t*>(blk + offs[r])));
    }
    p->scale = _mm256_load_ps(d);
    if constexpr (kQ4) {
      DM_UNROLL
      for (int q = 0; q < 4; ++q) {
        const __m256i v = Gather(idx, blk + 2 + 4 * q);
        p->q[q] = _mm256_and_si256(v, nib);
        p->q[q + 4] = _mm256_and_si256(_mm256_srli_epi32(v, 4), nib);
      }
    } else {
      DM_UNROLL
      for (int q = 0; q < 8; ++q) {
        const __m256i v = Gather(idx, blk + 2 + 4 * q);
        p->q[q] = _mm256_abs_epi8(v);
        p->sign[q] = v;
      }
    }
  }
}

// d, dmin and the 8 scales and mins of the super-blocks at blk + offs[r]: Q4_K's and Q5_K's
// headers are laid out alike.
inline void PackHeaderK4(const uint8_t* blk, const size_t* offs, SuperQ4_Kx8* p) {
  alignas(32) float d[8], dmin[8];
  alignas(32) int32_t sc[8][8], mn[8][8];
  for (int r = 0; r < 8; ++r) {
    const auto* x = reinterpret_cast<const BlockQ4_K*>(blk + offs[r]);
    d[r] = F16ToF32(LoadUnaligned(&x->d));
    dmin[r] = F16ToF32(LoadUnaligned(&x->dmin));
    for (int j = 0; j < 8; ++j) {
      uint8_t a, b;
      GetScaleMinK4(j, x->scales, &a, &b);
      sc[j][r] = a;
      mn[j][r] = b;
    }
  }
  p->d = _mm256_load_ps(d);
  p->dmin = _mm256_load_ps(dmin);
  for (int j = 0; j < 8; ++j) {
    p->scale[j] = Pairs(sc[j]);
    p->minpair[j] = Pairs(mn[j]);
  }
}

// Q4_K, or with kQ5 Q5_K (the fifth bit of element 32j + l is bit j of qh[l]), whose quants
// 0..31 go in the same panel.
template <bool kQ5>
inline void PackQ4_K(const uint8_t* base, __m256i idx, const size_t* offs, int64_t nsb,
                     SuperQ4_Kx8* p) {
  using Block = std::conditional_t<kQ5, BlockQ5_K, BlockQ4_K>;
  const __m256i nib = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
  for (int64_t s = 0; s < nsb; ++s, ++p) {
    const uint8_t* blk = base + s * sizeof(Block);
    PackHeaderK4(blk, offs, p);
    DM_UNROLL
    for (int q = 0; q < 8; ++q) {
      __m256i hv = _mm256_setzero_si256();
      if constexpr (kQ5) hv = Gather(idx, blk + offsetof(BlockQ5_K, qh) + 4 * q);
      DM_UNROLL
      for (int c = 0; c < 4; ++c) {
        const __m256i v = Gather(idx, blk + offsetof(Block, qs) + 32 * c + 4 * q);
        __m256i lo = _mm256_and_si256(v, nib);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi32(v, 4), nib);
        if constexpr (kQ5) {  // bits 2c, 2c + 1 of each byte to bit 4 (never crossing a byte)
          const __m256i h0 = _mm256_and_si256(_mm256_srli_epi32(hv, 2 * c), one);
          const __m256i h1 = _mm256_and_si256(_mm256_srli_epi32(hv, 2 * c + 1), one);
          lo = _mm256_or_si256(lo, _mm256_slli_epi32(h0, 4));
          hi = _mm256_or_si256(hi, _mm256_slli_epi32(h1, 4));
        }
        p->q[2 * c][q] = lo;
        p->q[2 * c + 1][q] = hi;
      }
    }
  }
}

// d and the 16 group scales sc[g][r] of 8 rows into a Q6_K-shaped panel, with the pairs
// against the block sums from bs[g][r] (the scales, or Q2_K's mins).
inline void PackScales16(const float* d, const int32_t (*sc)[8], const int32_t (*bs)[8],
                         SuperQ6_Kx8* p) {
  alignas(32) int32_t sp[8][8];
  for (int q = 0; q < 8; ++q) {
    for (int r = 0; r < 8; ++r) {
      sp[q][r] = static_cast<int32_t>((static_cast<uint32_t>(bs[2 * q][r]) & 0xffff) |
                                      (static_cast<uint32_t>(bs[2 * q + 1][r]) << 16));
    }
  }
  p->d = _mm256_loadu_ps(d);
  for (int g = 0; g < 16; ++g) p->scale[g] = Pairs(sc[g]);
  for (int q = 0; q < 8; ++q) {
    p->scpair[q] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sp[q]));
  }
}

inline void PackQ6_K(const uint8_t* base, __m256i idx, const size_t* offs, int64_t nsb,
                     SuperQ6_Kx8* p) {
  const __m256i nib = _mm256_set1_epi8(0x0f), two = _mm256_set1_epi8(0x03);
  for (int64_t s = 0; s < nsb; ++s, ++p) {
    const uint8_t* blk = base + s * sizeof(BlockQ6_K);
    alignas(32) float d[8];
    alignas(32) int32_t sc[16][8];
    for (int r = 0; r < 8; ++r) {
      const auto* x = reinterpret_cast<const BlockQ6_K*>(blk + offs[r]);
      d[r] = F16ToF32(LoadUnaligned(&x->d));
      for (int g = 0; g < 16; ++g) sc[g][r] = x->scales[g];
    }
    PackScales16(d, sc, sc, p);
    DM_UNROLL
    for (int h = 0; h < 2; ++h) {
      for (int l = 0; l < 32; l += 4) {
        const __m256i lo = Gather(idx, blk + 64 * h + l);
        const __m256i hi = Gather(idx, blk + 64 * h + 32 + l);
        const __m256i qh = Gather(idx, blk + 128 + 32 * h + l);
        const __m256i low[4] = {_mm256_and_si256(lo, nib), _mm256_and_si256(hi, nib),
                                _mm256_and_si256(_mm256_srli_epi32(lo, 4), nib),
                                _mm256_and_si256(_mm256_srli_epi32(hi, 4), nib)};
        DM_UNROLL
        for (int seg = 0; seg < 4; ++seg) {
          const __m256i hb = _mm256_and_si256(_mm256_srli_epi32(qh, 2 * seg), two);
          const int e = 128 * h + 32 * seg + l;  // first of the 4 elements
          p->q[e / 16][(e % 16) / 4] = _mm256_or_si256(low[seg], _mm256_slli_epi32(hb, 4));
        }
      }
    }
  }
}

// ---- Register tiles: 8 rows x NT tokens -------------------------------------------------

// Token t's integer sums of block b against the 8 quads q of unsigned quants (lane r: row
// r), vpmaddubsw's int16 sums widened every kQuads quads (Q4_0's nibbles: all 8; 5-bit
// quants: 4). Act: PreparedQ8_0 or PreparedQ8_1.
template <int NT, int kQuads, typename Act>
HWY_INLINE void UnsignedQuadSums(const __m256i* q, const Act* a, int64_t b, __m256i* is) {
  const __m256i ones = _mm256_set1_epi16(1);
  DM_UNROLL
  for (int h = 0; h < 8; h += kQuads) {
    __m256i s16[NT];
    DM_UNROLL
    for (int t = 0; t < NT; ++t) s16[t] = _mm256_setzero_si256();
    DM_QUAD_LOOP
    for (int k = 0; k < kQuads; ++k) {
      const __m256i w = _mm256_load_si256(q + h + k);
      DM_UNROLL
      for (int t = 0; t < NT; ++t) {
        s16[t] = _mm256_add_epi16(s16[t],
                                  _mm256_maddubs_epi16(w, Bcast32(a[t].qs + 32 * b + 4 * (h + k))));
      }
    }
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      const __m256i wide = _mm256_madd_epi16(s16[t], ones);
      is[t] = h == 0 ? wide : _mm256_add_epi32(is[t], wide);
    }
  }
}

// kQuads 0: signed weights (Q8_0, IQ4_NL), |w| against the activations with w's sign, every
// quad widened. Else unsigned quants (Q4_0: 8, Q5_0: 4; see UnsignedQuadSums) whose offset
// the prepared corr takes off.
template <int NT, int kQuads>
HWY_INLINE void TileQ0(const BlockQ0x8* p, int64_t nblocks, const PreparedQ8_0* a, int64_t b0,
                       __m256* acc) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t g = 0; g < nblocks; ++g, ++p) {
    const int64_t b = b0 + g;
    __m256i is[NT];
    if constexpr (kQuads > 0) {
      UnsignedQuadSums<NT, kQuads>(p->q, a, b, is);
      DM_UNROLL
      for (int t = 0; t < NT; ++t) is[t] = _mm256_add_epi32(is[t], Bcast32(a[t].corr + b));
    } else {
      DM_UNROLL
      for (int t = 0; t < NT; ++t) is[t] = _mm256_setzero_si256();
      DM_QUAD_LOOP
      for (int q = 0; q < 8; ++q) {
        const __m256i w = _mm256_load_si256(&p->q[q]);
        const __m256i sg = _mm256_load_si256(&p->sign[q]);
        DM_UNROLL
        for (int t = 0; t < NT; ++t) {
          const __m256i y = _mm256_sign_epi8(Bcast32(a[t].qs + 32 * b + 4 * q), sg);
          is[t] = _mm256_add_epi32(is[t], _mm256_madd_epi16(_mm256_maddubs_epi16(w, y), ones));
        }
      }
    }
    const __m256 sv = _mm256_load_ps(reinterpret_cast<const float*>(&p->scale));
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      float da;
      std::memcpy(&da, a[t].d + b, 4);
      const __m256 s = _mm256_mul_ps(sv, _mm256_set1_ps(da));  // dw * da
      acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(_mm256_cvtepi32_ps(is[t]), s));
    }
  }
}

// sum_p pairs[p] . bsums[2p, 2p+1] (int16 pairs) per token.
template <int NT>
inline void BsumTerm(const __m256i* pairs, const BlockQ8_K* const* y, __m256i* is) {
  DM_UNROLL
  for (int t = 0; t < NT; ++t) is[t] = _mm256_setzero_si256();
  DM_UNROLL
  for (int q = 0; q < 8; ++q) {
    const __m256i pv = _mm256_load_si256(&pairs[q]);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      is[t] = _mm256_add_epi32(is[t], _mm256_madd_epi16(pv, Bcast32(y[t]->bsums + 2 * q)));
    }
  }
}

// kQuads: quads summed in int16 before vpmaddwd widens them with the sub-block's scale: all
// 8 of a sub-block for Q4_K's nibbles (8 * 2 * 15 * 128 < 32767), 4 for Q5_K's 5-bit quants
// (4 * 2 * 31 * 128 = 31744).
template <int NT, int kQuads>
HWY_INLINE void TileQ4_K(const SuperQ4_Kx8* p, int64_t nsb, const BlockQ8_K* const* a, int64_t s0,
                         __m256* acc) {
  for (int64_t s = 0; s < nsb; ++s, ++p) {
    const BlockQ8_K* y[NT];
    DM_UNROLL
    for (int t = 0; t < NT; ++t) y[t] = a[t] + s0 + s;
    __m256i is[NT];
    DM_UNROLL
    for (int t = 0; t < NT; ++t) is[t] = _mm256_setzero_si256();
    for (int j = 0; j < 8; ++j) {
      const __m256i sc = _mm256_load_si256(&p->scale[j]);
      for (int q0 = 0; q0 < 8; q0 += kQuads) {
        __m256i s16[NT];
        DM_UNROLL
        for (int t = 0; t < NT; ++t) s16[t] = _mm256_setzero_si256();
        DM_QUAD_LOOP
        for (int q = q0; q < q0 + kQuads; ++q) {
          const __m256i w = _mm256_load_si256(&p->q[j][q]);
          DM_UNROLL
          for (int t = 0; t < NT; ++t) {
            s16[t] = _mm256_add_epi16(s16[t],
                                      _mm256_maddubs_epi16(w, Bcast32(y[t]->qs + 32 * j + 4 * q)));
          }
        }
        DM_UNROLL
        for (int t = 0; t < NT; ++t) is[t] = _mm256_add_epi32(is[t], _mm256_madd_epi16(s16[t], sc));
      }
    }
    __m256i mins[NT];
    BsumTerm<NT>(p->minpair, y, mins);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      const __m256 da = _mm256_set1_ps(y[t]->d);
      acc[t] =
          _mm256_add_ps(acc[t], _mm256_mul_ps(_mm256_mul_ps(p->d, da), _mm256_cvtepi32_ps(is[t])));
      acc[t] = _mm256_sub_ps(
          acc[t], _mm256_mul_ps(_mm256_mul_ps(p->dmin, da), _mm256_cvtepi32_ps(mins[t])));
    }
  }
}

// sum_g sc[g] * (q . y) over the 16 groups of a Q6_K-shaped panel, per token.
template <int NT>
inline void GroupSums16(const SuperQ6_Kx8* p, const BlockQ8_K* const* y, __m256i* is) {
  DM_UNROLL
  for (int t = 0; t < NT; ++t) is[t] = _mm256_setzero_si256();
  for (int g = 0; g < 16; ++g) {
    const __m256i sc = _mm256_load_si256(&p->scale[g]);
    DM_UNROLL
    for (int h = 0; h < 2; ++h) {
      const __m256i w0 = _mm256_load_si256(&p->q[g][2 * h]);
      const __m256i w1 = _mm256_load_si256(&p->q[g][2 * h + 1]);
      DM_UNROLL
      for (int t = 0; t < NT; ++t) {
        const int8_t* q = y[t]->qs + 16 * g + 8 * h;
        const __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(w0, Bcast32(q)),
                                             _mm256_maddubs_epi16(w1, Bcast32(q + 4)));
        is[t] = _mm256_add_epi32(is[t], _mm256_madd_epi16(s16, sc));
      }
    }
  }
}

// kShift: log2 of the offset of the stored quants (Q6_K: q + 32, Q3_K: q + 4).
template <int NT, int kShift>
HWY_INLINE void TileQ6_K(const SuperQ6_Kx8* p, int64_t nsb, const BlockQ8_K* const* a, int64_t s0,
                         __m256* acc) {
  for (int64_t s = 0; s < nsb; ++s, ++p) {
    const BlockQ8_K* y[NT];
    DM_UNROLL
    for (int t = 0; t < NT; ++t) y[t] = a[t] + s0 + s;
    __m256i is[NT], offs[NT];
    GroupSums16<NT>(p, y, is);
    BsumTerm<NT>(p->scpair, y, offs);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      const __m256i isum = _mm256_sub_epi32(is[t], _mm256_slli_epi32(offs[t], kShift));
      acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(_mm256_mul_ps(p->d, _mm256_set1_ps(y[t]->d)),
                                                   _mm256_cvtepi32_ps(isum)));
    }
  }
}

// Q3_K and Q2_K (kernels_avx2_prefill_k-inl.h). The tiles, these included, are inlined into
// TileTokens, so that the accumulators stay in registers: through a pointer, GCC stores
// them after each block, as they might alias the (char) activations.
void PackKQuantLowBits(GgmlType wtype, const uint8_t* base, __m256i idx, const size_t* offs,
                       int64_t nsb, void* panel);
template <int NT>
HWY_INLINE void TileKQuantLowBits(GgmlType wtype, const void* panel, int64_t nsb,
                                  const BlockQ8_K* const* a, int64_t s0, __m256* acc);
// The quants_legacy.h types (kernels_avx2_prefill_legacy-inl.h).
void PackLegacy(GgmlType wtype, const uint8_t* base, __m256i idx, const size_t* offs, int64_t nu,
                void* panel);
template <int NT>
HWY_INLINE void TileLegacy(GgmlType wtype, const void* panel, int64_t units, int64_t u0,
                           const uint8_t* act, size_t arow, int64_t n, __m256* acc);

// One token tile over one packed chunk: accumulators live in `out` between chunks.
template <int NT>
inline void TileTokens(GgmlType wtype, const void* panel, int64_t units, int64_t u0,
                       const uint8_t* act, size_t arow, int64_t n, float* out, int64_t out_stride,
                       __m256i mask) {
  __m256 acc[NT];
  DM_UNROLL
  for (int t = 0; t < NT; ++t) {
    acc[t] = u0 == 0 ? _mm256_setzero_ps() : _mm256_maskload_ps(out + t * out_stride, mask);
  }
  if (IsLegacyQuant(wtype)) {
    TileLegacy<NT>(wtype, panel, units, u0, act, arow, n, acc);
  } else if (wtype == GgmlType::kQ8_0 || wtype == GgmlType::kQ4_0) {
    PreparedQ8_0 a[NT];
    DM_UNROLL
    for (int t = 0; t < NT; ++t) a[t] = PreparedQ8_0::At(act + t * arow, n);
    if (wtype == GgmlType::kQ4_0) {
      TileQ0<NT, 8>(static_cast<const BlockQ0x8*>(panel), units, a, u0, acc);
    } else {
      TileQ0<NT, 0>(static_cast<const BlockQ0x8*>(panel), units, a, u0, acc);
    }
  } else {
    const BlockQ8_K* a[NT];
    DM_UNROLL
    for (int t = 0; t < NT; ++t) a[t] = reinterpret_cast<const BlockQ8_K*>(act + t * arow);
    if (wtype == GgmlType::kQ4_K) {
      TileQ4_K<NT, 8>(static_cast<const SuperQ4_Kx8*>(panel), units, a, u0, acc);
    } else if (wtype == GgmlType::kQ5_K) {
      TileQ4_K<NT, 4>(static_cast<const SuperQ4_Kx8*>(panel), units, a, u0, acc);
    } else if (wtype == GgmlType::kQ6_K) {
      TileQ6_K<NT, 5>(static_cast<const SuperQ6_Kx8*>(panel), units, a, u0, acc);
    } else {
      TileKQuantLowBits<NT>(wtype, panel, units, a, u0, acc);
    }
  }
  DM_UNROLL
  for (int t = 0; t < NT; ++t) _mm256_maskstore_ps(out + t * out_stride, mask, acc[t]);
}

inline bool HasPrefillKernel(GgmlType t) {
  return t == GgmlType::kQ8_0 || t == GgmlType::kQ4_0 || t == GgmlType::kQ4_K ||
         t == GgmlType::kQ6_K || t == GgmlType::kQ5_K || t == GgmlType::kQ3_K ||
         t == GgmlType::kQ2_K || IsLegacyQuant(t);
}

// From this many tokens on the packed panels win. kernels_bench BM_Prefill 1536x512, 1 thread,
// loaded machine, us per call at 8 / 16 tokens: Q4_K 168 / 240 here against 240 / 450 with
// the decode path (which takes 4 tokens at once, beyond that int16 panels); Q8_0 180 / 270
// here against 130 / 260. The other 32-element types' decode kernels take 8 tokens per pass
// over rows held in L2 (kernels_avx2_legacy-inl.h) and win up to about 64: `dormouse bench
// -p N -n 0 --target avx2` on llama-58m, Q5_0 / IQ4_NL / Q5_1 at 32 tokens 0.86 / 0.95 /
// 0.82 of it here, at 64 1.00 / 1.13 / 0.95, at 128 1.09 / 1.17 / 1.04. IQ4_XS: 1.0 at 16.
inline int64_t PrefillMinTokens(GgmlType t) {
  if (t == GgmlType::kQ8_0 || t == GgmlType::kQ4_0 || t == GgmlType::kIQ4_XS) return 16;
  return TraitsOf(t).block_elems == 32 ? 64 : 5;
}

inline void PackChunk(GgmlType wtype, const uint8_t* cb, __m256i idx, const size_t* offs,
                      int64_t nu, void* panel) {
  switch (wtype) {
    case GgmlType::kQ8_0:
      return PackQ0<false>(cb, idx, offs, nu, static_cast<BlockQ0x8*>(panel));
    case GgmlType::kQ4_0:
      return PackQ0<true>(cb, idx, offs, nu, static_cast<BlockQ0x8*>(panel));
    case GgmlType::kQ4_K:
      return PackQ4_K<false>(cb, idx, offs, nu, static_cast<SuperQ4_Kx8*>(panel));
    case GgmlType::kQ5_K:
      return PackQ4_K<true>(cb, idx, offs, nu, static_cast<SuperQ4_Kx8*>(panel));
    case GgmlType::kQ2_K:
    case GgmlType::kQ3_K:
      return PackKQuantLowBits(wtype, cb, idx, offs, nu, panel);
    case GgmlType::kQ6_K:
      return PackQ6_K(cb, idx, offs, nu, static_cast<SuperQ6_Kx8*>(panel));
    default:
      return PackLegacy(wtype, cb, idx, offs, nu, panel);
  }
}

void MatMulQuantPrefill(GgmlType wtype, const void* w, int64_t n, int64_t r0, int64_t r1,
                        const void* act, size_t arow, int64_t n_tokens, float* out,
                        int64_t out_stride) {
  alignas(32) uint8_t panel[kPanelBytes];
  const int64_t unit_cols = TraitsOf(wtype).block_elems == 32 ? 32 : 256;
  const int64_t units = n / unit_cols, chunk = kChunkCols / unit_cols;
  const size_t wrow = RowBytes(wtype, n);
  const size_t unit_bytes = wrow / static_cast<size_t>(units);
  const auto* a8 = static_cast<const uint8_t*>(act);
  for (int64_t p0 = r0; p0 < r1; p0 += 8) {
    const int rows = static_cast<int>(std::min<int64_t>(8, r1 - p0));
    // Rows past the end repeat the last one; their results are masked off.
    alignas(32) int32_t offs32[8], lanes[8];
    size_t offs[8];
    for (int i = 0; i < 8; ++i) {
      offs[i] = static_cast<size_t>(std::min(i, rows - 1)) * wrow;
      offs32[i] = static_cast<int32_t>(offs[i]);
      lanes[i] = i < rows ? -1 : 0;
    }
    const __m256i idx = _mm256_load_si256(reinterpret_cast<const __m256i*>(offs32));
    const __m256i mask = _mm256_load_si256(reinterpret_cast<const __m256i*>(lanes));
    const uint8_t* base = static_cast<const uint8_t*>(w) + p0 * wrow;
    for (int64_t u0 = 0; u0 < units; u0 += chunk) {
      const int64_t nu = std::min(chunk, units - u0);
      PackChunk(wtype, base + u0 * unit_bytes, idx, offs, nu, panel);
      ForTokenTiles<kTileTokens>(n_tokens, [&](auto nt, int64_t t) {
        const uint8_t* at = a8 + t * arow;
        float* o = out + t * out_stride + p0;
        TileTokens<nt>(wtype, panel, nu, u0, at, arow, n, o, out_stride, mask);
      });
    }
  }
}

}  // namespace avx2
}  // namespace HWY_NAMESPACE
}  // namespace dormouse
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX2
#endif  // include guard toggle
