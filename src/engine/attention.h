// Causal attention for one query head, computed the way llama.cpp's CPU flash attention
// computes it by default, so our logits follow its rounding and near-tied greedy
// choices come out the same (../shared/reference/README.md, rule D):
//   - with an F16 KV cache the query is rounded to F16 and each score is an F16 x F16
//     dot product accumulated in F32, scaled by 1/sqrt(head_dim) afterwards;
//   - one pass over the keys with an online softmax (running max M and sum S);
//   - the weighted sum of values is accumulated in F16 (rescaled when M grows), then
//     converted to F32 and divided by S.
// With an F32 KV cache every step stays in F32.
//
// Masked keys (outside a sliding window) are skipped, as ggml skips -inf mask entries;
// gemma2's attention soft-cap applies to each scaled score before the softmax.
//
// The F16 path has a scalar reference, AVX-512 and AVX2 variants and a portable one (Highway
// kernels, vectorized on every target but the scalar one) that give the same bits (same
// operations, same order); AttendHead picks by the CPU's features and DORMOUSE_TARGET. Tiny
// heads (head_dim <= 16) have a lane-parallel variant instead (AttendLanesF16: one query row
// per vector lane).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace dormouse {

// The online softmax's final running max and sum over the keys a call saw: what merging
// the partial results of disjoint key ranges needs (attention_split.h).
struct SoftmaxStats {
  float max;
  float sum;
};

struct AttentionScratch {
  uint16_t* q16;    // (kMaxGroupHeads * head_dim)
  uint16_t* acc16;  // (head_dim)
  float* acc32;     // (head_dim)
};
inline constexpr int kMaxGroupHeads = 4;

struct AttentionArgs {
  const float* q;         // (head_dim)
  const uint8_t* k_base;  // row j of the layer's keys at k_base + j * row_bytes
  const uint8_t* v_base;  // likewise for values
  size_t row_bytes;
  int64_t offset;  // this head's first element within a row
  int64_t n_keys;  // keys [first_key, n_keys) are visible, in this order
  int64_t head_dim;
  float scale;            // 1 / sqrt(head_dim), or 1 when q was scaled (divided by softcap)
  int64_t first_key = 0;  // > 0 for a sliding window (keys before it are masked)
  // A ring buffer of `ring` rows holds key j at row j % ring; 0: row j.
  int64_t ring = 0;
  float softcap = 0.0f;           // score -> softcap * tanh(score) when > 0 (gemma2)
  SoftmaxStats* stats = nullptr;  // when set, receives the max and sum behind `out`

  const uint8_t* KRow(int64_t j) const { return k_base + Slot(j) * row_bytes; }
  const uint8_t* VRow(int64_t j) const { return v_base + Slot(j) * row_bytes; }
  size_t Slot(int64_t j) const { return static_cast<size_t>(ring > 0 ? j % ring : j); }
  // Asks the cache for the F16 key and value rows [j0, j1) of this head (kHeadDim: its
  // head_dim; the caller keeps j1 within the keys stored): a decode reads them from memory,
  // once, and the hardware prefetcher alone leaves the kernels waiting on it.
  template <int kHeadDim>
  void PrefetchF16(int64_t j0, int64_t j1) const {
    for (int64_t j = j0; j < j1; ++j) {
      const char* k = reinterpret_cast<const char*>(KRow(j)) + offset * 2;
      const char* v = reinterpret_cast<const char*>(VRow(j)) + offset * 2;
      for (int b = 0; b < kHeadDim * 2; b += 64) {
        PrefetchLine(k + b);
        PrefetchLine(v + b);
      }
    }
  }
  // GCC counts __builtin_prefetch as no effect and deletes a loop of nothing else (C++ lets
  // it assume such a loop ends), so on x86 the instruction itself.
  static void PrefetchLine(const char* p) {
#if defined(__x86_64__)
    asm volatile("prefetcht0 %0" : : "m"(*p));
#else
    __builtin_prefetch(p);
#endif
  }
  // As ggml's flash attention: s * scale, then softcap * tanhf(s).
  float Score(float dot) const {
    const float s = dot * scale;
    return softcap > 0.0f ? softcap * std::tanh(s) : s;
  }
};

// out[0, head_dim) = softmax(q . K^T * scale) V.
void AttendHead(const AttentionArgs& a, bool f16, const AttentionScratch& scratch, float* out);
// The same for n query heads that share one KV head (same keys, values, offset and
// n_keys; their own q and out): faster, identical results.
void AttendGroup(const AttentionArgs* a, int n, bool f16, const AttentionScratch& scratch,
                 float* const* out);

