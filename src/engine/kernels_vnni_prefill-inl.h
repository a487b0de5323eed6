// AVX-512 VNNI matmuls for many tokens (prefill). Lanes hold 16 weight rows: a panel of 16
// rows x up to 1024 columns is gathered once from the mmap into a small stack buffer
// (transposed so that each 64-byte vector holds 4 consecutive unsigned quants of 16 rows),
// then reused for every token; each token contributes 4 activation bytes per vpdpbusd as
// an embedded broadcast. Per 32 (Q6_K: 16) columns and token that is 8 (4) vpdpbusd and
// 2-3 float ops for 16 rows; the per-block scales and the sums of the integer offsets are
// applied in float / via vpdpwssd on the activations' block sums. Only for HWY_AVX3_DL.
#if defined(DORMOUSE_ENGINE_KERNELS_VNNI_PREFILL_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DORMOUSE_ENGINE_KERNELS_VNNI_PREFILL_INL_H_
#undef DORMOUSE_ENGINE_KERNELS_VNNI_PREFILL_INL_H_
#else
#define DORMOUSE_ENGINE_KERNELS_VNNI_PREFILL_INL_H_
#endif

#if HWY_TARGET == HWY_AVX3_DL
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "engine/kernels_internal.h"
#include "engine/kernels_vnni_ops-inl.h"
#include "engine/quants.h"
#include "engine/quants_legacy.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dormouse {
namespace HWY_NAMESPACE {
namespace vnni {

#ifndef DM_UNROLL
#define DM_UNROLL _Pragma("GCC unroll 16")
#endif

constexpr int kTileTokens = 8;
constexpr int kChunkCols = 1024;  // columns per packed panel (a multiple of 256)

inline __m512i Bcast32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

inline __m512i Gather(__m512i idx, const uint8_t* base) {
  return _mm512_i32gather_epi32(idx, base, 1);
}

// Within each 128-bit lane: u[c] holds dword c of r[0], r[1], r[2], r[3] (a 4 x 4 transpose
// of every lane).
inline void Transpose4x4(const __m512i* r, __m512i* u) {
  const __m512i t0 = _mm512_unpacklo_epi32(r[0], r[1]);
  const __m512i t1 = _mm512_unpackhi_epi32(r[0], r[1]);
  const __m512i t2 = _mm512_unpacklo_epi32(r[2], r[3]);
  const __m512i t3 = _mm512_unpackhi_epi32(r[2], r[3]);
  u[0] = _mm512_unpacklo_epi64(t0, t2);
  u[1] = _mm512_unpackhi_epi64(t0, t2);
  u[2] = _mm512_unpacklo_epi64(t1, t3);
  u[3] = _mm512_unpackhi_epi64(t1, t3);
}

// out[k] = Gather(idx, base + 4 * k) for k = 0..15: the 64 bytes at base + idx[r] of each
// row r, transposed by 16 loads and 64 shuffles, which cost less than 16 gathers: packing
// with gathers took 8.7% of a 1B Q4_K_M prefill, and prefetching its rows did not help.
inline void Gather16(__m512i idx, const uint8_t* base, __m512i* out) {
  alignas(64) int32_t o[16];
  _mm512_store_si512(o, idx);
  __m512i r[16], u[16];
  DM_UNROLL
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_si512(base + o[i]);
  // u[4g + c], 128-bit lane j: column 4j + c of rows 4g..4g+3.
  DM_UNROLL
  for (int g = 0; g < 4; ++g) Transpose4x4(r + 4 * g, u + 4 * g);
  DM_UNROLL
  for (int c = 0; c < 4; ++c) {
    constexpr int kEven = _MM_SHUFFLE(2, 0, 2, 0), kOdd = _MM_SHUFFLE(3, 1, 3, 1);
    const __m512i a = _mm512_shuffle_i32x4(u[c], u[4 + c], kEven);  // lanes 0, 2 of each
    const __m512i b = _mm512_shuffle_i32x4(u[c], u[4 + c], kOdd);   // lanes 1, 3
    const __m512i a2 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], kEven);
    const __m512i b2 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], kOdd);
    out[c] = _mm512_shuffle_i32x4(a, a2, kEven);
    out[4 + c] = _mm512_shuffle_i32x4(b, b2, kEven);
    out[8 + c] = _mm512_shuffle_i32x4(a, a2, kOdd);
    out[12 + c] = _mm512_shuffle_i32x4(b, b2, kOdd);
  }
}

