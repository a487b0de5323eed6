// Per-target (Highway) matmuls of Q8_0, Q4_0, Q4_K and Q6_K weights for targets without
// AVX-512 VNNI (AVX2, SSE4, NEON, ...), for any number of tokens.
//
// The rows a thread owns are taken a tile at a time, and every group of up to 4 tokens passes
// over the tile while it is in cache: weights are read from memory once per matmul, not once
// per group of 4 tokens. K-quant tiles are first unpacked to int16 with each sub-block's
// scale folded in (exact: |q * scale| <= 4096), so the dot products are plain int16 widening
// multiply-adds into int32 lanes, reduced once per 256-element super-block. Their integer
// sums are exact and the float accumulation follows the reference's order, so every target
// gives the reference's bits (and the same greedy tokens). AVX2 has its own kernels for
// decode (kernels_avx2_decode-inl.h) and prefill (kernels_avx2_prefill-inl.h).
#if defined(DORMOUSE_ENGINE_KERNELS_PORTABLE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DORMOUSE_ENGINE_KERNELS_PORTABLE_INL_H_
#undef DORMOUSE_ENGINE_KERNELS_PORTABLE_INL_H_
#else
#define DORMOUSE_ENGINE_KERNELS_PORTABLE_INL_H_
#endif

#include <algorithm>
#include <vector>

#include "engine/kernels_avx2_decode-inl.h"
#include "engine/kernels_internal.h"
#include "engine/quants.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dormouse {
namespace HWY_NAMESPACE {
namespace portable {
namespace hn = hwy::HWY_NAMESPACE;

// int16 lanes for the dot products (at most a Q8_0 block's 32), and their int8 / int32
// partners.
using D16 = hn::CappedTag<int16_t, 32>;
using D8 = hn::Rebind<int8_t, D16>;
using D32 = hn::RepartitionToWide<D16>;
// At most 16 lanes for unpacking, so that one vector never straddles two scale groups.
using U16 = hn::CappedTag<uint16_t, 16>;
using U8 = hn::Rebind<uint8_t, U16>;
using S16 = hn::RebindToSigned<U16>;

// A tile of K-quant rows unpacked once for every group of tokens: per row n int16 weights
// (scale folded in); per super-block d (and for Q4_K dmin and the 8 sub-block mins).
struct Panel {
  std::vector<int16_t> w, m;
  std::vector<float> d, dmin;
  int64_t n = 0, nsb = 0;

