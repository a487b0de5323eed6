// The multi-row F16 attention (attention.h, AttendRowsF16) apart from its vector work, written
// once for its AVX-512, AVX2 and Highway kernels (attention_rows_avx512.cc,
// attention_rows_avx2.cc, attention_rows_vec-inl.h):
// the rows' softmax state, where a block's keys and values come from, and the driver (the
// rows' queries and accumulators, the walk over blocks of keys and which rows see each one,
// the final 1/S and stats). `Target` supplies the vector steps, each with its target
// attribute:
//   static bool Convert(int head_dim, int n): whether n rows share one conversion of each
//     block's keys and values (else they read the cache's F16 rows in place);
//   template <int kHeadDim> static void LoadF16(const uint16_t* x, float* out): kHeadDim
//     F16 values to F32 (out 64-byte aligned);
//   static constexpr int kScoreKeys: keys that the score pass reads at a time;
//   template <int kHeadDim> static void ConvertBlock(const AttentionArgs& a, const uint8_t*
//     base, int64_t j0, int n, float* out): ConvertRows<Target, kHeadDim>, compiled for the
//     target (and kept out of line, as it is called twice per block);
//   template <int kHeadDim, class Keys> static void TransposeTail(const Keys&, int n,
//     double* tail): for head_dim 96, the block's first n keys' last 32 dimensions (kTail)
//     as doubles, tail[i * kKeys + j] = dimension 64 + i of key j, zero past the keys read;
//   template <int kHeadDim, class Keys, class Values> static void AttendBlock(const Keys&,
//     const Values&, const double* tail, float scale, float softcap, int m,
//     const float* const* qf, RowState* const* rows, float* const* accs, const int* n): one
//     block for the m rows that see some of it (tail: TransposeTail's, when kTail<kHeadDim> >
//     0; softcap > 0: each score is AttentionArgs::Score's softcap * tanh(dot * scale), one key
//     at a time with std::tanh).
//   template <int kHeadDim> static void Attend(const AttentionArgs* a, int n, float* const*
//     out): AttendRows<Target, kHeadDim>, so that the driver (always inlined) and the steps
//     are compiled together for the target, as one function per head_dim.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "engine/attention.h"
#include "engine/kernels.h"

