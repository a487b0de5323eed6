// Run() protocol, designed for ~1 µs round trips with hot workers, and for a machine
// where other processes take cores away:
//   caller: (one Run at a time, under run_mu) write job/ctx, set `pending` to n - 1, bump
//           `generation` (the release publishes the job), wake sleepers only if any (and
//           not while they keep arriving late: WakePolicy), run share 0. Then wait for
//           `pending` to reach 0; a share no worker has claimed by then (its worker lost
//           its core, or is still waking up) the caller runs itself; past its spin
//           budget it blocks in pending.wait().
//   worker: wait for a new generation (spin, then block in atomic::wait), claim its own
//           share by stamping claims[i] with the generation, run it, decrement
//           `pending` (release, so the caller's acquire sees the share's writes), and
//           wake the caller if it blocked.
// Which thread runs share i depends on timing; what share i computes does not (fn sees
// the same (i, n)), so results are bit-identical. Run k+1 cannot start before every
// share of Run k finished (pending == 0), and a late worker's claim for Run k fails
// (every share is stamped k already), so job/ctx are read only while their Run is live.
#include "base/thread_pool.h"

#include <atomic>
#include <cassert>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "base/spin_policy.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace dormouse {
namespace {

using Clock = std::chrono::steady_clock;

// How long an idle worker spins at most before it blocks. The decode loop's gaps
// between Runs (sampling, single-threaded ops) are well below this, so workers stay hot
// while generating and fall asleep a fraction of a millisecond after generation stops.
constexpr auto kWorkerMaxSpin = std::chrono::microseconds(150);
// How long the caller spins at most waiting for the other shares before it blocks,
// which frees its core for a descheduled worker.
constexpr auto kCallerMaxSpin = std::chrono::microseconds(200);
// The least the caller waits for a worker to claim its share before it runs the share
// itself: a hot worker sees a new Run within a few hundred ns (a cache line's trip), and
// taking its share earlier only makes the two threads fight over the lines.
constexpr auto kMinStealWait = std::chrono::microseconds(4);
// Reading the clock costs ~20 ns; look at it only every this many pauses.
constexpr int kSpinsPerClockCheck = 64;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

struct SpinOutcome {
  bool done = false;
  bool preempted = false;  // a gap between our own clock reads: we lost the core
};

// Spins with pause until done() or `deadline`; `last` is a recent clock reading.
template <typename Done>
SpinOutcome SpinUntil(Done&& done, Clock::time_point last, Clock::time_point deadline) {
  SpinOutcome out;
  for (int spins = 1;; ++spins) {
    if (done()) {
      out.done = true;
      return out;
    }
    CpuRelax();
    if (spins % kSpinsPerClockCheck == 0) {
      const Clock::time_point now = Clock::now();
      if (now - last > SpinPolicy::kPreemptionGap) out.preempted = true;
      if (now >= deadline) return out;
      last = now;
    }
  }
}

std::chrono::nanoseconds Since(Clock::time_point t) { return Clock::now() - t; }

}  // namespace

struct ThreadPool::State {
  explicit State(int n) : claims(new Claim[n]) {}

  // One Run at a time: the protocol has a single job slot. Uncontended (one model
  // generating) it costs an atomic exchange per Run.
  std::mutex run_mu;
  SpinPolicy caller_spin{kCallerMaxSpin};  // guarded by run_mu
  WakePolicy wake;                         // guarded by run_mu
  Counters counters;                       // guarded by run_mu

  // Written by the caller once per Run, read by every worker: one cache line.
  alignas(64) std::atomic<uint32_t> generation{0};
  Job job = nullptr;
  void* ctx = nullptr;
  std::atomic<bool> stop{false};
  // Written by every worker once per Run: its own line, so the decrements do not
  // invalidate the line the spinning workers read.
  alignas(64) std::atomic<int> pending{0};
  std::atomic<bool> caller_blocked{false};
  // Workers blocked (or about to block) in generation.wait(); touched only on the
  // slow path, so the caller skips the notify syscall while workers are hot.
  alignas(64) std::atomic<int> sleepers{0};
  // claims[i]: the generation whose share i has been taken (by worker i or the caller).
  struct alignas(64) Claim {
    std::atomic<uint32_t> generation{0};
  };
  std::unique_ptr<Claim[]> claims;
  std::vector<std::thread> workers;