// out[k] = Gather(idx, base + 4 * k) for k = 0..7: Gather16 for 32 bytes per row, rows i
// and i + 8 sharing a vector until the last shuffles.
inline void Gather8(__m512i idx, const uint8_t* base, __m512i* out) {
  alignas(64) int32_t o[16];
  _mm512_store_si512(o, idx);
  const auto row = [&](int i) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + o[i]));
  };
  __m512i r[8], u[8];
  DM_UNROLL
  for (int i = 0; i < 8; ++i)
    r[i] = _mm512_inserti64x4(_mm512_castsi256_si512(row(i)), row(i + 8), 1);
  // u[4g + c], 128-bit lane j: column 4 * (j % 2) + c of rows 4g..4g+3, plus 8 if j >= 2.
  DM_UNROLL
  for (int g = 0; g < 2; ++g) Transpose4x4(r + 4 * g, u + 4 * g);
  DM_UNROLL
  for (int c = 0; c < 4; ++c) {
    constexpr int kEven = _MM_SHUFFLE(2, 0, 2, 0), kOdd = _MM_SHUFFLE(3, 1, 3, 1);
    constexpr int kMiddle = _MM_SHUFFLE(3, 1, 2, 0);  // rows 0-3, 8-11, 4-7, 12-15 in order
    const __m512i a = _mm512_shuffle_i32x4(u[c], u[4 + c], kEven);
    const __m512i b = _mm512_shuffle_i32x4(u[c], u[4 + c], kOdd);
    out[c] = _mm512_shuffle_i32x4(a, a, kMiddle);
    out[4 + c] = _mm512_shuffle_i32x4(b, b, kMiddle);
  }
}

// f16 in the low (kHigh: high) half of each int32 lane -> float.
template <bool kHigh>
inline __m512 HalfToFloat(__m512i v) {
  const __m512i h = kHigh ? _mm512_srli_epi32(v, 16) : v;
  return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_and_si512(h, _mm512_set1_epi32(0xffff))));
}

inline __m512i Byte(__m512i v, int k) {
  return _mm512_and_si512(_mm512_srli_epi32(v, 8 * k), _mm512_set1_epi32(0xff));
}

// ---- Packed panels ----------------------------------------------------------------------

struct PanelQ0 {  // Q8_0 / Q4_0: per block of 32
  __m512i quads[kChunkCols / 32][8];
  __m512 scale[kChunkCols / 32];
};

struct SuperQ4_K {  // per super-block of 256
  __m512i quads[8][8];
  __m512 scale[8];     // d * sc[j]
  __m512i minpair[8];  // (m[j], m[j]) as int16 pairs, against bsums[2j], bsums[2j+1]
  __m512 dmin;
};

struct SuperQ6_K {
  __m512i quads[16][4];
  __m512 scale[16];   // d * sc[k]
  __m512i scpair[8];  // (sc[2p], sc[2p+1]) as int16 pairs, against bsums[2p], bsums[2p+1]
  __m512 d32;         // 32 * d: the q - 32 offset
};