namespace dormouse::attention_internal::multirow {

constexpr int kKeys = 32;  // keys per block

// The dimensions past the last multiple of 64 (32 of phi-3's 96), which DotF16Reference sums
// after its 16-lane accumulators one by one in double: sum = V, then sum += k[i] * q[i] in
// order. The product of two F16 values is exact in float and in double, so an FMA in double
// gives each step's rounding, and the kernels run that chain for many keys at once, one key
// per lane, from the keys' tails transposed (Target::TransposeTail).
template <int kHeadDim>
inline constexpr int kTail = kHeadDim % 64;

// One row's softmax state, and its factors for the current block.
struct RowState {
  float M = -INFINITY, S = 0.0f;
  int64_t end = 0;             // keys [first, end) are visible
  uint32_t new_max = 0;        // bit j: key j of the block raised the max
  alignas(64) float e[kKeys];  // exp(M_old - M_new) on a new max, else exp(s - M)
};

// Where a block's keys or values come from: rows converted once to F32 (when several tiles
// of rows read them), or the cache's F16 rows, converted as read (a few rows: each key is
// read about once anyway). Key j of the block; past the last one, F16Rows reads the last
// again (the scores of those lanes are masked). The targets' loads take either row.
template <int kHeadDim>
struct F32Rows {
  const float* base;
  const float* Row(int j) const { return base + j * kHeadDim; }
};
struct F16Rows {
  const AttentionArgs* a;
  const uint8_t* base;  // a->k_base or a->v_base
  int64_t j0;
  int last;
  const uint16_t* Row(int j) const {
    return reinterpret_cast<const uint16_t*>(base +
                                             a->Slot(j0 + std::min(j, last)) * a->row_bytes) +
           a->offset;
  }
};

// Keys (or values) [j0, j0 + n) of a block as F32Rows<kHeadDim>, and zero rows after them up
// to a multiple of Target::kScoreKeys.
template <class Target, int kHeadDim>
__attribute__((always_inline)) inline void ConvertRows(const AttentionArgs& a, const uint8_t* base,
                                                       int64_t j0, int n, float* out) {
  for (int j = 0; j < n; ++j) {
    const uint16_t* row =
        reinterpret_cast<const uint16_t*>(base + a.Slot(j0 + j) * a.row_bytes) + a.offset;
    Target::template LoadF16<kHeadDim>(row, out + j * kHeadDim);
  }
  const int padded = (n + Target::kScoreKeys - 1) / Target::kScoreKeys * Target::kScoreKeys;
  std::fill(out + n * kHeadDim, out + padded * kHeadDim, 0.0f);
}

// The driver, inlined into Target::Attend<kHeadDim>: compiled on its own (for no target) it
// could not inline the steps, and each block's score and accumulate tiles would become calls
// (measured: about 3% slower with head_dim 128).
template <class Target, int kHeadDim>
__attribute__((always_inline)) inline void AttendRows(const AttentionArgs* a, int n,
                                                      float* const* out) {
  alignas(64) float kf[kKeys * kHeadDim];
  alignas(64) float vf[kKeys * kHeadDim];
  constexpr int kTailDims = kTail<kHeadDim>;
  alignas(64) double tail[kTailDims > 0 ? kTailDims * kKeys : 1];
  alignas(64) float qf[kMaxAttentionRows][kHeadDim];
  alignas(64) float acc[kMaxAttentionRows][kHeadDim];
  RowState st[kMaxAttentionRows];
  int64_t end = a[0].first_key;
  for (int r = 0; r < n; ++r) {
    alignas(64) uint16_t q16[kHeadDim];
    ConvertF32ToF16(a[r].q, q16, kHeadDim);
    Target::template LoadF16<kHeadDim>(q16, qf[r]);
    std::fill_n(acc[r], kHeadDim, 0.0f);
    st[r].end = a[r].n_keys;
    end = std::max(end, a[r].n_keys);
  }
  const bool convert = Target::Convert(kHeadDim, n);
  for (int64_t j0 = a[0].first_key; j0 < end; j0 += kKeys) {
    const int nb = static_cast<int>(std::min<int64_t>(kKeys, end - j0));
    // The next block, while this one computes.
    a[0].PrefetchF16<kHeadDim>(j0 + kKeys, std::min(end, j0 + 2 * kKeys));
    RowState* rows[kMaxAttentionRows];
    float* accs[kMaxAttentionRows];
    const float* qs[kMaxAttentionRows];
    int keys[kMaxAttentionRows];
    int m = 0;
    for (int r = 0; r < n; ++r) {
      if (st[r].end <= j0) continue;
      keys[m] = static_cast<int>(std::min<int64_t>(nb, st[r].end - j0));
      rows[m] = &st[r];
      qs[m] = qf[r];
      accs[m++] = acc[r];
    }
    if (convert) {
      Target::template ConvertBlock<kHeadDim>(a[0], a[0].k_base, j0, nb, kf);
      Target::template ConvertBlock<kHeadDim>(a[0], a[0].v_base, j0, nb, vf);
      const F32Rows<kHeadDim> k{kf}, v{vf};
      if constexpr (kTailDims > 0) Target::template TransposeTail<kHeadDim>(k, nb, tail);
      Target::template AttendBlock<kHeadDim>(k, v, tail, a[0].scale, a[0].softcap, m, qs, rows,
                                             accs, keys);
    } else {
      const F16Rows k{a, a[0].k_base, j0, nb - 1}, v{a, a[0].v_base, j0, nb - 1};
      if constexpr (kTailDims > 0) Target::template TransposeTail<kHeadDim>(k, nb, tail);
      Target::template AttendBlock<kHeadDim>(k, v, tail, a[0].scale, a[0].softcap, m, qs, rows,
                                             accs, keys);
    }
  }
  for (int r = 0; r < n; ++r) {
    const float inv = st[r].S == 0.0f ? 0.0f : 1.0f / st[r].S;
    for (int c = 0; c < kHeadDim; ++c) out[r][c] = acc[r][c] * inv;
    if (a[r].stats != nullptr) *a[r].stats = {st[r].M, st[r].S};
  }
}

// AttendRowsF16 on one target: false, computing nothing, for the shapes it does not take.
template <class Target>
bool AttendRowsWith(const AttentionArgs* a, int n, float* const* out) {
  if (n < 1 || n > kMaxAttentionRows) return false;
  switch (a[0].head_dim) {
    case 64:
      Target::template Attend<64>(a, n, out);
      return true;
    case 96:
      Target::template Attend<96>(a, n, out);
      return true;
    case 128:
      Target::template Attend<128>(a, n, out);
      return true;
    case 256:
      Target::template Attend<256>(a, n, out);
      return true;
    default:
      return false;
  }
}

}  // namespace dormouse::attention_internal::multirow
