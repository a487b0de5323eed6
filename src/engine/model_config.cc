#include "engine/model_config.h"

#include <cmath>

#include "engine/gguf.h"

namespace dormouse {
namespace {

constexpr ArchTraits kArchs[] = {
    {.name = "llama", .rope = RopeLayout::kNormal},
    {.name = "qwen2", .rope = RopeLayout::kNeox, .qkv_bias = true},
    {.name = "qwen3", .rope = RopeLayout::kNeox, .qk_norm = true},
    {.name = "phi3",
     .rope = RopeLayout::kNeox,
     .fused_qkv = true,
     .fused_gate_up = true,
     .scale_q = true},
    {.name = "gemma2",
     .rope = RopeLayout::kNeox,
     .post_norms = true,
     .scale_embd = true,
     .scale_q = true,
     .ffn = FfnActivation::kGelu,
     .swa_period = 2,
     .swa_default = 4096,
     .softcap_keys = true,
     .attn_softcap = 50.0f,
     .final_softcap = 30.0f},
    {.name = "gemma3",
     .rope = RopeLayout::kNeox,
     .qk_norm = true,
     .post_norms = true,
     .scale_embd = true,
     .scale_q = true,
     .ffn = FfnActivation::kGelu,
     .swa_period = 6,
     .softcap_keys = true,
     .swa_rope_base = 10000.0f},
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

// Linear and YaRN scaling as llama.cpp's context derives them from the metadata.
Status ReadRopeScaling(const GgufFile& g, ModelConfig& c) {
  const std::string& a = c.arch;
  // Linear RoPE scaling: positions are multiplied by 1/factor.
  DM_ASSIGN_OR_RETURN(float factor, ReadFloat(g, a, "rope.scaling.factor", 0.0f));
  if (factor == 0.0f) {
    DM_ASSIGN_OR_RETURN(factor, ReadFloat(g, a, "rope.scale_linear", 1.0f));
  }
  DM_ASSIGN_OR_RETURN(std::optional<std::string> scaling, g.GetString(a + ".rope.scaling.type"));
  const std::string type = scaling.value_or("linear");
  if (type != "linear" && type != "none" && type != "yarn") {
    return Status::Errorf("unsupported rope.scaling.type '{}' (supported: none, linear, yarn)",
                          type);
  }
  c.rope_freq_scale = type == "none" || factor == 0.0f ? 1.0f : 1.0f / factor;
  if (!(c.rope_freq_scale > 0.0f) || !std::isfinite(c.rope_freq_scale)) {
    return Status::Error("rope scale factor must be > 0");
  }
  RopeScaling& r = c.rope_scaling;
  DM_ASSIGN_OR_RETURN(r.n_ctx_orig,
                      ReadInt(g, a, "rope.scaling.original_context_length", c.n_ctx_train));
  DM_ASSIGN_OR_RETURN(r.beta_fast, ReadFloat(g, a, "rope.scaling.yarn_beta_fast", 32.0f));
  DM_ASSIGN_OR_RETURN(r.beta_slow, ReadFloat(g, a, "rope.scaling.yarn_beta_slow", 1.0f));
  DM_ASSIGN_OR_RETURN(r.attn_factor, ReadFloat(g, a, "rope.scaling.yarn_attn_factor", 1.0f));
  DM_ASSIGN_OR_RETURN(float log_mul, ReadFloat(g, a, "rope.scaling.yarn_log_multiplier", 0.0f));
  DM_ASSIGN_OR_RETURN(float rope_attn, ReadFloat(g, a, "rope.scaling.attn_factor", 1.0f));
  r.ext_factor = type == "yarn" ? 1.0f : 0.0f;
  if (r.ext_factor != 0.0f) {
    // YaRN's magnitude correction 0.1 ln(s) + 1 (divided by its mscale_all_dims variant
    // when the file has a log multiplier), cancelled by the factor ggml's rope multiplies
    // back in: llama.cpp's llama_context constructor.
    auto mscale = [](float s, float m) { return s <= 1.0f ? 1.0f : 0.1f * m * std::log(s) + 1.0f; };
    const float s = 1.0f / c.rope_freq_scale;
    r.attn_factor = log_mul != 0.0f ? mscale(s, 1.0f) / mscale(s, log_mul) : mscale(s, 1.0f);
    r.attn_factor *= 1.0f / (1.0f + 0.1f * std::log(s));
  }
  r.attn_factor *= rope_attn;
  if (r.n_ctx_orig < 1) return Status::Error("rope.scaling.original_context_length must be >= 1");
  return Status::Ok();
}

// Which layers use a sliding window, and their rope. An explicit
// `attention.sliding_window_pattern` (a period, or one bool per layer) wins over the
// architecture's default period.
Status ReadSlidingWindow(const GgufFile& g, ModelConfig& c) {
  const std::string& a = c.arch;
  c.rope_freq_base_swa = c.rope_freq_base;
  c.rope_freq_scale_swa = c.rope_freq_scale;
  if (c.traits.swa_period == 0) return Status::Ok();  // e.g. phi3: the key is ignored
  DM_ASSIGN_OR_RETURN(c.n_swa, ReadInt(g, a, "attention.sliding_window", c.traits.swa_default));
  if (c.n_swa <= 0) {
    c.n_swa = 0;
    return Status::Ok();
  }
  DM_RETURN_IF_ERROR(CheckRange("attention.sliding_window", c.n_swa, 1, int64_t{1} << 24));
  c.swa_layers.assign(static_cast<size_t>(c.n_layer), false);
  int64_t period = c.traits.swa_period;
  const std::string key = a + ".attention.sliding_window_pattern";
  if (const GgufArray* arr = g.GetArray(key)) {
    if (arr->ints.size() != static_cast<size_t>(c.n_layer)) {
      return Status::Errorf("'{}' has {} entries for {} layers", key, arr->ints.size(), c.n_layer);
    }
    for (size_t i = 0; i < arr->ints.size(); ++i) c.swa_layers[i] = arr->ints[i] != 0;
    period = 0;
  } else {
    DM_ASSIGN_OR_RETURN(period, ReadInt(g, a, "attention.sliding_window_pattern", period));
    DM_RETURN_IF_ERROR(CheckRange("attention.sliding_window_pattern", period, 1, 1 << 16));
  }
  for (int64_t il = 0; period > 0 && il < c.n_layer; ++il) {
    c.swa_layers[static_cast<size_t>(il)] = il % period < period - 1;
  }
  const float base = c.traits.swa_rope_base > 0.0f ? c.traits.swa_rope_base : c.rope_freq_base;
  DM_ASSIGN_OR_RETURN(c.rope_freq_base_swa, ReadFloat(g, a, "rope.freq_base_swa", base));
  if (c.traits.swa_rope_base > 0.0f) c.rope_freq_scale_swa = 1.0f;  // gemma3: local unscaled
  if (!(c.rope_freq_base_swa > 0.0f)) return Status::Error("rope.freq_base_swa must be > 0");
  return Status::Ok();
}

// The query scale: 1/sqrt(head_dim), except the 27B Gemmas, which scale by
// 1/sqrt(n_embd / n_head) (gemma_pytorch's query_pre_attn_scalar; llama.cpp keys it on
// the layer count).
float AttentionScale(const ModelConfig& c) {
  const bool gemma_27b =
      (c.arch == "gemma2" && c.n_layer == 46) || (c.arch == "gemma3" && c.n_layer == 62);
  const int64_t d = gemma_27b ? c.n_embd / c.n_head : c.head_dim;
  return 1.0f / std::sqrt(static_cast<float>(d));
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
  DM_RETURN_IF_ERROR(ReadRopeScaling(g, c));
  c.n_vocab = n_vocab;
  DM_RETURN_IF_ERROR(Validate(c));
  DM_RETURN_IF_ERROR(ReadSlidingWindow(g, c));
  c.attn_softcap = c.traits.attn_softcap;
  c.final_softcap = c.traits.final_softcap;
  if (c.traits.softcap_keys) {
    DM_ASSIGN_OR_RETURN(c.attn_softcap, ReadFloat(g, a, "attn_logit_softcapping", c.attn_softcap));
    DM_ASSIGN_OR_RETURN(c.final_softcap,
                        ReadFloat(g, a, "final_logit_softcapping", c.final_softcap));
  }
  if (c.attn_softcap < 0.0f || c.final_softcap < 0.0f) {
    return Status::Error("logit soft-capping values must be >= 0");
  }
  c.attn_scale = AttentionScale(c);
  return c;
}

}  // namespace dormouse
