// The rope tables: plain and linear-scaled angles as ggml's rope cache computes them,
// Llama 3 frequency factors, and YaRN's ramp, magnitude and the metadata that enables it.
#include "engine/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace dormouse {
namespace {

RopeParams Plain(int64_t dims, float base, float scale = 1.0f) {
  RopeParams p;
  p.n_dims = dims;
  p.freq_base = base;
  p.freq_scale = scale;
  return p;
}

TEST(RopeTest, PlainAnglesFollowGgmlsFloatRecurrence) {
  const RopeParams p = Plain(8, 10000.0f, 0.25f);
  std::vector<float> cs(4), sn(4);
  RopeTable(p, 37, cs.data(), sn.data());
  const float theta_scale = std::pow(10000.0f, -2.0f / 8.0f);
  float theta = 37.0f;
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(cs[i], std::cos(0.25f * theta)) << i;  // bit for bit: same float steps
    EXPECT_EQ(sn[i], std::sin(0.25f * theta)) << i;
    theta *= theta_scale;
  }
}

TEST(RopeTest, FrequencyFactorsDivideTheAngle) {
  const float factors[] = {1.0f, 2.0f, 8.0f, 32.0f};
  RopeParams p = Plain(8, 500000.0f);
  p.freq_factors = factors;
  std::vector<float> cs(4), sn(4), cs1(4), sn1(4);
  RopeTable(p, 1000, cs.data(), sn.data());
  RopeTable(Plain(8, 500000.0f), 1000, cs1.data(), sn1.data());
  EXPECT_EQ(cs[0], cs1[0]);
  const float theta_scale = std::pow(500000.0f, -2.0f / 8.0f);
  EXPECT_EQ(cs[3], std::cos(1000.0f * theta_scale * theta_scale * theta_scale / 32.0f));
  EXPECT_NE(cs[3], cs1[3]);
}

TEST(RopeTest, YarnCorrectionDims) {
  float dims[2];
  // n_dims 128, original context 4096, base 10000, beta 32 / 1 (llama.cpp's defaults).
  RopeYarnCorrDims(128, 4096, 10000.0f, 32.0f, 1.0f, dims);
  auto corr = [](float n_rot) {
    return 128.0f * std::log(4096.0f / (n_rot * 2.0f * 3.14159265f)) / (2.0f * std::log(10000.0f));
  };
  EXPECT_EQ(dims[0], std::floor(corr(32.0f)));
  EXPECT_EQ(dims[1], std::ceil(corr(1.0f)));
  EXPECT_EQ(dims[0], 20.0f);
  EXPECT_EQ(dims[1], 46.0f);
}

TEST(RopeTest, YarnBlendsExtrapolationAndInterpolationAlongTheRamp) {
  RopeParams p = Plain(128, 10000.0f, 0.25f);
  p.ext_factor = 1.0f;
  RopeYarnCorrDims(128, 4096, 10000.0f, 32.0f, 1.0f, p.corr_dims);
  std::vector<float> cs(64), sn(64);
  const int64_t pos = 5000;
  RopeTable(p, pos, cs.data(), sn.data());
  const float mscale = 1.0f + 0.1f * std::log(4.0f);
  const float theta_scale = std::pow(10000.0f, -2.0f / 128.0f);
  std::vector<float> theta(64);
  theta[0] = static_cast<float>(pos);
  for (int i = 1; i < 64; ++i) theta[i] = theta[i - 1] * theta_scale;
  // Below the ramp (pair 0..19): the unscaled angle; above it (47..63): scaled by 1/4.
  EXPECT_FLOAT_EQ(cs[5], std::cos(theta[5]) * mscale);
  EXPECT_FLOAT_EQ(sn[60], std::sin(0.25f * theta[60]) * mscale);
  // Inside: a mix of the two.
  const float ramp = 1.0f - (33.0f - 20.0f) / (46.0f - 20.0f);
  const float mixed = 0.25f * theta[33] * (1 - ramp) + theta[33] * ramp;
  EXPECT_FLOAT_EQ(cs[33], std::cos(mixed) * mscale);
}

TEST(RopeTest, ConfigParamsPickTheLayersBaseAndYarn) {
  ModelConfig c;
  c.rope_dim = 64;
  c.rope_freq_base = 1e6f;
  c.rope_freq_base_swa = 1e4f;
  c.rope_freq_scale = 0.125f;
  c.rope_freq_scale_swa = 1.0f;
  c.rope_scaling.n_ctx_orig = 8192;
  const RopeParams global = RopeParams::For(c, false, nullptr);
  const RopeParams local = RopeParams::For(c, true, nullptr);
  EXPECT_EQ(global.freq_base, 1e6f);
  EXPECT_EQ(global.freq_scale, 0.125f);
  EXPECT_EQ(local.freq_base, 1e4f);
  EXPECT_EQ(local.freq_scale, 1.0f);
  EXPECT_EQ(global.ext_factor, 0.0f);
}

}  // namespace
}  // namespace dormouse
