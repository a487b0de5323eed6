// How long a pool thread spins while it waits (for the next job, or for the other
// threads' shares) before it blocks in the kernel. Spinning saves the ~10-50 µs of a
// futex wake-up between the decode loop's many short parallel loops; on a busy machine
// it costs: the spinning thread burns the time slice it shares with other processes and
// is then descheduled when work arrives. So the budget adapts per thread:
//   - lost the core while spinning (a gap in its own clock reads): halve the budget, and
//     hold it there for a while (kCooldownWaits);
//   - spun the whole budget, blocked, and the event came soon after (within the maximum
//     budget): spinning longer would have caught it, so double the budget;
//   - the event came later than that (idle between requests) or while spinning: keep it.
// Plain data, one per thread; nothing here depends on the results being computed.
#pragma once

#include <algorithm>
#include <chrono>

namespace dormouse {

class SpinPolicy {
 public:
  using Nanos = std::chrono::nanoseconds;
  static constexpr Nanos kMin = std::chrono::microseconds(2);
  // A thread's own consecutive clock reads during a spin are ~1 µs apart; a gap this
  // long means it was descheduled (or served a long interrupt) in between.
  static constexpr Nanos kPreemptionGap = std::chrono::microseconds(50);
  static constexpr int kCooldownWaits = 32;

  explicit SpinPolicy(Nanos max) : max_(max), budget_(max) {}

  Nanos budget() const { return budget_; }
  Nanos max() const { return max_; }

  // After one wait: `hit` if the event came while spinning, `preempted` if the thread
  // lost its core while spinning, `waited` from the start of the wait to the event.
  void Update(bool hit, bool preempted, Nanos waited) {
    if (preempted) {
      budget_ = std::max(kMin, budget_ / 2);
      cooldown_ = kCooldownWaits;
      return;
    }
    if (cooldown_ > 0) {
      --cooldown_;
      return;
    }
    if (!hit && waited < max_) budget_ = std::min(max_, budget_ * 2);
  }

 private:
  Nanos max_;
  Nanos budget_;
  int cooldown_ = 0;  // waits left before the budget may grow again
};

// Whether a Run's caller wakes the workers that sleep. A worker that keeps missing its
// share (the caller ran it itself) has no core of its own: another process holds one of
// the machine's cores, and the scheduler has put the worker beside the caller. Waking it
// then buys nothing and costs a syscall per Run, and the woken worker takes the caller's
// core from it for a moment. With one core busy, the 58m-q8_0 decode fell to 0.39x of its
// idle speed, below the 0.55x of one thread alone.
// So after kLateRunsBeforeQuiet late Runs in a row, the caller leaves sleeping workers
// asleep for a quiet period, then wakes them again for kLateRunsBeforeQuiet Runs (a
// worker takes a few Runs to wake). A worker on time ends the quiet; each probe that
// fails doubles it, up to kMaxQuietRuns (about ten tokens of a small model's decode).
// Plain data, guarded by the pool's run lock.
class WakePolicy {
 public:
  static constexpr int kLateRunsBeforeQuiet = 8;
  static constexpr int kMinQuietRuns = 16;
  static constexpr int kMaxQuietRuns = 1024;

  // Whether to wake the sleeping workers for the next Run.
  bool ShouldWake() {
    if (quiet_left_ == 0) return true;
    --quiet_left_;
    return false;
  }
  // After a Run that woke (or found awake) its workers: `late` if the caller ran a
  // worker's share itself.
  void Update(bool late) {
    if (!late) {
      late_runs_ = 0;
      quiet_left_ = 0;
      quiet_length_ = kMinQuietRuns;
      return;
    }
    if (++late_runs_ < kLateRunsBeforeQuiet) return;
    late_runs_ = 0;
    quiet_left_ = quiet_length_;
    quiet_length_ = std::min(kMaxQuietRuns, quiet_length_ * 2);
  }
  bool quiet() const { return quiet_left_ > 0; }

 private:
  int late_runs_ = 0;
  int quiet_left_ = 0;
  int quiet_length_ = kMinQuietRuns;
};

}  // namespace dormouse
