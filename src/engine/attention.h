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
// The F16 path has a scalar reference and an AVX-512 variant that gives the same bits
// (same operations, same order); AttendHead dispatches once on the CPU's features.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dormouse {

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
  int64_t n_keys;  // keys [0, n_keys) are visible
  int64_t head_dim;
  float scale;  // 1 / sqrt(head_dim)
};

// out[0, head_dim) = softmax(q . K^T * scale) V.
void AttendHead(const AttentionArgs& a, bool f16, const AttentionScratch& scratch, float* out);
// The same for n query heads that share one KV head (same keys, values, offset and
// n_keys; their own q and out): faster, identical results.
void AttendGroup(const AttentionArgs* a, int n, bool f16, const AttentionScratch& scratch,
                 float* const* out);

namespace attention_internal {
// The F16 path's variants, exposed for the test that holds them to each other.
void AttendF16Reference(const AttentionArgs& a, const AttentionScratch& s, float* out);
bool HaveAvx512();
void AttendF16Avx512(const AttentionArgs& a, const AttentionScratch& s, float* out);
// False when head_dim has no grouped variant (the caller falls back to AttendHead).
bool AttendGroupF16Avx512(const AttentionArgs* a, int n, const AttentionScratch& s,
                          float* const* out);
// glibc's expf, lane for lane, for arguments in [-inf, 0].
void ExpBatchAvx512(const float* x, float* out, int64_t n);
}  // namespace attention_internal

}  // namespace dormouse
