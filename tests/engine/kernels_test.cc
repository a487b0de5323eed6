// Holds every compiled SIMD variant of every kernel (kernels.h) to its scalar reference
// (kernels_reference.h), on every Highway target this CPU supports.
#include "engine/kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/kernels_internal.h"
#include "engine/kernels_reference.h"
#include "engine/quants.h"
#include "hwy/targets.h"

namespace dormouse {
namespace {

std::vector<float> RandomRow(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = g(rng);
  return v;
}

// Runs `body` once per compiled target, with dispatch forced to that target.
template <typename F>
void ForEachTarget(F body) {
  std::vector<int64_t> targets = CompiledKernelTargets();
  ASSERT_FALSE(targets.empty());
  for (int64_t t : targets) {
    hwy::SetSupportedTargetsForTest(t);
    SCOPED_TRACE(std::string("target ") + hwy::TargetName(t));
    EXPECT_STREQ(KernelTargetName(), hwy::TargetName(t));
    body();
  }
  hwy::SetSupportedTargetsForTest(0);
}

TEST(KernelTest, CompilesSeveralTargetsIncludingTheBest) {
  std::vector<int64_t> targets = CompiledKernelTargets();
  EXPECT_GE(targets.size(), 2u);
  EXPECT_STREQ(KernelTargetName(), hwy::TargetName(targets[0]));
}

// Weights of `type`, rows x n, from random floats.
std::vector<uint8_t> MakeWeights(GgmlType type, int64_t rows, int64_t n, uint32_t seed) {
  std::vector<uint8_t> w(RowBytes(type, n) * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<float> x = RandomRow(n, seed * 1000 + static_cast<uint32_t>(r), 0.05f);
    QuantizeRow(type, x.data(), w.data() + r * RowBytes(type, n), n);
  }
  return w;
}

// Prepared activation row -> floats (what the integer/float dot products multiply).
std::vector<float> DequantizePrepared(GgmlType wtype, const uint8_t* a, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  switch (wtype) {
    case GgmlType::kF32:
    case GgmlType::kF16:
    case GgmlType::kBF16:
      DequantizeRow(wtype, a, out.data(), n);
      break;
    case GgmlType::kQ8_0:
    case GgmlType::kQ4_0: {
      PreparedQ8_0 p = PreparedQ8_0::At(a, n);
      for (int64_t i = 0; i < n; ++i) out[i] = p.qs[i] * LoadUnaligned(p.d + i / 32);
      break;
    }
    default:
      DequantizeRowQ8_K(reinterpret_cast<const BlockQ8_K*>(a), out.data(), n);
  }
  return out;
}

struct MatCase {
  GgmlType type;
  int64_t n;
};

class MatMulChecker {
 public:
  MatMulChecker(GgmlType type, int64_t rows, int64_t n, int64_t tokens)
      : type_(type), rows_(rows), n_(n), tokens_(tokens), arow_(PreparedRowBytes(type, n)) {
    w_ = MakeWeights(type, rows, n, 11);
    x_ = RandomRow(n * tokens, 5, 1.0f);
    x_[3] = 40.0f;  // an outlier, as real activations have
    act_ref_.resize(arow_ * tokens);
    for (int64_t t = 0; t < tokens; ++t) {
      reference::PrepareActivations(type, x_.data() + t * n, n, act_ref_.data() + t * arow_);
    }
    // |w| . |a| per (token, row): the scale of the float rounding the variants may differ by.
    std::vector<float> wf(n);
    absdot_.assign(static_cast<size_t>(tokens * rows), 0.0);
    exact_.assign(static_cast<size_t>(tokens * rows), 0.0);
    for (int64_t t = 0; t < tokens; ++t) {
      std::vector<float> af = DequantizePrepared(type, act_ref_.data() + t * arow_, n);
      for (int64_t r = 0; r < rows; ++r) {
        DequantizeRow(type, w_.data() + r * RowBytes(type, n), wf.data(), n);
        double s = 0.0, e = 0.0;
        for (int64_t i = 0; i < n; ++i) {
          s += std::fabs(static_cast<double>(wf[i]) * af[i]);
          e += static_cast<double>(wf[i]) * af[i];
        }
        absdot_[t * rows + r] = s;
        exact_[t * rows + r] = e;
      }
    }
  }

