// Run() protocol, designed for ~1 µs round trips with hot workers:
//   caller: write job/ctx, set `pending`, bump `generation` (the release publishes the
//           job), wake sleepers only if any, run share 0, spin until `pending` is 0.
//   worker: spin on `generation` for kSpinBeforeSleep, then block in atomic::wait so an
//           idle process uses no CPU; on a new generation run its share and decrement
//           `pending` (release, so the caller's acquire sees the worker's writes).
// Run k+1 cannot start before every worker finished Run k (the caller waits for
// pending == 0), so a worker never misses a generation and job/ctx need no atomics.
#include "base/thread_pool.h"

#include <atomic>
#include <cassert>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace dormouse {
namespace {

using Clock = std::chrono::steady_clock;

// How long an idle worker keeps spinning before it blocks. The decode loop's gaps
// between Runs (sampling, single-threaded ops) are well below this, so workers stay hot
// while generating and fall asleep a fraction of a millisecond after generation stops.
constexpr auto kSpinBeforeSleep = std::chrono::microseconds(150);
// How long the caller spins with pause before it starts yielding its core while it
// waits for slow shares (long prefill matmuls, or an oversubscribed machine).
constexpr auto kCallerSpinBeforeYield = std::chrono::microseconds(200);
// Reading the clock costs ~20 ns; look at it only every this many pauses.
constexpr int kSpinsPerClockCheck = 64;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Returns the first generation != `seen`, spinning first and then blocking.
uint32_t AwaitNewGeneration(std::atomic<uint32_t>& generation, std::atomic<int>& sleepers,
                            uint32_t seen) {
  const Clock::time_point sleep_after = Clock::now() + kSpinBeforeSleep;
  for (int spins = 1;; ++spins) {
    const uint32_t g = generation.load(std::memory_order_acquire);
    if (g != seen) return g;
    CpuRelax();
    if (spins % kSpinsPerClockCheck == 0 && Clock::now() > sleep_after) break;
  }
  sleepers.fetch_add(1, std::memory_order_seq_cst);
  uint32_t g;
  while ((g = generation.load(std::memory_order_seq_cst)) == seen) {
    generation.wait(seen, std::memory_order_acquire);
  }
  sleepers.fetch_sub(1, std::memory_order_relaxed);
  return g;
}

}  // namespace

struct ThreadPool::State {
  // One Run at a time: the protocol has a single job slot. Uncontended (one model
  // generating) it costs an atomic exchange per Run.
  std::mutex run_mu;
  // Written by the caller once per Run, read by every worker: one cache line.
  alignas(64) std::atomic<uint32_t> generation{0};
  Job job = nullptr;
  void* ctx = nullptr;
  std::atomic<bool> stop{false};
  // Written by every worker once per Run: its own line, so the decrements do not
  // invalidate the line the spinning workers read.
  alignas(64) std::atomic<int> pending{0};
  // Workers blocked (or about to block) in generation.wait(); touched only on the
  // slow path, so the caller skips the notify syscall while workers are hot.
  alignas(64) std::atomic<int> sleepers{0};
  std::vector<std::thread> workers;
};

ThreadPool::ThreadPool(int n_threads)
    : n_threads_(n_threads < 1 ? 1 : n_threads), state_(new State) {
  state_->workers.reserve(n_threads_ - 1);
  for (int i = 1; i < n_threads_; ++i) {
    state_->workers.emplace_back([this, i] { WorkerLoop(i); });
  }
}

ThreadPool::~ThreadPool() {
  State& s = *state_;
  s.stop.store(true, std::memory_order_relaxed);
  s.generation.fetch_add(1, std::memory_order_seq_cst);  // publishes `stop`
  s.generation.notify_all();
  for (std::thread& t : s.workers) t.join();
  delete state_;
}

void ThreadPool::RunRaw(Job job, void* ctx) {
  if (n_threads_ == 1) {
    job(ctx, 0, 1);
    return;
  }
  State& s = *state_;
  std::lock_guard<std::mutex> lock(s.run_mu);
  s.job = job;
  s.ctx = ctx;
  s.pending.store(n_threads_ - 1, std::memory_order_relaxed);
  // seq_cst pairs with the worker's sleepers.fetch_add / generation.load (Dekker): either
  // we see its sleeper count and notify, or it sees the new generation and never blocks.
  s.generation.fetch_add(1, std::memory_order_seq_cst);
  if (s.sleepers.load(std::memory_order_seq_cst) > 0) s.generation.notify_all();

  job(ctx, 0, n_threads_);

  const Clock::time_point yield_after = Clock::now() + kCallerSpinBeforeYield;
  bool yielding = false;
  for (int spins = 1; s.pending.load(std::memory_order_acquire) != 0; ++spins) {
    if (yielding) {
      std::this_thread::yield();
    } else {
      CpuRelax();
      if (spins % kSpinsPerClockCheck == 0) yielding = Clock::now() > yield_after;
    }
  }
}

void ThreadPool::WorkerLoop(int index) {
  State& s = *state_;
  // Workers start before any Run (the constructor has not returned), so generation 0
  // is the one already "done".
  uint32_t seen = 0;
  for (;;) {
    seen = AwaitNewGeneration(s.generation, s.sleepers, seen);
    if (s.stop.load(std::memory_order_relaxed)) return;
    s.job(s.ctx, index, n_threads_);
    s.pending.fetch_sub(1, std::memory_order_release);
  }
}

std::pair<int64_t, int64_t> ThreadPool::Share(int64_t n, int i, int n_threads, int64_t granule) {
  assert(n_threads >= 1 && i >= 0 && i < n_threads);
  if (n <= 0) return {0, 0};
  if (granule < 1) granule = 1;
  // Deal whole granules (the partial one at the end counts as one) as evenly as
  // possible; the first `extra` threads get one more. The last share always ends at n.
  const int64_t units = n / granule + (n % granule != 0);
  const int64_t base = units / n_threads;
  const int64_t extra = units % n_threads;
  auto unit_begin = [&](int64_t t) { return base * t + (t < extra ? t : extra); };
  const int64_t begin = unit_begin(i) * granule;
  const int64_t end = i == n_threads - 1 ? n : unit_begin(i + 1) * granule;
  return {begin < n ? begin : n, end < n ? end : n};
}

}  // namespace dormouse
