#include "engine/gelu.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "engine/quants.h"

namespace dormouse {
namespace {

// F16 bits -> F16 bits of GeluF32 of that value.
const std::vector<uint16_t>& GeluTable() {
  static const std::vector<uint16_t> table = [] {
    std::vector<uint16_t> t(1 << 16);
    for (uint32_t i = 0; i < t.size(); ++i) {
      t[i] = F32ToF16(GeluF32(F16ToF32(static_cast<uint16_t>(i))));
    }
    return t;
  }();
  return table;
}

}  // namespace

float GeluF32(float x) {
  constexpr float kCoefA = 0.044715f;
  constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
  return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + kCoefA * x * x)));
}

void GeluGate(const float* gate, const float* up, int64_t n, float* out) {
  const uint16_t* table = GeluTable().data();
  for (int64_t i = 0; i < n; ++i) {
    const float x = gate[i];
    float g;
    if (x <= -10.0f) {
      g = 0.0f;
    } else if (x >= 10.0f) {
      g = x;
    } else {
      g = F16ToF32(table[F32ToF16(x)]);
    }
    out[i] = g * up[i];
  }
}

}  // namespace dormouse
