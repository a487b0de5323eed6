// The super-block types with Q8_K activations and no hand-written kernels below AVX-512
// VNNI until kernels_avx2_k-inl.h: below AVX3_DL every target must give the reference's
// bits (as PortableQuantMatMulsAreBitExact holds the others), for hostile blocks, extreme
// integer sums, any token count (decode groups of 4, row tiles for many tokens) and row
// ranges that start and end anywhere.
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/kernels.h"
#include "engine/kernels_internal.h"
#include "engine/kernels_reference.h"
#include "engine/quants.h"
#include "engine/quants_k.h"
#include "engine/quants_legacy.h"
#include "kernel_checker.h"

namespace dormouse {
namespace {

using kernel_test::ForEachTarget;

const GgmlType kTypes[] = {GgmlType::kQ5_K, GgmlType::kIQ4_XS, GgmlType::kQ3_K, GgmlType::kQ2_K};

// Offsets of a block's f16 scales: d, and dmin (or -1).
std::pair<size_t, int> ScaleOffsets(GgmlType type) {
  switch (type) {
    case GgmlType::kQ2_K:
      return {offsetof(BlockQ2_K, d), static_cast<int>(offsetof(BlockQ2_K, dmin))};
    case GgmlType::kQ3_K:
      return {offsetof(BlockQ3_K, d), -1};
    case GgmlType::kQ5_K:
      return {offsetof(BlockQ5_K, d), static_cast<int>(offsetof(BlockQ5_K, dmin))};
    default:
      return {offsetof(BlockIQ4_XS, d), -1};
  }
}

// Weights whose every bit is `fill` (random when fill < 0), with finite f16 scales of
// either sign: all quants, sub-block scales and mins occur, extremes included.
std::vector<uint8_t> Blocks(GgmlType type, int64_t rows, int64_t n, int fill, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> w(RowBytes(type, n) * static_cast<size_t>(rows));
  for (uint8_t& b : w) b = static_cast<uint8_t>(fill < 0 ? rng() : fill);
  std::uniform_real_distribution<float> u(-0.02f, 0.02f);
  const auto [d, dmin] = ScaleOffsets(type);
  for (size_t off = 0; off < w.size(); off += TraitsOf(type).block_bytes) {
    const uint16_t h = F32ToF16(u(rng)), m = F32ToF16(u(rng));
    std::memcpy(w.data() + off + d, &h, 2);
    if (dmin >= 0) std::memcpy(w.data() + off + dmin, &m, 2);
  }
  return w;
}

// Prepared activations of random floats (with an outlier, as real ones have).
std::vector<uint8_t> Activations(GgmlType type, int64_t n, int64_t tokens, uint32_t seed) {
  const size_t arow = PreparedRowBytes(type, n);
  std::vector<float> x = kernel_test::RandomRow(n * tokens, seed, 1.0f);
  x[5] = 30.0f;
  std::vector<uint8_t> act(arow * static_cast<size_t>(tokens));
  for (int64_t t = 0; t < tokens; ++t) {
    reference::PrepareActivations(type, x.data() + t * n, n, act.data() + t * arow);
  }
  return act;
}

// Q8_K blocks at the bounds of vpmaddubsw's int16 pair sums: token t's quants are all
// -128 (t % 3 == 0), all 127 (1), or -128 and 127 by turns per 16 (2). PrepareActivations
// makes -127..127; -128 is what the format can hold.
std::vector<uint8_t> ExtremeActivations(int64_t n, int64_t tokens) {
  const int64_t nsb = n / kQK_K;
  std::vector<BlockQ8_K> a(static_cast<size_t>(nsb * tokens));
  for (int64_t i = 0; i < nsb * tokens; ++i) {
    BlockQ8_K& y = a[i];
    const int64_t t = i / nsb;
    y.d = 0.5f + static_cast<float>(i % 3);
    for (int g = 0; g < 16; ++g) {
      const int8_t q = t % 3 == 1 || (t % 3 == 2 && g % 2 == 1) ? 127 : -128;
      std::memset(y.qs + 16 * g, static_cast<uint8_t>(q), 16);
      y.bsums[g] = static_cast<int16_t>(16 * q);
    }
  }
  std::vector<uint8_t> out(a.size() * sizeof(BlockQ8_K));
  std::memcpy(out.data(), a.data(), out.size());
  return out;
}

// Rows [r0, r1) of MatMulRows give the reference's bits on every target below AVX3_DL
// (whose lane-parallel float sums differ within tolerance), and nothing else is written.
void ExpectBitExact(GgmlType type, const std::vector<uint8_t>& w, int64_t n,
                    const std::vector<uint8_t>& act, int64_t tokens, int64_t r0, int64_t r1) {
  const int64_t stride = r1 + 2;
  std::vector<float> want(static_cast<size_t>(stride * tokens), NAN);
  reference::MatMulRows(type, w.data(), n, r0, r1, act.data(), tokens, want.data(), stride);
  ForEachTarget([&] {
    if (std::string(KernelTargetName()) == "AVX3_DL") return;
    std::vector<float> got(want.size(), NAN);
    MatMulRows(type, w.data(), n, r0, r1, act.data(), tokens, got.data(), stride);
    for (size_t i = 0; i < got.size(); ++i) {
      const int64_t r = static_cast<int64_t>(i) % stride;
      if (r < r0 || r >= r1) {
        ASSERT_TRUE(std::isnan(got[i])) << "wrote outside the rows at " << i;
      } else {
        ASSERT_EQ(got[i], want[i])
            << TypeName(type) << " n=" << n << " tokens=" << tokens << " t=" << i / stride
            << " r=" << r << " rows [" << r0 << ", " << r1 << ")";
      }
    }
  });
}

TEST(KernelSuperBlockTest, HostileBlocksAreBitExactForAnyTokensAndRows) {
  const int64_t rows = 23;
  for (GgmlType type : kTypes) {
    for (int64_t n : {256, 768, 1280}) {  // odd super-block counts
      const std::vector<uint8_t> w = Blocks(type, rows, n, -1, 7);
      for (int64_t tokens : {1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 30}) {
        const std::vector<uint8_t> act = Activations(type, n, tokens, 3);
        ExpectBitExact(type, w, n, act, tokens, 0, rows);
        ExpectBitExact(type, w, n, act, tokens, 5, 17);
        ExpectBitExact(type, w, n, act, tokens, rows - 1, rows);
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST(KernelSuperBlockTest, ExtremeSumsAreBitExact) {
  const int64_t rows = 9, n = 512;
  for (GgmlType type : kTypes) {
    // All quant and scale bits set, all clear, and random.
    for (int fill : {0xff, 0x00, -1}) {
      const std::vector<uint8_t> w = Blocks(type, rows, n, fill, 5);
      for (int64_t tokens : {1, 4, 7}) {
        ExpectBitExact(type, w, n, ExtremeActivations(n, tokens), tokens, 0, rows);
        if (HasFatalFailure()) return;
      }
    }
  }
}

// Enough rows of a wide matrix that more than 4 tokens go over several row tiles.
TEST(KernelSuperBlockTest, ManyTokensOverSeveralRowTilesAreBitExact) {
  const int64_t rows = 300, n = 2560;
  for (GgmlType type : kTypes) {
    const std::vector<uint8_t> w = Blocks(type, rows, n, -1, 11);
    const std::vector<uint8_t> act = Activations(type, n, 9, 13);
    ExpectBitExact(type, w, n, act, 9, 0, rows);
    ExpectBitExact(type, w, n, act, 9, 37, 251);
    if (HasFatalFailure()) return;
  }
}

// A long prefill of a wide matrix: many 8-token passes, more than 1 MB of activations.
TEST(KernelSuperBlockTest, LongPrefillIsBitExact) {
  const int64_t rows = 5, n = 4096, tokens = 300;
  for (GgmlType type : kTypes) {
    const std::vector<uint8_t> w = Blocks(type, rows, n, -1, 17);
    ExpectBitExact(type, w, n, Activations(type, n, tokens, 19), tokens, 1, rows);
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace dormouse
