// Holds every compiled SIMD variant of the matmul of Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL and
// IQ4_XS weights (Q4_0 shares the AVX2 kernels of the 32-element types), and their activation
// preparation, to the scalar reference on every Highway target this CPU supports; and the
// reference to an independent dot product of what it multiplies.
#include "engine/kernels_legacy.h"

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
#include "engine/quants_legacy.h"
#include "hwy/targets.h"

namespace dormouse {
namespace {

const GgmlType kTypes[] = {GgmlType::kQ4_0, GgmlType::kQ5_0,   GgmlType::kQ4_1,
                           GgmlType::kQ5_1, GgmlType::kIQ4_NL, GgmlType::kIQ4_XS};

std::vector<float> RandomRow(int64_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = g(rng);
  return v;
}

// Whether the current target's kernels give the reference's bits (all but AVX-512 VNNI,
// whose legacy kernels fuse the block multiply-adds).
bool BitExactTarget() { return std::string(KernelTargetName()) != "AVX3_DL"; }

template <typename F>
void ForEachTarget(F body) {
  std::vector<int64_t> targets = CompiledKernelTargets();
  ASSERT_FALSE(targets.empty());
  for (int64_t t : targets) {
    hwy::SetSupportedTargetsForTest(t);
    SCOPED_TRACE(std::string("target ") + hwy::TargetName(t));
    body();
  }
  hwy::SetSupportedTargetsForTest(0);
}

// Hostile weights: every bit of every block random (all nibbles, 5th bits and sub-block
// scales occur, extremes included), with finite f16 scales/offsets of either sign.
std::vector<uint8_t> RandomBlocks(GgmlType type, int64_t rows, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> w(RowBytes(type, n) * static_cast<size_t>(rows));
  for (uint8_t& b : w) b = static_cast<uint8_t>(rng());
  const size_t bs = TraitsOf(type).block_bytes;
  const int halves = UsesQ8_1(type) ? 2 : 1;  // d (and m) lead every block
  std::uniform_real_distribution<float> u(-0.01f, 0.01f);
  for (size_t off = 0; off < w.size(); off += bs) {
    for (int h = 0; h < halves; ++h) {
      const uint16_t v = F32ToF16(u(rng));
      std::memcpy(w.data() + off + 2 * h, &v, 2);
    }
  }
  return w;
}

// What the prepared activations stand for, as floats: the Q8_0/Q8_1 blocks' d * q or Q8_K.
std::vector<float> PreparedValues(GgmlType type, const uint8_t* a, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  if (type == GgmlType::kIQ4_XS) {
    DequantizeRowQ8_K(reinterpret_cast<const BlockQ8_K*>(a), out.data(), n);
    return out;
  }
  const int8_t* qs = reinterpret_cast<const int8_t*>(a);
  for (int64_t i = 0; i < n; ++i) {
    float d;
    std::memcpy(&d, a + n + 4 * (i / 32), 4);
    out[i] = d * qs[i];
  }
  return out;
}

class LegacyChecker {
 public:
  LegacyChecker(GgmlType type, std::vector<uint8_t> w, int64_t rows, int64_t n, int64_t tokens)
      : type_(type),
        rows_(rows),
        n_(n),
        tokens_(tokens),
        arow_(PreparedRowBytes(type, n)),
        w_(std::move(w)) {
    x_ = RandomRow(n * tokens, 5, 1.0f);
    x_[3] = 40.0f;  // an outlier, as real activations have
    act_.resize(arow_ * tokens);
    for (int64_t t = 0; t < tokens; ++t) {
      reference::PrepareActivations(type, x_.data() + t * n, n, act_.data() + t * arow_);
    }
    ComputeExact();
  }

  void CheckPrepare() const {
    std::vector<uint8_t> got(act_.size(), 0xcd);
    for (int64_t t = 0; t < tokens_; ++t) {
      PrepareActivations(type_, x_.data() + t * n_, n_, got.data() + t * arow_);
    }
    ASSERT_EQ(0, std::memcmp(got.data(), act_.data(), got.size())) << TypeName(type_);
  }

