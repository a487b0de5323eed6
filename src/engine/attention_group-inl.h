// The grouped F16 attention's per-head softmax (attention_avx512.cc and attention_avx2.cc,
// AttendGroup): the state of one query head of a group, and the bookkeeping of one block of
// keys around the target's vector exp. No intrinsics here: SoftmaxBlock is inlined into each
// target's own function, so its std::fma is the target's FMA instruction.
#pragma once

#include <cmath>
#include <cstdint>

namespace dormouse::attention_internal::group {

constexpr int kBlock = 64;  // keys per block

// Per head of a group: the running max, the sum, and the block's softmax factors.
struct HeadState {
  float M = -INFINITY, S = 0.0f;
  alignas(64) float score[kBlock];
  alignas(64) float arg[kBlock];  // exponent: M_old - M_new on a new max, else s - M
  alignas(64) float e[kBlock];
  bool new_max[kBlock];
};

// The softmax bookkeeping of one block of nb keys for one head, as AttendF16Reference's per
// key: the running max and each key's exponent (<= 0; -inf for the first key, whose old max is
// -inf), their exps through `exp_batch` (glibc's expf for arguments in [-inf, 0], 8
// lanes at a time: the lanes past the block get 0), then the sum in key order.
__attribute__((always_inline)) inline void SoftmaxBlock(HeadState& h, int nb,
                                                        void (*exp_batch)(const float*, float*,
                                                                          int64_t)) {
  for (int j = 0; j < nb; ++j) {
    const float s = h.score[j];
    h.new_max[j] = s > h.M;
    if (h.new_max[j]) {
      h.arg[j] = h.M - s;
      h.M = s;
    } else {
      h.arg[j] = s - h.M;
    }
  }
  int padded = nb;
  for (; padded < kBlock && padded % 8 != 0; ++padded) h.arg[padded] = 0.0f;
  exp_batch(h.arg, h.e, padded);
  for (int j = 0; j < nb; ++j) {
    const float ms = h.new_max[j] ? h.e[j] : 1.0f;
    const float vs = h.new_max[j] ? 1.0f : h.e[j];
    h.S = std::fma(h.S, ms, vs);
  }
}

}  // namespace dormouse::attention_internal::group