template <bool kQ4>
inline void PackQ0(const uint8_t* base, __m512i idx, int64_t nblocks, PanelQ0* p) {
  constexpr size_t kBs = kQ4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
  const __m512i nib = _mm512_set1_epi8(0x0f);
  for (int64_t g = 0; g < nblocks; ++g) {
    const uint8_t* blk = base + g * kBs;
    p->scale[g] = HalfToFloat<false>(Gather(idx, blk));
    if constexpr (kQ4) {
      DM_UNROLL
      for (int q = 0; q < 4; ++q) {
        const __m512i v = Gather(idx, blk + 2 + 4 * q);
        p->quads[g][q] = _mm512_and_si512(v, nib);
        p->quads[g][q + 4] = _mm512_and_si512(_mm512_srli_epi32(v, 4), nib);
      }
    } else {
      const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
      __m512i v[8];
      Gather8(idx, blk + 2, v);
      DM_UNROLL
      for (int q = 0; q < 8; ++q) p->quads[g][q] = _mm512_xor_si512(v[q], bias);
    }
  }
}

// d, dmin and the 6-bit scales/mins of a Q4_K (or Q5_K: same header) super-block.
inline void PackQ4_KHeader(const uint8_t* blk, __m512i idx, SuperQ4_K* p) {
  const __m512i hdr = Gather(idx, blk);
  const __m512 d = HalfToFloat<false>(hdr);
  p->dmin = HalfToFloat<true>(hdr);
  const __m512i s0 = Gather(idx, blk + 4), s1 = Gather(idx, blk + 8), s2 = Gather(idx, blk + 12);
  const __m512i m63 = _mm512_set1_epi32(63), m15 = _mm512_set1_epi32(15);
  for (int j = 0; j < 8; ++j) {
    __m512i sc, m;
    if (j < 4) {
      sc = _mm512_and_si512(Byte(s0, j), m63);
      m = _mm512_and_si512(Byte(s1, j), m63);
    } else {
      const __m512i b2 = Byte(s2, j - 4);
      sc = _mm512_or_si512(_mm512_and_si512(b2, m15),
                           _mm512_slli_epi32(_mm512_srli_epi32(Byte(s0, j - 4), 6), 4));
      m = _mm512_or_si512(_mm512_srli_epi32(b2, 4),
                          _mm512_slli_epi32(_mm512_srli_epi32(Byte(s1, j - 4), 6), 4));
    }
    p->scale[j] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc));
    p->minpair[j] = _mm512_or_si512(m, _mm512_slli_epi32(m, 16));
  }
}

inline void PackQ4_K(const uint8_t* base, __m512i idx, int64_t nsb, SuperQ4_K* p) {
  const __m512i nib = _mm512_set1_epi8(0x0f);
  for (int64_t s = 0; s < nsb; ++s, ++p) {
    const uint8_t* blk = base + s * sizeof(BlockQ4_K);
    PackQ4_KHeader(blk, idx, p);
    DM_UNROLL
    for (int half = 0; half < 2; ++half) {
      __m512i v[16];  // v[k]: bytes 16 + 64 * half + 4k, i.e. quad k % 8 of chunk c
      Gather16(idx, blk + 16 + 64 * half, v);
      DM_UNROLL
      for (int k = 0; k < 16; ++k) {
        const int c = 2 * half + k / 8, q = k % 8;
        p->quads[2 * c][q] = _mm512_and_si512(v[k], nib);
        p->quads[2 * c + 1][q] = _mm512_and_si512(_mm512_srli_epi32(v[k], 4), nib);
      }
    }
  }
}