  void Reserve(int64_t rows, int64_t n_elems) {
    n = n_elems;
    nsb = n_elems / kQK_K;
    const auto grow = [](auto& v, int64_t size) {
      if (static_cast<int64_t>(v.size()) < size) v.resize(static_cast<size_t>(size));
    };
    grow(w, rows * n);
    grow(m, rows * nsb * 8);
    grow(d, rows * nsb);
    grow(dmin, rows * nsb);
  }
};

HWY_INLINE void UnpackQ4_K(const BlockQ4_K* x, Panel& p, int64_t row) {
  const U16 du16;
  const U8 du8;
  const S16 d16;
  const int64_t N = static_cast<int64_t>(hn::Lanes(du16));
  const auto mask = hn::Set(du16, 0xf);
  for (int64_t b = 0; b < p.nsb; ++b) {
    const int64_t sb = row * p.nsb + b;
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; ++j) {
      GetScaleMinK4(j, x[b].scales, &sc[j], &mn[j]);
      p.m[8 * sb + j] = mn[j];
    }
    p.d[sb] = F16ToF32(x[b].d);
    p.dmin[sb] = F16ToF32(x[b].dmin);
    int16_t* o = p.w.data() + row * p.n + kQK_K * b;
    for (int k = 0; k < 4; ++k) {  // qs[32k + l]: element 64k + l (low), 64k + 32 + l (high)
      const auto s_lo = hn::Set(d16, sc[2 * k]), s_hi = hn::Set(d16, sc[2 * k + 1]);
      for (int64_t l = 0; l < 32; l += N) {
        const auto v = hn::PromoteTo(du16, hn::LoadU(du8, x[b].qs + 32 * k + l));
        hn::StoreU(hn::Mul(hn::BitCast(d16, hn::And(v, mask)), s_lo), d16, o + 64 * k + l);
        hn::StoreU(hn::Mul(hn::BitCast(d16, hn::ShiftRight<4>(v)), s_hi), d16, o + 64 * k + 32 + l);
      }
    }
  }
}

HWY_INLINE void UnpackQ6_K(const BlockQ6_K* x, Panel& p, int64_t row) {
  const U16 du16;
  const U8 du8;
  const S16 d16;
  const int64_t N = static_cast<int64_t>(hn::Lanes(du16));
  const auto m4 = hn::Set(du16, 0xf), m3 = hn::Set(du16, 3);
  const auto k32 = hn::Set(d16, 32);
  for (int64_t b = 0; b < p.nsb; ++b) {
    p.d[row * p.nsb + b] = F16ToF32(x[b].d);
    for (int h = 0; h < 2; ++h) {  // 128 elements from ql[64h, +64) and qh[32h, +32)
      const uint8_t* ql = x[b].ql + 64 * h;
      const uint8_t* qh = x[b].qh + 32 * h;
      const int8_t* sc = x[b].scales + 8 * h;
      int16_t* o = p.w.data() + row * p.n + kQK_K * b + 128 * h;
      for (int64_t l = 0; l < 32; l += N) {
        const auto l0 = hn::PromoteTo(du16, hn::LoadU(du8, ql + l));
        const auto l1 = hn::PromoteTo(du16, hn::LoadU(du8, ql + 32 + l));
        const auto hb = hn::PromoteTo(du16, hn::LoadU(du8, qh + l));
        const decltype(l0) q[4] = {
            hn::Or(hn::And(l0, m4), hn::ShiftLeft<4>(hn::And(hb, m3))),
            hn::Or(hn::And(l1, m4), hn::ShiftLeft<4>(hn::And(hn::ShiftRight<2>(hb), m3))),
            hn::Or(hn::ShiftRight<4>(l0), hn::ShiftLeft<4>(hn::And(hn::ShiftRight<4>(hb), m3))),
            hn::Or(hn::ShiftRight<4>(l1), hn::ShiftLeft<4>(hn::ShiftRight<6>(hb)))};
        for (int k = 0; k < 4; ++k) {  // element 32k + l: scale group 2k + l / 16
          const auto s = hn::Set(d16, sc[2 * k + l / 16]);
          hn::StoreU(hn::Mul(hn::Sub(hn::BitCast(d16, q[k]), k32), s), d16, o + 32 * k + l);
        }
      }
    }
  }
}

// sum_i w[i] * a[i] over one super-block, for NT tokens at once: exact int32 sums.
template <int NT>
HWY_INLINE void SuperBlockDots(const int16_t* w, const BlockQ8_K* const* a, int64_t b,
                               int32_t* isum) {
  const D16 d16;
  const D8 d8;
  const D32 d32;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d16));
  // The token loops are unrolled so that the accumulators live in registers.
  hn::Vec<D32> s0[NT], s1[NT];
  HWY_UNROLL(4) for (int t = 0; t < NT; ++t) s0[t] = s1[t] = hn::Zero(d32);
  for (int64_t i = 0; i < kQK_K; i += N) {
    const auto vw = hn::LoadU(d16, w + i);
    HWY_UNROLL(4) for (int t = 0; t < NT; ++t) {
      const auto va = hn::PromoteTo(d16, hn::LoadU(d8, a[t][b].qs + i));
      s0[t] = hn::ReorderWidenMulAccumulate(d32, vw, va, s0[t], s1[t]);
    }
  }
  HWY_UNROLL(4) for (int t = 0; t < NT; ++t) {
    isum[t] = hn::GetLane(hn::SumOfLanes(d32, hn::Add(s0[t], s1[t])));
  }
}

