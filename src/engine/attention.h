// Causal attention for one query head, computed the way llama.cpp's CPU flash attention
// computes it by default, so our logits follow its rounding and near-tied greedy
// choices come out the same (../shared/reference/README.md, rule D):
//   - with an F16 KV cache the query is rounded to F16 and each score is an F16 x F16
//     dot product accumulated in F32, scaled by 1/sqrt(head_dim) afterwards;
//   - one pass over the keys with an online softmax (running max M and sum S);
//   - the weighted sum of values is accumulated in F16 (rescaled when M grows), then
//     converted to F32 and divided by S.
// With an F32 KV cache every step stays in F32.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dormouse {

struct AttentionScratch {
  uint16_t* q16;    // (head_dim)
  uint16_t* acc16;  // (head_dim)
  float* acc32;     // (head_dim)
};

// out[0, hd) = softmax(q . K^T * scale) V over keys [0, n_keys). K row j starts at
// k_base + j * row_bytes, and this head's elements start `offset` elements into the row
// (likewise for V).
void AttendHead(const float* q, const uint8_t* k_base, const uint8_t* v_base, size_t row_bytes,
                int64_t offset, int64_t n_keys, int64_t hd, float scale, bool f16,
                const AttentionScratch& scratch, float* out);

}  // namespace dormouse
