#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace dormouse {
namespace {

// Temperature 1 and every filter off: a plain softmax draw.
SamplerParams Plain(uint64_t seed = 1) {
  SamplerParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = seed;
  return p;
}

SamplerParams Greedy() {
  SamplerParams p = Plain();
  p.temperature = 0.0f;
  return p;
}

std::vector<float> RandomLogits(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> logits(n);
  // Draws from a fixed formula over the generator's bits, not a distribution object.
  for (float& l : logits) l = static_cast<float>(rng() % 20000) / 1000.0f - 10.0f;
  return logits;
}

std::vector<int> Histogram(Sampler& s, const std::vector<float>& logits, int draws) {
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < draws; ++i) ++counts[s.Sample(logits.data())];
  return counts;
}

std::vector<double> Softmax(const std::vector<float>& logits, double temperature) {
  double max = logits[0];
  for (float l : logits) max = std::max<double>(max, l);
  std::vector<double> p(logits.size());
  double sum = 0;
  for (size_t i = 0; i < logits.size(); ++i)
    sum += p[i] = std::exp((logits[i] - max) / temperature);
  for (double& x : p) x /= sum;
  return p;
}

TEST(SamplerTest, GreedyPicksArgmaxAndLowestIdOnTies) {
  Sampler s(Greedy(), 6);
  const std::vector<float> logits = {0.1f, 3.0f, -2.0f, 3.0f, 2.9f, 1.0f};
  EXPECT_EQ(s.Sample(logits.data()), 1);
  const std::vector<float> logits2 = {-5.0f, -4.0f, -1.0f, -3.0f, -1.5f, -9.0f};
  EXPECT_EQ(s.Sample(logits2.data()), 2);
}

TEST(SamplerTest, NegativeTemperatureIsGreedy) {
  SamplerParams p = Plain();
  p.temperature = -1.0f;
  ASSERT_TRUE(Sampler::Validate(p).ok());
  Sampler s(p, 200);
  for (uint32_t seed = 0; seed < 20; ++seed) {
    std::vector<float> logits = RandomLogits(200, seed);
    Sampler greedy(Greedy(), 200);
    EXPECT_EQ(s.Sample(logits.data()), greedy.Sample(logits.data()));
  }
}

TEST(SamplerTest, NanLogitsAreIgnored) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> logits = {nan, 1.0f, nan, 2.0f, nan};
  Sampler greedy(Greedy(), 5);
  EXPECT_EQ(greedy.Sample(logits.data()), 3);
  Sampler plain(Plain(7), 5);
  for (int i = 0; i < 200; ++i) {
    const int32_t t = plain.Sample(logits.data());
    EXPECT_TRUE(t == 1 || t == 3) << t;
  }
  SamplerParams p = SamplerParams{};  // the defaults: top-k, top-p and min-p on
  p.seed = 3;
  Sampler filtered(p, 5);
  for (int i = 0; i < 200; ++i) {
    const int32_t t = filtered.Sample(logits.data());
    EXPECT_TRUE(t == 1 || t == 3) << t;
  }
}