// Row `row` of a Q4_K or Q6_K panel against NT tokens, in the reference's float order.
template <int NT, bool kQ4>
HWY_INLINE void PanelRow(const Panel& p, int64_t row, const BlockQ8_K* const* a, float* out,
                         int64_t out_stride) {
  float acc[NT] = {};
  for (int64_t b = 0; b < p.nsb; ++b) {
    const int64_t sb = row * p.nsb + b;
    int32_t isum[NT];
    SuperBlockDots<NT>(p.w.data() + row * p.n + kQK_K * b, a, b, isum);
    for (int t = 0; t < NT; ++t) {
      const BlockQ8_K& y = a[t][b];
      acc[t] += p.d[sb] * y.d * static_cast<float>(isum[t]);
      if constexpr (kQ4) {
        int32_t mins = 0;
        for (int j = 0; j < 8; ++j) mins += p.m[8 * sb + j] * (y.bsums[2 * j] + y.bsums[2 * j + 1]);
        acc[t] -= p.dmin[sb] * y.d * static_cast<float>(mins);
      }
    }
  }
  for (int t = 0; t < NT; ++t) out[t * out_stride] = acc[t];
}

// Few tokens (decode): a Q4_K row unpacked in registers and dotted at once, no panel. Each
// pair of sub-blocks sums into int32 lanes that are then scaled: exact, as PanelRow.
template <int NT>
HWY_INLINE void RowQ4_K(const BlockQ4_K* x, int64_t nsb, const BlockQ8_K* const* a, float* out,
                        int64_t out_stride) {
  const U16 du16;
  const U8 du8;
  const S16 d16;
  const hn::Rebind<int8_t, S16> d8;
  const hn::RepartitionToWide<S16> d32;
  const int64_t N = static_cast<int64_t>(hn::Lanes(du16));
  const auto mask = hn::Set(du16, 0xf);
  float acc[NT] = {};
  for (int64_t b = 0; b < nsb; ++b) {
    uint8_t sc[8], mn[8];
    HWY_UNROLL(8) for (int j = 0; j < 8; ++j) GetScaleMinK4(j, x[b].scales, &sc[j], &mn[j]);
    HWY_ALIGN int16_t mn16[16];  // each sub-block's min twice, against the 16 bsums
    for (int j = 0; j < 16; ++j) mn16[j] = mn[j / 2];
    hn::Vec<decltype(d32)> tot[NT];
    HWY_UNROLL(4) for (int t = 0; t < NT; ++t) tot[t] = hn::Zero(d32);
    HWY_UNROLL(4) for (int k = 0; k < 4; ++k) {  // qs[32k + l]: 64k + l (low), 64k + 32 + l (high)
      hn::Vec<decltype(d32)> lo[NT], hi[NT], lo1[NT], hi1[NT];  // *1: sum1 of other targets
      HWY_UNROLL(4) for (int t = 0; t < NT; ++t) lo[t] = hi[t] = lo1[t] = hi1[t] = hn::Zero(d32);
      HWY_UNROLL(2) for (int64_t l = 0; l < 32; l += N) {
        const auto v = hn::PromoteTo(du16, hn::LoadU(du8, x[b].qs + 32 * k + l));
        const auto wl = hn::BitCast(d16, hn::And(v, mask));
        const auto wh = hn::BitCast(d16, hn::ShiftRight<4>(v));
        HWY_UNROLL(4) for (int t = 0; t < NT; ++t) {
          const int8_t* q = a[t][b].qs + 64 * k + l;
          lo[t] = hn::ReorderWidenMulAccumulate(d32, wl, hn::PromoteTo(d16, hn::LoadU(d8, q)),
                                                lo[t], lo1[t]);
          hi[t] = hn::ReorderWidenMulAccumulate(d32, wh, hn::PromoteTo(d16, hn::LoadU(d8, q + 32)),
                                                hi[t], hi1[t]);
        }
      }
      const auto s_lo = hn::Set(d32, sc[2 * k]), s_hi = hn::Set(d32, sc[2 * k + 1]);
      HWY_UNROLL(4) for (int t = 0; t < NT; ++t) {
        tot[t] = hn::Add(tot[t], hn::Add(hn::Mul(hn::Add(lo[t], lo1[t]), s_lo),
                                         hn::Mul(hn::Add(hi[t], hi1[t]), s_hi)));
      }
    }
    const float d = F16ToF32(x[b].d), dmin = F16ToF32(x[b].dmin);
    HWY_UNROLL(4) for (int t = 0; t < NT; ++t) {
      const BlockQ8_K& y = a[t][b];
      auto m0 = hn::Zero(d32), m1 = hn::Zero(d32);
      for (int64_t i = 0; i < 16; i += N) {
        m0 = hn::ReorderWidenMulAccumulate(d32, hn::Load(d16, mn16 + i),
                                           hn::LoadU(d16, y.bsums + i), m0, m1);
      }
      const int32_t mins = hn::GetLane(hn::SumOfLanes(d32, hn::Add(m0, m1)));
      const int32_t scaled = hn::GetLane(hn::SumOfLanes(d32, tot[t]));
      acc[t] += d * y.d * static_cast<float>(scaled);
      acc[t] -= dmin * y.d * static_cast<float>(mins);
    }
  }
  for (int t = 0; t < NT; ++t) out[t * out_stride] = acc[t];
}

