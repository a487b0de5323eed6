// The F16 attention steps (kernels.h DotF16Ggml, ScaleF16, MadF16), the F16 conversions under
// them and the accumulators' rounding (RoundToF16) give the scalar references' bits on every
// compiled target, special values included. Without F16C (SSE4, EMU128, NEON) the conversions and
// the fused multiply-add are emulated in portable ops (f16_vec-inl.h), so these cases aim at what
// emulation gets wrong: ties, subnormals, overflow, inf, NaN and a sum rounded twice.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "engine/attention.h"
#include "engine/kernels.h"
#include "engine/kernels_reference.h"
#include "engine/quants.h"
#include "kernel_checker.h"

namespace dormouse {
namespace {

using attention_internal::DotF16Reference;
using attention_internal::MadF16Reference;
using attention_internal::ScaleF16Reference;
using kernel_test::ForEachTarget;

// Equal bits, where any NaN equals any NaN: F16C keeps a NaN's payload, the references make it
// the quiet 0x7e00.
bool IsNaNHalf(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0; }

::testing::AssertionResult SameHalves(const std::vector<uint16_t>& got,
                                      const std::vector<uint16_t>& want) {
  for (size_t i = 0; i < want.size(); ++i) {
    if (got[i] != want[i] && !(IsNaNHalf(got[i]) && IsNaNHalf(want[i]))) {
      return ::testing::AssertionFailure()
             << "element " << i << ": got " << got[i] << ", want " << want[i] << " (F16 bits)";
    }
  }
  return ::testing::AssertionSuccess();
}

bool SameFloat(float a, float b) {
  return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b) ||
         (std::isnan(a) && std::isnan(b));
}

std::vector<uint16_t> EveryHalf() {
  std::vector<uint16_t> h(65536);
  for (uint32_t i = 0; i < h.size(); ++i) h[i] = static_cast<uint16_t>(i);
  return h;
}

// F16 values of every kind, random but for a few fixed ones: normal of several magnitudes,
// subnormal, zeros, the largest, inf and NaN.
std::vector<uint16_t> MixedHalves(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<uint16_t> h(static_cast<size_t>(n));
  for (uint16_t& x : h) {
    const uint32_t kind = rng() % 16;
    if (kind == 0) {
      x = static_cast<uint16_t>(rng() & 0x83ff);  // subnormal or zero
    } else if (kind == 1) {
      x = static_cast<uint16_t>(rng());  // anything, inf and NaN included
    } else {
      x = F32ToF16(g(rng) * std::ldexp(1.0f, static_cast<int>(rng() % 24) - 12));
    }
  }
  if (n > 4) {
    h[0] = 0x7bff;  // 65504
    h[1] = 0xfc00;  // -inf
    h[2] = 0x7e00;  // NaN
    h[3] = 0x8000;  // -0
  }
  return h;
}

TEST(F16StepsTest, ConversionsRoundTripEveryHalf) {
  const std::vector<uint16_t> h = EveryHalf();
  std::vector<uint16_t> want = h;
  ScaleF16Reference(want.data(), 1.0f, static_cast<int64_t>(want.size()));
  ForEachTarget([&] {
    std::vector<uint16_t> got = h;
    ScaleF16(got.data(), 1.0f, static_cast<int64_t>(got.size()));
    EXPECT_TRUE(SameHalves(got, want));
  });
}

// Floats at every rounding boundary near F16's range ends, and random ones of every kind.
std::vector<float> FloatsAtF16Boundaries() {
  std::mt19937 rng(11);
  std::vector<float> x;
  // Every rounding boundary near F16's range ends: ties, one float ulp either side of them,
  // the overflow threshold, the smallest subnormal and below it.
  for (float base : {1.0f, 0x1p-14f, 0x1p-24f, 0x1p-25f, 65504.0f, 65520.0f, 1.5f}) {
    for (float t : {base, base + base * 0x1p-11f, std::nextafter(base + base * 0x1p-11f, 0.0f),
                    std::nextafter(base + base * 0x1p-11f, INFINITY)}) {
      x.push_back(t);
      x.push_back(-t);
    }
  }
  for (int i = 0; i < 4000; ++i) {
    const uint32_t bits = static_cast<uint32_t>(rng());
    x.push_back(std::bit_cast<float>(bits));  // any float, NaN with payloads included
    x.push_back(std::ldexp(std::bit_cast<float>((bits & 0x807fffffu) | 0x3f800000u),
                           static_cast<int>(rng() % 48) - 30));
  }
  x.push_back(INFINITY);
  x.push_back(-NAN);
  return x;
}

TEST(F16StepsTest, ConversionOfFloatsRoundsAsTheReference) {
  const std::vector<float> x = FloatsAtF16Boundaries();
  std::vector<uint16_t> want(x.size());
  for (size_t i = 0; i < x.size(); ++i) want[i] = F32ToF16(x[i]);
  ForEachTarget([&] {
    std::vector<uint16_t> got(x.size());
    ConvertF32ToF16(x.data(), got.data(), static_cast<int64_t>(x.size()));
    EXPECT_TRUE(SameHalves(got, want));
  });
}

// The accumulators' rounding (f16_vec-inl.h Round: float arithmetic without native
// conversions) against the round trip through F16, for the boundaries and every 4093rd float.
TEST(F16StepsTest, RoundingToF16InFloatsIsTheRoundTrip) {
  std::vector<float> x = FloatsAtF16Boundaries();
  for (uint64_t b = 0; b <= 0xffffffffu; b += 4093) x.push_back(std::bit_cast<float>(uint32_t(b)));
  std::vector<float> want(x.size());
  for (size_t i = 0; i < x.size(); ++i) want[i] = F16ToF32(F32ToF16(x[i]));
  ForEachTarget([&] {
    std::vector<float> got(x.size());
    RoundToF16(x.data(), got.data(), static_cast<int64_t>(x.size()));
    size_t bad = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      if (!SameFloat(got[i], want[i]) && ++bad <= 5) {
        ADD_FAILURE() << "x " << x[i] << " (bits " << std::hex << std::bit_cast<uint32_t>(x[i])
                      << "): got " << got[i] << ", want " << want[i];
      }
    }
    EXPECT_EQ(bad, 0u);
  });
}

