#include "engine/model_config.h"

#include <cmath>

#include "engine/gguf.h"

namespace dormouse {
namespace {

constexpr ArchTraits kArchs[] = {
    {"llama", RopeLayout::kNormal, false, false},
    {"qwen2", RopeLayout::kNeox, true, false},
    {"qwen3", RopeLayout::kNeox, false, true},
};

// Reads `arch.key` as an integer; `fallback` < 0 makes the key required.
StatusOr<int64_t> ReadInt(const GgufFile& g, const std::string& arch, const char* key,
                          int64_t fallback) {
  std::string full = arch + "." + key;
  DM_ASSIGN_OR_RETURN(std::optional<int64_t> v, g.GetInt(full));
  if (!v) {
    if (fallback < 0) return Status::Errorf("missing required metadata key '{}'", full);
    return fallback;
  }
  return *v;
}

StatusOr<float> ReadFloat(const GgufFile& g, const std::string& arch, const char* key,
                          float fallback) {
  std::string full = arch + "." + key;
  DM_ASSIGN_OR_RETURN(std::optional<double> v, g.GetFloat(full));
  if (!v) return fallback;
  if (!std::isfinite(*v)) return Status::Errorf("metadata '{}' is not a finite number", full);
  return static_cast<float>(*v);
}

Status CheckRange(const char* what, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi) return Status::Errorf("{} = {} is outside [{}, {}]", what, v, lo, hi);
  return Status::Ok();
}

Status Validate(const ModelConfig& c) {
  DM_RETURN_IF_ERROR(CheckRange("embedding_length", c.n_embd, 1, 1 << 16));
  DM_RETURN_IF_ERROR(CheckRange("block_count", c.n_layer, 1, 1024));
  DM_RETURN_IF_ERROR(CheckRange("feed_forward_length", c.n_ff, 1, 1 << 20));
  DM_RETURN_IF_ERROR(CheckRange("attention.head_count", c.n_head, 1, 1024));
  DM_RETURN_IF_ERROR(CheckRange("attention.head_count_kv", c.n_head_kv, 1, c.n_head));
  DM_RETURN_IF_ERROR(CheckRange("attention.key_length", c.head_dim, 1, 4096));
  DM_RETURN_IF_ERROR(CheckRange("rope.dimension_count", c.rope_dim, 0, c.head_dim));
  DM_RETURN_IF_ERROR(CheckRange("context_length", c.n_ctx_train, 1, int64_t{1} << 24));
  DM_RETURN_IF_ERROR(CheckRange("vocabulary size", c.n_vocab, 1, int64_t{1} << 24));
  if (c.n_head % c.n_head_kv != 0) {
    return Status::Errorf("head_count {} is not a multiple of head_count_kv {}", c.n_head,
                          c.n_head_kv);
  }
  if (c.rope_dim % 2 != 0) return Status::Errorf("rope.dimension_count {} is odd", c.rope_dim);
  if (!(c.rms_eps > 0.0f)) return Status::Error("layer_norm_rms_epsilon must be > 0");
  if (!(c.rope_freq_base > 0.0f)) return Status::Error("rope.freq_base must be > 0");
  if (!(c.rope_freq_scale > 0.0f)) return Status::Error("rope scale factor must be > 0");
  return Status::Ok();
}

}  // namespace

const ArchTraits* FindArch(const std::string& arch) {
  for (const ArchTraits& a : kArchs) {
    if (arch == a.name) return &a;
  }
  return nullptr;
}

std::string SupportedArchList() {
  std::string out;
  for (const ArchTraits& a : kArchs) out += (out.empty() ? "" : ", ") + std::string(a.name);
  return out;
}

StatusOr<ModelConfig> ModelConfig::FromGguf(const GgufFile& g, int64_t n_vocab) {
  ModelConfig c;
  DM_ASSIGN_OR_RETURN(std::optional<std::string> arch, g.GetString("general.architecture"));
  if (!arch) return Status::Error("missing metadata key 'general.architecture'");
  const ArchTraits* traits = FindArch(*arch);
  if (traits == nullptr) {
    return Status::Errorf("unsupported architecture '{}' (supported: {})", *arch,
                          SupportedArchList());
  }
  c.arch = *arch;
  c.traits = *traits;
  DM_ASSIGN_OR_RETURN(std::optional<std::string> name, g.GetString("general.name"));
  c.name = name.value_or("");
  const std::string& a = c.arch;
  DM_ASSIGN_OR_RETURN(c.n_embd, ReadInt(g, a, "embedding_length", -1));
  DM_ASSIGN_OR_RETURN(c.n_layer, ReadInt(g, a, "block_count", -1));
  DM_ASSIGN_OR_RETURN(c.n_ff, ReadInt(g, a, "feed_forward_length", -1));
  DM_ASSIGN_OR_RETURN(c.n_head, ReadInt(g, a, "attention.head_count", -1));
  DM_ASSIGN_OR_RETURN(c.n_head_kv, ReadInt(g, a, "attention.head_count_kv", c.n_head));
  DM_ASSIGN_OR_RETURN(c.n_ctx_train, ReadInt(g, a, "context_length", 2048));
  int64_t default_head_dim = c.n_head > 0 ? c.n_embd / c.n_head : 0;
  DM_ASSIGN_OR_RETURN(c.head_dim, ReadInt(g, a, "attention.key_length", default_head_dim));
  DM_ASSIGN_OR_RETURN(int64_t v_len, ReadInt(g, a, "attention.value_length", c.head_dim));
  if (v_len != c.head_dim) {
    return Status::Errorf("attention.value_length {} differs from key_length {} (unsupported)",
                          v_len, c.head_dim);
  }
  DM_ASSIGN_OR_RETURN(c.rope_dim, ReadInt(g, a, "rope.dimension_count", c.head_dim));
  DM_ASSIGN_OR_RETURN(c.rms_eps, ReadFloat(g, a, "attention.layer_norm_rms_epsilon", 1e-5f));
  DM_ASSIGN_OR_RETURN(c.rope_freq_base, ReadFloat(g, a, "rope.freq_base", 10000.0f));
  // Linear RoPE scaling: positions are multiplied by 1/factor.
  DM_ASSIGN_OR_RETURN(float factor, ReadFloat(g, a, "rope.scaling.factor", 0.0f));
  if (factor == 0.0f) {
    DM_ASSIGN_OR_RETURN(factor, ReadFloat(g, a, "rope.scale_linear", 1.0f));
  }
  DM_ASSIGN_OR_RETURN(std::optional<std::string> scaling, g.GetString(a + ".rope.scaling.type"));
  if (scaling && *scaling != "linear" && *scaling != "none") {
    return Status::Errorf("unsupported rope.scaling.type '{}' (supported: none, linear)",
                          *scaling);
  }
  c.rope_freq_scale = (scaling && *scaling == "none") || factor == 0.0f ? 1.0f : 1.0f / factor;
  c.n_vocab = n_vocab;
  DM_RETURN_IF_ERROR(Validate(c));
  return c;
}

}  // namespace dormouse
