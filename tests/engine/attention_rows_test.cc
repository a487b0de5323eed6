// The multi-row attention kernels (AttendRowsF16: AVX-512, AVX2, and the Highway one on every
// other compiled target) give every row the scalar reference's bits and softmax stats,
// whatever the other rows' ends, in a ring, past a first key, and with values that raise the
// max in the middle of a block, and with a soft-cap; the AVX2 one's exp is the library's expf.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "attention_test_util.h"
#include "engine/attention.h"
#include "engine/kernel_target.h"
#include "engine/quants.h"
#include "expf_check.h"
#include "kernel_checker.h"

namespace dormouse {
namespace {

// Keys and values for 2 KV heads in `rows` cache rows; n query rows of the second KV head
// that share a first key and end near one another, as consecutive tokens do.
struct Rows {
  int64_t hd;
  std::vector<uint16_t> k, v;
  std::vector<float> q;
  std::vector<AttentionArgs> args;
  std::vector<SoftmaxStats> stats;

  Rows(int64_t head_dim, int n, int64_t first, int64_t n_keys, int64_t ring, uint32_t seed,
       float q_scale = 2.0f)
      : hd(head_dim) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.5f);
    const int64_t cache_rows = ring > 0 ? ring : n_keys;
    for (int64_t i = 0; i < cache_rows * 2 * hd; ++i) {
      k.push_back(F32ToF16(nd(rng)));
      v.push_back(F32ToF16(nd(rng)));
    }
    for (int64_t i = 0; i < n * hd; ++i) q.push_back(nd(rng) * q_scale);
    stats.resize(static_cast<size_t>(n));
    std::uniform_int_distribution<int64_t> back(0, 40);
    for (int i = 0; i < n; ++i) {
      // Mostly the last keys minus a few (consecutive tokens), some far shorter.
      int64_t end = i % 5 == 4 ? first + 1 + back(rng) : n_keys - i % 3;
      end = std::clamp<int64_t>(end, first, n_keys);
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

using attention_test::RowsKernel;

struct Variant {
  const char* name;
  RowsKernel attend;
  bool (*have)();
  bool per_target = false;  // a Highway kernel: run on every compiled target that has it
};

bool Always() { return true; }

void PrintTo(const Variant& v, std::ostream* os) { *os << v.name; }

class AttentionRowsTest : public testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    if (!GetParam().have()) GTEST_SKIP() << "no " << GetParam().name << " on this CPU";
  }
  bool Attend(const AttentionArgs* a, int n, float* const* out) const {
    return GetParam().attend(a, n, out);
  }
  // body() once, or for a Highway kernel on every compiled target that has it (the scalar one
  // has none: there it must decline).
  template <class F>
  void ForTargets(F body) const {
    if (!GetParam().per_target) return body();
    kernel_test::ForEachTarget([&] {
      if (attention_internal::HaveAttentionRowsVec()) return body();
      std::vector<float> out(64);
      float* outs[1] = {out.data()};
      Rows one(64, 1, 0, 4, 0, 1);
      EXPECT_FALSE(Attend(one.args.data(), 1, outs));
    });
  }
};

// The softmax max is compared as a float: a dot product's first product is a multiply in
// these kernels, an FMA onto +0 in the reference, so a zero score (and max) may be -0 where
// the reference's is +0; no output bit depends on that sign.
void ExpectReferenceBits(RowsKernel attend, const Rows& r, const std::string& what) {
  attention_test::ExpectReferenceBits(attend, r.args, what, attention_test::Max::kValue);
}

void EveryRowGetsTheReferenceBits(RowsKernel attend) {
  for (int64_t hd : {64, 96, 128, 256}) {
    for (int n : {1, 2, 3, 4, 5, 8, 16}) {
      for (int64_t n_keys : {1, 2, 15, 16, 17, 31, 32, 33, 64, 300}) {
        for (int64_t first : {int64_t{0}, int64_t{7}}) {
          if (first >= n_keys) continue;
          const std::string what = "n " + std::to_string(n) + " keys " + std::to_string(n_keys) +
                                   " first " + std::to_string(first);
          const uint32_t seed = static_cast<uint32_t>(hd * 100000 + n * 1000 + n_keys + first);
          Rows plain(hd, n, first, n_keys, 0, seed);
          ExpectReferenceBits(attend, plain, "plain " + what);
          Rows ring(hd, n, first, n_keys, n_keys + 5, seed + 1);
          ExpectReferenceBits(attend, ring, "ring " + what);
          // Flat scores: the max moves often, and ties are common.
          Rows flat(hd, n, first, n_keys, 0, seed + 2, 0.05f);
          ExpectReferenceBits(attend, flat, "flat " + what);
          // gemma2's soft-cap, small enough that tanh saturates (one row, a pair and one
          // more, all rows: the kernels' groupings).
          if (n != 1 && n != 3 && n != 16) continue;
          Rows capped(hd, n, first, n_keys, 0, seed + 3);
          for (AttentionArgs& a : capped.args) a.softcap = 2.0f;
          ExpectReferenceBits(attend, capped, "capped " + what);
        }
      }
    }
  }
}

TEST_P(AttentionRowsTest, EveryRowGetsTheReferenceBits) {
  ForTargets([&] { EveryRowGetsTheReferenceBits(GetParam().attend); });
}

// Head_dim 96's last 32 dimensions are summed one product at a time in double
// (DotF16Reference): with a large product and its negation in them, the running sum loses the
// low bits of what came before, so that another order gives other scores. The kernels keep the
// reference's order.
TEST_P(AttentionRowsTest, Head96SumsItsTailInTheReferencesOrder) {
  Rows r(96, 5, 0, 70, 0, 11, 0.05f);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> big(16384.0f, 65504.0f);
  int order_matters = 0;
  for (int64_t j = 0; j < 70; ++j) {
    uint16_t* key = &r.k[static_cast<size_t>(j * 192 + 96)];
    key[70] = F32ToF16(j % 2 == 0 ? big(rng) : -big(rng));
    key[80] = key[70] ^ 0x8000;
    // The dot with the tail's products added in the other order.
    uint16_t q16[96], rk[96], rq[96];
    for (int64_t d = 0; d < 96; ++d) q16[d] = F32ToF16(d == 70 || d == 80 ? 65504.0f : r.q[d]);
    for (int64_t d = 0; d < 96; ++d) {
      rk[d] = d < 64 ? key[d] : key[64 + 95 - d];
      rq[d] = d < 64 ? q16[d] : q16[64 + 95 - d];
    }
    order_matters += attention_internal::DotF16Reference(key, q16, 96) !=
                     attention_internal::DotF16Reference(rk, rq, 96);
  }
  for (size_t i = 0; i < 5; ++i) r.q[i * 96 + 70] = r.q[i * 96 + 80] = 65504.0f;
  EXPECT_GT(order_matters, 35) << "the data should make the order visible";
  ForTargets([&] {
    for (size_t n : {5, 2, 1}) {  // fewer rows read the cache's F16 rows in place
      const std::vector<AttentionArgs> args(r.args.begin(), r.args.begin() + n);
      attention_test::ExpectReferenceBits(GetParam().attend, args, "rows " + std::to_string(n),
                                          attention_test::Max::kValue);
    }
  });
}

// A row that sees no key gets zeros and the empty stats, as the reference; a key past a row's
// end leaves the row untouched, even an infinite one (0 * inf is NaN).
TEST_P(AttentionRowsTest, KeysPastARowsEndLeaveItUntouched) {
  ForTargets([&] {
    Rows r(64, 4, 0, 40, 0, 9);
    for (int64_t d = 0; d < 64; ++d) r.v[static_cast<size_t>(39 * 128 + 64 + d)] = 0x7c00;  // +inf
    for (int i = 0; i < 4; ++i) r.args[i].n_keys = i % 2 == 0 ? 39 : 40;
    std::vector<float> got(4 * 64);
    std::vector<float*> outs;
    for (int i = 0; i < 4; ++i) outs.push_back(&got[i * 64]);
    ASSERT_TRUE(Attend(r.args.data(), 4, outs.data()));
    for (int i = 0; i < 4; ++i) EXPECT_EQ(std::isfinite(got[i * 64]), i % 2 == 0) << "row " << i;
    for (AttentionArgs& a : r.args) a.n_keys = 39;
    r.args[3].n_keys = 0;
    ExpectReferenceBits(GetParam().attend, r, "beside an infinite value, one row empty");
  });
}

TEST_P(AttentionRowsTest, OtherShapesAreLeftToTheGroupedKernels) {
  ForTargets([&] {
    std::vector<float> out(16 * 128);
    std::vector<float*> outs(17, out.data());
    Rows wide(80, 2, 0, 10, 0, 3);
    EXPECT_FALSE(Attend(wide.args.data(), 2, outs.data()));
    Rows many(64, 17, 0, 10, 0, 3);
    EXPECT_FALSE(Attend(many.args.data(), 17, outs.data()));
    EXPECT_FALSE(AttentionRowsFit(64, false));
    EXPECT_FALSE(AttentionRowsFit(80, true));
    for (int64_t hd : {96, 256}) {
      Rows r(hd, 2, 0, 10, 0, 3);
      EXPECT_TRUE(Attend(r.args.data(), 2, outs.data())) << hd;
      EXPECT_TRUE(AttentionRowsFit(hd, true)) << hd;
    }
  });
}

INSTANTIATE_TEST_SUITE_P(
    Attention, AttentionRowsTest,
    testing::Values(
        Variant{"Avx512", attention_internal::AttendRowsF16Avx512, attention_internal::HaveAvx512},
        Variant{"Avx2", attention_internal::AttendRowsF16Avx2, attention_internal::HaveAvx2},
        Variant{"Vec", attention_internal::AttendRowsF16Vec, Always, true}),
    [](const testing::TestParamInfo<Variant>& info) { return std::string(info.param.name); });

TEST(AttentionRowsAvx2Test, VectorExpIsTheLibrarysExpf) {
  if (!attention_internal::HaveAvx2()) GTEST_SKIP() << "no AVX2 on this CPU";
  // Every 61st float in [-104, 0] (about 18 million; the whole range was checked once),
  // plus the edges.
  const std::vector<float> x = expf_check::Arguments(61);
  std::vector<float> got(x.size());
  attention_internal::ExpBatchAvx2(x.data(), got.data(), static_cast<int64_t>(x.size()));
  expf_check::ExpectLibraryBits(x, got);
  // Every length of the last, partial vector (the edges and special values come last), with
  // what follows it left untouched.
  for (size_t n = 1; n < 16; ++n) {
    const std::vector<float> tail(x.end() - static_cast<std::ptrdiff_t>(n), x.end());
    std::vector<float> out(n + 1, 7.0f);
    attention_internal::ExpBatchAvx2(tail.data(), out.data(), static_cast<int64_t>(n));
    ASSERT_EQ(out[n], 7.0f) << n;
    out.pop_back();
    expf_check::ExpectLibraryBits(tail, out);
  }
}

}  // namespace
}  // namespace dormouse
