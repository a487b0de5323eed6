// AVX-512 VNNI prefill (many tokens) matmuls of the quants_legacy.h types, on the panels
// of kernels_vnni_prefill-inl.h: 16 rows x up to 1024 columns gathered once, transposed
// so that each 64-byte vector holds 4 consecutive unsigned quants of 16 rows, and reused
// for every token. Q5_0 and IQ4_NL pack into the Q8_0/Q4_0 panel (their +16 / +128 offsets
// cancel through the prepared corr, as Q4_0's +8); Q4_1/Q5_1 add the per-block m * s;
// IQ4_XS is a Q6_K-like super-block with the +128 offset removed through the bsums.
// Only for HWY_AVX3_DL.
#if defined(DORMOUSE_ENGINE_KERNELS_VNNI_PREFILL_LEGACY_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DORMOUSE_ENGINE_KERNELS_VNNI_PREFILL_LEGACY_INL_H_
#undef DORMOUSE_ENGINE_KERNELS_VNNI_PREFILL_LEGACY_INL_H_
#else
#define DORMOUSE_ENGINE_KERNELS_VNNI_PREFILL_LEGACY_INL_H_
#endif

#if HWY_TARGET == HWY_AVX3_DL
#include <immintrin.h>

#include <cstring>

#include "engine/kernels_internal.h"
#include "engine/kernels_legacy.h"
#include "engine/kernels_vnni_decode_legacy-inl.h"
#include "engine/kernels_vnni_ops-inl.h"
#include "engine/kernels_vnni_prefill-inl.h"
#include "engine/quants_legacy.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dormouse {
namespace HWY_NAMESPACE {
namespace vnni {

struct PanelQ1 {  // Q4_1 / Q5_1: per block of 32
  __m512i quads[kChunkCols / 32][8];
  __m512 scale[kChunkCols / 32];
  __m512 min[kChunkCols / 32];
};

struct SuperIQ4_XS {  // per super-block of 256
  __m512i quads[8][8];
  __m512 scale[8];    // d * (ls[j] - 32)
  __m512i lspair[8];  // (ls[j] - 32) twice as int16, against bsums[2j], bsums[2j + 1]
  __m512 d128;        // 128 * d: the +128 offset of the levels
};

static_assert(sizeof(PanelQ1) <= 24576 && sizeof(SuperIQ4_XS) * (kChunkCols / 256) <= 24576);

// The 4 bits of t (low bits of each int32 lane) as bit 4 of its 4 bytes.
inline __m512i SpreadBits(__m512i t) {
  const __m512i x = _mm512_mullo_epi32(_mm512_and_si512(t, _mm512_set1_epi32(0xf)),
                                       _mm512_set1_epi32(0x00204081));
  return _mm512_slli_epi32(_mm512_and_si512(x, _mm512_set1_epi32(0x01010101)), 4);
}

// Packs 32-element blocks into quads; scales and (Q4_1/Q5_1) mins.
template <GgmlType kType>
inline void Pack32(const uint8_t* base, __m512i idx, int64_t nblocks, __m512i (*quads)[8],
                   __m512* scale, __m512* min) {
  using L = Layout32<kType>;
  const __m512i nib = _mm512_set1_epi8(0x0f);
  const __m512i table = L::kIQ4 ? IQ4Table() : _mm512_setzero_si512();
  for (int64_t g = 0; g < nblocks; ++g) {
    const uint8_t* blk = base + g * L::kBytes;
    const __m512i hdr = Gather(idx, blk);
    scale[g] = HalfToFloat<false>(hdr);
    if constexpr (L::kMin) min[g] = HalfToFloat<true>(hdr);
    const __m512i qh = L::kQ5 ? Gather(idx, blk + L::kQh) : _mm512_setzero_si512();
    DM_UNROLL
    for (int q = 0; q < 4; ++q) {
      const __m512i v = Gather(idx, blk + L::kQs + 4 * q);
      __m512i lo = _mm512_and_si512(v, nib);
      __m512i hi = _mm512_and_si512(_mm512_srli_epi32(v, 4), nib);
      if constexpr (L::kQ5) {
        lo = _mm512_or_si512(lo, SpreadBits(_mm512_srli_epi32(qh, 4 * q)));
        hi = _mm512_or_si512(hi, SpreadBits(_mm512_srli_epi32(qh, 16 + 4 * q)));
      }
      if constexpr (L::kIQ4) {
        lo = _mm512_shuffle_epi8(table, lo);
        hi = _mm512_shuffle_epi8(table, hi);
      }
      quads[g][q] = lo;
      quads[g][q + 4] = hi;
    }
  }
}

inline void PackIQ4_XS(const uint8_t* base, __m512i idx, int64_t nsb, SuperIQ4_XS* p) {
  const __m512i nib = _mm512_set1_epi8(0x0f), table = IQ4Table();
  for (int64_t s = 0; s < nsb; ++s, ++p) {
    const uint8_t* blk = base + s * sizeof(BlockIQ4_XS);
    const __m512i hdr = Gather(idx, blk);  // d | scales_h << 16
    const __m512 d = HalfToFloat<false>(hdr);
    p->d128 = _mm512_mul_ps(d, _mm512_set1_ps(128.0f));
    const __m512i sh = _mm512_srli_epi32(hdr, 16), sl = Gather(idx, blk + 4);
    DM_UNROLL
    for (int j = 0; j < 8; ++j) {
      const __m512i lo4 = _mm512_and_si512(_mm512_srli_epi32(sl, 4 * j), _mm512_set1_epi32(0xf));
      const __m512i hi2 = _mm512_and_si512(_mm512_srli_epi32(sh, 2 * j), _mm512_set1_epi32(3));
      const __m512i l =
          _mm512_sub_epi32(_mm512_or_si512(lo4, _mm512_slli_epi32(hi2, 4)), _mm512_set1_epi32(32));
      p->scale[j] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(l));
      p->lspair[j] =
          _mm512_or_si512(_mm512_and_si512(l, _mm512_set1_epi32(0xffff)), _mm512_slli_epi32(l, 16));
    }
    DM_UNROLL
    for (int j = 0; j < 8; ++j) {
      DM_UNROLL
      for (int q = 0; q < 4; ++q) {
        const __m512i v = Gather(idx, blk + 8 + 16 * j + 4 * q);
        p->quads[j][q] = _mm512_shuffle_epi8(table, _mm512_and_si512(v, nib));
        p->quads[j][q + 4] =
            _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srli_epi32(v, 4), nib));
      }
    }
  }
}