// Few tokens (decode): a Q6_K row unpacked in registers, each 16-element scale group's
// weights multiplied by its scale in int16 (exact) and dotted at once, no panel.
template <int NT>
HWY_INLINE void RowQ6_K(const BlockQ6_K* x, int64_t nsb, const BlockQ8_K* const* a, float* out,
                        int64_t out_stride) {
  const U16 du16;
  const U8 du8;
  const S16 d16;
  const hn::Rebind<int8_t, S16> d8;
  const hn::RepartitionToWide<S16> d32;
  const int64_t N = static_cast<int64_t>(hn::Lanes(du16));
  const auto m4 = hn::Set(du16, 0xf), m3 = hn::Set(du16, 3);
  const auto k32 = hn::Set(d16, 32);
  float acc[NT] = {};
  for (int64_t b = 0; b < nsb; ++b) {
    hn::Vec<decltype(d32)> s0[NT], s1[NT];
    HWY_UNROLL(4) for (int t = 0; t < NT; ++t) s0[t] = s1[t] = hn::Zero(d32);
    HWY_UNROLL(2) for (int h = 0; h < 2; ++h) {  // 128 elements from ql[64h, +64) and qh[32h, +32)
      const uint8_t* ql = x[b].ql + 64 * h;
      const uint8_t* qh = x[b].qh + 32 * h;
      const int8_t* sc = x[b].scales + 8 * h;
      HWY_UNROLL(2) for (int64_t l = 0; l < 32; l += N) {
        const auto l0 = hn::PromoteTo(du16, hn::LoadU(du8, ql + l));
        const auto l1 = hn::PromoteTo(du16, hn::LoadU(du8, ql + 32 + l));
        const auto hb = hn::PromoteTo(du16, hn::LoadU(du8, qh + l));
        const decltype(l0) q[4] = {
            hn::Or(hn::And(l0, m4), hn::ShiftLeft<4>(hn::And(hb, m3))),
            hn::Or(hn::And(l1, m4), hn::ShiftLeft<4>(hn::And(hn::ShiftRight<2>(hb), m3))),
            hn::Or(hn::ShiftRight<4>(l0), hn::ShiftLeft<4>(hn::And(hn::ShiftRight<4>(hb), m3))),
            hn::Or(hn::ShiftRight<4>(l1), hn::ShiftLeft<4>(hn::ShiftRight<6>(hb)))};
        HWY_UNROLL(4) for (int k = 0; k < 4; ++k) {  // element 32k + l: scale group 2k + l / 16
          const auto w =
              hn::Mul(hn::Sub(hn::BitCast(d16, q[k]), k32), hn::Set(d16, sc[2 * k + l / 16]));
          HWY_UNROLL(4) for (int t = 0; t < NT; ++t) {
            const int8_t* y = a[t][b].qs + 128 * h + 32 * k + l;
            s0[t] = hn::ReorderWidenMulAccumulate(d32, w, hn::PromoteTo(d16, hn::LoadU(d8, y)),
                                                  s0[t], s1[t]);
          }
        }
      }
    }
    const float d = F16ToF32(x[b].d);
    HWY_UNROLL(4) for (int t = 0; t < NT; ++t) {
      const int32_t isum = hn::GetLane(hn::SumOfLanes(d32, hn::Add(s0[t], s1[t])));
      acc[t] += d * a[t][b].d * static_cast<float>(isum);
    }
  }
  for (int t = 0; t < NT; ++t) out[t * out_stride] = acc[t];
}

