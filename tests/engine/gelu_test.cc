// The GELU gate: llama.cpp's F16 table numerics, held to the F32 formula.
#include "engine/gelu.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "engine/quants.h"

namespace dormouse {
namespace {

TEST(GeluTest, TableLookupIsTheF16RoundedFormulaOfTheF16RoundedInput) {
  std::vector<float> x, up;
  for (float v = -12.0f; v <= 12.0f; v += 0.0137f) {
    x.push_back(v);
    up.push_back(0.5f + v * 0.01f);
  }
  std::vector<float> out(x.size());
  GeluGate(x.data(), up.data(), static_cast<int64_t>(x.size()), out.data());
  for (size_t i = 0; i < x.size(); ++i) {
    float g;
    if (x[i] <= -10.0f) {
      g = 0.0f;
    } else if (x[i] >= 10.0f) {
      g = x[i];
    } else {
      g = F16ToF32(F32ToF16(GeluF32(F16ToF32(F32ToF16(x[i])))));
    }
    EXPECT_EQ(out[i], g * up[i]) << x[i];
    // And close to the exact tanh-approximation GELU.
    EXPECT_NEAR(out[i], GeluF32(x[i]) * up[i], 0.01f * std::abs(x[i]) + 1e-3f) << x[i];
  }
}

TEST(GeluTest, KnownValues) {
  EXPECT_EQ(GeluF32(0.0f), 0.0f);
  EXPECT_NEAR(GeluF32(1.0f), 0.841192f, 1e-5f);
  EXPECT_NEAR(GeluF32(-1.0f), -0.158808f, 1e-5f);
}

}  // namespace
}  // namespace dormouse
