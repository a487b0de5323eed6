// Attention of a run of query tokens over one layer's KV cache, on the thread pool, split
// along the keys (flash-decoding): the keys one query sees are cut into chunks, each chunk
// gives a partial result (AttendGroup's output with its softmax max and sum), and the
// partials are merged in chunk order.
//
// The chunks depend only on the range of visible keys (SplitKeys), never on the thread
// count or on how many tokens a call evaluates. So a token's attention has the same bits
// in prefill and in decode, with one thread or sixteen, which bit-exact restore relies on;
// and a query that sees at most kKeyChunk keys is one pass, as before (llama.cpp's
// rounding, attention.h).
//
// Decode (one query token) spreads (KV head, chunk) tasks over the threads, so that every
// thread works when n_head_kv is smaller than the thread count; a prefill has enough
// (token, KV head) tasks and runs each one's chunks in turn.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "base/thread_pool.h"
#include "base/uninit_vector.h"
#include "engine/attention.h"

namespace dormouse {

inline constexpr int64_t kKeyChunk = 512;  // keys per chunk, at least
inline constexpr int kMaxKeyChunks = 32;   // beyond 32 x 256 keys, chunks grow instead

// Keys [first, end) in n chunks of `size` (the last may be shorter).
struct KeyChunks {
  int64_t first = 0;
  int64_t end = 0;
  int64_t size = 0;
  int n = 0;
  int64_t Begin(int c) const { return first + c * size; }
  int64_t End(int c) const { return std::min(end, first + (c + 1) * size); }
};
KeyChunks SplitKeys(int64_t first_key, int64_t n_keys);

// out[0, hd) = the merge of n partial outputs over disjoint key ranges, each normalized by
// its own sum: weighted by sum * exp(max - overall max), in chunk order.
void MergeChunks(const float* const* partial, const SoftmaxStats* stats, int n, int64_t hd,
                 float* out);

// What the heads of one layer share.
struct LayerAttention {
  const uint8_t* k_base;  // as AttentionArgs
  const uint8_t* v_base;
  size_t row_bytes;
  int64_t n_head;
  int64_t n_head_kv;
  int64_t head_dim;
  float scale;
  float softcap = 0.0f;
  int64_t window = 0;  // > 0: a query at p sees keys (p - window, p]
  int64_t ring = 0;
  bool f16 = true;
};

// Per-thread scratch and the partial results of a split decode, sized once.
class AttentionWorkspace {
 public:
  AttentionWorkspace() = default;
  AttentionWorkspace(int n_threads, int64_t n_head, int64_t head_dim);

  // Causal attention of n query tokens at positions [pos0, pos0 + n): token t's query
  // heads at q + t * q_stride (n_head * head_dim), its output at out + t * out_stride.
  // The keys of positions [0, pos0 + n) must be stored.
  void Run(ThreadPool& pool, const LayerAttention& l, const float* q, int64_t q_stride,
           int64_t pos0, int64_t n, float* out, int64_t out_stride);

 private:
  struct Thread {
    AttentionScratch scratch;
    float* partial;       // (thread_rows_, kMaxKeyChunks, head_dim)
    SoftmaxStats* stats;  // (thread_rows_, kMaxKeyChunks)
  };
  Thread ForThread(int i);
  void Tokens(ThreadPool& pool, const LayerAttention& l, const float* q, int64_t q_stride,
              int64_t pos0, int64_t n, float* out, int64_t out_stride);
  // Tokens with a multi-row kernel, rows of several tokens per task: the lane kernel (tiny
  // heads) or the row kernel (AttendRowsF16).
  void TokenRows(ThreadPool& pool, const LayerAttention& l, const float* q, int64_t q_stride,
                 int64_t pos0, int64_t n, float* out, int64_t out_stride, bool lanes);
  void SplitDecode(ThreadPool& pool, const LayerAttention& l, const KeyChunks& kc, const float* q,
                   float* out);

  int64_t n_head_ = 0;
  int64_t head_dim_ = 0;
  int n_threads_ = 0;
  int thread_rows_ = 0;                      // query rows a thread's partial results hold
  UninitVector<uint16_t> f16_;               // (n_threads, kMaxGroupHeads + 1, head_dim)
  UninitVector<float> f32_;                  // (n_threads, head_dim)
  UninitVector<float> thread_partial_;       // (n_threads, thread_rows_, kMaxKeyChunks, head_dim)
  UninitVector<SoftmaxStats> thread_stats_;  // (n_threads, thread_rows_, kMaxKeyChunks)
  UninitVector<float> partial_;              // (n_head, kMaxKeyChunks, head_dim): decode
  UninitVector<SoftmaxStats> stats_;         // (n_head, kMaxKeyChunks)
};

}  // namespace dormouse