TEST(F16StepsTest, ScaleAndMadGiveTheReferenceBits) {
  for (int64_t n : {1, 3, 4, 8, 17, 64, 130, 1000}) {
    const std::vector<uint16_t> x = MixedHalves(n, static_cast<uint32_t>(n));
    const std::vector<uint16_t> y0 = MixedHalves(n, static_cast<uint32_t>(n + 7));
    for (float v : {1.0f, 0.0f, 0.7071f, 1e-3f, 3.3e-8f, 1.0f - 0x1p-24f, -2.5f, 1e30f}) {
      std::vector<uint16_t> scale_want = y0, mad_want = y0;
      ScaleF16Reference(scale_want.data(), v, n);
      MadF16Reference(mad_want.data(), x.data(), v, n);
      ForEachTarget([&] {
        std::vector<uint16_t> scale_got = y0, mad_got = y0;
        ScaleF16(scale_got.data(), v, n);
        MadF16(mad_got.data(), x.data(), v, n);
        EXPECT_TRUE(SameHalves(scale_got, scale_want)) << "n " << n << " v " << v;
        EXPECT_TRUE(SameHalves(mad_got, mad_want)) << "n " << n << " v " << v;
      });
    }
  }
}

// Products that land within a float ulp of an F16 tie (2 + 2^-10), plus a sum smaller than
// that ulp: rounding the product to float first (SSE4's MulAdd) flips the F16 result.
TEST(F16StepsTest, MadRoundsOnceAsFma) {
  std::mt19937 rng(5);
  std::vector<uint16_t> x, y;
  std::vector<float> v;
  for (int i = 0; i < 2000; ++i) {
    const uint16_t xh = static_cast<uint16_t>(0x3c00 | (rng() & 0x3ff));  // [1, 2)
    float vi = (2.0f + 0x1p-10f) / F16ToF32(xh);
    for (int step = static_cast<int>(rng() % 5); step > 0; --step) {
      vi = std::nextafter(vi, (rng() & 1) ? INFINITY : 0.0f);
    }
    x.push_back(xh);
    y.push_back((rng() & 1) ? 0x0001 : 0x8001);  // +-2^-24
    v.push_back(vi);
  }
  // MadF16 takes one v per call; runs of 8 keep every lane of a vector busy.
  std::vector<uint16_t> want = y;
  for (size_t i = 0; i < x.size(); ++i) {
    std::vector<uint16_t> xs(8, x[i]), ys(8, y[i]);
    MadF16Reference(ys.data(), xs.data(), v[i], 8);
    want[i] = ys[0];
  }
  ForEachTarget([&] {
    std::vector<uint16_t> got = y;
    for (size_t i = 0; i < x.size(); ++i) {
      std::vector<uint16_t> xs(8, x[i]), ys(8, y[i]);
      MadF16(ys.data(), xs.data(), v[i], 8);
      got[i] = ys[0];
    }
    EXPECT_TRUE(SameHalves(got, want));
  });
}

TEST(F16StepsTest, DotGivesTheReferenceBits) {
  for (int64_t n : {1, 17, 63, 64, 65, 128, 200, 1024}) {
    const std::vector<uint16_t> x = MixedHalves(n, static_cast<uint32_t>(3 * n));
    const std::vector<uint16_t> y = MixedHalves(n, static_cast<uint32_t>(3 * n + 1));
    // Finite values too, where the sum is an ordinary number rather than NaN.
    std::vector<uint16_t> xf = x, yf = y;
    for (uint16_t& h : xf) h = (h & 0x7c00) == 0x7c00 ? 0x3c00 : h;
    for (uint16_t& h : yf) h = (h & 0x7c00) == 0x7c00 ? 0xbc00 : h;
    const float want = DotF16Reference(x.data(), y.data(), n);
    const float want_finite = DotF16Reference(xf.data(), yf.data(), n);
    ASSERT_TRUE(std::isfinite(want_finite));
    ForEachTarget([&] {
      EXPECT_TRUE(SameFloat(DotF16Ggml(x.data(), y.data(), n), want)) << "n " << n;
      EXPECT_EQ(std::bit_cast<uint32_t>(DotF16Ggml(xf.data(), yf.data(), n)),
                std::bit_cast<uint32_t>(want_finite))
          << "n " << n;
    });
  }
}

}  // namespace
}  // namespace dormouse
