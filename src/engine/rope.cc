#include "engine/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace dormouse {
namespace {

float YarnCorrDim(int64_t n_dims, int64_t n_ctx_orig, float n_rot, float base) {
  return static_cast<float>(n_dims) *
         std::log(static_cast<float>(n_ctx_orig) / (n_rot * 2 * std::numbers::pi_v<float>)) /
         (2 * std::log(base));
}

float YarnRamp(float low, float high, int64_t i0) {
  const float y = (static_cast<float>(i0 / 2) - low) / std::max(0.001f, high - low);
  return 1 - std::min(1.0f, std::max(0.0f, y));
}

}  // namespace

RopeParams RopeParams::For(const ModelConfig& c, bool swa, const float* freq_factors) {
  RopeParams p;
  p.n_dims = c.rope_dim;
  p.freq_base = swa ? c.rope_freq_base_swa : c.rope_freq_base;
  p.freq_scale = swa ? c.rope_freq_scale_swa : c.rope_freq_scale;
  p.freq_factors = freq_factors;
  p.ext_factor = c.rope_scaling.ext_factor;
  p.attn_factor = c.rope_scaling.attn_factor;
  RopeYarnCorrDims(c.rope_dim, c.rope_scaling.n_ctx_orig, p.freq_base, c.rope_scaling.beta_fast,
                   c.rope_scaling.beta_slow, p.corr_dims);
  return p;
}

void RopeYarnCorrDims(int64_t n_dims, int64_t n_ctx_orig, float freq_base, float beta_fast,
                      float beta_slow, float dims[2]) {
  const float start = std::floor(YarnCorrDim(n_dims, n_ctx_orig, beta_fast, freq_base));
  const float end = std::ceil(YarnCorrDim(n_dims, n_ctx_orig, beta_slow, freq_base));
  dims[0] = std::max(0.0f, start);
  dims[1] = std::min(static_cast<float>(n_dims - 1), end);
}

void RopeTable(const RopeParams& p, int64_t pos, float* cos_out, float* sin_out) {
  const float theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(p.n_dims));
  float theta = static_cast<float>(pos);
  for (int64_t i0 = 0; i0 < p.n_dims; i0 += 2) {
    const float ff = p.freq_factors ? p.freq_factors[i0 / 2] : 1.0f;
    const float extrap = theta / ff;
    const float interp = p.freq_scale * extrap;
    float th = interp, mscale = p.attn_factor;
    if (p.ext_factor != 0.0f) {
      const float mix = YarnRamp(p.corr_dims[0], p.corr_dims[1], i0) * p.ext_factor;
      th = interp * (1 - mix) + extrap * mix;
      mscale *= 1.0f + 0.1f * std::log(1.0f / p.freq_scale);
    }
    cos_out[i0 / 2] = std::cos(th) * mscale;
    sin_out[i0 / 2] = std::sin(th) * mscale;
    theta *= theta_scale;
  }
}

}  // namespace dormouse