// MatMulQuantPrefill's packing step for the quants_legacy.h types.
void PackLegacy(GgmlType wtype, const uint8_t* base, __m512i idx, int64_t nu, void* panel) {
  auto* q0 = static_cast<PanelQ0*>(panel);
  auto* q1 = static_cast<PanelQ1*>(panel);
  switch (wtype) {
    case GgmlType::kQ5_0:
      return Pack32<GgmlType::kQ5_0>(base, idx, nu, q0->quads, q0->scale, nullptr);
    case GgmlType::kIQ4_NL:
      return Pack32<GgmlType::kIQ4_NL>(base, idx, nu, q0->quads, q0->scale, nullptr);
    case GgmlType::kQ4_1:
      return Pack32<GgmlType::kQ4_1>(base, idx, nu, q1->quads, q1->scale, q1->min);
    case GgmlType::kQ5_1:
      return Pack32<GgmlType::kQ5_1>(base, idx, nu, q1->quads, q1->scale, q1->min);
    default:
      return PackIQ4_XS(base, idx, nu, static_cast<SuperIQ4_XS*>(panel));
  }
}

template <int NT>
inline void TileQ1(const PanelQ1& p, int64_t nblocks, const PreparedQ8_1* a, int64_t b0,
                   __m512* acc) {
  for (int64_t g = 0; g < nblocks; ++g) {
    const int64_t b = b0 + g;
    __m512i ia[NT];
    DM_UNROLL
    for (int t = 0; t < NT; ++t) ia[t] = _mm512_setzero_si512();
    DM_UNROLL
    for (int q = 0; q < 8; ++q) {
      const __m512i w = _mm512_load_si512(&p.quads[g][q]);
      DM_UNROLL
      for (int t = 0; t < NT; ++t) ia[t] = DpbusdBcast(ia[t], w, a[t].qs + 32 * b + 4 * q);
    }
    const __m512 sv = _mm512_load_ps(&p.scale[g]), mv = _mm512_load_ps(&p.min[g]);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      acc[t] =
          _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[t]),
                          _mm512_mul_ps(sv, _mm512_set1_ps(LoadUnaligned(a[t].d + b))), acc[t]);
      acc[t] = _mm512_fmadd_ps(mv, _mm512_set1_ps(LoadUnaligned(a[t].s + b)), acc[t]);
    }
  }
}

template <int NT>
inline void TileIQ4_XS(const SuperIQ4_XS* p, int64_t nsb, const BlockQ8_K* const* a, int64_t s0,
                       __m512* acc) {
  for (int64_t s = 0; s < nsb; ++s) {
    const BlockQ8_K* y[NT];
    DM_UNROLL
    for (int t = 0; t < NT; ++t) y[t] = a[t] + s0 + s;
    __m512 sb[NT];
    SuperGroups<NT, 8, 8>(p[s], y, sb);
    __m512i offs[NT];
    BsumTerm<NT>(p[s].lspair, y, offs);
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      sb[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(offs[t]), p[s].d128, sb[t]);
      acc[t] = _mm512_fmadd_ps(sb[t], _mm512_set1_ps(y[t]->d), acc[t]);
    }
  }
}

// TileTokens' step for the quants_legacy.h types: units blocks from u0 into acc.
template <int NT>
void TileLegacy(GgmlType wtype, const void* panel, int64_t units, int64_t u0, const uint8_t* act,
                size_t arow, int64_t n, __m512* acc) {
  if (wtype == GgmlType::kQ5_0 || wtype == GgmlType::kIQ4_NL) {
    PreparedQ8_0 a[NT];
    DM_UNROLL
    for (int t = 0; t < NT; ++t) a[t] = PreparedQ8_0::At(act + t * arow, n);
    TileQ0<NT>(*static_cast<const PanelQ0*>(panel), units, a, u0, acc);
  } else if (UsesQ8_1(wtype)) {
    PreparedQ8_1 a[NT];
    DM_UNROLL
    for (int t = 0; t < NT; ++t) a[t] = PreparedQ8_1::At(act + t * arow, n);
    TileQ1<NT>(*static_cast<const PanelQ1*>(panel), units, a, u0, acc);
  } else {
    const BlockQ8_K* a[NT];
    DM_UNROLL
    for (int t = 0; t < NT; ++t) a[t] = reinterpret_cast<const BlockQ8_K*>(act + t * arow);
    TileIQ4_XS<NT>(static_cast<const SuperIQ4_XS*>(panel), units, a, u0, acc);
  }
}

}  // namespace vnni
}  // namespace HWY_NAMESPACE
}  // namespace dormouse
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX3_DL
#endif  // include guard toggle
