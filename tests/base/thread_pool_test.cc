#include "base/thread_pool.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <fstream>
#include <latch>
#include <string>
#include <thread>
#include <vector>

namespace dormouse {
namespace {

using Clock = std::chrono::steady_clock;

TEST(ThreadPoolTest, SizeCountsCallerAndClampsToOne) {
  EXPECT_EQ(ThreadPool(0).size(), 1);
  EXPECT_EQ(ThreadPool(-3).size(), 1);
  EXPECT_EQ(ThreadPool(1).size(), 1);
  EXPECT_EQ(ThreadPool(4).size(), 4);
}

TEST(ThreadPoolTest, EveryThreadRunsOnceAndItsWritesAreVisible) {
  for (int n_threads : {2, 3, 4, 8}) {
    ThreadPool pool(n_threads);
    // Plain (non-atomic) writes: Run's release/acquire must make them visible.
    std::vector<int> seen(n_threads, 0);
    std::vector<int> seen_n(n_threads, 0);
    pool.Run([&](int i, int n) {
      seen[i] += 1;
      seen_n[i] = n;
    });
    for (int i = 0; i < n_threads; ++i) {
      EXPECT_EQ(seen[i], 1) << "thread " << i << " of " << n_threads;
      EXPECT_EQ(seen_n[i], n_threads);
    }
  }
}

TEST(ThreadPoolTest, CallerIsIndexZero) {
  ThreadPool pool(3);
  const std::thread::id caller = std::this_thread::get_id();
  for (int run = 0; run < 100; ++run) {
    std::thread::id id0;
    pool.Run([&](int i, int) {
      if (i == 0) id0 = std::this_thread::get_id();
    });
    ASSERT_EQ(id0, caller);
  }
}

// Holds a pool worker inside a signal handler, as if another process had its core.
// The scheduler state of one of this process's threads: 'R' running, 'S' sleeping...
char ThreadState(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string line;
  std::getline(in, line);
  // "tid (comm) S ...": the state follows the last ')'.
  const size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() ? line[paren + 2] : '?';
}

sem_t g_held, g_release;
void HoldInHandler(int) {
  sem_post(&g_held);
  while (sem_wait(&g_release) != 0) {
  }
}

// Holds a pool thread in a SIGUSR2 handler (as if it had lost its core) until Release().
class HeldThread {
 public:
  explicit HeldThread(pthread_t t) {
    struct sigaction sa {};
    sa.sa_handler = HoldInHandler;
    sa.sa_flags = SA_RESTART;
    ok_ = sem_init(&g_held, 0, 0) == 0 && sem_init(&g_release, 0, 0) == 0 &&
          sigaction(SIGUSR2, &sa, &old_) == 0 && pthread_kill(t, SIGUSR2) == 0;
    while (ok_ && sem_wait(&g_held) != 0) {
    }
  }
  ~HeldThread() {
    Release();
    sigaction(SIGUSR2, &old_, nullptr);
    sem_destroy(&g_held);
    sem_destroy(&g_release);
  }
  HeldThread(const HeldThread&) = delete;
  HeldThread& operator=(const HeldThread&) = delete;

  bool ok() const { return ok_; }
  void Release() {
    if (ok_ && !released_) sem_post(&g_release);
    released_ = true;
  }

