// Block layouts, scalar (de)quantizers and float conversions against hand-computed values
// and round trips.
#include "engine/quants.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace dormouse {
namespace {

std::vector<float> RandomRow(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = u(rng);
  return v;
}

float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(QuantsTest, F16KnownValues) {
  EXPECT_EQ(F32ToF16(1.0f), 0x3c00);
  EXPECT_EQ(F32ToF16(-2.0f), 0xc000);
  EXPECT_EQ(F32ToF16(0.0f), 0x0000);
  EXPECT_EQ(F32ToF16(-0.0f), 0x8000);
  EXPECT_EQ(F32ToF16(65504.0f), 0x7bff);
  EXPECT_EQ(F32ToF16(65519.0f), 0x7bff);  // below the rounding midpoint
  EXPECT_EQ(F32ToF16(65520.0f), 0x7c00);  // midpoint rounds to even: inf
  EXPECT_EQ(F32ToF16(1e9f), 0x7c00);
  EXPECT_EQ(F32ToF16(0x1p-24f), 0x0001);                    // smallest subnormal
  EXPECT_EQ(F32ToF16(0x1p-25f), 0x0000);                    // tie to even (0)
  EXPECT_EQ(F32ToF16(0x3p-25f), 0x0002);                    // tie to even (2)
  EXPECT_EQ(F32ToF16(0x1p-14f), 0x0400);                    // smallest normal
  EXPECT_EQ(F32ToF16(1.0f + 0x1p-11f), 0x3c00);             // tie: stays even
  EXPECT_EQ(F32ToF16(1.0f + 0x3p-11f), 0x3c02);             // tie: rounds up to even
  EXPECT_EQ(F32ToF16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);  // above the tie
  EXPECT_EQ(F32ToF16(INFINITY), 0x7c00);
  EXPECT_EQ(F32ToF16(-INFINITY), 0xfc00);
  EXPECT_EQ(F32ToF16(NAN) & 0x7c00, 0x7c00);
  EXPECT_NE(F32ToF16(NAN) & 0x03ff, 0);

  EXPECT_EQ(F16ToF32(0x3c00), 1.0f);
  EXPECT_EQ(F16ToF32(0xc000), -2.0f);
  EXPECT_EQ(F16ToF32(0x7bff), 65504.0f);
  EXPECT_EQ(F16ToF32(0x0001), 0x1p-24f);
  EXPECT_EQ(F16ToF32(0x03ff), 1023 * 0x1p-24f);
  EXPECT_EQ(F16ToF32(0x3555), 0.333251953125f);
  EXPECT_EQ(F16ToF32(0x8000), 0.0f);
  EXPECT_TRUE(std::signbit(F16ToF32(0x8000)));
  EXPECT_EQ(F16ToF32(0x7c00), INFINITY);
  EXPECT_TRUE(std::isnan(F16ToF32(0x7e00)));
}

TEST(QuantsTest, F16RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = F16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(F32ToF16(f), h) << std::hex << h;
  }
}

TEST(QuantsTest, F16RoundsToNearest) {
  // Every float between two adjacent halves goes to the nearer one.
  std::mt19937 rng(7);
  for (int i = 0; i < 200000; ++i) {
    float f = FromBits(rng() & 0xc7ffffffu);  // |f| < 2^16 or so, any sign
    if (std::isnan(f)) continue;
    uint16_t h = F32ToF16(f);
    float r = F16ToF32(h);
    if (std::isinf(r)) {
      ASSERT_GE(std::fabs(f), 65520.0f);
      continue;
    }
    // The neighbours of h, and the distance to them, are never closer.
    for (int step : {-1, 1}) {
      uint16_t nb = static_cast<uint16_t>(h + step);
      float rn = F16ToF32(nb);
      if ((nb & 0x7fff) >= 0x7c00 || ((h ^ nb) & 0x8000)) continue;
      ASSERT_LE(std::fabs(r - f), std::fabs(rn - f)) << f;
    }
  }
}

