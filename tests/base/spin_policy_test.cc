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

}  // namespace
}  // namespace dormouse
