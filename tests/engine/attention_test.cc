// The F16 attention variants give identical bits, and both compute attention (checked
// against a plain double-precision softmax within F16 rounding).
#include "engine/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "attention_test_util.h"
#include "engine/quants.h"
#include "expf_check.h"
#include "kernel_checker.h"

namespace dormouse {
namespace {

struct Case {
  std::vector<float> q;
  std::vector<uint16_t> k, v;  // n_keys rows of row_elems
  int64_t row_elems;
};

Case Make(int64_t hd, int64_t n_keys, int64_t heads, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.5f);
  Case c;
  c.row_elems = hd * heads;
  c.q.resize(hd);
  for (float& x : c.q) x = nd(rng);
  c.k.resize(n_keys * c.row_elems);
  c.v.resize(n_keys * c.row_elems);
  for (uint16_t& x : c.k) x = F32ToF16(nd(rng));
  for (uint16_t& x : c.v) x = F32ToF16(nd(rng));
  return c;
}

TEST(AttentionTest, Avx512VariantMatchesReferenceBitForBit) {
  if (!attention_internal::HaveAvx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  for (int64_t hd : {8, 32, 64, 80, 128, 192}) {
    for (int64_t n_keys : {1, 2, 17, 300}) {
      Case c = Make(hd, n_keys, 2, static_cast<uint32_t>(hd * 1000 + n_keys));
      std::vector<uint16_t> q16(hd), acc16(hd);
      std::vector<float> acc32(hd), want(hd), got(hd);
      AttentionScratch s{q16.data(), acc16.data(), acc32.data()};
      AttentionArgs a{c.q.data(),
                      reinterpret_cast<const uint8_t*>(c.k.data()),
                      reinterpret_cast<const uint8_t*>(c.v.data()),
                      static_cast<size_t>(c.row_elems) * 2,
                      hd,
                      n_keys,
                      hd,
                      1.0f / std::sqrt(static_cast<float>(hd))};
      attention_internal::AttendF16Reference(a, s, want.data());
      attention_internal::AttendF16Avx512(a, s, got.data());
      ASSERT_EQ(std::memcmp(want.data(), got.data(), hd * sizeof(float)), 0)
          << "hd " << hd << " keys " << n_keys;
      // And it is attention: compare with a double-precision softmax.
      std::vector<double> scores(n_keys), exact(hd, 0.0);
      double mx = -1e300, sum = 0;
      for (int64_t j = 0; j < n_keys; ++j) {
        double d = 0;
        for (int64_t i = 0; i < hd; ++i) {
          d += double(F16ToF32(F32ToF16(c.q[i]))) * F16ToF32(c.k[j * c.row_elems + hd + i]);
        }
        scores[j] = d * a.scale;
        mx = std::max(mx, scores[j]);
      }
      for (int64_t j = 0; j < n_keys; ++j) sum += scores[j] = std::exp(scores[j] - mx);
      for (int64_t j = 0; j < n_keys; ++j) {
        for (int64_t i = 0; i < hd; ++i) {
          exact[i] += scores[j] / sum * F16ToF32(c.v[j * c.row_elems + hd + i]);
        }
      }
      for (int64_t i = 0; i < hd; ++i) {
        EXPECT_NEAR(got[i], exact[i], 0.02 + 0.01 * std::abs(exact[i])) << "hd " << hd;
      }
    }
  }
}

// The portable path (Highway kernels, vectorized with F16C from AVX2 on) on every compiled
// target: what CPUs without AVX-512 and DORMOUSE_TARGET=avx2 run.
TEST(AttentionTest, PortableVariantMatchesReferenceBitForBitOnEveryTarget) {
  for (int64_t hd : {8, 32, 64, 80, 128, 192}) {
    for (int64_t n_keys : {1, 2, 17, 300}) {
      Case c = Make(hd, n_keys, 2, static_cast<uint32_t>(hd * 1000 + n_keys));
      std::vector<uint16_t> q16(hd), acc16(hd);
      std::vector<float> acc32(hd), want(hd);
      AttentionScratch s{q16.data(), acc16.data(), acc32.data()};
      AttentionArgs a{c.q.data(),
                      reinterpret_cast<const uint8_t*>(c.k.data()),
                      reinterpret_cast<const uint8_t*>(c.v.data()),
                      static_cast<size_t>(c.row_elems) * 2,
                      hd,
                      n_keys,
                      hd,
                      1.0f / std::sqrt(static_cast<float>(hd))};
      attention_internal::AttendF16Reference(a, s, want.data());
      kernel_test::ForEachTarget([&] {
        std::vector<float> got(hd);
        attention_internal::AttendF16Portable(a, s, got.data());
        ASSERT_EQ(std::memcmp(want.data(), got.data(), hd * sizeof(float)), 0)
            << "hd " << hd << " keys " << n_keys;
      });
    }
  }
}

using GroupedVariant = bool (*)(const AttentionArgs*, int, const AttentionScratch&, float* const*);

// A grouped variant gives the reference's bits and softmax stats for every head of a group of
// 1 to 4, with scores of the usual spread and with sharp ones (q's sd 20 and 200), whose
// exponents go through expf's subnormal results, far below its underflow (about -104), and
// below -708, where the vector exp's double exponent wraps unless clamped.
void CheckGroupedVariant(GroupedVariant attend) {
  for (float q_sd : {2.0f, 20.0f, 200.0f}) {
    for (int64_t hd : {32, 64, 80, 96, 128}) {
      for (int heads : {1, 2, 3, 4}) {
        for (int64_t n_keys : {1, 2, 17, 64, 65, 300}) {
          Case c = Make(hd, n_keys, 2, static_cast<uint32_t>(hd * 7 + heads * 13 + n_keys));
          std::vector<std::vector<float>> qs(heads);
          std::vector<SoftmaxStats> stats(heads);
          std::vector<AttentionArgs> args(heads);
          std::vector<uint16_t> q16(kMaxGroupHeads * hd), acc16(hd);
          std::vector<float> acc32(hd);
          AttentionScratch s{q16.data(), acc16.data(), acc32.data()};
          std::mt19937 rng(static_cast<uint32_t>(n_keys));
          std::normal_distribution<float> nd(0.0f, q_sd);
          for (int g = 0; g < heads; ++g) {
            qs[g].resize(hd);
            for (float& x : qs[g]) x = nd(rng);
            args[g] = {.q = qs[g].data(),
                       .k_base = reinterpret_cast<const uint8_t*>(c.k.data()),
                       .v_base = reinterpret_cast<const uint8_t*>(c.v.data()),
                       .row_bytes = static_cast<size_t>(c.row_elems) * 2,
                       .offset = hd,
                       .n_keys = n_keys,
                       .head_dim = hd,
                       .scale = 1.0f / std::sqrt(static_cast<float>(hd)),
                       .stats = &stats[g]};
          }
          attention_test::ExpectReferenceBits(
              [&](const AttentionArgs* a, int n, float* const* out) {
                return attend(a, n, s, out);
              },
              args,
              "q sd " + std::to_string(q_sd) + " heads " + std::to_string(heads) + " keys " +
                  std::to_string(n_keys),
              attention_test::Max::kBits);
          if (testing::Test::HasFatalFailure()) return;
        }
      }
    }
  }
}

TEST(AttentionTest, GroupedVariantMatchesReferenceBitForBit) {
  if (!attention_internal::HaveAvx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  CheckGroupedVariant(attention_internal::AttendGroupF16Avx512);
}

TEST(AttentionTest, GroupedAvx2VariantMatchesReferenceBitForBit) {
  if (!attention_internal::HaveAvx2()) GTEST_SKIP() << "no AVX2 on this CPU";
  CheckGroupedVariant(attention_internal::AttendGroupF16Avx2);
}

TEST(AttentionTest, VectorExpIsTheLibrarysExpf) {
  if (!attention_internal::HaveAvx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  // Every 61st float in [-104, 0] (about 18 million; the whole range was checked once),
  // plus the edges.
  const std::vector<float> x = expf_check::Arguments(61);
  std::vector<float> got(x.size());
  attention_internal::ExpBatchAvx512(x.data(), got.data(), static_cast<int64_t>(x.size()));
  expf_check::ExpectLibraryBits(x, got);
}

}  // namespace
}  // namespace dormouse

namespace dormouse {
namespace {

// A sliding window (keys [first_key, n_keys)) read from a ring buffer, with gemma2's
// soft-cap: every variant gives the bits of the reference reading a plain array, and the
// soft-cap really changes the result.
TEST(AttentionTest, WindowRingAndSoftcapVariantsMatchBitForBit) {
  for (int64_t hd : {64, 80}) {
    for (int64_t n_keys : {5, 70, 300}) {
      for (float softcap : {0.0f, 50.0f}) {
        const int64_t window = 32, ring = window + 16;
        const int64_t first = std::max<int64_t>(0, n_keys - window);
        Case c = Make(hd, n_keys, 1, static_cast<uint32_t>(hd + n_keys));
        // The ring holds positions [n_keys - ring, n_keys) at slot pos % ring.
        std::vector<uint16_t> rk(ring * hd, 0), rv(ring * hd, 0);
        for (int64_t p = std::max<int64_t>(0, n_keys - ring); p < n_keys; ++p) {
          std::memcpy(&rk[(p % ring) * hd], &c.k[p * hd], hd * 2);
          std::memcpy(&rv[(p % ring) * hd], &c.v[p * hd], hd * 2);
        }
        std::vector<float> q(hd);
        for (int64_t i = 0; i < hd; ++i) q[i] = c.q[i] * 4.0f;  // sharp: the cap matters
        const float scale =
            (1.0f / std::sqrt(static_cast<float>(hd))) / (softcap > 0 ? softcap : 1);
        AttentionArgs plain{.q = q.data(),
                            .k_base = reinterpret_cast<const uint8_t*>(c.k.data()),
                            .v_base = reinterpret_cast<const uint8_t*>(c.v.data()),
                            .row_bytes = static_cast<size_t>(hd) * 2,
                            .offset = 0,
                            .n_keys = n_keys,
                            .head_dim = hd,
                            .scale = scale,
                            .first_key = first,
                            .softcap = softcap};
        AttentionArgs ringed = plain;
        ringed.k_base = reinterpret_cast<const uint8_t*>(rk.data());
        ringed.v_base = reinterpret_cast<const uint8_t*>(rv.data());
        ringed.ring = ring;
        std::vector<uint16_t> q16(kMaxGroupHeads * hd), acc16(hd);
        std::vector<float> acc32(hd), want(hd), got(hd), f32(hd);
        AttentionScratch s{q16.data(), acc16.data(), acc32.data()};
        attention_internal::AttendF16Reference(plain, s, want.data());
        attention_internal::AttendF16Reference(ringed, s, got.data());
        ASSERT_EQ(std::memcmp(want.data(), got.data(), hd * sizeof(float)), 0);
        if (attention_internal::HaveAvx512()) {
          attention_internal::AttendF16Avx512(ringed, s, got.data());
          ASSERT_EQ(std::memcmp(want.data(), got.data(), hd * sizeof(float)), 0);
          AttentionArgs group[2] = {ringed, ringed};
          std::vector<float> g0(hd), g1(hd);
          float* outs[2] = {g0.data(), g1.data()};
          ASSERT_TRUE(attention_internal::AttendGroupF16Avx512(group, 2, s, outs));
          ASSERT_EQ(std::memcmp(want.data(), g0.data(), hd * sizeof(float)), 0);
          ASSERT_EQ(std::memcmp(want.data(), g1.data(), hd * sizeof(float)), 0);
        }
        if (softcap > 0 && n_keys > 5) {  // the cap is not a no-op (5 keys: one dominates)
          AttentionArgs uncapped = plain;
          uncapped.softcap = 0.0f;
          uncapped.scale = scale * softcap;
          attention_internal::AttendF16Reference(uncapped, s, f32.data());
          EXPECT_NE(std::memcmp(want.data(), f32.data(), hd * sizeof(float)), 0)
              << "hd " << hd << " keys " << n_keys << " " << want[0] << " " << f32[0];
        }
      }
    }
  }
}

}  // namespace
}  // namespace dormouse