// One Q8_0 or Q4_0 row against NT tokens: exact block sums, accumulated as the reference
// does (bit for bit: a lane-parallel float sum flips near-tied greedy tokens).
template <int NT>
HWY_INLINE void RowQ0(bool q4, const uint8_t* row, int64_t nb, const PreparedQ8_0* a, float* out,
                      int64_t out_stride) {
  const D16 d16;
  const D8 d8;
  const D32 d32;
  const U16 du16;
  const U8 du8;
  const S16 s16;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d16)),
                NU = static_cast<int64_t>(hn::Lanes(du16));
  const size_t bs = q4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
  float acc[NT] = {};
  HWY_ALIGN int16_t wq[32];
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = row + b * bs;
    const float dw = F16ToF32(LoadUnaligned(reinterpret_cast<const uint16_t*>(blk)));
    if (q4) {  // byte j: element j (low nibble), element j + 16 (high)
      const auto mask = hn::Set(du16, 0xf);
      const auto k8 = hn::Set(s16, 8);
      for (int64_t l = 0; l < 16; l += NU) {
        const auto v = hn::PromoteTo(du16, hn::LoadU(du8, blk + 2 + l));
        hn::StoreU(hn::Sub(hn::BitCast(s16, hn::And(v, mask)), k8), s16, wq + l);
        hn::StoreU(hn::Sub(hn::BitCast(s16, hn::ShiftRight<4>(v)), k8), s16, wq + 16 + l);
      }
    } else {
      const auto* q = reinterpret_cast<const int8_t*>(blk + 2);
      for (int64_t i = 0; i < 32; i += N) {
        hn::StoreU(hn::PromoteTo(d16, hn::LoadU(d8, q + i)), d16, wq + i);
      }
    }
    HWY_UNROLL(4) for (int t = 0; t < NT; ++t) {
      auto s0 = hn::Zero(d32), s1 = hn::Zero(d32);
      for (int64_t i = 0; i < 32; i += N) {
        const auto va = hn::PromoteTo(d16, hn::LoadU(d8, a[t].qs + 32 * b + i));
        s0 = hn::ReorderWidenMulAccumulate(d32, hn::LoadU(d16, wq + i), va, s0, s1);
      }
      const int32_t isum = hn::GetLane(hn::SumOfLanes(d32, hn::Add(s0, s1)));
      acc[t] += static_cast<float>(isum) * (dw * LoadUnaligned(a[t].d + b));
    }
  }
  for (int t = 0; t < NT; ++t) out[t * out_stride] = acc[t];
}

