#include "base/spin_policy.h"

#include <gtest/gtest.h>

namespace dormouse {
namespace {

using std::chrono::microseconds;

TEST(SpinPolicyTest, StartsAtTheMaximum) {
  SpinPolicy p(microseconds(150));
  EXPECT_EQ(p.budget(), microseconds(150));
}

TEST(SpinPolicyTest, LosingTheCoreHalvesTheBudgetDownToTheMinimum) {
  SpinPolicy p(microseconds(160));
  p.Update(true, true, microseconds(5));
  EXPECT_EQ(p.budget(), microseconds(80));
  for (int i = 0; i < 20; ++i) p.Update(false, true, microseconds(500));
  EXPECT_EQ(p.budget(), SpinPolicy::kMin);
}

TEST(SpinPolicyTest, AShortMissGrowsTheBudgetOnlyAfterTheCooldown) {
  SpinPolicy p(microseconds(160));
  for (int i = 0; i < 3; ++i) p.Update(false, true, microseconds(500));
  EXPECT_EQ(p.budget(), microseconds(20));
  // Work that came just after the thread blocked: spinning longer would have caught it,
  // but the thread lost its core recently, so the budget stays down for a while.
  for (int i = 0; i < SpinPolicy::kCooldownWaits; ++i) p.Update(false, false, microseconds(30));
  EXPECT_EQ(p.budget(), microseconds(20));
  p.Update(false, false, microseconds(30));
  EXPECT_EQ(p.budget(), microseconds(40));
  for (int i = 0; i < 10; ++i) p.Update(false, false, microseconds(30));
  EXPECT_EQ(p.budget(), microseconds(160));  // capped
}

TEST(SpinPolicyTest, IdleGapsAndHitsLeaveTheBudgetAlone) {
  SpinPolicy p(microseconds(160));
  p.Update(false, true, microseconds(500));  // 80
  for (int i = 0; i < SpinPolicy::kCooldownWaits; ++i) p.Update(true, false, microseconds(1));
  p.Update(false, false, std::chrono::milliseconds(50));  // idle between requests
  EXPECT_EQ(p.budget(), microseconds(80));
  p.Update(true, false, microseconds(3));  // caught while spinning
  EXPECT_EQ(p.budget(), microseconds(80));
}

// Counts the Runs that wake, out of `runs`, with every woken Run late.
int WakesWhenAlwaysLate(WakePolicy& p, int runs) {
  int wakes = 0;
  for (int r = 0; r < runs; ++r) {
    if (p.ShouldWake()) {
      ++wakes;
      p.Update(/*late=*/true);
    }
  }
  return wakes;
}

TEST(WakePolicyTest, WakesUntilWorkersKeepMissingThenBacksOffDoubling) {
  WakePolicy p;
  const int k = WakePolicy::kLateRunsBeforeQuiet, q = WakePolicy::kMinQuietRuns;
  EXPECT_EQ(WakesWhenAlwaysLate(p, k), k);
  EXPECT_TRUE(p.quiet());
  EXPECT_EQ(WakesWhenAlwaysLate(p, q), 0);
  EXPECT_FALSE(p.quiet());
  EXPECT_EQ(WakesWhenAlwaysLate(p, k), k);  // the probe
  EXPECT_EQ(WakesWhenAlwaysLate(p, 2 * q), 0);
  EXPECT_EQ(WakesWhenAlwaysLate(p, k + 4 * q), k);
  // The quiet period stops doubling at its maximum.
  for (int i = 0; i < 20; ++i) WakesWhenAlwaysLate(p, k + WakePolicy::kMaxQuietRuns);
  EXPECT_EQ(WakesWhenAlwaysLate(p, k + WakePolicy::kMaxQuietRuns), k);
}

TEST(WakePolicyTest, AWorkerOnTimeEndsTheQuietAndTheBackOff) {
  WakePolicy p;
  const int k = WakePolicy::kLateRunsBeforeQuiet;
  WakesWhenAlwaysLate(p, 3 * k + 16 + 32);  // quiet for 64 next
  EXPECT_TRUE(p.quiet());
  p.Update(/*late=*/false);  // an awake worker claimed its share in time
  EXPECT_FALSE(p.quiet());
  EXPECT_TRUE(p.ShouldWake());
  for (int i = 0; i < k - 1; ++i) p.Update(true);
  EXPECT_FALSE(p.quiet());  // a late streak starts over
  p.Update(true);
  EXPECT_EQ(WakesWhenAlwaysLate(p, WakePolicy::kMinQuietRuns), 0);
  EXPECT_FALSE(p.quiet());  // back to the shortest quiet
}

}  // namespace
}  // namespace dormouse
