// The lane-parallel attention for tiny heads gives every row the scalar reference's bits,
// on every compiled target that has it, whatever the other lanes' key ranges; and its exp is
// the library's expf.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "attention_test_util.h"
#include "engine/attention.h"
#include "engine/quants.h"
#include "expf_check.h"
#include "kernel_checker.h"

namespace dormouse {
namespace {

TEST(AttentionLanesTest, VectorExpIsTheLibrarysExpfOnEveryTarget) {
  // Every 211th float in [-104, 0], plus the edges and the special values.
  const std::vector<float> x = expf_check::Arguments(211);
  kernel_test::ForEachTarget([&] {
    std::vector<float> got(x.size());
    attention_internal::ExpfBatch(x.data(), got.data(), static_cast<int64_t>(x.size()));
    expf_check::ExpectLibraryBits(x, got);
  });
}

// A ring of `ring` cache rows (key j at row j % ring, 0: no ring) of 2 KV heads, and n query
// rows of the second KV head with their own key ranges.
struct Rows {
  int64_t hd, ring;
  std::vector<uint16_t> k, v;
  std::vector<float> q;  // (n, hd)
  std::vector<AttentionArgs> args;
  std::vector<SoftmaxStats> stats;

  Rows(int64_t head_dim, int n, int64_t n_keys, int64_t ring_rows, uint32_t seed)
      : hd(head_dim), ring(ring_rows) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.5f);
    const int64_t rows = ring > 0 ? ring : n_keys;
    for (int64_t i = 0; i < rows * 2 * hd; ++i) {
      k.push_back(F32ToF16(nd(rng)));
      v.push_back(F32ToF16(nd(rng)));
    }
    for (int64_t i = 0; i < n * hd; ++i) q.push_back(nd(rng) * 2.0f);
    stats.resize(static_cast<size_t>(n));
    std::uniform_int_distribution<int64_t> pick(0, n_keys);
    for (int i = 0; i < n; ++i) {
      // Mostly overlapping ranges, as a block of consecutive tokens has; some apart, some
      // empty, some a single key.
      int64_t end = i % 3 == 0 ? n_keys - i % 7 : pick(rng);
      int64_t first = i % 4 == 0 ? 0 : std::min(end, pick(rng) / 4);
      if (i % 11 == 5) first = end;
      if (i % 13 == 6) first = std::max<int64_t>(0, end - 1);
      if (ring > 0) first = std::max(first, end - ring);
      args.push_back({.q = &q[static_cast<size_t>(i * hd)],
                      .k_base = reinterpret_cast<const uint8_t*>(k.data()),
                      .v_base = reinterpret_cast<const uint8_t*>(v.data()),
                      .row_bytes = static_cast<size_t>(2 * hd) * 2,
                      .offset = hd,
                      .n_keys = end,
                      .head_dim = hd,
                      .scale = 1.0f / std::sqrt(static_cast<float>(hd)),
                      .first_key = first,
                      .ring = ring,
                      .stats = &stats[static_cast<size_t>(i)]});
    }
  }
};

void ExpectReferenceBits(const Rows& r, const char* what) {
  attention_test::ExpectReferenceBits(AttendLanesF16, r.args, what, attention_test::Max::kBits);
}

TEST(AttentionLanesTest, EveryRowGetsTheReferenceBitsOnEveryTarget) {
  int lane_targets = 0;
  kernel_test::ForEachTarget([&] {
    if (AttentionLaneWidth() == 0) {
      Rows r(8, 3, 10, 0, 1);
      std::vector<float> out(8);
      float* o[1] = {out.data()};
      EXPECT_FALSE(AttendLanesF16(r.args.data(), 1, o));
      return;
    }
    ++lane_targets;
    for (int64_t hd : {4, 8, 16}) {
      for (int n : {1, 2, 5, 8, 16, 19, 33}) {
        for (int64_t n_keys : {1, 3, 64, 300}) {
          const uint32_t seed = static_cast<uint32_t>(hd * 1000 + n * 10 + n_keys);
          Rows plain(hd, n, n_keys, 0, seed);
          ExpectReferenceBits(plain, "plain");
          Rows ring(hd, n, n_keys, 48, seed + 1);
          ExpectReferenceBits(ring, "ring");
        }
      }
    }
  });
  EXPECT_GE(lane_targets, 1) << "no target with the lane kernel (AVX2 or better, NEON) was tested";
}

// A key a row does not see cannot touch it, even an infinite value (0 * inf is NaN).
TEST(AttentionLanesTest, KeysOutsideARowsRangeLeaveItUntouched) {
  kernel_test::ForEachTarget([&] {
    if (AttentionLaneWidth() == 0) return;
    Rows r(8, 16, 40, 0, 9);
    for (int64_t d = 0; d < 8; ++d) r.v[static_cast<size_t>(39 * 16 + 8 + d)] = 0x7c00;  // +inf
    for (int i = 0; i < 16; ++i) {
      r.args[i].first_key = i;
      r.args[i].n_keys = i % 2 == 0 ? 39 : 40;
    }
    std::vector<float> got(16 * 8);
    std::vector<float*> outs;
    for (int i = 0; i < 16; ++i) outs.push_back(&got[i * 8]);
    ASSERT_TRUE(AttendLanesF16(r.args.data(), 16, outs.data()));
    for (int i = 0; i < 16; ++i) {
      EXPECT_EQ(std::isfinite(got[i * 8]), i % 2 == 0) << "row " << i;
    }
    for (AttentionArgs& a : r.args) a.n_keys = 39;
    ExpectReferenceBits(r, "beside an infinite value");
  });
}

TEST(AttentionLanesTest, SoftcapAndOtherHeadSizesAreLeftToThePerHeadKernels) {
  kernel_test::ForEachTarget([&] {
    Rows r(8, 2, 10, 0, 3);
    std::vector<float> out(2 * 32);
    float* o[2] = {out.data(), out.data() + 32};
    r.args[0].softcap = r.args[1].softcap = 30.0f;
    EXPECT_FALSE(AttendLanesF16(r.args.data(), 2, o));
    Rows wide(32, 2, 10, 0, 3);
    EXPECT_FALSE(AttendLanesF16(wide.args.data(), 2, o));
    EXPECT_EQ(AttentionLanesFit(8, true, 0.0f), AttentionLaneWidth() > 0);
    EXPECT_FALSE(AttentionLanesFit(8, false, 0.0f));
  });
}

}  // namespace
}  // namespace dormouse
