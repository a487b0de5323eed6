// Hyper-parameters of a model, read from GGUF metadata, and the per-architecture table.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace dormouse {

class GgufFile;

enum class RopeLayout {
  kNormal,  // rotate adjacent pairs (x[2i], x[2i+1]): llama
  kNeox,    // rotate halves (x[i], x[i + d/2]): qwen2, qwen3
};

enum class FfnActivation {
  kSilu,  // silu(gate) * up: llama, qwen, phi3
  kGelu,  // gelu(gate) * up, tanh approximation: gemma
};

// What distinguishes the supported architectures; everything else is shared. Adding an
// architecture is one row of kArchs (model_config.cc) plus whatever its graph really
// does differently.
struct ArchTraits {
  const char* name;
  RopeLayout rope;
  bool qkv_bias = false;       // attn_{q,k,v}.bias tensors (qwen2)
  bool qk_norm = false;        // per-head RMSNorm of q and k before RoPE (qwen3, gemma3)
  bool fused_qkv = false;      // one attn_qkv (n_embd, q_dim + 2 kv_dim): q, k, v rows (phi3)
  bool fused_gate_up = false;  // ffn_up (n_embd, 2 n_ff): gate rows, then up rows (phi3)
  bool post_norms = false;     // post_attention_norm, post_ffw_norm on the branches (gemma)
  bool scale_embd = false;     // token embeddings times sqrt(n_embd) (gemma)
  // The attention scale multiplies q (F32) before attention instead of the scores, as
  // llama.cpp's graph does for these (it changes the F16 rounding of q).
  bool scale_q = false;
  FfnActivation ffn = FfnActivation::kSilu;
  // Sliding-window attention when `attention.sliding_window` is set: layer il is local
  // when il % swa_period < swa_period - 1 (llama.cpp's set_swa_pattern); 0 = no SWA
  // (phi3's sliding_window key is ignored, as llama.cpp does).
  int swa_period = 0;
  int64_t swa_default = 0;     // window when the file has no sliding_window key (gemma2: 4096)
  bool softcap_keys = false;   // reads {attn,final}_logit_softcapping (gemma)
  float swa_rope_base = 0.0f;  // local layers' rope base when the file names none (0: global)
  float attn_softcap = 0.0f;   // default attention-logit soft-cap (gemma2: 50)
  float final_softcap = 0.0f;  // default final-logit soft-cap (gemma2: 30)
};

// nullptr when `arch` is not supported.
const ArchTraits* FindArch(const std::string& arch);
// "llama, qwen2, qwen3": for error messages.
std::string SupportedArchList();

// YaRN / llama.cpp rope parameters beyond the base and linear scale (ggml_rope_ext's
// ext_factor, attn_factor, beta_fast, beta_slow, n_ctx_orig).
struct RopeScaling {
  float ext_factor = 0.0f;   // 0: plain interpolation; 1 for YaRN
  float attn_factor = 1.0f;  // multiplies cos and sin (YaRN's magnitude correction)
  float beta_fast = 32.0f;
  float beta_slow = 1.0f;
  int64_t n_ctx_orig = 0;  // rope.scaling.original_context_length (default n_ctx_train)
};

struct ModelConfig {
  std::string arch;
  ArchTraits traits{};
  int64_t n_vocab = 0;
  int64_t n_ctx_train = 0;
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_ff = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;  // key/value length per head
  int64_t rope_dim = 0;  // leading dims of each head that RoPE rotates
  float rms_eps = 1e-5f;
  float rope_freq_base = 10000.0f;
  float rope_freq_scale = 1.0f;
  RopeScaling rope_scaling;
  // Sliding-window attention: a local layer's query at position p sees keys at positions
  // > p - n_swa (llama.cpp's LLAMA_SWA_TYPE_STANDARD). n_swa == 0: every layer is global.
  int64_t n_swa = 0;
  std::vector<bool> swa_layers;         // (n_layer): true for local layers
  float rope_freq_base_swa = 10000.0f;  // local layers' rope (gemma3: 10k vs 1M global)
  float rope_freq_scale_swa = 1.0f;
  float attn_scale = 0.0f;     // applied to q (traits.scale_q) or to the scores
  float attn_softcap = 0.0f;   // scores -> cap * tanh(scores / cap); 0: off
  float final_softcap = 0.0f;  // logits -> cap * tanh(logits / cap); 0: off
  std::string name;            // general.name, for display

  bool IsSwa(int64_t il) const { return n_swa > 0 && swa_layers[static_cast<size_t>(il)]; }
  bool HasSwa() const { return n_swa > 0; }

  int64_t q_dim() const { return n_head * head_dim; }
  int64_t kv_dim() const { return n_head_kv * head_dim; }

  // Reads and validates the hyper-parameters; n_vocab comes from the caller (the token
  // embedding's shape) because the metadata key is optional.
  static StatusOr<ModelConfig> FromGguf(const GgufFile& gguf, int64_t n_vocab);
};

}  // namespace dormouse
