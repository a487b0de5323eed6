// A loaded model: its hyper-parameters and its weights, used in place from the GGUF
// mapping. Small vectors (norms, biases) are copied to F32 once at load.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "engine/gguf.h"
#include "engine/model_config.h"

namespace dormouse {

// A 2-D weight matrix in GGUF order: `rows` rows of `cols` contiguous elements.
struct Weight {
  const uint8_t* data = nullptr;
  GgmlType type = GgmlType::kF32;
  int64_t cols = 0;  // input features (ggml ne[0])
  int64_t rows = 0;  // output features (ggml ne[1])
  size_t row_bytes = 0;
  const uint8_t* Row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes; }
  // Rows [first, first + n) as a weight of their own: a view into a fused tensor, no copy.
  Weight Rows(int64_t first, int64_t n) const {
    Weight w = *this;
    w.data = Row(first);
    w.rows = n;
    return w;
  }
};

struct LayerWeights {
  std::vector<float> attn_norm;       // (n_embd)
  Weight wq;                          // (n_embd, q_dim)   (phi3: rows of attn_qkv)
  Weight wk;                          // (n_embd, kv_dim)  (phi3: rows of attn_qkv)
  Weight wv;                          // (n_embd, kv_dim)  (phi3: rows of attn_qkv)
  Weight wo;                          // (q_dim, n_embd)
  std::vector<float> bq, bk, bv;      // (q_dim), (kv_dim), (kv_dim): qwen2 only
  std::vector<float> q_norm;          // (head_dim): qwen3 only
  std::vector<float> k_norm;          // (head_dim): qwen3 only
  std::vector<float> post_attn_norm;  // (n_embd): gemma only, on the attention output
  std::vector<float> ffn_norm;        // (n_embd)
  std::vector<float> post_ffn_norm;   // (n_embd): gemma only, on the FFN output
  Weight w_gate;                      // (n_embd, n_ff)  (phi3: rows [0, n_ff) of ffn_up)
  Weight w_up;                        // (n_embd, n_ff)  (phi3: rows [n_ff, 2 n_ff) of ffn_up)
  Weight w_down;                      // (n_ff, n_embd)
};

class Model {
 public:
  // Maps `path`, reads the config and binds every tensor, checking shapes and types.
  static StatusOr<Model> LoadOrError(const std::string& path);
  static StatusOr<Model> FromGguf(GgufFile gguf);

  const ModelConfig& config() const { return config_; }
  const GgufFile& gguf() const { return gguf_; }
  const Weight& token_embd() const { return token_embd_; }  // (n_embd, n_vocab)
  const Weight& output() const { return output_; }          // (n_embd, n_vocab), maybe token_embd
  bool tied_output() const { return tied_output_; }
  const std::vector<float>& output_norm() const { return output_norm_; }  // (n_embd)
  const std::vector<LayerWeights>& layers() const { return layers_; }
  // Every matrix a forward pass multiplies, in its order: each layer's seven, then the
  // output (the token embedding only as the output, when tied).
  std::vector<const Weight*> MatMulWeights() const;
  // Per-frequency divisors for RoPE (rope_dim / 2) for a context of n_ctx, or nullptr
  // (all 1): rope_freqs.weight (Llama 3.1+ long-context scaling), else phi3's LongRoPE
  // rope_factors_long when n_ctx exceeds the original context, rope_factors_short when not
  // (llama.cpp's get_rope_factors).
  const float* RopeFactors(int64_t n_ctx) const;
  // Bytes of tensor data in the file.
  uint64_t weight_bytes() const { return weight_bytes_; }
  // The context a ContextParams with n_ctx 0 gets: what the lifecycle decided at load
  // (DefaultContextSize: the trained length within the memory), else the trained length
  // capped at 4096.
  int64_t default_n_ctx() const {
    return default_n_ctx_ > 0 ? default_n_ctx_ : std::min<int64_t>(config_.n_ctx_train, 4096);
  }
  void set_default_n_ctx(int64_t n) { default_n_ctx_ = n; }
  // Bytes of KV cache that the live contexts of this model hold for their positions: they
  // keep it current (InferenceContext), and the lifecycle's memory accounting reads it,
  // since a cache grows with its conversation rather than being committed up front.
  // Shared, so that a context which outlives its model (it must not use it, but may be
  // destroyed later) still has a counter to withdraw from.
  uint64_t kv_bytes_in_use() const { return static_cast<uint64_t>(kv_in_use_->load()); }
  std::shared_ptr<std::atomic<int64_t>> kv_usage_counter() const { return kv_in_use_; }

  Model(Model&&) = default;
  Model& operator=(Model&&) = default;

 private:
  Model() = default;
  Status BindTensors();
  GgufFile gguf_;
  ModelConfig config_;
  Weight token_embd_;
  Weight output_;
  bool tied_output_ = false;
  std::vector<float> output_norm_;
  std::vector<LayerWeights> layers_;
  std::vector<float> rope_freqs_, rope_long_, rope_short_;
  uint64_t weight_bytes_ = 0;
  int64_t default_n_ctx_ = 0;
  std::shared_ptr<std::atomic<int64_t>> kv_in_use_ = std::make_shared<std::atomic<int64_t>>(0);
};

}  // namespace dormouse
