// Holds every compiled SIMD variant of every kernel (kernels.h) to its scalar reference
// (kernels_reference.h), on every Highway target this CPU supports.
#include "engine/kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/kernels_internal.h"
#include "engine/kernels_reference.h"
#include "engine/quants.h"
#include "hwy/targets.h"
#include "kernel_checker.h"

namespace dormouse {
namespace {

using kernel_test::ForEachTarget;
using kernel_test::MatCase;
using kernel_test::RandomRow;

TEST(KernelTest, CompilesSeveralTargetsIncludingTheBest) {
  std::vector<int64_t> targets = CompiledKernelTargets();
  EXPECT_GE(targets.size(), 2u);
  EXPECT_STREQ(KernelTargetName(), hwy::TargetName(targets[0]));
}

const MatCase kMatCases[] = {
    {GgmlType::kF32, 70},    {GgmlType::kF32, 256},   {GgmlType::kF16, 70},
    {GgmlType::kF16, 288},   {GgmlType::kBF16, 70},   {GgmlType::kBF16, 288},
    {GgmlType::kQ8_0, 32},   {GgmlType::kQ8_0, 96},   {GgmlType::kQ8_0, 1088},
    {GgmlType::kQ4_0, 32},   {GgmlType::kQ4_0, 96},   {GgmlType::kQ4_0, 1088},
    {GgmlType::kQ4_K, 256},  {GgmlType::kQ4_K, 1280}, {GgmlType::kQ6_K, 256},
    {GgmlType::kQ6_K, 1280},
};

TEST(KernelTest, MatMulRowsMatchesReferenceOnEveryTarget) {
  for (const MatCase& c : kMatCases) {
    kernel_test::CheckMatMulOnEveryTarget(c);
    if (HasFatalFailure()) return;
  }
}

// Below AVX-512 VNNI the quantized matmuls give the reference's bits, so every such CPU
// picks the same greedy tokens (a lane-parallel float sum, though within the tolerance of
// MatMulRowsMatchesReferenceOnEveryTarget, flipped one on llama-58m-q8_0). The token counts
// cover decode and prefill (AVX2's packed panels from 24 tokens on); n = 2304 spans several
// 1024-column panels, whose partial sums pass through the output.
TEST(KernelTest, PortableQuantMatMulsAreBitExact) {
  for (GgmlType type : {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    const int64_t rows = 21;
    for (auto [n, tokens] : {std::pair<int64_t, int64_t>{1024, 1},
                             {1024, 3},
                             {1024, 4},
                             {1024, 9},
                             {1024, 24},
                             {2304, 33},
                             {2304, 2}}) {
      std::vector<uint8_t> w = kernel_test::MakeWeights(type, rows, n, 3);
      const size_t arow = PreparedRowBytes(type, n);
      std::vector<float> x = RandomRow(n * tokens, 4, 2.0f);
      std::vector<uint8_t> act(arow * tokens);
      for (int64_t t = 0; t < tokens; ++t) {
        reference::PrepareActivations(type, x.data() + t * n, n, act.data() + t * arow);
      }
      std::vector<float> want(rows * tokens);
      reference::MatMulRows(type, w.data(), n, 0, rows, act.data(), tokens, want.data(), rows);
      ForEachTarget([&] {
        if (std::string(KernelTargetName()) == "AVX3_DL") return;
        std::vector<float> got(want.size());
        MatMulRows(type, w.data(), n, 0, rows, act.data(), tokens, got.data(), rows);
        EXPECT_EQ(got, want) << TypeName(type) << " tokens=" << tokens;
      });
    }
  }
}

// A decode kernel may take several rows at once (AVX2's take 8 rows of the 32-element
// types, two per vector); each row must still get the bits it gets alone, whichever rows a
// thread's share starts and ends on. Every target, every quantized type, one token.
TEST(KernelTest, DecodeRowsGetTheirBitsAloneOrInARange) {
  for (GgmlType type : {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0,
                        GgmlType::kQ5_1, GgmlType::kIQ4_NL, GgmlType::kQ4_K, GgmlType::kQ5_K,
                        GgmlType::kQ6_K, GgmlType::kQ2_K, GgmlType::kQ3_K, GgmlType::kIQ4_XS}) {
    const int64_t rows = 13, n = 1024;
    std::vector<uint8_t> w = kernel_test::MakeWeights(type, rows, n, 5);
    std::vector<float> x = RandomRow(n, 6, 2.0f);
    std::vector<uint8_t> act(PreparedRowBytes(type, n));
    reference::PrepareActivations(type, x.data(), n, act.data());
    ForEachTarget([&] {
      std::vector<float> all(rows), alone(rows), from1(rows);
      MatMulRows(type, w.data(), n, 0, rows, act.data(), 1, all.data(), rows);
      MatMulRows(type, w.data(), n, 1, rows, act.data(), 1, from1.data(), rows);
      for (int64_t r = 0; r < rows; ++r) {
        MatMulRows(type, w.data(), n, r, r + 1, act.data(), 1, alone.data(), rows);
      }
      from1[0] = alone[0];
      EXPECT_EQ(all, alone) << TypeName(type) << " on " << KernelTargetName();
      EXPECT_EQ(from1, alone) << TypeName(type) << " on " << KernelTargetName();
    });
  }
}

// K-quant scale bytes as they may be stored, not only as QuantizeRow writes them: every
// bit of Q4_K's packed 6-bit scales and mins, Q6_K scales down to -128, with quants of
// random bytes. The SIMD kernels unpack them with shuffles and shifts of their own.
TEST(KernelTest, KQuantMatMulsTakeEveryScaleBit) {
  for (GgmlType type : {GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    const int64_t rows = 19, n = 1536;
    const size_t wrow = RowBytes(type, n), bs = type == GgmlType::kQ4_K ? 144 : 210;
    std::vector<uint8_t> w(wrow * rows);
    std::mt19937 rng(7);
    for (uint8_t& b : w) b = static_cast<uint8_t>(rng());
    for (size_t off = 0; off < w.size(); off += bs) {  // finite, modest d (and dmin)
      const uint16_t d = F32ToF16(0.001f * static_cast<float>(1 + rng() % 16));
      std::memcpy(&w[off + (type == GgmlType::kQ4_K ? 0 : 208)], &d, 2);
      if (type == GgmlType::kQ4_K) std::memcpy(&w[off + 2], &d, 2);
    }
    for (int64_t tokens = 1; tokens <= 4; ++tokens) {
      const size_t arow = PreparedRowBytes(type, n);
      std::vector<float> x = RandomRow(n * tokens, 9, 3.0f);
      std::vector<uint8_t> act(arow * tokens);
      for (int64_t t = 0; t < tokens; ++t) {
        reference::PrepareActivations(type, x.data() + t * n, n, act.data() + t * arow);
      }
      std::vector<float> want(rows * tokens), wf(n);
      reference::MatMulRows(type, w.data(), n, 0, rows, act.data(), tokens, want.data(), rows);
      std::vector<double> scale(want.size());  // |w| . |a|: the AVX-512 rounding's scale
      for (int64_t t = 0; t < tokens; ++t) {
        std::vector<float> af = kernel_test::DequantizePrepared(type, act.data() + t * arow, n);
        for (int64_t r = 0; r < rows; ++r) {
          DequantizeRow(type, w.data() + r * wrow, wf.data(), n);
          for (int64_t i = 0; i < n; ++i) scale[t * rows + r] += std::fabs(double{wf[i]} * af[i]);
        }
      }
      ForEachTarget([&] {
        const bool exact = std::string(KernelTargetName()) != "AVX3_DL";
        std::vector<float> got(want.size());
        MatMulRows(type, w.data(), n, 0, rows, act.data(), tokens, got.data(), rows);
        for (size_t i = 0; i < got.size(); ++i) {
          ASSERT_NEAR(got[i], want[i], exact ? 0.0 : 2e-6 * scale[i])
              << TypeName(type) << " tokens=" << tokens << " i=" << i;
        }
      });
    }
  }
}

TEST(KernelTest, PrepareHandlesZerosAndTies) {
  for (GgmlType type :
       {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_K, GgmlType::kF16, GgmlType::kBF16}) {
    const int64_t n = 512;
    std::vector<float> x(n, 0.0f);
    for (int i = 256; i < 512; ++i) x[i] = static_cast<float>(i % 7) - 3.0f;  // exact ties
    x[300] = -127.0f;
    std::vector<uint8_t> want(PreparedRowBytes(type, n));
    reference::PrepareActivations(type, x.data(), n, want.data());
    ForEachTarget([&] {
      std::vector<uint8_t> got(want.size(), 0xab);
      PrepareActivations(type, x.data(), n, got.data());
      EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size())) << TypeName(type);
    });
  }
}

// Matmul groups share one prepared input between weight types that
// SamePreparedActivations pairs: it must pair only types whose prepared bytes are equal.
TEST(KernelTest, TypesThatSharePreparedActivationsGetTheSameBytes) {
  const GgmlType types[] = {GgmlType::kF32,    GgmlType::kF16,  GgmlType::kBF16,  GgmlType::kQ8_0,
                            GgmlType::kQ4_0,   GgmlType::kQ5_0, GgmlType::kQ4_1,  GgmlType::kQ5_1,
                            GgmlType::kIQ4_NL, GgmlType::kQ4_K, GgmlType::kQ6_K,  GgmlType::kQ2_K,
                            GgmlType::kQ3_K,   GgmlType::kQ5_K, GgmlType::kIQ4_XS};
  const int64_t n = 512;
  const std::vector<float> x = RandomRow(n, 11, 3.0f);
  int shared = 0;
  for (GgmlType a : types) {
    for (GgmlType b : types) {
      if (a == b || !SamePreparedActivations(a, b)) continue;
      ++shared;
      ASSERT_EQ(PreparedRowBytes(a, n), PreparedRowBytes(b, n)) << TypeName(a) << TypeName(b);
      ForEachTarget([&] {
        std::vector<uint8_t> pa(PreparedRowBytes(a, n)), pb(pa.size());
        PrepareActivations(a, x.data(), n, pa.data());
        PrepareActivations(b, x.data(), n, pb.data());
        EXPECT_EQ(pa, pb) << TypeName(a) << " and " << TypeName(b);
      });
    }
  }
  EXPECT_GE(shared, 6 * 5 + 2 + 2);  // the K-quants, Q4_1/Q5_1, Q8_0/IQ4_NL
  EXPECT_FALSE(SamePreparedActivations(GgmlType::kQ8_0, GgmlType::kQ4_0));
}

const int64_t kVecSizes[] = {1, 7, 16, 33, 64, 100, 1000};

TEST(KernelTest, DotsMatchReference) {
  for (int64_t n : kVecSizes) {
    std::vector<float> a = RandomRow(n, 1), b = RandomRow(n, 2);
    std::vector<uint16_t> bh(n);
    reference::ConvertF32ToF16(b.data(), bh.data(), n);
    double scale = 0.0;
    for (int64_t i = 0; i < n; ++i) scale += std::fabs(a[i] * b[i]);
    float want = reference::DotF32(a.data(), b.data(), n);
    float want_h = reference::DotF32F16(a.data(), bh.data(), n);
    ForEachTarget([&] {
      EXPECT_NEAR(DotF32(a.data(), b.data(), n), want, 1e-6 * scale) << n;
      EXPECT_NEAR(DotF32F16(a.data(), bh.data(), n), want_h, 1e-6 * scale) << n;
    });
  }
}

TEST(KernelTest, AxpyMatchesReference) {
  for (int64_t n : kVecSizes) {
    std::vector<float> x = RandomRow(n, 3), y0 = RandomRow(n, 4);
    std::vector<uint16_t> xh(n);
    reference::ConvertF32ToF16(x.data(), xh.data(), n);
    std::vector<float> want = y0, want_h = y0;
    reference::AxpyF32(0.37f, x.data(), want.data(), n);
    reference::AxpyF16(-1.5f, xh.data(), want_h.data(), n);
    ForEachTarget([&] {
      std::vector<float> got = y0, got_h = y0;
      AxpyF32(0.37f, x.data(), got.data(), n);
      AxpyF16(-1.5f, xh.data(), got_h.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_NEAR(got[i], want[i], 1e-6f * (std::fabs(y0[i]) + std::fabs(x[i])));
        ASSERT_NEAR(got_h[i], want_h[i], 2e-6f * (std::fabs(y0[i]) + std::fabs(x[i])));
      }
    });
  }
}

TEST(KernelTest, StreamReadSumsEveryWordOnEveryTarget) {
  std::vector<uint64_t> w(5000);
  for (size_t i = 0; i < w.size(); ++i) w[i] = i * 2654435761u;
  ForEachTarget([&] {
    for (int64_t n : {0, 1, 7, 8, 33, 4096, 5000}) {  // whole vectors and the tails
      uint64_t want = 0;
      for (int64_t i = 0; i < n; ++i) want += w[i];
      EXPECT_EQ(StreamRead(w.data(), n * 8), want) << n << " words";
    }
  });
}

TEST(KernelTest, ConvertF32ToF16IsExact) {
  std::vector<float> x = RandomRow(1000, 5, 100.0f);
  x[0] = 65520.0f;
  x[1] = 1e-7f;  // subnormal half
  x[2] = -0.0f;
  x[3] = INFINITY;
  x[4] = 1.0f + 0x1p-11f;  // tie
  std::vector<uint16_t> want(x.size());
  reference::ConvertF32ToF16(x.data(), want.data(), 1000);
  ForEachTarget([&] {
    std::vector<uint16_t> got(x.size());
    ConvertF32ToF16(x.data(), got.data(), 1000);
    EXPECT_EQ(got, want);
  });
}

TEST(KernelTest, RmsNormMatchesReference) {
  for (int64_t n : kVecSizes) {
    std::vector<float> x = RandomRow(n, 6, 3.0f), w = RandomRow(n, 7);
    std::vector<float> want(n);
    reference::RmsNorm(x.data(), w.data(), 1e-5f, n, want.data());
    ForEachTarget([&] {
      std::vector<float> got(n);
      RmsNorm(x.data(), w.data(), 1e-5f, n, got.data());
      for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(got[i], want[i], 1e-6f * std::fabs(want[i]));
      std::vector<float> inplace = x;  // out may alias x
      RmsNorm(inplace.data(), w.data(), 1e-5f, n, inplace.data());
      EXPECT_EQ(inplace, got);
    });
  }
}

TEST(KernelTest, SwiGluMatchesReference) {
  for (int64_t n : kVecSizes) {
    std::vector<float> g = RandomRow(n, 8, 4.0f), u = RandomRow(n, 9);
    if (n > 4) {
      g[0] = -200.0f;  // exp overflows
      g[1] = 200.0f;
      g[2] = 0.0f;
      g[3] = -90.0f;
    }
    std::vector<float> want(n);
    reference::SwiGlu(g.data(), u.data(), n, want.data());
    ForEachTarget([&] {
      std::vector<float> got(n);
      SwiGlu(g.data(), u.data(), n, got.data());
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_NEAR(got[i], want[i], 4e-6f * std::fabs(want[i]) + 1e-30f) << i << " g=" << g[i];
      }
    });
  }
}

}  // namespace
}  // namespace dormouse