// Query rows that share a KV head (same keys, values, offset, head_dim, ring, scale) and a
// first key, each with its own q, end (n_keys), stats and out: a prefill's consecutive
// tokens, or one token's heads. head_dim 64, 96 (phi-3), 128 or 256 (gemma), F16 cache, with or
// without a soft-cap (gemma2), up to kMaxAttentionRows rows. Per row AttendF16Reference's bits; the
// rows share the key and value conversions and their reductions and rounding chains run side by
// side. Returns false, computing nothing, when the dispatched target or the shape has no such
// kernel (AVX-512 and AVX2 have their own; SSE4, SSSE3 and NEON a Highway one; the scalar target
// has none).
inline constexpr int kMaxAttentionRows = 16;
bool AttendRowsF16(const AttentionArgs* a, int n, float* const* out);
// Whether AttendRowsF16 takes rows of this shape on the dispatched target.
bool AttentionRowsFit(int64_t head_dim, bool f16);
// The head sizes AttendRowsF16 takes on some target (AttentionRowsFit: on the dispatched one).
inline bool AttentionRowsHeadDim(int64_t head_dim) {
  return head_dim == 64 || head_dim == 96 || head_dim == 128 || head_dim == 256;
}

// Tiny heads (head_dim 4, 8, 16; F16 cache, no soft-cap) on x86 from AVX2 on and 64-bit ARM's
// NEON: n query rows that share one KV head (same keys, values, offset, head_dim, scale and
// ring), each with its own q, key range [first_key, n_keys), stats and out, one row per vector
// lane.
// Per row exactly AttendF16Reference's operations in its order, so the same bits. Returns
// false, computing nothing, when the dispatched target or the shape has no lane kernel.
bool AttendLanesF16(const AttentionArgs* a, int n, float* const* out);
// Rows per vector of the dispatched lane kernel (16 with AVX-512, 8 with AVX2, 4 with NEON);
// 0: none.
int AttentionLaneWidth();
// Whether AttendLanesF16 takes rows of this shape on the dispatched target.
inline bool AttentionLanesFit(int64_t head_dim, bool f16, float softcap) {
  return f16 && softcap <= 0.0f && (head_dim == 4 || head_dim == 8 || head_dim == 16) &&
         AttentionLaneWidth() > 0;
}

namespace attention_internal {
// The F16 path's variants, exposed for the test that holds them to each other.
void AttendF16Reference(const AttentionArgs& a, const AttentionScratch& s, float* out);
// The same steps through the dispatched kernels (kernels.h DotF16Ggml, ScaleF16, MadF16):
// vectorized on AVX2, identical bits.
void AttendF16Portable(const AttentionArgs& a, const AttentionScratch& s, float* out);
// Its steps' scalar references: ggml's F16 dot in its AVX-512 order, and the F16
// accumulator's rescale (y = f16(y * v)) and multiply-add (y = f16(fma(x, v, y))).
float DotF16Reference(const uint16_t* x, const uint16_t* y, int64_t n);
void ScaleF16Reference(uint16_t* y, float v, int64_t n);
void MadF16Reference(uint16_t* y, const uint16_t* x, float v, int64_t n);
// (((a[l] + a[8 + l]) ... ): the last steps of DotF16Reference, the order of GCC's
// _mm512_reduce_add_ps over 16 lanes, in double.
double ReduceLanes16(const float* a);
bool HaveAvx512();
void AttendF16Avx512(const AttentionArgs& a, const AttentionScratch& s, float* out);
// False when head_dim has no grouped variant (the caller falls back to AttendHead).
bool AttendGroupF16Avx512(const AttentionArgs* a, int n, const AttentionScratch& s,
                          float* const* out);
// AttendRowsF16's AVX-512 kernel (false for other shapes).
bool AttendRowsF16Avx512(const AttentionArgs* a, int n, float* const* out);
// The same grouped variant with AVX2 (8-lane halves of the 16-lane accumulators).
bool HaveAvx2();
bool AttendGroupF16Avx2(const AttentionArgs* a, int n, const AttentionScratch& s,
                        float* const* out);
// AttendRowsF16's AVX2 kernel (false for other shapes).
bool AttendRowsF16Avx2(const AttentionArgs* a, int n, float* const* out);
// AttendRowsF16's Highway kernel on the dispatched target (attention_rows_vec-inl.h; false
// for other shapes, and on the scalar target), and whether that target has it.
bool AttendRowsF16Vec(const AttentionArgs* a, int n, float* const* out);
bool HaveAttentionRowsVec();
// glibc's expf, lane for lane, for arguments in [-inf, 0].
void ExpBatchAvx512(const float* x, float* out, int64_t n);
void ExpBatchAvx2(const float* x, float* out, int64_t n);
// The same through the dispatched lane kernel's exp (std::exp on targets without one).
void ExpfBatch(const float* x, float* out, int64_t n);
// glibc expf's table, 2^(i/32) with i << 47 subtracted from its bits (64-byte aligned).
const uint64_t* ExpfTable();
}  // namespace attention_internal

}  // namespace dormouse
