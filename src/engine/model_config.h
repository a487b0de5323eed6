// Hyper-parameters of a model, read from GGUF metadata, and the per-architecture table.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"

namespace dormouse {

class GgufFile;

enum class RopeLayout {
  kNormal,  // rotate adjacent pairs (x[2i], x[2i+1]): llama
  kNeox,    // rotate halves (x[i], x[i + d/2]): qwen2, qwen3
};

// What distinguishes the supported architectures; everything else is shared.
struct ArchTraits {
  const char* name;
  RopeLayout rope;
  bool qkv_bias;  // attn_{q,k,v}.bias tensors (qwen2)
  bool qk_norm;   // per-head RMSNorm of q and k before RoPE (qwen3)
};

// nullptr when `arch` is not supported.
const ArchTraits* FindArch(const std::string& arch);
// "llama, qwen2, qwen3": for error messages.
std::string SupportedArchList();

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
  std::string name;  // general.name, for display

  int64_t q_dim() const { return n_head * head_dim; }
  int64_t kv_dim() const { return n_head_kv * head_dim; }

  // Reads and validates the hyper-parameters; n_vocab comes from the caller (the token
  // embedding's shape) because the metadata key is optional.
  static StatusOr<ModelConfig> FromGguf(const GgufFile& gguf, int64_t n_vocab);
};

}  // namespace dormouse