TEST(QuantsTest, BF16KnownValues) {
  EXPECT_EQ(F32ToBF16(1.0f), 0x3f80);
  EXPECT_EQ(F32ToBF16(-1.0f), 0xbf80);
  EXPECT_EQ(F32ToBF16(FromBits(0x3f808000u)), 0x3f80);  // tie -> even
  EXPECT_EQ(F32ToBF16(FromBits(0x3f818000u)), 0x3f82);  // tie -> even
  EXPECT_EQ(F32ToBF16(FromBits(0x3f808001u)), 0x3f81);
  EXPECT_EQ(F32ToBF16(FromBits(0x7f800001u)), 0x7fc0);  // NaN stays NaN, quiet
  EXPECT_EQ(BF16ToF32(0x4049), FromBits(0x40490000u));
  EXPECT_EQ(BF16ToF32(0xc2f7), -123.5f);
}

TEST(QuantsTest, NearestIntRoundsHalfToEven) {
  EXPECT_EQ(NearestInt(0.5f), 0);
  EXPECT_EQ(NearestInt(1.5f), 2);
  EXPECT_EQ(NearestInt(2.5f), 2);
  EXPECT_EQ(NearestInt(-0.5f), 0);
  EXPECT_EQ(NearestInt(-1.5f), -2);
  EXPECT_EQ(NearestInt(-126.7f), -127);
  EXPECT_EQ(NearestInt(0.49999997f), 0);
}

TEST(QuantsTest, FloatRowsKnownValues) {
  const float f32[3] = {1.5f, -0.0f, 3e38f};
  const uint16_t f16[3] = {0x3c00, 0xc000, 0x0001};
  const uint16_t bf16[3] = {0x3f80, 0xc2f7, 0x0000};
  float y[3];
  DequantizeRow(GgmlType::kF32, f32, y, 3);
  EXPECT_EQ(y[0], 1.5f);
  EXPECT_EQ(y[2], 3e38f);
  DequantizeRow(GgmlType::kF16, f16, y, 3);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], -2.0f);
  EXPECT_EQ(y[2], 0x1p-24f);
  DequantizeRow(GgmlType::kBF16, bf16, y, 3);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], -123.5f);
  EXPECT_EQ(y[2], 0.0f);
}

TEST(QuantsTest, Q8_0KnownBlock) {
  BlockQ8_0 b;
  b.d = F32ToF16(0.5f);
  for (int i = 0; i < 32; ++i) b.qs[i] = static_cast<int8_t>(i - 16);
  float y[32];
  DequantizeRow(GgmlType::kQ8_0, &b, y, 32);
  EXPECT_EQ(y[0], -8.0f);
  EXPECT_EQ(y[16], 0.0f);
  EXPECT_EQ(y[31], 7.5f);
}

TEST(QuantsTest, Q4_0KnownBlock) {
  BlockQ4_0 b;
  b.d = F32ToF16(2.0f);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  float y[32];
  DequantizeRow(GgmlType::kQ4_0, &b, y, 32);
  EXPECT_EQ(y[0], -16.0f);   // (0 - 8) * 2
  EXPECT_EQ(y[15], 14.0f);   // (15 - 8) * 2
  EXPECT_EQ(y[16], 14.0f);   // high nibble of byte 0: 15
  EXPECT_EQ(y[31], -16.0f);  // high nibble of byte 15: 0
  EXPECT_EQ(y[9], 2.0f);
}