  void CheckRows(int64_t r0, int64_t r1) const {
    const int64_t stride = rows_ + 3;
    std::vector<float> got(static_cast<size_t>(stride * tokens_), NAN);
    std::vector<float> want(got.size(), NAN);
    MatMulRows(type_, w_.data(), n_, r0, r1, act_.data(), tokens_, got.data(), stride);
    reference::MatMulRows(type_, w_.data(), n_, r0, r1, act_.data(), tokens_, want.data(), stride);
    for (int64_t t = 0; t < tokens_; ++t) {
      for (int64_t r = 0; r < stride; ++r) {
        const float g = got[t * stride + r], w = want[t * stride + r];
        if (r < r0 || r >= r1) {
          ASSERT_TRUE(std::isnan(g)) << "wrote outside the rows at t=" << t << " r=" << r;
          continue;
        }
        // Below AVX-512 VNNI the kernels keep the reference's order: its bits exactly.
        const double scale = absdot_[t * rows_ + r];
        ASSERT_NEAR(g, w, BitExactTarget() ? 0.0 : 2e-6 * scale + 1e-30)
            << TypeName(type_) << " n=" << n_ << " tokens=" << tokens_ << " t=" << t << " r=" << r
            << " rows [" << r0 << ", " << r1 << ")";
        ASSERT_NEAR(w, exact_[t * rows_ + r], 2e-6 * scale + 1e-30) << "reference";
      }
    }
  }

 private:
  // dot(dequantized weights, prepared values) in double; for Q4_1/Q5_1 the offset m
  // multiplies the activations' s (llama.cpp's f16 d * sum), not the sum of d * q.
  void ComputeExact() {
    std::vector<float> wf(n_);
    absdot_.assign(static_cast<size_t>(tokens_ * rows_), 0.0);
    exact_.assign(absdot_.size(), 0.0);
    const size_t wrow = RowBytes(type_, n_), bs = TraitsOf(type_).block_bytes;
    for (int64_t t = 0; t < tokens_; ++t) {
      const uint8_t* a = act_.data() + t * arow_;
      std::vector<float> af = PreparedValues(type_, a, n_);
      for (int64_t r = 0; r < rows_; ++r) {
        const uint8_t* row = w_.data() + r * wrow;
        DequantizeRow(type_, row, wf.data(), n_);
        double s = 0.0, e = 0.0;
        for (int64_t i = 0; i < n_; ++i) {
          double m = 0.0;
          if (UsesQ8_1(type_)) {  // split d * q + m: the q part against d * q8
            uint16_t mh;
            std::memcpy(&mh, row + (i / 32) * bs + 2, 2);
            m = F16ToF32(mh);
          }
          const double prod = (static_cast<double>(wf[i]) - m) * af[i];
          s += std::fabs(prod);
          e += prod;
        }
        if (UsesQ8_1(type_)) {
          for (int64_t b = 0; b < n_ / 32; ++b) {
            uint16_t mh;
            std::memcpy(&mh, row + b * bs + 2, 2);
            float sa;
            std::memcpy(&sa, a + n_ + 4 * (n_ / 32) + 4 * b, 4);
            const double ms = static_cast<double>(F16ToF32(mh)) * sa;
            s += std::fabs(ms);
            e += ms;
          }
        }
        absdot_[t * rows_ + r] = s;
        exact_[t * rows_ + r] = e;
      }
    }
  }

