#include "base/work_dealer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "base/thread_pool.h"

namespace dormouse {
namespace {

// Deals every unit to the shares in turn (one Next each, round robin) and counts them.
std::vector<int> DealRoundRobin(WorkDealer& d, int64_t units, int n) {
  std::vector<int> seen(static_cast<size_t>(units), 0);
  d.Reset(units, n);
  std::vector<bool> done(n, false);
  for (int left = n; left > 0;) {
    for (int i = 0; i < n; ++i) {
      if (done[i]) continue;
      int64_t b, e;
      if (!d.Next(i, &b, &e)) {
        done[i] = true;
        --left;
        continue;
      }
      EXPECT_LT(b, e);
      for (int64_t u = b; u < e; ++u) ++seen[u];
    }
  }
  return seen;
}

TEST(WorkDealerTest, DealsEveryUnitExactlyOnce) {
  WorkDealer d(8);
  for (int n : {1, 2, 3, 8}) {
    for (int64_t units : {0, 1, 2, 7, 16, 100, 3142}) {
      std::vector<int> seen = DealRoundRobin(d, units, n);
      for (int64_t u = 0; u < units; ++u) {
        ASSERT_EQ(seen[u], 1) << "unit " << u << " of " << units << ", " << n << " shares";
      }
    }
  }
}

TEST(WorkDealerTest, EachShareStartsWhereAStaticSplitPutsIt) {
  WorkDealer d(4);
  d.Reset(1000, 4);
  for (int i = 0; i < 4; ++i) {
    int64_t b, e;
    ASSERT_TRUE(d.Next(i, &b, &e));
    EXPECT_EQ(b, ThreadPool::Share(1000, i, 4).first);
  }
}

TEST(WorkDealerTest, ChunksShrinkSoSharesEndTogether) {
  WorkDealer d(2);
  d.Reset(1024, 2);
  int64_t b, e, last = 0, claims = 0;
  while (d.Next(0, &b, &e)) {
    last = e - b;
    ++claims;
  }
  // Share 0 took its own half, then stole share 1's: the last chunk is one unit, and
  // about a few dozen claims did it all.
  EXPECT_EQ(last, 1);
  EXPECT_LT(claims, 64);
  EXPECT_FALSE(d.Next(1, &b, &e));
}

TEST(WorkDealerTest, AShareThatNeverRunsIsCoveredByTheOthers) {
  WorkDealer d(3);
  d.Reset(300, 3);
  std::vector<int> seen(300, 0);
  int64_t b, e;
  for (int i : {0, 2}) {
    while (d.Next(i, &b, &e)) {
      for (int64_t u = b; u < e; ++u) ++seen[u];
    }
  }
  for (int u = 0; u < 300; ++u) ASSERT_EQ(seen[u], 1) << u;
  EXPECT_FALSE(d.Next(1, &b, &e));
}

TEST(WorkDealerTest, ConcurrentSharesOfAPoolCoverEveryUnitOnce) {
  for (int n_threads : {2, 4}) {
    ThreadPool pool(n_threads);
    WorkDealer d(n_threads);
    constexpr int64_t kUnits = 5000;
    auto seen = std::make_unique<std::atomic<int>[]>(kUnits);
    for (int round = 0; round < 50; ++round) {
      for (int64_t u = 0; u < kUnits; ++u) seen[u].store(0, std::memory_order_relaxed);
      d.Reset(kUnits, n_threads);
      pool.Run([&](int i, int) {
        for (int64_t b, e; d.Next(i, &b, &e);) {
          for (int64_t u = b; u < e; ++u) seen[u].fetch_add(1, std::memory_order_relaxed);
        }
      });
      for (int64_t u = 0; u < kUnits; ++u) {
        ASSERT_EQ(seen[u].load(), 1) << "unit " << u << ", round " << round;
      }
    }
  }
}

}  // namespace
}  // namespace dormouse
