// An inference context: one sequence's KV cache plus the scratch buffers of the
// forward pass. Eval() appends tokens (batched prefill or one-token decode) and leaves
// the logits of the last token (or of every token) behind. All buffers are sized at
// creation, so evaluation allocates nothing.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "base/status.h"
#include "base/thread_pool.h"
#include "base/uninit_vector.h"
#include "base/work_dealer.h"
#include "engine/attention_split.h"
#include "engine/kv_cache.h"
#include "engine/model.h"

namespace dormouse {

struct ContextParams {
  int64_t n_ctx = 0;  // 0: the model's default_n_ctx()
  KvType kv_type = KvType::kF16;
  int64_t n_ubatch = 512;  // tokens per forward chunk during prefill
};

// The context size `p` asks for on `model`: n_ctx, or the model's default.
inline int64_t ContextSize(const Model& model, const ContextParams& p) {
  return p.n_ctx > 0 ? p.n_ctx : model.default_n_ctx();
}

class InferenceContext {
 public:
  // `model` and `pool` must outlive the context.
  static StatusOr<InferenceContext> CreateOrError(const Model& model, ContextParams params,
                                                  ThreadPool* pool);

  // Appends `tokens` at positions [n_past(), n_past() + size). With all_logits, logits of
  // every token are kept (row i for tokens[i]); otherwise only the last token's.
  // Errors (leaving the context unchanged): empty input, ids out of range, context full.
  Status Eval(std::span<const int32_t> tokens, bool all_logits = false);

  // Logits after the last Eval: row i when all_logits was set, else row 0 = last token.
  const float* logits(int64_t row = 0) const { return logits_.data() + row * n_vocab_; }
  int64_t n_vocab() const { return n_vocab_; }
  int64_t n_past() const { return n_past_; }
  int64_t n_ctx() const { return kv_.n_ctx(); }
  // Forgets positions >= n (the cached rows are overwritten by later Evals). A
  // sliding-window layer's ring may no longer hold the window that position n needs
  // (more than n_ubatch positions back): then everything is forgotten. Callers read
  // n_past() afterwards to know what was kept. The forgotten rows' memory stays
  // committed (and counted), so that regrowing does not fault the pages in again:
  // ReleaseUnusedKv gives it back.
  void Truncate(int64_t n);
  // Returns the pages of the KV rows past n_past() to the OS (after a conversation was
  // cut short, or the next one in this context is shorter).
  void ReleaseUnusedKv();
  // Declares the KV rows of positions [0, n) valid after a restore wrote them directly
  // (sessions); sliding-window layers hold [swa_floor, n), which must cover the window
  // (WindowStart) and fit the ring. n must not exceed n_ctx().
  Status AdoptRestoredRows(int64_t n, int64_t swa_floor = 0);
  // The first position whose KV rows `layer` needs to continue from position n: 0, or
  // the start of the sliding window (what a snapshot stores).
  int64_t WindowStart(int64_t layer, int64_t n) const;
  // The lowest position whose rows every sliding-window layer still holds.
  int64_t swa_floor() const { return swa_floor_; }
  // The first position whose rows a snapshot of n tokens stores for `layer`: 0, or for a
  // sliding-window layer all that its ring still holds below n (so a restored context
  // can step back as far as the live one could).
  int64_t SnapshotStart(int64_t layer, int64_t n) const;

  // Bytes of KV cache this context holds: the rows of every position written since the
  // last ReleaseUnusedKv, at least [0, n_past()); also kept in the model's
  // kv_bytes_in_use() while this context lives.
  uint64_t kv_bytes_in_use() const { return kv_.BytesInUse(std::max(n_past_, kv_committed_)); }

  KvCache& kv() { return kv_; }
  const KvCache& kv() const { return kv_; }
  const Model& model() const { return *model_; }
  ThreadPool& pool() const { return *pool_; }

  InferenceContext(InferenceContext&&) = default;
  InferenceContext& operator=(InferenceContext&&) = default;

 private:
  InferenceContext(const Model& model, KvCache kv, ThreadPool* pool, int64_t n_ubatch);
  void EvalChunk(const int32_t* tokens, int64_t n, float* logits_out, bool all_logits);
  void Layer(int64_t il, int64_t n);
  void Attention(int64_t il, int64_t n);
  void RopeQK(int64_t il, int64_t n);
  void StoreKV(int64_t il, int64_t n);
  // out[t] = W . in[t] for every weight in the group, sharing one activation preparation.
  struct MatMulJob {
    const Weight* w;
    float* out;
    int64_t out_stride;
  };
  void MatMulGroup(const float* in, int64_t in_stride, int64_t n, std::span<const MatMulJob>);
  void ComputeRopeTables(int64_t n);

  // This context's share of Model::kv_bytes_in_use(), withdrawn when it dies.
  class KvUsage {
   public:
    explicit KvUsage(std::shared_ptr<std::atomic<int64_t>> c) : counter_(std::move(c)) {}
    KvUsage(KvUsage&& o) noexcept
        : counter_(std::move(o.counter_)), bytes_(std::exchange(o.bytes_, 0)) {}
    KvUsage& operator=(KvUsage&& o) noexcept;
    ~KvUsage() { Set(0); }
    void Set(uint64_t bytes);

   private:
    std::shared_ptr<std::atomic<int64_t>> counter_;
    uint64_t bytes_ = 0;
  };
  void UpdateKvUsage() { kv_usage_.Set(kv_bytes_in_use()); }

  const Model* model_;
  ThreadPool* pool_;
  KvCache kv_;
  int64_t kv_committed_ = 0;  // positions whose rows may be resident (see Truncate)
  KvUsage kv_usage_;
  int64_t n_past_ = 0;
  int64_t swa_floor_ = 0;  // see swa_floor()
  int64_t n_vocab_ = 0;
  int64_t n_ubatch_ = 0;

  // Scratch, sized for n_ubatch tokens; never zeroed (written before it is read), so a
  // short turn touches only the pages it uses.
  UninitVector<float> x_;     // (n_ubatch, n_embd) residual stream
  UninitVector<float> xn_;    // (n_ubatch, max(n_embd, q_dim, n_ff)) normalized input
  UninitVector<float> q_;     // (n_ubatch, q_dim)
  UninitVector<float> k_;     // (n_ubatch, kv_dim)
  UninitVector<float> v_;     // (n_ubatch, kv_dim)
  UninitVector<float> attn_;  // (n_ubatch, q_dim)
  UninitVector<float> gate_;  // (n_ubatch, n_ff)
  UninitVector<float> up_;    // (n_ubatch, n_ff)
  AttentionWorkspace attn_ws_;
  UninitVector<float> rope_cos_;  // (1 or 2 with SWA, n_ubatch, rope_dim / 2)
  UninitVector<float> rope_sin_;
  UninitVector<uint8_t> prepared_;  // (n_ubatch, max prepared row bytes)
  size_t prepared_stride_ = 0;
  UninitVector<float> logits_;
  WorkDealer dealer_;  // MatMulGroup's rows, dealt to the pool's shares
};

}  // namespace dormouse