 private:
  struct sigaction old_ {};
  bool ok_ = false;
  bool released_ = false;
};

TEST(ThreadPoolTest, CallerRunsTheShareOfAWorkerThatLostItsCore) {
  ThreadPool pool(2);
  pthread_t worker{};
  std::thread::id worker_id;
  std::atomic<bool> started{false};
  pool.Run([&](int i, int) {
    if (i == 1) {
      worker = pthread_self();
      worker_id = std::this_thread::get_id();
      started.store(true);
    } else {
      while (!started.load()) {  // so that the worker, not the caller, runs share 1
      }
    }
  });
  ASSERT_NE(worker_id, std::this_thread::get_id());
  HeldThread hold(worker);
  ASSERT_TRUE(hold.ok());
  // The worker cannot run: share 1 must still run, on the caller, and the Run return.
  std::vector<std::thread::id> ids(2);
  std::vector<int> data(100, 0);
  pool.Run([&](int i, int n) {
    ids[i] = std::this_thread::get_id();
    auto [b, e] = ThreadPool::Share(100, i, n);
    for (int64_t k = b; k < e; ++k) data[k] += 1;
  });
  EXPECT_EQ(ids[1], std::this_thread::get_id());
  hold.Release();
  // Back from the handler, the worker finds its share of that Run taken and goes on.
  for (int run = 0; run < 100; ++run) {
    pool.Run([&](int i, int n) {
      auto [b, e] = ThreadPool::Share(100, i, n);
      for (int64_t k = b; k < e; ++k) data[k] += 1;
    });
  }
  for (int k = 0; k < 100; ++k) ASSERT_EQ(data[k], 101) << "item " << k;
}

// A worker that sleeps through Run after Run (here: held in a signal handler while it
// waited for work; on a busy machine: asleep on a core another process holds) is woken
// for a few Runs, then left asleep for longer and longer quiet periods, so that the
// caller stops paying a wake-up per Run for nothing. The caller runs its shares; the
// results stay right; once the worker is back, it is woken and works again.
TEST(ThreadPoolTest, CallerStopsWakingAWorkerThatKeepsMissingItsShare) {
  ThreadPool pool(2);
  std::atomic<pid_t> worker_tid{0};
  pthread_t worker{};
  std::atomic<bool> started{false};
  pool.Run([&](int i, int) {
    if (i == 1) {
      worker = pthread_self();
      worker_tid.store(static_cast<pid_t>(syscall(SYS_gettid)));
      started.store(true);
    } else {
      while (!started.load()) {  // so that the worker, not the caller, runs share 1
      }
    }
  });
  ASSERT_NE(worker_tid.load(), 0);
  while (ThreadState(worker_tid.load()) != 'S') {  // past its spin budget: blocked
  }
  HeldThread hold(worker);
  ASSERT_TRUE(hold.ok());

  const ThreadPool::Counters before = pool.counters();
  constexpr int kRuns = 200;
  std::vector<int> data(100, 0);
  auto add_one = [&](int i, int n) {
    auto [b, e] = ThreadPool::Share(100, i, n);
    for (int64_t k = b; k < e; ++k) data[k] += 1;
  };
  for (int run = 0; run < kRuns; ++run) pool.Run(add_one);
  const ThreadPool::Counters held = pool.counters();
  EXPECT_EQ(held.runs - before.runs, kRuns);
  EXPECT_EQ(held.shares_taken_over - before.shares_taken_over, kRuns);
  // Woken for 8 Runs, then quiet for 16, 8 more, quiet for 32, ...: 32 of the 200.
  EXPECT_LE(held.wakeups - before.wakeups, 40u);
  EXPECT_GE(held.wakeups - before.wakeups, 8u);

  hold.Release();
  // Back from the handler, the worker finds that generations went by and claims shares
  // again (at the latest after the next wake-up).
  const ThreadPool::Counters back = pool.counters();
  std::atomic<int> worker_shares{0};
  while (worker_shares.load() == 0) {
    pool.Run([&](int i, int n) {
      add_one(i, n);
      if (static_cast<pid_t>(syscall(SYS_gettid)) == worker_tid.load()) worker_shares.fetch_add(1);
    });
  }
  const ThreadPool::Counters after = pool.counters();
  const int expected = kRuns + static_cast<int>(after.runs - back.runs);
  for (int k = 0; k < 100; ++k) ASSERT_EQ(data[k], expected) << "item " << k;
}

// Share 1 returns only once the caller is asleep (blocked, not spinning) waiting for it.
TEST(ThreadPoolTest, CallerBlocksWhileALongShareRuns) {
  ThreadPool pool(2);
  for (int run = 0; run < 3; ++run) {
    std::atomic<pid_t> caller_tid{0};
    std::atomic<bool> started{false};
    pool.Run([&](int i, int) {
      if (i == 0) {
        caller_tid.store(static_cast<pid_t>(syscall(SYS_gettid)));
        while (!started.load()) {  // so that the worker, not the caller, runs share 1
        }
        return;
      }
      started.store(true);
      while (caller_tid.load() == 0) {
      }
      while (ThreadState(caller_tid.load()) != 'S') {
      }
    });
  }
}

TEST(ThreadPoolTest, OneThreadRunsInline) {
  ThreadPool pool(1);
  const std::thread::id caller = std::this_thread::get_id();
  int calls = 0;
  pool.Run([&](int i, int n) {
    EXPECT_EQ(i, 0);
    EXPECT_EQ(n, 1);
    EXPECT_EQ(std::this_thread::get_id(), caller);
    ++calls;
  });
  EXPECT_EQ(calls, 1);
}

// A job below kMinParallelWork is one share on the calling thread; from there on, one share
// per thread as Run gives.
TEST(ThreadPoolTest, RunSizedKeepsSmallJobsOnTheCallingThread) {
  ThreadPool pool(3);
  const std::thread::id caller = std::this_thread::get_id();
  int calls = 0;
  pool.RunSized(ThreadPool::kMinParallelWork - 1, [&](int i, int n) {
    EXPECT_EQ(i, 0);
    EXPECT_EQ(n, 1);
    EXPECT_EQ(std::this_thread::get_id(), caller);
    ++calls;
  });
  EXPECT_EQ(calls, 1);
  std::atomic<int> shares{0};
  std::atomic<int> seen[3] = {0, 0, 0};
  pool.RunSized(ThreadPool::kMinParallelWork, [&](int i, int n) {
    EXPECT_EQ(n, 3);
    seen[i].fetch_add(1);
    shares.fetch_add(1);
  });
  EXPECT_EQ(shares.load(), 3);
  for (const auto& s : seen) EXPECT_EQ(s.load(), 1);
}

TEST(ThreadPoolTest, ManyBackToBackRunsAreCorrect) {
  constexpr int kRuns = 100000;
  constexpr int64_t kItems = 37;
  ThreadPool pool(2);
  std::vector<int64_t> data(kItems, 0);
  for (int run = 0; run < kRuns; ++run) {
    // Each Run reads what the previous Run's other thread wrote (shares swap owners),
    // so a missing happens-before between Runs shows up as a wrong count.
    const int shift = run & 1;
    pool.Run([&](int i, int n) {
      auto [begin, end] = ThreadPool::Share(kItems, (i + shift) % n, n);
      for (int64_t k = begin; k < end; ++k) data[k] += 1;
    });
  }
  for (int64_t k = 0; k < kItems; ++k) ASSERT_EQ(data[k], kRuns) << "item " << k;
}

TEST(ThreadPoolTest, ConcurrentRunsFromTwoThreadsEachGetTheirResults) {
  // One pool serving two models: both worker threads call Run at once. Each run must
  // cover its own items exactly once, with every share's writes visible to its caller.
  constexpr int kRuns = 3000;
  constexpr int64_t kItems = 53;
  ThreadPool pool(3);
  std::latch start(2);
  auto caller = [&](std::vector<int64_t>& data, std::atomic<int>& overlaps) {
    start.arrive_and_wait();
    for (int run = 0; run < kRuns; ++run) {
      std::atomic<int> inside{0};
      pool.Run([&](int i, int n) {
        if (inside.fetch_add(1) >= n) overlaps.fetch_add(1);
        auto [begin, end] = ThreadPool::Share(kItems, (i + run) % n, n);
        for (int64_t k = begin; k < end; ++k) data[k] += 1;  // plain writes
      });
      if (inside.load() != pool.size()) overlaps.fetch_add(1);
    }
  };
  std::vector<int64_t> a(kItems, 0), b(kItems, 0);
  std::atomic<int> overlaps_a{0}, overlaps_b{0};
  std::thread other([&] { caller(b, overlaps_b); });
  caller(a, overlaps_a);
  other.join();
  EXPECT_EQ(overlaps_a.load(), 0);
  EXPECT_EQ(overlaps_b.load(), 0);
  for (int64_t k = 0; k < kItems; ++k) {
    ASSERT_EQ(a[k], kRuns) << "item " << k;
    ASSERT_EQ(b[k], kRuns) << "item " << k;
  }
}

TEST(ThreadPoolTest, ShareCoversRangeExactlyOnceOnGranuleBoundaries) {
  for (int64_t n : {0, 1, 2, 3, 5, 7, 16, 31, 64, 100, 1000, 4097}) {
    for (int n_threads : {1, 2, 3, 4, 7, 16}) {
      for (int64_t granule : {1, 2, 4, 8, 32, 256}) {
        int64_t expected_begin = 0;
        for (int i = 0; i < n_threads; ++i) {
          auto [begin, end] = ThreadPool::Share(n, i, n_threads, granule);
          SCOPED_TRACE(testing::Message() << "n=" << n << " threads=" << n_threads
                                          << " granule=" << granule << " i=" << i);
          ASSERT_EQ(begin, expected_begin);  // contiguous, no gap, no overlap
          ASSERT_LE(begin, end);
          // Boundaries sit on granules, except at n (the remainder, or empty shares).
          ASSERT_TRUE(begin % granule == 0 || begin == n);
          ASSERT_TRUE(end % granule == 0 || end == n);
          expected_begin = end;
        }
        ASSERT_EQ(expected_begin, n);  // the last share ends at n
      }
    }
  }
}

TEST(ThreadPoolTest, ShareIsBalanced) {
  // 10 granules over 3 threads: 4, 3, 3 granules, the last taking the partial one.
  EXPECT_EQ(ThreadPool::Share(10 * 8 - 3, 0, 3, 8), std::make_pair(int64_t{0}, int64_t{32}));
  EXPECT_EQ(ThreadPool::Share(10 * 8 - 3, 1, 3, 8), std::make_pair(int64_t{32}, int64_t{56}));
  EXPECT_EQ(ThreadPool::Share(10 * 8 - 3, 2, 3, 8), std::make_pair(int64_t{56}, int64_t{77}));
  // Fewer items than threads: some shares are empty, all items still covered.
  EXPECT_EQ(ThreadPool::Share(1, 0, 4), std::make_pair(int64_t{0}, int64_t{1}));
  EXPECT_EQ(ThreadPool::Share(1, 3, 4), std::make_pair(int64_t{1}, int64_t{1}));
  EXPECT_EQ(ThreadPool::Share(-5, 0, 2), std::make_pair(int64_t{0}, int64_t{0}));
}

TEST(ThreadPoolTest, JobAfterLongIdleStillRuns) {
  ThreadPool pool(4);
  std::atomic<int> calls{0};
  pool.Run([&](int, int) { calls.fetch_add(1); });
  // Long past the spin budget: every worker is blocked now.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  for (int round = 0; round < 3; ++round) {
    pool.Run([&](int, int) { calls.fetch_add(1); });
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(calls.load(), 16);
}

TEST(ThreadPoolTest, IdleWorkersUseNoCpu) {
  ThreadPool pool(2);
  pool.Run([](int, int) {});
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let the worker block
  const std::clock_t cpu_before = std::clock();                // whole-process CPU time
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const double cpu_ms = 1000.0 * (std::clock() - cpu_before) / CLOCKS_PER_SEC;
  EXPECT_LT(cpu_ms, 20.0) << "a blocked worker should not spin";
}

TEST(ThreadPoolTest, DestructorJoinsBlockedWorkersPromptly) {
  auto pool = std::make_unique<ThreadPool>(8);
  pool->Run([](int, int) {});
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // workers asleep
  const Clock::time_point start = Clock::now();
  pool.reset();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));  // no hang; generous under load
}

TEST(ThreadPoolTest, DestructorWithoutAnyRun) {
  const Clock::time_point start = Clock::now();
  { ThreadPool pool(4); }
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));  // no hang; generous under load
}

TEST(ThreadPoolTest, RunsInterleavedWithSleepsMixHotAndColdWorkers) {
  // Alternates runs that find workers spinning with runs that find them blocked, to
  // exercise the spin -> sleep handoff (a lost wakeup would hang here).
  ThreadPool pool(3);
  std::vector<int64_t> sums(3, 0);
  for (int round = 0; round < 200; ++round) {
    pool.Run([&](int i, int) { sums[i] += round; });
    if (round % 10 == 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(round * 10));
    }
  }
  for (int i = 0; i < 3; ++i) EXPECT_EQ(sums[i], 199 * 200 / 2);
}

}  // namespace
}  // namespace dormouse