  // Preparation is bit-exact with the reference.
  void CheckPrepare() const {
    std::vector<uint8_t> act(arow_ * tokens_, 0xcd);
    for (int64_t t = 0; t < tokens_; ++t) {
      PrepareActivations(type_, x_.data() + t * n_, n_, act.data() + t * arow_);
    }
    ASSERT_EQ(0, std::memcmp(act.data(), act_ref_.data(), act.size()))
        << TypeName(type_) << " n=" << n_;
  }

  // out[t][r] for r in [r0, r1) matches the reference; nothing else is written.
  void CheckRows(int64_t r0, int64_t r1) const {
    const int64_t stride = rows_ + 3;
    std::vector<float> got(static_cast<size_t>(stride * tokens_), NAN);
    std::vector<float> want(got.size(), NAN);
    MatMulRows(type_, w_.data(), n_, r0, r1, act_ref_.data(), tokens_, got.data(), stride);
    reference::MatMulRows(type_, w_.data(), n_, r0, r1, act_ref_.data(), tokens_, want.data(),
                          stride);
    for (int64_t t = 0; t < tokens_; ++t) {
      for (int64_t r = 0; r < stride; ++r) {
        float g = got[t * stride + r], w = want[t * stride + r];
        if (r < r0 || r >= r1) {
          ASSERT_TRUE(std::isnan(g)) << "wrote outside the rows at t=" << t << " r=" << r;
          continue;
        }
        double scale = absdot_[t * rows_ + r];
        ASSERT_NEAR(g, w, 2e-6 * scale + 1e-30)
            << TypeName(type_) << " n=" << n_ << " tokens=" << tokens_ << " t=" << t << " r=" << r
            << " rows [" << r0 << ", " << r1 << ")";
        // And the reference is the exact dot product of what it multiplies.
        ASSERT_NEAR(w, exact_[t * rows_ + r], 2e-6 * scale + 1e-30);
      }
    }
  }

 private:
  GgmlType type_;
  int64_t rows_, n_, tokens_;
  size_t arow_;
  std::vector<uint8_t> w_, act_ref_;
  std::vector<float> x_;
  std::vector<double> absdot_, exact_;
};

const MatCase kMatCases[] = {
    {GgmlType::kF32, 70},    {GgmlType::kF32, 256},   {GgmlType::kF16, 70},
    {GgmlType::kF16, 288},   {GgmlType::kBF16, 70},   {GgmlType::kBF16, 288},
    {GgmlType::kQ8_0, 32},   {GgmlType::kQ8_0, 96},   {GgmlType::kQ8_0, 1088},
    {GgmlType::kQ4_0, 32},   {GgmlType::kQ4_0, 96},   {GgmlType::kQ4_0, 1088},
    {GgmlType::kQ4_K, 256},  {GgmlType::kQ4_K, 1280}, {GgmlType::kQ6_K, 256},
    {GgmlType::kQ6_K, 1280},
};

TEST(KernelTest, MatMulRowsMatchesReferenceOnEveryTarget) {
  const int64_t kRows = 37;
  for (const MatCase& c : kMatCases) {
    // Both sides of the decode/prefill crossover (24 tokens) and the prefill 8-token tile.
    for (int64_t tokens : {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 17, 23, 24, 25, 33}) {
      MatMulChecker checker(c.type, kRows, c.n, tokens);
      ForEachTarget([&] {
        checker.CheckPrepare();
        checker.CheckRows(0, kRows);
        checker.CheckRows(16, kRows);  // as the thread pool splits: multiples of 16...
        checker.CheckRows(0, 16);
        checker.CheckRows(32, kRows);  // ...except at the end
        checker.CheckRows(3, 30);      // and odd ranges
        checker.CheckRows(36, 37);
      });
      if (HasFatalFailure()) return;
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