TEST(QuantsTest, Q4_KScalePacking) {
  // Hand-packed: sc = {1..8}, m = {60, 61, 62, 63, 33, 34, 35, 36}.
  uint8_t s[12] = {};
  const uint8_t sc[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  const uint8_t mn[8] = {60, 61, 62, 63, 33, 34, 35, 36};
  for (int j = 0; j < 8; ++j) SetScaleMinK4(j, sc[j], mn[j], s);
  // j < 4: low 6 bits of bytes 0..3 (scales) and 4..7 (mins).
  EXPECT_EQ(s[0] & 63, 1);
  EXPECT_EQ(s[4] & 63, 60);
  // j = 4: scale 5 = 0b000101 -> low nibble of byte 8 = 5, no high bits; min 33 = 0b100001
  // -> high nibble of byte 8 = 1, top 2 bits (0b10) in byte 4's bits 6..7.
  EXPECT_EQ(s[8], 0x15);
  EXPECT_EQ(s[4] >> 6, 2);
  EXPECT_EQ(s[0] >> 6, 0);
  for (int j = 0; j < 8; ++j) {
    uint8_t a, m;
    GetScaleMinK4(j, s, &a, &m);
    EXPECT_EQ(a, sc[j]) << j;
    EXPECT_EQ(m, mn[j]) << j;
  }
}

TEST(QuantsTest, Q4_KKnownBlock) {
  BlockQ4_K b;
  std::memset(&b, 0, sizeof(b));
  b.d = F32ToF16(0.5f);
  b.dmin = F32ToF16(0.25f);
  for (int j = 0; j < 8; ++j) SetScaleMinK4(j, static_cast<uint8_t>(j + 1), 4, b.scales);
  for (int i = 0; i < 128; ++i) b.qs[i] = static_cast<uint8_t>((i % 16) | (3 << 4));
  float y[256];
  DequantizeRow(GgmlType::kQ4_K, &b, y, 256);
  // Element 5: sub-block 0 (sc 1), low nibble of qs[5] = 5: 0.5 * 1 * 5 - 0.25 * 4 = 1.5.
  EXPECT_EQ(y[5], 1.5f);
  // Element 40: sub-block 1 (sc 2), high nibble of qs[8] = 3: 0.5 * 2 * 3 - 1 = 2.
  EXPECT_EQ(y[40], 2.0f);
  // Element 64 + 7: sub-block 2 (sc 3), low nibble of qs[32 + 7] = 7: 1.5 * 7 - 1 = 9.5.
  EXPECT_EQ(y[71], 9.5f);
  // Element 255: sub-block 7 (sc 8), high nibble of qs[127] = 3: 4 * 3 - 1 = 11.
  EXPECT_EQ(y[255], 11.0f);
}

TEST(QuantsTest, Q6_KKnownBlock) {
  BlockQ6_K b;
  std::memset(&b, 0, sizeof(b));
  b.d = F32ToF16(0.125f);
  for (int g = 0; g < 16; ++g) b.scales[g] = static_cast<int8_t>(g - 8);
  b.ql[3] = 0x21;        // element 3: low nibble 1; element 67: high nibble 2
  b.qh[3] = 0xe4;        // 0b11'10'01'00: elements 3, 35, 67, 99 get high bits 0, 1, 2, 3
  b.ql[35] = 0x0f;       // element 35: low nibble 15
  b.ql[64 + 10] = 0xa0;  // element 128 + 64 + 10: high nibble 10
  float y[256];
  DequantizeRow(GgmlType::kQ6_K, &b, y, 256);
  EXPECT_EQ(y[3], 0.125f * -8 * (1 - 32));           // q = 1
  EXPECT_EQ(y[35], 0.125f * -6 * ((15 | 16) - 32));  // q = 31
  EXPECT_EQ(y[67], 0.125f * -4 * ((2 | 32) - 32));   // q = 34
  EXPECT_EQ(y[99], 0.125f * -2 * ((0 | 48) - 32));   // q = 48
  EXPECT_EQ(y[202], 0.125f * 4 * (10 - 32));         // q = 10, scale 12 - 8
  EXPECT_EQ(y[0], 0.125f * -8 * -32);
}

TEST(QuantsTest, Q8_KMatchesLlamaCppRules) {
  std::vector<float> x(256, 0.0f);
  x[10] = 127.0f;
  x[20] = -127.0f;  // same magnitude later: the first (positive) sets the sign
  x[30] = 63.5f;    // -63.5 rounds to even
  x[40] = 0.5f;     // -0.5 rounds to even (0)
  x[41] = 1.5f;
  BlockQ8_K b;
  QuantizeRowQ8_K(x.data(), &b, 256);
  EXPECT_EQ(b.d, -1.0f);
  EXPECT_EQ(b.qs[10], -127);
  EXPECT_EQ(b.qs[20], 127);
  EXPECT_EQ(b.qs[30], -64);
  EXPECT_EQ(b.qs[40], 0);
  EXPECT_EQ(b.qs[41], -2);
  EXPECT_EQ(b.bsums[0], -127);
  EXPECT_EQ(b.bsums[1], 127 - 64);
  EXPECT_EQ(b.bsums[2], -2);
  std::vector<float> zero(256, 0.0f);
  QuantizeRowQ8_K(zero.data(), &b, 256);
  EXPECT_EQ(b.d, 0.0f);
  EXPECT_EQ(b.bsums[3], 0);
}

TEST(QuantsTest, Q8_0MatchesLlamaCppRules) {
  std::vector<float> x(32, 0.0f);
  x[0] = -127.0f;  // amax 127: d = 1, id = 1
  x[1] = 2.5f;     // rounds to even
  x[2] = -3.5f;
  BlockQ8_0 b;
  QuantizeRowQ8_0(x.data(), &b, 32);
  EXPECT_EQ(b.d, F32ToF16(1.0f));
  EXPECT_EQ(b.qs[0], -127);
  EXPECT_EQ(b.qs[1], 2);
  EXPECT_EQ(b.qs[2], -4);
}

// Max |x - dequantize(quantize(x))| over random rows, against a per-type bound relative to
// the largest magnitude in the row.
struct RoundTripCase {
  GgmlType type;
  float bound;  // as a fraction of max |x|
};

TEST(QuantsTest, RoundTripsWithinFormatError) {
  const RoundTripCase cases[] = {
      {GgmlType::kF32, 0.0f},        {GgmlType::kF16, 1.0f / 2048},
      {GgmlType::kBF16, 1.0f / 256}, {GgmlType::kQ8_0, 1.0f / 254 + 1.0f / 2048},
      {GgmlType::kQ4_0, 1.0f / 8},   {GgmlType::kQ4_K, 0.11f},
      {GgmlType::kQ6_K, 1.0f / 28},
  };
  const int64_t n = 1024;
  for (const RoundTripCase& c : cases) {
    for (uint32_t seed = 1; seed <= 5; ++seed) {
      std::vector<float> x = RandomRow(n, seed, 3.0f);
      std::vector<uint8_t> q(RowBytes(c.type, n));
      std::vector<float> y(n);
      QuantizeRow(c.type, x.data(), q.data(), n);
      DequantizeRow(c.type, q.data(), y.data(), n);
      float amax = 0.0f, err = 0.0f;
      for (int64_t i = 0; i < n; ++i) {
        amax = std::max(amax, std::fabs(x[i]));
        err = std::max(err, std::fabs(x[i] - y[i]));
      }
      EXPECT_LE(err, c.bound * amax) << TypeName(c.type) << " seed " << seed;
    }
  }
}

TEST(QuantsTest, Q8_KRoundTrip) {
  std::vector<float> x = RandomRow(512, 3, 5.0f);
  BlockQ8_K b[2];
  QuantizeRowQ8_K(x.data(), b, 512);
  std::vector<float> y(512);
  DequantizeRowQ8_K(b, y.data(), 512);
  for (int i = 0; i < 512; ++i) {
    ASSERT_LE(std::fabs(x[i] - y[i]), std::fabs(b[i / 256].d) * 0.5001f) << i;
  }
  for (int g = 0; g < 16; ++g) {
    int s = 0;
    for (int i = 0; i < 16; ++i) s += b[1].qs[16 * g + i];
    EXPECT_EQ(b[1].bsums[g], s);
  }
}

TEST(QuantsTest, RowBytesMatchesTraits) {
  EXPECT_EQ(RowBytes(GgmlType::kQ8_0, 64), 68u);
  EXPECT_EQ(RowBytes(GgmlType::kQ4_0, 64), 36u);
  EXPECT_EQ(RowBytes(GgmlType::kQ4_K, 512), 288u);
  EXPECT_EQ(RowBytes(GgmlType::kQ6_K, 256), 210u);
  EXPECT_EQ(RowBytes(GgmlType::kF16, 10), 20u);
  EXPECT_EQ(RowBytes(GgmlType::kF32, 10), 40u);
}

}  // namespace
}  // namespace dormouse