TEST(SamplerTest, SameSeedSameTokensDifferentSeedDifferentTokens) {
  const std::vector<float> logits = RandomLogits(1000, 5);
  auto run = [&](uint64_t seed) {
    SamplerParams p;  // llama.cpp defaults
    p.temperature = 1.5f;
    p.repeat_penalty = 1.1f;
    p.seed = seed;
    Sampler s(p, 1000);
    std::vector<int32_t> tokens;
    for (int i = 0; i < 200; ++i) {
      tokens.push_back(s.Sample(logits.data()));
      s.Accept(tokens.back());
    }
    return tokens;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

TEST(SamplerTest, ResetReplaysTheSequence) {
  const std::vector<float> logits = RandomLogits(50, 9);
  Sampler s(Plain(11), 50);
  std::vector<int32_t> first, second;
  for (int i = 0; i < 50; ++i) first.push_back(s.Sample(logits.data()));
  s.Reset();
  for (int i = 0; i < 50; ++i) second.push_back(s.Sample(logits.data()));
  EXPECT_EQ(first, second);
}

TEST(SamplerTest, RandomSeedIsReported) {
  SamplerParams p = Plain(SamplerParams::kRandomSeed);
  Sampler a(p, 10), b(p, 10);
  EXPECT_NE(a.seed(), b.seed());  // 2^-64 chance of a false failure
  Sampler fixed(Plain(99), 10);
  EXPECT_EQ(fixed.seed(), 99u);
}

// Pins the draw path (mt19937_64 bits -> our uniform -> cumulative search) so a change
// that would alter tokens for a given seed on some machine is caught here.
TEST(SamplerTest, GoldenSequenceForSeed) {
  const std::vector<float> logits = {0.0f, 1.0f, 2.0f, 0.5f, -1.0f, 1.5f};
  Sampler s(Plain(1234), 6);
  std::vector<int32_t> tokens;
  for (int i = 0; i < 16; ++i) tokens.push_back(s.Sample(logits.data()));
  const std::vector<int32_t> expected = {5, 2, 5, 5, 2, 5, 5, 5, 2, 5, 5, 2, 1, 5, 2, 5};
  EXPECT_EQ(tokens, expected);
}

TEST(SamplerTest, TopKOneEqualsGreedy) {
  for (uint32_t seed = 0; seed < 50; ++seed) {
    std::vector<float> logits = RandomLogits(300, seed);
    logits[seed * 5 % 300] = logits[seed * 7 % 300];  // make some ties
    SamplerParams p = Plain(seed);
    p.top_k = 1;
    Sampler s(p, 300);
    Sampler greedy(Greedy(), 300);
    EXPECT_EQ(s.Sample(logits.data()), greedy.Sample(logits.data())) << "seed " << seed;
  }
}

TEST(SamplerTest, TinyTopPEqualsGreedy) {
  for (uint32_t seed = 0; seed < 50; ++seed) {
    const std::vector<float> logits = RandomLogits(300, seed);
    SamplerParams p = Plain(seed);
    p.top_p = 1e-6f;
    Sampler s(p, 300);
    Sampler greedy(Greedy(), 300);
    EXPECT_EQ(s.Sample(logits.data()), greedy.Sample(logits.data())) << "seed " << seed;
    p.top_k = 40;  // the same through the top-k path
    Sampler with_k(p, 300);
    EXPECT_EQ(with_k.Sample(logits.data()), greedy.Sample(logits.data())) << "seed " << seed;
  }
}

TEST(SamplerTest, TopKKeepsOnlyTheKBest) {
  const std::vector<float> logits = {1.0f, 1.2f, 0.9f, 1.1f, 0.0f, 1.15f};
  SamplerParams p = Plain(5);
  p.top_k = 3;
  Sampler s(p, 6);
  const std::vector<int> counts = Histogram(s, logits, 3000);
  EXPECT_EQ(counts[0] + counts[2] + counts[4], 0);
  EXPECT_GT(counts[1], 0);
  EXPECT_GT(counts[3], 0);
  EXPECT_GT(counts[5], 0);
}

TEST(SamplerTest, TopPKeepsTheSmallestHeadReachingP) {
  // Probabilities 0.5, 0.3, 0.15, 0.05: top_p 0.75 needs the first two.
  const std::vector<float> logits = {std::log(0.15f), std::log(0.5f), std::log(0.05f),
                                     std::log(0.3f)};
  for (int32_t top_k : {0, 3}) {
    SamplerParams p = Plain(8);
    p.top_p = 0.75f;
    p.top_k = top_k;
    Sampler s(p, 4);
    const std::vector<int> counts = Histogram(s, logits, 4000);
    EXPECT_EQ(counts[0] + counts[2], 0) << "top_k " << top_k;
    // Renormalized over the head: 0.5/0.8 and 0.3/0.8.
    EXPECT_NEAR(counts[1] / 4000.0, 0.625, 0.03);
    EXPECT_NEAR(counts[3] / 4000.0, 0.375, 0.03);
  }
}

TEST(SamplerTest, MinPDropsTokensBelowFractionOfTheBest) {
  // Relative to the best (p = 1): 0.6, 0.45, 0.3, 0.1.
  const std::vector<float> logits = {std::log(0.3f), 0.0f, std::log(0.1f), std::log(0.6f),
                                     std::log(0.45f)};
  for (int32_t top_k : {0, 4}) {
    SamplerParams p = Plain(21);
    p.min_p = 0.4f;
    p.top_k = top_k;
    Sampler s(p, 5);
    const std::vector<int> counts = Histogram(s, logits, 4000);
    EXPECT_EQ(counts[0] + counts[2], 0) << "top_k " << top_k;
    EXPECT_GT(counts[1], 0);
    EXPECT_GT(counts[3], 0);
    EXPECT_GT(counts[4], 0);
  }
}

TEST(SamplerTest, RepeatPenaltyDemotesRecentTokens) {
  SamplerParams p = Greedy();
  p.repeat_penalty = 1.1f;
  p.repeat_last_n = 3;
  Sampler s(p, 5);
  // 2.0 / 1.1 = 1.82 < 1.9, and -0.1 * 1.1 = -0.11 < -0.105.
  const std::vector<float> logits = {2.0f, 1.9f, -0.1f, -0.105f, -5.0f};
  EXPECT_EQ(s.Sample(logits.data()), 0);
  s.Accept(0);
  s.Accept(0);  // repeated in the window, penalized once: still 1.82, not 1.65
  EXPECT_EQ(s.Sample(logits.data()), 1);
  const std::vector<float> negative = {-0.1f, -0.105f, -3.0f, -4.0f, -5.0f};
  s.Accept(0);
  EXPECT_EQ(s.Sample(negative.data()), 1);
  // Three other tokens push token 0 out of the window.
  s.Accept(4);
  s.Accept(4);
  s.Accept(4);
  EXPECT_EQ(s.Sample(logits.data()), 0);
  s.Accept(0);
  s.Reset();
  EXPECT_EQ(s.Sample(logits.data()), 0);
}

TEST(SamplerTest, RepeatPenaltyCountsDistinctTokensOnce) {
  SamplerParams p = Greedy();
  p.repeat_penalty = 1.5f;
  p.repeat_last_n = 8;
  Sampler s(p, 3);
  // Twice-applied would be 3.0 / 2.25 = 1.33 < 1.5; once is 2.0 > 1.5.
  const std::vector<float> logits = {3.0f, 1.5f, 0.0f};
  for (int i = 0; i < 5; ++i) s.Accept(0);
  EXPECT_EQ(s.Sample(logits.data()), 0);
}

TEST(SamplerTest, PenaltyBelowOneEncourages) {
  SamplerParams p = Greedy();
  p.repeat_penalty = 0.5f;
  Sampler s(p, 3);
  const std::vector<float> logits = {1.0f, 1.5f, 0.0f};
  s.Accept(0);
  EXPECT_EQ(s.Sample(logits.data()), 0);  // 1.0 / 0.5 = 2.0
}

TEST(SamplerTest, FrequenciesMatchSoftmax) {
  const std::vector<float> logits = {0.0f, 1.0f, 2.0f, 0.5f, -1.0f, 1.5f, -3.0f, 0.25f};
  for (float temperature : {1.0f, 0.5f}) {
    SamplerParams p = Plain(2024);
    p.temperature = temperature;
    Sampler s(p, static_cast<int32_t>(logits.size()));
    constexpr int kDraws = 20000;
    const std::vector<int> counts = Histogram(s, logits, kDraws);
    const std::vector<double> expected = Softmax(logits, temperature);
    for (size_t i = 0; i < logits.size(); ++i) {
      // The binomial standard error is at most 0.0035 here; 0.015 is > 4 sigma.
      EXPECT_NEAR(counts[i] / double{kDraws}, expected[i], 0.015)
          << "token " << i << " temperature " << temperature;
    }
  }
}

TEST(SamplerTest, DefaultsMatchLlamaCpp) {
  const SamplerParams p;
  EXPECT_FLOAT_EQ(p.temperature, 0.8f);
  EXPECT_EQ(p.top_k, 40);
  EXPECT_FLOAT_EQ(p.top_p, 0.95f);
  EXPECT_FLOAT_EQ(p.min_p, 0.05f);
  EXPECT_FLOAT_EQ(p.repeat_penalty, 1.0f);
  EXPECT_EQ(p.repeat_last_n, 64);
  EXPECT_EQ(p.seed, SamplerParams::kRandomSeed);
  EXPECT_TRUE(Sampler::Validate(p).ok());
}

TEST(SamplerTest, ValidationNamesTheBadParameter) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  struct Case {
    void (*mutate)(SamplerParams&, float nan, float inf);
    const char* name;
  };
  const Case cases[] = {
      {[](SamplerParams& p, float nan, float) { p.temperature = nan; }, "temperature"},
      {[](SamplerParams& p, float, float inf) { p.temperature = inf; }, "temperature"},
      {[](SamplerParams& p, float, float) { p.top_k = -1; }, "top_k"},
      {[](SamplerParams& p, float, float) { p.top_p = 0.0f; }, "top_p"},
      {[](SamplerParams& p, float, float) { p.top_p = 1.5f; }, "top_p"},
      {[](SamplerParams& p, float nan, float) { p.top_p = nan; }, "top_p"},
      {[](SamplerParams& p, float, float) { p.min_p = -0.1f; }, "min_p"},
      {[](SamplerParams& p, float, float) { p.min_p = 1.01f; }, "min_p"},
      {[](SamplerParams& p, float nan, float) { p.min_p = nan; }, "min_p"},
      {[](SamplerParams& p, float, float) { p.repeat_penalty = 0.0f; }, "repeat_penalty"},
      {[](SamplerParams& p, float, float) { p.repeat_penalty = -1.0f; }, "repeat_penalty"},
      {[](SamplerParams& p, float nan, float) { p.repeat_penalty = nan; }, "repeat_penalty"},
      {[](SamplerParams& p, float, float inf) { p.repeat_penalty = inf; }, "repeat_penalty"},
      {[](SamplerParams& p, float, float) { p.repeat_last_n = -1; }, "repeat_last_n"},
      {[](SamplerParams& p, float, float) { p.repeat_last_n = Sampler::kMaxRepeatLastN + 1; },
       "repeat_last_n"},
  };
  for (const Case& c : cases) {
    SamplerParams p;
    c.mutate(p, nan, inf);
    const Status status = Sampler::Validate(p);
    ASSERT_FALSE(status.ok()) << c.name;
    EXPECT_NE(status.message().find(c.name), std::string::npos) << status.message();
    EXPECT_NE(status.message().find("got"), std::string::npos) << status.message();
  }
  // Boundaries that are allowed.
  SamplerParams edge;
  edge.top_k = 0;
  edge.top_p = 1.0f;
  edge.min_p = 1.0f;
  edge.repeat_last_n = 0;
  edge.temperature = -3.0f;
  EXPECT_TRUE(Sampler::Validate(edge).ok());
}

TEST(SamplerTest, MinPOneKeepsOnlyTheBestTies) {
  SamplerParams p = Plain(4);
  p.min_p = 1.0f;
  Sampler s(p, 4);
  const std::vector<float> logits = {1.0f, 2.0f, 2.0f, 1.99f};
  const std::vector<int> counts = Histogram(s, logits, 1000);
  EXPECT_EQ(counts[0] + counts[3], 0);
  EXPECT_GT(counts[1], 300);
  EXPECT_GT(counts[2], 300);
}

}  // namespace
}  // namespace dormouse