// Rows [r0, r1) (a tile, unpacked into `p` for K-quants when `panel`) against NT tokens.
template <int NT>
HWY_INLINE void TileNT(GgmlType wtype, const uint8_t* w, size_t wrow, int64_t n, int64_t r0,
                       int64_t r1, bool panel, const Panel& p, const uint8_t* act, size_t arow,
                       float* out, int64_t out_stride) {
  if (wtype == GgmlType::kQ8_0 || wtype == GgmlType::kQ4_0) {
    PreparedQ8_0 a[NT];
    for (int t = 0; t < NT; ++t) a[t] = PreparedQ8_0::At(act + t * arow, n);
    const bool q4 = wtype == GgmlType::kQ4_0;
#if HWY_TARGET == HWY_AVX2
    // (AVX2's Q4_0 goes to kernels_avx2_legacy-inl.h before it gets here.)
    if (!q4) return avx2::RowsQ8_0<NT>(w, wrow, r0, r1, n / 32, a, out, out_stride);
#endif
    for (int64_t r = r0; r < r1; ++r) RowQ0<NT>(q4, w + r * wrow, n / 32, a, out + r, out_stride);
    return;
  }
  const BlockQ8_K* a[NT];
  for (int t = 0; t < NT; ++t) a[t] = reinterpret_cast<const BlockQ8_K*>(act + t * arow);
  if (!panel) {
#if HWY_TARGET == HWY_AVX2
    avx2::RowsK<NT>(wtype == GgmlType::kQ4_K, w, wrow, r0, r1, n / kQK_K, a, out, out_stride);
#else
    for (int64_t r = r0; r < r1; ++r) {
      if (wtype == GgmlType::kQ4_K) {
        RowQ4_K<NT>(reinterpret_cast<const BlockQ4_K*>(w + r * wrow), n / kQK_K, a, out + r,
                    out_stride);
      } else {
        RowQ6_K<NT>(reinterpret_cast<const BlockQ6_K*>(w + r * wrow), n / kQK_K, a, out + r,
                    out_stride);
      }
    }
#endif
    return;
  }
  for (int64_t r = r0; r < r1; ++r) {
    if (wtype == GgmlType::kQ4_K) {
      PanelRow<NT, true>(p, r - r0, a, out + r, out_stride);
    } else {
      PanelRow<NT, false>(p, r - r0, a, out + r, out_stride);
    }
  }
}

// Up to this many tokens K-quant rows are unpacked in registers (RowQ4_K, RowQ6_K) rather
// than into a panel.
constexpr int64_t kDirectMaxTokens = 4;

inline bool HasTiledKernel(GgmlType t) {
  return t == GgmlType::kQ8_0 || t == GgmlType::kQ4_0 || t == GgmlType::kQ4_K ||
         t == GgmlType::kQ6_K;
}

// Rows per tile: the tile (unpacked: 2 bytes per weight) stays in L2 across token groups.
inline int64_t TileRows(int64_t n) {
  return std::clamp<int64_t>((int64_t{128} << 10) / (2 * n), 1, 16);
}

void MatMulTiled(GgmlType wtype, const void* w, int64_t n, int64_t r0, int64_t r1, const void* act,
                 size_t arow, int64_t n_tokens, float* out, int64_t out_stride) {
  const auto* w8 = static_cast<const uint8_t*>(w);
  const auto* a8 = static_cast<const uint8_t*>(act);
  const size_t wrow = RowBytes(wtype, n);
  // K-quants unpack a tile once for many tokens; for a few, in registers as they go.
  const bool kquant =
      (wtype == GgmlType::kQ4_K || wtype == GgmlType::kQ6_K) && n_tokens > kDirectMaxTokens;
  thread_local Panel panel;
  const int64_t tile = TileRows(n);
  for (int64_t rt = r0; rt < r1; rt += tile) {
    const int64_t re = std::min(r1, rt + tile);
    if (kquant) {
      panel.Reserve(re - rt, n);
      for (int64_t r = rt; r < re; ++r) {
        if (wtype == GgmlType::kQ4_K) {
          UnpackQ4_K(reinterpret_cast<const BlockQ4_K*>(w8 + r * wrow), panel, r - rt);
        } else {
          UnpackQ6_K(reinterpret_cast<const BlockQ6_K*>(w8 + r * wrow), panel, r - rt);
        }
      }
    }
    ForTokenTiles<4>(n_tokens, [&](auto nt, int64_t t) {
      const uint8_t* at = a8 + t * arow;
      float* o = out + t * out_stride;
      TileNT<nt>(wtype, w8, wrow, n, rt, re, kquant, panel, at, arow, o, out_stride);
    });
  }
}

}  // namespace portable
}  // namespace HWY_NAMESPACE
}  // namespace dormouse
HWY_AFTER_NAMESPACE();

#endif  // include guard toggle
