// The arguments and the check that hold a vectorized exp to the library's expf, bit for
// bit: shared by the attention tests of each exp variant.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace dormouse::expf_check {

// Every `step`-th float in [-104, 0] (by bit pattern), plus a hard case, the edges and special
// values.
inline std::vector<float> Arguments(uint32_t step) {
  // First (in a whole vector, not a scalar tail): the one float in [-104, 0] whose expf on
  // aarch64 needs r = z - k computed as glibc's build there does (attention_lanes-inl.h
  // ExpCore), found by a pass over them all.
  std::vector<float> x = {-63.099460601806641f};
  uint32_t lo, hi;
  const float a = -0.0f, b = -104.0f;
  std::memcpy(&lo, &a, 4);
  std::memcpy(&hi, &b, 4);
  for (uint64_t u = lo; u <= hi; u += step) {
    float f;
    const uint32_t v = static_cast<uint32_t>(u);
    std::memcpy(&f, &v, 4);
    x.push_back(f);
  }
  for (float f : {-INFINITY, -0.0f, 0.0f, -103.97f, -103.28f, -87.3f, -1e-30f, -200.0f}) {
    x.push_back(f);
  }
  return x;
}

// got[i] has std::exp(x[i])'s bits for every i (the first few differences are reported).
inline void ExpectLibraryBits(const std::vector<float>& x, const std::vector<float>& got) {
  ASSERT_EQ(x.size(), got.size());
  int64_t mismatches = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const float want = std::exp(x[i]);
    if (std::memcmp(&want, &got[i], 4) != 0 && ++mismatches < 5) {
      ADD_FAILURE() << "exp(" << x[i] << ") = " << want << ", got " << got[i];
    }
  }
  EXPECT_EQ(mismatches, 0);
}

}  // namespace dormouse::expf_check