inline void PackQ6_K(const uint8_t* base, __m512i idx, int64_t nsb, SuperQ6_K* p) {
  const __m512i nib = _mm512_set1_epi8(0x0f), two = _mm512_set1_epi8(0x03);
  for (int64_t s = 0; s < nsb; ++s, ++p) {
    const uint8_t* blk = base + s * sizeof(BlockQ6_K);
    const __m512 d = HalfToFloat<true>(Gather(idx, blk + 206));  // scales[14..15], d
    p->d32 = _mm512_mul_ps(d, _mm512_set1_ps(32.0f));
    __m512i sc[16];
    DM_UNROLL
    for (int i = 0; i < 4; ++i) {
      const __m512i v = Gather(idx, blk + 192 + 4 * i);
      DM_UNROLL
      for (int k = 0; k < 4; ++k) {
        sc[4 * i + k] = _mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * k), 24);
      }
    }
    DM_UNROLL
    for (int k = 0; k < 16; ++k) p->scale[k] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc[k]));
    DM_UNROLL
    for (int q = 0; q < 8; ++q) {
      p->scpair[q] = _mm512_or_si512(_mm512_and_si512(sc[2 * q], _mm512_set1_epi32(0xffff)),
                                     _mm512_slli_epi32(sc[2 * q + 1], 16));
    }
    __m512i qhs[16];  // qhs[8h + l / 4]: the qh bytes 32h + l..
    Gather16(idx, blk + 128, qhs);
    DM_UNROLL
    for (int h = 0; h < 2; ++h) {
      __m512i ql[16];  // ql[l / 4]: bytes 64h + l.., ql[8 + l / 4]: bytes 64h + 32 + l..
      Gather16(idx, blk + 64 * h, ql);
      for (int l = 0; l < 32; l += 4) {
        const __m512i lo = ql[l / 4];
        const __m512i hi = ql[8 + l / 4];
        const __m512i qh = qhs[8 * h + l / 4];
        const __m512i low[4] = {_mm512_and_si512(lo, nib), _mm512_and_si512(hi, nib),
                                _mm512_and_si512(_mm512_srli_epi32(lo, 4), nib),
                                _mm512_and_si512(_mm512_srli_epi32(hi, 4), nib)};
        DM_UNROLL
        for (int seg = 0; seg < 4; ++seg) {
          const __m512i hb = _mm512_and_si512(_mm512_srli_epi32(qh, 2 * seg), two);
          const int e = 128 * h + 32 * seg + l;  // first of the 4 elements
          p->quads[e / 16][(e % 16) / 4] = _mm512_or_si512(low[seg], _mm512_slli_epi32(hb, 4));
        }
      }
    }
  }
}

// ---- Register tiles: 16 rows x NT tokens --------------------------------------------------

template <int NT>
inline void TileQ0(const PanelQ0& p, int64_t nblocks, const PreparedQ8_0* a, int64_t b0,
                   __m512* acc) {
  for (int64_t g = 0; g < nblocks; ++g) {
    const int64_t b = b0 + g;
    __m512i ia[NT];
    DM_UNROLL
    for (int t = 0; t < NT; ++t) ia[t] = Bcast32(a[t].corr + b);
    DM_UNROLL
    for (int q = 0; q < 8; ++q) {
      const __m512i w = _mm512_load_si512(&p.quads[g][q]);
      DM_UNROLL
      for (int t = 0; t < NT; ++t) {
        ia[t] = DpbusdBcast(ia[t], w, a[t].qs + 32 * b + 4 * q);
      }
    }
    const __m512 sv = _mm512_load_ps(&p.scale[g]);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      float da;
      std::memcpy(&da, a[t].d + b, 4);
      acc[t] =
          _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[t]), _mm512_mul_ps(sv, _mm512_set1_ps(da)), acc[t]);
    }
  }
}

// Adds sum_p pairs[p] . bsums[2p, 2p+1] (int16 pairs) per token into is[t].
template <int NT>
inline void BsumTerm(const __m512i* pairs, const BlockQ8_K* const* y, __m512i* is) {
  DM_UNROLL
  for (int t = 0; t < NT; ++t) is[t] = _mm512_setzero_si512();
  DM_UNROLL
  for (int q = 0; q < 8; ++q) {
    const __m512i pv = _mm512_load_si512(&pairs[q]);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) is[t] = DpwssdBcast(is[t], pv, y[t]->bsums + 2 * q);
  }
}

template <int NT, int kGroups, int kQuads, typename Super>
inline void SuperGroups(const Super& p, const BlockQ8_K* const* y, __m512* sb) {
  for (int j = 0; j < kGroups; ++j) {
    __m512i ia[NT];
    DM_UNROLL
    for (int t = 0; t < NT; ++t) ia[t] = _mm512_setzero_si512();
    DM_UNROLL
    for (int q = 0; q < kQuads; ++q) {
      const __m512i w = _mm512_load_si512(&p.quads[j][q]);
      DM_UNROLL
      for (int t = 0; t < NT; ++t) {
        ia[t] = DpbusdBcast(ia[t], w, y[t]->qs + 4 * kQuads * j + 4 * q);
      }
    }
    const __m512 sv = _mm512_load_ps(&p.scale[j]);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      sb[t] = j == 0 ? _mm512_mul_ps(_mm512_cvtepi32_ps(ia[t]), sv)
                     : _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[t]), sv, sb[t]);
    }
  }
}

