// Shared by the kernel tests: runs a body on every compiled Highway target and holds
// MatMulRows to its reference for one weight type and shape.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/kernels.h"
#include "engine/kernels_internal.h"
#include "engine/kernels_reference.h"
#include "engine/quants.h"
#include "hwy/targets.h"

namespace dormouse::kernel_test {

inline std::vector<float> RandomRow(int64_t n, uint32_t seed, float scale = 1.0f) {
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

// Weights of `type`, rows x n, from random floats.
inline std::vector<uint8_t> MakeWeights(GgmlType type, int64_t rows, int64_t n, uint32_t seed) {
  std::vector<uint8_t> w(RowBytes(type, n) * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<float> x = RandomRow(n, seed * 1000 + static_cast<uint32_t>(r), 0.05f);
    QuantizeRow(type, x.data(), w.data() + r * RowBytes(type, n), n);
  }
  return w;
}

// Prepared activation row -> floats (what the integer/float dot products multiply).
inline std::vector<float> DequantizePrepared(GgmlType wtype, const uint8_t* a, int64_t n) {
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

// MatMulRows of `c` against the reference on every target, for token counts on both sides
// of the decode/prefill crossover (24 tokens) and the prefill 8-token tile, and row ranges
// as the thread pool splits them (multiples of 16 except at the end) and odd ones.
inline void CheckMatMulOnEveryTarget(const MatCase& c) {
  const int64_t kRows = 37;
  for (int64_t tokens : {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 17, 23, 24, 25, 33}) {
    MatMulChecker checker(c.type, kRows, c.n, tokens);
    ForEachTarget([&] {
      checker.CheckPrepare();
      checker.CheckRows(0, kRows);
      checker.CheckRows(16, kRows);
      checker.CheckRows(0, 16);
      checker.CheckRows(32, kRows);
      checker.CheckRows(3, 30);
      checker.CheckRows(36, 37);
    });
    if (::testing::Test::HasFatalFailure()) return;
  }
}

}  // namespace dormouse::kernel_test