  // Takes share i of Run `g` unless someone has; a late worker (g older than the live
  // Run) never succeeds, as every share of a finished Run is stamped with it.
  bool TryClaim(int i, uint32_t g) {
    uint32_t v = claims[i].generation.load(std::memory_order_relaxed);
    if (static_cast<int32_t>(g - v) <= 0) return false;
    return claims[i].generation.compare_exchange_strong(v, g, std::memory_order_acq_rel);
  }
  void RunShare(int i, int n) {
    job(ctx, i, n);
    // seq_cst pairs with the caller's caller_blocked.store / pending.load (Dekker).
    if (pending.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
        caller_blocked.load(std::memory_order_seq_cst)) {
      pending.notify_one();
    }
  }
  uint32_t AwaitNewGeneration(uint32_t seen, SpinPolicy& spin);
  // Returns whether the caller ran a worker's share.
  bool AwaitShares(uint32_t g, int n, Clock::time_point run_start, bool asleep);
};

// Returns the first generation != `seen`, spinning first and then blocking.
uint32_t ThreadPool::State::AwaitNewGeneration(uint32_t seen, SpinPolicy& spin) {
  const Clock::time_point start = Clock::now();
  uint32_t g = seen;
  const SpinOutcome o =
      SpinUntil([&] { return (g = generation.load(std::memory_order_acquire)) != seen; }, start,
                start + spin.budget());
  if (!o.done) {
    sleepers.fetch_add(1, std::memory_order_seq_cst);
    while ((g = generation.load(std::memory_order_seq_cst)) == seen) {
      generation.wait(seen, std::memory_order_acquire);
    }
    sleepers.fetch_sub(1, std::memory_order_relaxed);
  }
  spin.Update(o.done, o.preempted, Since(start));
  return g;
}

// The caller's wait for shares 1..n-1 of Run g, after running share 0. It waits for the
// workers to claim them as long as running one itself would take (the time share 0
// took: ski rental, never worse than twice the better choice), bounded by its spin
// budget; then it runs the unclaimed ones, spins out the budget and blocks.
// When a worker was asleep as the Run began (`asleep`), a share still unclaimed after
// share 0 is taken at once: the worker is late by a whole share already, is still
// waking up or was left asleep, and waiting as long again only doubles the Run. With
// one core busy, that wait took the 58m-q8_0 decode from 0.55x of idle to 0.39x.
bool ThreadPool::State::AwaitShares(uint32_t g, int n, Clock::time_point run_start, bool asleep) {
  using std::chrono::nanoseconds;
  auto done = [&] { return pending.load(std::memory_order_acquire) == 0; };
  const Clock::time_point start = Clock::now();
  const nanoseconds budget = caller_spin.budget();
  const nanoseconds share_time = start - run_start;
  const nanoseconds steal_wait =
      std::min<nanoseconds>(std::max<nanoseconds>(share_time, kMinStealWait), budget);
  SpinOutcome o = asleep ? SpinOutcome{done(), false} : SpinUntil(done, start, start + steal_wait);
  bool preempted = o.preempted;
  bool took_over = false;
  if (!o.done) {
    for (int i = 1; i < n; ++i) {
      if (TryClaim(i, g)) {
        took_over = true;
        ++counters.shares_taken_over;
        RunShare(i, n);
      }
    }
    const Clock::time_point now = Clock::now();
    o = SpinUntil(done, now, std::max(now, start + budget));
    preempted |= o.preempted;
  }
  if (!o.done) {
    caller_blocked.store(true, std::memory_order_seq_cst);
    for (int p; (p = pending.load(std::memory_order_seq_cst)) != 0;) {
      pending.wait(p, std::memory_order_acquire);
    }
    caller_blocked.store(false, std::memory_order_relaxed);
  }
  caller_spin.Update(o.done, preempted, Since(start));
  return took_over;
}

ThreadPool::ThreadPool(int n_threads)
    : n_threads_(n_threads < 1 ? 1 : n_threads), state_(new State(n_threads_)) {
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
  const uint32_t g = s.generation.fetch_add(1, std::memory_order_seq_cst) + 1;
  const bool asleep = s.sleepers.load(std::memory_order_seq_cst) > 0;
  const bool wake = asleep && s.wake.ShouldWake();
  if (wake) {
    ++s.counters.wakeups;
    s.generation.notify_all();
  }
  ++s.counters.runs;

  const Clock::time_point start = Clock::now();
  job(ctx, 0, n_threads_);
  const bool late = s.AwaitShares(g, n_threads_, start, asleep);
  if (wake || !asleep) s.wake.Update(late);
}

ThreadPool::Counters ThreadPool::counters() const {
  if (n_threads_ == 1) return {};
  std::lock_guard<std::mutex> lock(state_->run_mu);
  return state_->counters;
}

void ThreadPool::WorkerLoop(int index) {
  State& s = *state_;
  SpinPolicy spin(kWorkerMaxSpin);
  // Workers start before any Run (the constructor has not returned), so generation 0
  // is the one already "done".
  uint32_t seen = 0;
  for (;;) {
    seen = s.AwaitNewGeneration(seen, spin);
    if (s.stop.load(std::memory_order_relaxed)) return;
    if (s.TryClaim(index, seen)) s.RunShare(index, n_threads_);
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