template <int NT>
inline void TileQ4_K(const SuperQ4_K* p, int64_t nsb, const BlockQ8_K* const* a, int64_t s0,
                     __m512* acc) {
  for (int64_t s = 0; s < nsb; ++s) {
    const BlockQ8_K* y[NT];
    DM_UNROLL
    for (int t = 0; t < NT; ++t) y[t] = a[t] + s0 + s;
    __m512 sb[NT];
    SuperGroups<NT, 8, 8>(p[s], y, sb);
    __m512i mins[NT];
    BsumTerm<NT>(p[s].minpair, y, mins);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      const __m512 da = _mm512_set1_ps(y[t]->d);
      acc[t] = _mm512_fmadd_ps(sb[t], da, acc[t]);
      acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(mins[t]), _mm512_mul_ps(p[s].dmin, da), acc[t]);
    }
  }
}

template <int NT>
inline void TileQ6_K(const SuperQ6_K* p, int64_t nsb, const BlockQ8_K* const* a, int64_t s0,
                     __m512* acc) {
  for (int64_t s = 0; s < nsb; ++s) {
    const BlockQ8_K* y[NT];
    DM_UNROLL
    for (int t = 0; t < NT; ++t) y[t] = a[t] + s0 + s;
    __m512 sb[NT];
    SuperGroups<NT, 16, 4>(p[s], y, sb);
    __m512i offs[NT];
    BsumTerm<NT>(p[s].scpair, y, offs);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      sb[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(offs[t]), p[s].d32, sb[t]);
      acc[t] = _mm512_fmadd_ps(sb[t], _mm512_set1_ps(y[t]->d), acc[t]);
    }
  }
}

// Q2_K / Q3_K / Q5_K panels and tiles (kernels_vnni_k-inl.h).
void PackKQuantLowBits(GgmlType wtype, const uint8_t* base, __m512i idx, int64_t nsb, void* panel);
template <int NT>
void TileKQuantLowBits(GgmlType wtype, const void* panel, int64_t nsb, const BlockQ8_K* const* a,
                       int64_t s0, __m512* acc);
// The quants_legacy.h types (kernels_vnni_prefill_legacy-inl.h).
void PackLegacy(GgmlType wtype, const uint8_t* base, __m512i idx, int64_t nu, void* panel);
template <int NT>
void TileLegacy(GgmlType wtype, const void* panel, int64_t units, int64_t u0, const uint8_t* act,
                size_t arow, int64_t n, __m512* acc);

// One token tile over one packed chunk: accumulators live in `out` between chunks.
template <int NT>
inline void TileTokens(GgmlType wtype, const void* panel, int64_t units, int64_t u0,
                       const uint8_t* act, size_t arow, int64_t n, float* out, int64_t out_stride,
                       __mmask16 mask) {
  __m512 acc[NT];
  DM_UNROLL
  for (int t = 0; t < NT; ++t) {
    acc[t] = u0 == 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask, out + t * out_stride);
  }
  if (IsLegacyQuant(wtype)) {
    TileLegacy<NT>(wtype, panel, units, u0, act, arow, n, acc);
  } else if (wtype == GgmlType::kQ8_0 || wtype == GgmlType::kQ4_0) {
    PreparedQ8_0 a[NT];
    DM_UNROLL
    for (int t = 0; t < NT; ++t) a[t] = PreparedQ8_0::At(act + t * arow, n);
    TileQ0<NT>(*static_cast<const PanelQ0*>(panel), units, a, u0, acc);
  } else {
    const BlockQ8_K* a[NT];
    DM_UNROLL
    for (int t = 0; t < NT; ++t) a[t] = reinterpret_cast<const BlockQ8_K*>(act + t * arow);
    if (wtype == GgmlType::kQ4_K) {
      TileQ4_K<NT>(static_cast<const SuperQ4_K*>(panel), units, a, u0, acc);
    } else if (wtype == GgmlType::kQ6_K) {
      TileQ6_K<NT>(static_cast<const SuperQ6_K*>(panel), units, a, u0, acc);
    } else {
      TileKQuantLowBits<NT>(wtype, panel, units, a, u0, acc);
    }
  }
  DM_UNROLL
  for (int t = 0; t < NT; ++t) _mm512_mask_storeu_ps(out + t * out_stride, mask, acc[t]);
}

