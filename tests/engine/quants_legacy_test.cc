// Block layouts and scalar (de)quantizers of Q4_1, Q5_0, Q5_1, IQ4_NL, IQ4_XS and Q8_1
// against hand-computed values and round trips.
#include "engine/quants_legacy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "engine/ggml_types.h"

namespace dormouse {
namespace {

TEST(QuantsLegacyTest, TraitsMatchGgml) {
  struct Want {
    uint32_t id;
    const char* name;
    uint32_t elems, bytes;
  };
  for (Want w : {Want{3, "Q4_1", 32, 20}, Want{6, "Q5_0", 32, 22}, Want{7, "Q5_1", 32, 24},
                 Want{20, "IQ4_NL", 32, 18}, Want{23, "IQ4_XS", 256, 136}}) {
    auto t = TraitsOf(w.id);
    ASSERT_TRUE(t.has_value()) << w.name;
    EXPECT_STREQ(t->name, w.name);
    EXPECT_EQ(t->block_elems, w.elems);
    EXPECT_EQ(t->block_bytes, w.bytes);
    EXPECT_NE(std::string(SupportedTypeList()).find(w.name), std::string::npos);
  }
  EXPECT_EQ(RowBytes(GgmlType::kIQ4_XS, 512), 272u);
  EXPECT_EQ(RowBytes(GgmlType::kQ5_0, 64), 44u);
}

TEST(QuantsLegacyTest, Q4_1KnownBlock) {
  BlockQ4_1 b;
  b.d = F32ToF16(0.5f);
  b.m = F32ToF16(-3.0f);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  float y[32];
  DequantizeRow(GgmlType::kQ4_1, &b, y, 32);
  EXPECT_EQ(y[0], -3.0f);   // 0 * 0.5 - 3
  EXPECT_EQ(y[15], 4.5f);   // 15 * 0.5 - 3
  EXPECT_EQ(y[16], 4.5f);   // high nibble of byte 0: 15
  EXPECT_EQ(y[31], -3.0f);  // high nibble of byte 15: 0
  EXPECT_EQ(y[4], -1.0f);   // 4 * 0.5 - 3
}

TEST(QuantsLegacyTest, Q5_0KnownBlock) {
  BlockQ5_0 b;
  b.d = F32ToF16(2.0f);
  std::memset(b.qs, 0, sizeof(b.qs));
  b.qs[1] = 0x3f;  // element 1: nibble 15; element 17: nibble 3
  const uint32_t qh = (1u << 1) | (1u << 17) | (1u << 31);
  std::memcpy(b.qh, &qh, 4);  // little-endian, as the file
  float y[32];
  DequantizeRow(GgmlType::kQ5_0, &b, y, 32);
  EXPECT_EQ(y[0], -32.0f);             // (0 - 16) * 2
  EXPECT_EQ(y[1], 30.0f);              // (31 - 16) * 2
  EXPECT_EQ(y[17], (19 - 16) * 2.0f);  // nibble 3 | 16
  EXPECT_EQ(y[31], 0.0f);              // nibble 0 | 16
  EXPECT_EQ(y[16], -32.0f);
}

TEST(QuantsLegacyTest, Q5_1KnownBlock) {
  BlockQ5_1 b;
  b.d = F32ToF16(0.25f);
  b.m = F32ToF16(1.0f);
  std::memset(b.qs, 0xff, sizeof(b.qs));
  const uint32_t qh = 0x0000ffffu;  // 5th bit only on elements 0..15
  std::memcpy(b.qh, &qh, 4);
  float y[32];
  DequantizeRow(GgmlType::kQ5_1, &b, y, 32);
  EXPECT_EQ(y[0], 31 * 0.25f + 1.0f);
  EXPECT_EQ(y[15], 31 * 0.25f + 1.0f);
  EXPECT_EQ(y[16], 15 * 0.25f + 1.0f);
}

TEST(QuantsLegacyTest, IQ4_NLKnownBlock) {
  BlockIQ4_NL b;
  b.d = F32ToF16(0.5f);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  float y[32];
  DequantizeRow(GgmlType::kIQ4_NL, &b, y, 32);
  EXPECT_EQ(y[0], -63.5f);      // -127 * 0.5
  EXPECT_EQ(y[8], 0.5f);        // 1 * 0.5
  EXPECT_EQ(y[15], 56.5f);      // 113 * 0.5
  EXPECT_EQ(y[16], 56.5f);      // high nibble 15
  EXPECT_EQ(y[31], -63.5f);     // high nibble 0
  EXPECT_EQ(y[19], 0.5f * 53);  // byte 3's high nibble: 12
}

TEST(QuantsLegacyTest, IQ4_XSKnownBlock) {
  BlockIQ4_XS b;
  std::memset(&b, 0, sizeof(b));
  b.d = F32ToF16(0.5f);
  // 6-bit sub-block scales ls: low 4 bits in scales_l's nibbles, top 2 in scales_h.
  const int ls[8] = {0, 63, 32, 33, 17, 48, 31, 40};
  for (int j = 0; j < 8; ++j) {
    b.scales_l[j / 2] |= static_cast<uint8_t>((ls[j] & 0xf) << (4 * (j % 2)));
    b.scales_h |= static_cast<uint16_t>((ls[j] >> 4) << (2 * j));
  }
  for (int j = 0; j < 8; ++j) EXPECT_EQ(IQ4XSScale(b, j), ls[j]) << j;
  b.qs[0] = 0xf0;       // sub-block 0: element 0 level 0 (-127), element 16 level 15 (113)
  b.qs[16 + 3] = 0x09;  // sub-block 1: element 3 level 9 (13), element 19 level 0
  b.qs[16 * 7 + 15] = 0x4c;
  float y[256];
  DequantizeRow(GgmlType::kIQ4_XS, &b, y, 256);
  EXPECT_EQ(y[0], 0.5f * -32 * -127);
  EXPECT_EQ(y[16], 0.5f * -32 * 113);
  EXPECT_EQ(y[32 + 3], 0.5f * 31 * 13);
  EXPECT_EQ(y[32 + 19], 0.5f * 31 * -127);
  EXPECT_EQ(y[64], 0.0f);                  // ls 32: scale 0
  EXPECT_EQ(y[224 + 15], 0.5f * 8 * 53);   // level 12
  EXPECT_EQ(y[224 + 31], 0.5f * 8 * -49);  // level 4
}

TEST(QuantsLegacyTest, Q8_1MatchesLlamaCppRules) {
  std::vector<float> x(32, 0.0f);
  x[0] = -254.0f;  // amax 254: d = 2, id = 0.5
  x[1] = 5.0f;     // 2.5 rounds to even
  x[2] = 7.0f;     // 3.5 rounds to even
  BlockQ8_1 b;
  QuantizeRowQ8_1(x.data(), &b, 32);
  EXPECT_EQ(b.d, F32ToF16(2.0f));
  EXPECT_EQ(b.qs[0], -127);
  EXPECT_EQ(b.qs[1], 2);
  EXPECT_EQ(b.qs[2], 4);
  EXPECT_EQ(b.s, F32ToF16(2.0f * (-127 + 2 + 4)));
  // s = f16(d * sum) with the unrounded d: d = 1 + 3 * 2^-13 rounds to 1 in f16, but
  // 4064 d (every q = 127) is 4065.5 -> f16 4066; with f16(d) it would be 4064.
  const float amax = 127.0f * (1.0f + 0x3p-13f);
  std::vector<float> full(32, amax);
  QuantizeRowQ8_1(full.data(), &b, 32);
  EXPECT_EQ(b.d, F32ToF16(1.0f));
  EXPECT_EQ(F16ToF32(b.s), 4066.0f);
  std::vector<float> zero(32, 0.0f);
  QuantizeRowQ8_1(zero.data(), &b, 32);
  EXPECT_EQ(b.d, 0);
  EXPECT_EQ(b.s, 0);
  for (int8_t q : b.qs) EXPECT_EQ(q, 0);
}

std::vector<float> RandomRow(int64_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = u(rng);
  return v;
}

TEST(QuantsLegacyTest, RoundTripsWithinFormatError) {
  struct Case {
    GgmlType type;
    float bound;  // as a fraction of max |x|
  };
  // Q4_1/Q5_1: half a step of (max - min) / 15 (31), plus f16 rounding of d and m;
  // Q5_0: a step of amax / 16 (+16 steps clamp to 15); IQ4: the largest level (113) is 14
  // of 127 short of the mirror of the lowest, IQ4_XS plus the 6-bit sub-block scale.
  const Case cases[] = {{GgmlType::kQ4_1, 1.0f / 15 + 0.01f},
                        {GgmlType::kQ5_0, 1.0f / 16 + 0.01f},
                        {GgmlType::kQ5_1, 1.0f / 31 + 0.01f},
                        {GgmlType::kIQ4_NL, 14.0f / 127 + 0.01f},
                        {GgmlType::kIQ4_XS, 14.0f / 127 + 1.0f / 31}};
  const int64_t n = 1024;
  for (const Case& c : cases) {
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

TEST(QuantsLegacyTest, ZeroRowsStayZero) {
  for (GgmlType t :
       {GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kIQ4_NL, GgmlType::kIQ4_XS}) {
    std::vector<float> x(256, 0.0f), y(256, 1.0f);
    std::vector<uint8_t> q(RowBytes(t, 256));
    QuantizeRow(t, x.data(), q.data(), 256);
    DequantizeRow(t, q.data(), y.data(), 256);
    // IQ4 has no zero level: d = 0 makes every element 0 anyway.
    for (float v : y) ASSERT_EQ(v, 0.0f) << TypeName(t);
  }
}

}  // namespace
}  // namespace dormouse