  GgmlType type_;
  int64_t rows_, n_, tokens_;
  size_t arow_;
  std::vector<uint8_t> w_, act_;
  std::vector<float> x_;
  std::vector<double> absdot_, exact_;
};

void CheckAllRanges(const LegacyChecker& c, int64_t rows) {
  c.CheckPrepare();
  c.CheckRows(0, rows);
  c.CheckRows(16, rows);  // as the thread pool splits: multiples of 16...
  c.CheckRows(0, 16);
  c.CheckRows(32, rows);  // ...except at the end
  c.CheckRows(3, 30);     // and odd ranges
  c.CheckRows(rows - 1, rows);
}

TEST(KernelLegacyTest, MatMulRowsMatchesReferenceOnEveryTarget) {
  const int64_t kRows = 37;
  for (GgmlType type : kTypes) {
    const bool super = type == GgmlType::kIQ4_XS;
    // Odd block counts, one and several prefill panels (1024 columns).
    for (int64_t n :
         super ? std::vector<int64_t>{256, 1280, 2304} : std::vector<int64_t>{32, 96, 1088, 2080}) {
      // Both sides of the decode/prefill crossovers (AVX-512: 24 tokens; AVX2: 16 for
      // IQ4_XS, 64 for the others) and the prefill tiles (8 tokens; AVX2: 4).
      for (int64_t tokens : {1, 2, 3, 4, 5, 7, 8, 9, 17, 24, 25, 33, 63, 66}) {
        std::vector<uint8_t> w(RowBytes(type, n) * kRows);
        for (int64_t r = 0; r < kRows; ++r) {
          std::vector<float> x = RandomRow(n, 1000 + static_cast<uint32_t>(r), 0.05f);
          QuantizeRow(type, x.data(), w.data() + r * RowBytes(type, n), n);
        }
        LegacyChecker checker(type, std::move(w), kRows, n, tokens);
        ForEachTarget([&] { CheckAllRanges(checker, kRows); });
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST(KernelLegacyTest, HostileBlocksMatchReferenceOnEveryTarget) {
  const int64_t kRows = 35;
  for (GgmlType type : kTypes) {
    const int64_t n = type == GgmlType::kIQ4_XS ? 1280 : 1120;
    for (int64_t tokens : {1, 3, 4, 30, 67}) {
      LegacyChecker checker(type, RandomBlocks(type, kRows, n, 77), kRows, n, tokens);
      ForEachTarget([&] { CheckAllRanges(checker, kRows); });
      if (HasFatalFailure()) return;
    }
  }
}

// Many tokens over wide rows: the AVX2 decode kernels (packed panels only from 64 tokens on)
// run groups of 8 tokens, then 4 or fewer, over tiles of rows that stay in cache; rows of
// 20-24 KB make a tile 8 rows, so 37 rows span several tiles, with ranges starting and
// ending inside them. 10 and 15 tokens: groups 8 + 2 and 8 + 4 + 3.
TEST(KernelLegacyTest, ManyTokensOverSeveralRowTiles) {
  const int64_t kRows = 37, n = 32768;
  for (GgmlType type :
       {GgmlType::kQ4_0, GgmlType::kQ5_0, GgmlType::kQ4_1, GgmlType::kQ5_1, GgmlType::kIQ4_NL}) {
    for (int64_t tokens : {10, 15}) {
      LegacyChecker checker(type, RandomBlocks(type, kRows, n, 91), kRows, n, tokens);
      ForEachTarget([&] { CheckAllRanges(checker, kRows); });
      if (HasFatalFailure()) return;
    }
  }
}

TEST(KernelLegacyTest, PrepareHandlesZerosAndTies) {
  for (GgmlType type : kTypes) {
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

// Extreme integer sums: every weight at its largest magnitude against activations of
// +-127 of the same sign, so SIMD partial sums reach their bounds (no int16 overflow).
// Bits after d all clear (levels -127, Q5_0's -16, IQ4_XS's ls - 32 = -32) and all set
// (Q4_1/Q5_1's 15 / 31 with m = 0, Q5_0's +15 as the unsigned 31 of the AVX2 kernels).
TEST(KernelLegacyTest, ExtremeSumsAreExact) {
  const int64_t n = 1024, rows = 16;
  for (GgmlType type : kTypes) {
    for (uint8_t fill : {0x00, 0xff}) {
      std::vector<uint8_t> w(RowBytes(type, n) * rows, fill);
      const size_t bs = TraitsOf(type).block_bytes;
      for (size_t off = 0; off < w.size(); off += bs) {
        const uint16_t one = F32ToF16(1.0f);
        std::memcpy(w.data() + off, &one, 2);
        if (UsesQ8_1(type)) std::memset(w.data() + off + 2, 0, 2);  // m = 0
      }
      for (int64_t tokens : {2, 30, 66}) {  // decode and prefill paths
        // Tokens alternate all -127 and all +127 activations.
        const size_t arow = PreparedRowBytes(type, n);
        std::vector<uint8_t> act(arow * tokens);
        for (int64_t t = 0; t < tokens; ++t) {
          std::vector<float> x(n, t % 2 ? 1.0f : -1.0f);
          reference::PrepareActivations(type, x.data(), n, act.data() + t * arow);
        }
        std::vector<float> want(tokens * rows), got(tokens * rows);
        reference::MatMulRows(type, w.data(), n, 0, rows, act.data(), tokens, want.data(), rows);
        ForEachTarget([&] {
          MatMulRows(type, w.data(), n, 0, rows, act.data(), tokens, got.data(), rows);
          for (int64_t i = 0; i < tokens * rows; ++i) {
            ASSERT_NEAR(got[i], want[i], BitExactTarget() ? 0.0 : 1e-6 * std::fabs(want[i]))
                << TypeName(type) << " fill " << int{fill} << " " << i;
          }
        });
      }
    }
  }
}

}  // namespace
}  // namespace dormouse
