// Q2_K / Q3_K / Q5_K: block layouts against hand-built blocks, quantizer round trips, and
// every compiled kernel target held to the scalar reference (kernel_checker.h).
#include "engine/quants_k.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "engine/kernels_reference.h"
#include "engine/quants.h"
#include "kernel_checker.h"

namespace dormouse {
namespace {

TEST(QuantKTest, TraitsAndRowBytes) {
  EXPECT_EQ(TypeName(GgmlType::kQ2_K), "Q2_K");
  EXPECT_EQ(TypeName(GgmlType::kQ3_K), "Q3_K");
  EXPECT_EQ(TypeName(GgmlType::kQ5_K), "Q5_K");
  EXPECT_EQ(RowBytes(GgmlType::kQ2_K, 512), 168u);
  EXPECT_EQ(RowBytes(GgmlType::kQ3_K, 256), 110u);
  EXPECT_EQ(RowBytes(GgmlType::kQ5_K, 768), 528u);
}

TEST(QuantKTest, Q2_KKnownBlock) {
  BlockQ2_K b;
  std::memset(&b, 0, sizeof(b));
  b.d = F32ToF16(0.5f);
  b.dmin = F32ToF16(0.25f);
  for (int g = 0; g < 16; ++g) b.scales[g] = static_cast<uint8_t>((g + 1) % 16 | (g / 2) << 4);
  b.qs[3] = 0b11'10'01'00;        // elements 3, 35, 67, 99: q = 0, 1, 2, 3
  b.qs[32 + 20] = 0b10'00'00'00;  // element 128 + 96 + 20 = 244: q = 2
  float y[256];
  DequantizeRow(GgmlType::kQ2_K, &b, y, 256);
  EXPECT_EQ(y[3], 0.5f * 1 * 0 - 0.25f * 0);    // sub-block 0
  EXPECT_EQ(y[35], 0.5f * 3 * 1 - 0.25f * 1);   // sub-block 2
  EXPECT_EQ(y[67], 0.5f * 5 * 2 - 0.25f * 2);   // sub-block 4
  EXPECT_EQ(y[99], 0.5f * 7 * 3 - 0.25f * 3);   // sub-block 6
  EXPECT_EQ(y[244], 0.5f * 0 * 2 - 0.25f * 7);  // sub-block 15: scale (15 + 1) % 16 = 0
  EXPECT_EQ(y[16], 0.5f * 2 * 0 - 0.25f * 0);
}

// llama.cpp's unpacking of Q3_K's 12 scale bytes (kmask1/kmask2), written independently of
// GetScaleK3.
void UnpackScalesQ3_K(const uint8_t* s, int8_t* out) {
  uint32_t aux[4];
  std::memcpy(aux, s, 12);
  uint32_t tmp = aux[2];
  aux[2] = ((aux[0] >> 4) & 0x0f0f0f0f) | (((tmp >> 4) & 0x03030303) << 4);
  aux[3] = ((aux[1] >> 4) & 0x0f0f0f0f) | (((tmp >> 6) & 0x03030303) << 4);
  aux[0] = (aux[0] & 0x0f0f0f0f) | (((tmp >> 0) & 0x03030303) << 4);
  aux[1] = (aux[1] & 0x0f0f0f0f) | (((tmp >> 2) & 0x03030303) << 4);
  std::memcpy(out, aux, 16);
}

TEST(QuantKTest, Q3_KScalesMatchLlamaCppUnpacking) {
  std::mt19937 rng(3);
  for (int round = 0; round < 100; ++round) {
    uint8_t s[12];
    for (uint8_t& v : s) v = static_cast<uint8_t>(rng());
    int8_t want[16];
    UnpackScalesQ3_K(s, want);
    for (int g = 0; g < 16; ++g) ASSERT_EQ(GetScaleK3(g, s), want[g]) << g;
    uint8_t t[12] = {};
    for (int g = 0; g < 16; ++g) SetScaleK3(g, want[g], t);
    ASSERT_EQ(0, std::memcmp(s, t, 12));
  }
}

TEST(QuantKTest, Q3_KKnownBlock) {
  BlockQ3_K b;
  std::memset(&b, 0, sizeof(b));
  b.d = F32ToF16(0.5f);
  for (int g = 0; g < 16; ++g) SetScaleK3(g, 32 + g - 8, b.scales);  // signed g - 8
  b.qs[5] = 0b11'10'01'00;       // elements 5, 37, 69, 101: low bits 0, 1, 2, 3
  b.hmask[5] = 0b0001'0101;      // bits 0, 2 (elements 5, 69) and 4 (element 128 + 5) set
  b.qs[32 + 5] = 0b00'00'00'11;  // element 133: low bits 3
  float y[256];
  DequantizeRow(GgmlType::kQ3_K, &b, y, 256);
  EXPECT_EQ(y[5], 0.5f * -8 * 0);          // high bit set: q = 0
  EXPECT_EQ(y[37], 0.5f * -6 * (1 - 4));   // high bit clear: q - 4
  EXPECT_EQ(y[69], 0.5f * -4 * 2);         // set
  EXPECT_EQ(y[101], 0.5f * -2 * (3 - 4));  // clear
  EXPECT_EQ(y[133], 0.5f * 0 * 3);         // sub-block 8: scale 0
  EXPECT_EQ(y[165], 0.5f * 2 * (0 - 4));   // sub-block 10, bit 5 clear
  EXPECT_EQ(y[0], 0.5f * -8 * -4);
}

TEST(QuantKTest, Q5_KKnownBlock) {
  BlockQ5_K b;
  std::memset(&b, 0, sizeof(b));
  b.d = F32ToF16(0.5f);
  b.dmin = F32ToF16(0.25f);
  for (int j = 0; j < 8; ++j) SetScaleMinK4(j, static_cast<uint8_t>(j + 1), 4, b.scales);
  b.qs[7] = 0x3a;         // element 7: low nibble 10; element 39: high nibble 3
  b.qh[7] = 0b1000'0010;  // element 39 (sub-block 1) and element 231 (sub-block 7)
  b.qs[96 + 7] = 0xf0;    // element 224 + 7 = 231: high nibble 15
  float y[256];
  DequantizeRow(GgmlType::kQ5_K, &b, y, 256);
  EXPECT_EQ(y[7], 0.5f * 1 * 10 - 0.25f * 4);
  EXPECT_EQ(y[39], 0.5f * 2 * (3 + 16) - 0.25f * 4);
  EXPECT_EQ(y[231], 0.5f * 8 * (15 + 16) - 0.25f * 4);
  EXPECT_EQ(y[71], 0.5f * 3 * 0 - 0.25f * 4);
}

TEST(QuantKTest, RoundTripsWithinFormatError) {
  struct Case {
    GgmlType type;
    float bound;  // as a fraction of max |x|
  };
  // Q3_K maps each sub-block's largest magnitude to q = -4, so the other sign reaches only
  // 3/4 of it; the mins of Q2_K/Q5_K and the scale rounding add a little.
  const Case cases[] = {
      {GgmlType::kQ2_K, 0.36f}, {GgmlType::kQ3_K, 0.27f}, {GgmlType::kQ5_K, 0.06f}};
  const int64_t n = 1024;
  for (const Case& c : cases) {
    for (uint32_t seed = 1; seed <= 5; ++seed) {
      std::vector<float> x = kernel_test::RandomRow(n, seed, 3.0f);
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

TEST(QuantKTest, QuantizesZerosAndConstants) {
  for (GgmlType type : {GgmlType::kQ2_K, GgmlType::kQ3_K, GgmlType::kQ5_K}) {
    for (float v : {0.0f, 1.5f, -2.0f}) {
      std::vector<float> x(256, v), y(256);
      std::vector<uint8_t> q(RowBytes(type, 256));
      QuantizeRow(type, x.data(), q.data(), 256);
      DequantizeRow(type, q.data(), y.data(), 256);
      for (float f : y) ASSERT_NEAR(f, v, 0.02f * std::fabs(v)) << TypeName(type) << " " << v;
    }
  }
}

const kernel_test::MatCase kKCases[] = {
    {GgmlType::kQ2_K, 256},  {GgmlType::kQ2_K, 1280}, {GgmlType::kQ3_K, 256},
    {GgmlType::kQ3_K, 1280}, {GgmlType::kQ5_K, 256},  {GgmlType::kQ5_K, 1280},
};

TEST(KernelKTest, MatMulRowsMatchesReferenceOnEveryTarget) {
  for (const kernel_test::MatCase& c : kKCases) {
    SCOPED_TRACE(TypeName(c.type));
    kernel_test::CheckMatMulOnEveryTarget(c);
    if (HasFatalFailure()) return;
  }
}

// Extreme blocks: every quant at its largest value against activations of -128 / 127 (the
// integer ranges the VNNI kernels rely on) and the largest sub-block scales.
TEST(KernelKTest, ExtremeBlocksMatchReference) {
  for (GgmlType type : {GgmlType::kQ2_K, GgmlType::kQ3_K, GgmlType::kQ5_K}) {
    const int64_t n = 512, rows = 20;
    const size_t wrow = RowBytes(type, n);
    std::vector<uint8_t> w(wrow * rows);
    std::mt19937 rng(9);
    for (uint8_t& v : w) v = static_cast<uint8_t>(rng() | (rng() % 2 ? 0xff : 0));
    for (int64_t r = 0; r < rows; ++r) {  // finite f16 scales
      for (int64_t b = 0; b < n / kQK_K; ++b) {
        uint8_t* blk = w.data() + r * wrow + b * TraitsOf(type).block_bytes;
        uint16_t half = F32ToF16(0.01f * static_cast<float>(r + 1));
        size_t off = type == GgmlType::kQ2_K ? 80 : type == GgmlType::kQ3_K ? 108 : 0;
        std::memcpy(blk + off, &half, 2);
        std::memcpy(blk + (type == GgmlType::kQ3_K ? off : off + 2), &half, 2);
      }
    }
    for (int64_t tokens : {1, 4, 30}) {
      std::vector<float> x(n * tokens);
      for (size_t i = 0; i < x.size(); ++i) x[i] = i % 3 == 0 ? -1.0f : 1.0f;
      const size_t arow = PreparedRowBytes(type, n);
      std::vector<uint8_t> act(arow * tokens);
      for (int64_t t = 0; t < tokens; ++t) {
        reference::PrepareActivations(type, x.data() + t * n, n, act.data() + t * arow);
      }
      std::vector<float> want(rows * tokens);
      reference::MatMulRows(type, w.data(), n, 0, rows, act.data(), tokens, want.data(), rows);
      kernel_test::ForEachTarget([&] {
        std::vector<float> got(rows * tokens);
        MatMulRows(type, w.data(), n, 0, rows, act.data(), tokens, got.data(), rows);
        for (size_t i = 0; i < got.size(); ++i) {
          ASSERT_NEAR(got[i], want[i], 1e-5f * (std::fabs(want[i]) + 1.0f))
              << TypeName(type) << " tokens " << tokens << " i " << i;
        }
      });
    }
  }
}

}  // namespace
}  // namespace dormouse
