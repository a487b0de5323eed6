// A fixed pool of worker threads for the engine's parallel loops. Threads are created
// once; Run() hands every thread the same job and returns when all are done, without
// allocating, so the decode loop can call it tens of times per token. Waiting threads
// spin briefly and then sleep, spinning less when they keep losing their core; the caller
// stops waking workers that keep arriving too late to help (base/spin_policy.h).
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

namespace dormouse {

class ThreadPool {
 public:
  // `n_threads` counts the calling thread: n_threads - 1 workers are started.
  // Values < 1 mean 1.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(i, n_threads) once for every share i in [0, n_threads), and returns after
  // all calls have returned. The caller runs share 0; share i normally runs on worker i,
  // but the caller runs it itself when that worker has not started it in time (it lost
  // its core to another process): so fn(i, n) must depend on i only, never on which
  // thread it runs on, and shares must not wait for one another. Per-share scratch
  // indexed by i stays safe (a thread runs one share at a time).
  // Not reentrant: fn must not call Run. Calls from different threads (one pool serving
  // several models) take turns, one whole Run at a time.
  template <typename F>
  void Run(F&& fn) {
    using Fn = std::remove_reference_t<F>;
    auto trampoline = [](void* ctx, int i, int n) { (*static_cast<Fn*>(ctx))(i, n); };
    RunRaw(trampoline, const_cast<void*>(static_cast<const void*>(&fn)));
  }

  // Run(fn), or fn(0, 1) on the calling thread when the job is too small to pay for the
  // workers: `work` counts multiply-adds (or steps of similar cost). Waking the workers and
  // waiting for their shares costs microseconds, as much as tens of thousands of
  // multiply-adds; a tiny model's decode is made of such jobs. fn must give the same
  // results for any share count, as for Run.
  template <typename F>
  void RunSized(int64_t work, F&& fn) {
    if (work < kMinParallelWork) {
      fn(0, 1);
    } else {
      Run(fn);
    }
  }

  // RunSized's threshold: a Run's round trip with hot workers (~1-2 µs) against one
  // thread's multiply-adds at several per ns. stories260K's decode (no op above 33k
  // multiply-adds until the context grows) measured fastest around here; on a busy machine,
  // where waking a worker costs far more, fastest all on the calling thread.
  static constexpr int64_t kMinParallelWork = 64 * 1024;

  // What the pool did so far, for diagnostics and tests. Runs on a one-thread pool run
  // inline and are not counted.
  struct Counters {
    uint64_t runs = 0;
    uint64_t wakeups = 0;            // Runs that woke sleeping workers
    uint64_t shares_taken_over = 0;  // worker shares the caller ran itself
  };
  Counters counters() const;

  // The half-open share [begin, end) of n items for thread i of n_threads, with the
  // boundaries rounded to multiples of `granule` (the last share takes the remainder).
  static std::pair<int64_t, int64_t> Share(int64_t n, int i, int n_threads, int64_t granule = 1);

 private:
  using Job = void (*)(void* ctx, int i, int n);
  void RunRaw(Job job, void* ctx);
  void WorkerLoop(int index);

  struct State;
  int n_threads_;
  State* state_;
};

}  // namespace dormouse