void MatMulQuantPrefill(GgmlType wtype, const void* w, int64_t n, int64_t r0, int64_t r1,
                        const void* act, size_t arow, int64_t n_tokens, float* out,
                        int64_t out_stride) {
  static_assert(sizeof(SuperQ6_K) * (kChunkCols / 256) <= 24576);
  alignas(64) uint8_t panel[24576];
  const bool q0 = TraitsOf(wtype).block_elems == 32;
  const int64_t unit_cols = q0 ? 32 : 256;
  const int64_t units = n / unit_cols, chunk = kChunkCols / unit_cols;
  const size_t wrow = RowBytes(wtype, n);
  const size_t unit_bytes = wrow / static_cast<size_t>(units);
  const auto* a8 = static_cast<const uint8_t*>(act);
  for (int64_t p0 = r0; p0 < r1; p0 += 16) {
    const int rows = static_cast<int>(std::min<int64_t>(16, r1 - p0));
    const __mmask16 mask = static_cast<__mmask16>((1u << rows) - 1);
    // Rows past the end repeat the last one; their results are masked off.
    alignas(64) int32_t offs[16];
    DM_UNROLL
    for (int i = 0; i < 16; ++i) offs[i] = static_cast<int32_t>(std::min(i, rows - 1) * wrow);
    const __m512i idx = _mm512_load_si512(offs);
    const uint8_t* base = static_cast<const uint8_t*>(w) + p0 * wrow;
    for (int64_t u0 = 0; u0 < units; u0 += chunk) {
      const int64_t nu = std::min(chunk, units - u0);
      const uint8_t* cb = base + u0 * unit_bytes;
      switch (wtype) {
        case GgmlType::kQ8_0:
          PackQ0<false>(cb, idx, nu, reinterpret_cast<PanelQ0*>(panel));
          break;
        case GgmlType::kQ4_0:
          PackQ0<true>(cb, idx, nu, reinterpret_cast<PanelQ0*>(panel));
          break;
        case GgmlType::kQ4_K:
          PackQ4_K(cb, idx, nu, reinterpret_cast<SuperQ4_K*>(panel));
          break;
        case GgmlType::kQ2_K:
        case GgmlType::kQ3_K:
        case GgmlType::kQ5_K:
          PackKQuantLowBits(wtype, cb, idx, nu, panel);
          break;
        case GgmlType::kQ4_1:
        case GgmlType::kQ5_0:
        case GgmlType::kQ5_1:
        case GgmlType::kIQ4_NL:
        case GgmlType::kIQ4_XS:
          PackLegacy(wtype, cb, idx, nu, panel);
          break;
        default:
          PackQ6_K(cb, idx, nu, reinterpret_cast<SuperQ6_K*>(panel));
          break;
      }
      ForTokenTiles<kTileTokens>(n_tokens, [&](auto nt, int64_t t) {
        const uint8_t* at = a8 + t * arow;
        float* o = out + t * out_stride + p0;
        TileTokens<nt>(wtype, panel, nu, u0, at, arow, n, o, out_stride, mask);
      });
    }
  }
}

}  // namespace vnni
}  // namespace HWY_NAMESPACE
}  // namespace dormouse
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX3_DL
#endif  // include guard toggle
