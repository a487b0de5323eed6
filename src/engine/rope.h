// Rotary position embedding tables, computed as ggml's rope cache computes them
// (ggml_rope_cache_init and rope_yarn), so rotations match llama.cpp's bit for bit:
// theta starts at the position and is multiplied by base^(-2/n_dims) per pair in float,
// divided by the pair's frequency factor (Llama 3 `rope_freqs`), scaled by freq_scale
// (linear interpolation), blended with the unscaled angle on YaRN's ramp, and cos/sin are
// multiplied by the magnitude factor.
#pragma once

#include <cstdint>

#include "engine/model_config.h"

namespace dormouse {

struct RopeParams {
  int64_t n_dims = 0;  // rotated dims per head (even)
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;
  const float* freq_factors = nullptr;  // (n_dims / 2), or nullptr for all 1
  float ext_factor = 0.0f;
  float attn_factor = 1.0f;
  float corr_dims[2] = {0.0f, 0.0f};  // YaRN's ramp, from RopeYarnCorrDims

  // The parameters of one layer kind (local or global) of `c`.
  static RopeParams For(const ModelConfig& c, bool swa, const float* freq_factors);
};

// ggml_rope_yarn_corr_dims: the dims where YaRN's ramp starts and ends.
void RopeYarnCorrDims(int64_t n_dims, int64_t n_ctx_orig, float freq_base, float beta_fast,
                      float beta_slow, float dims[2]);

// cos/sin of every pair i in [0, n_dims / 2) at position `pos`.
void RopeTable(const RopeParams& p, int64_t pos, float* cos_out, float* sin_out);

}  // namespace dormouse
