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

}  // namespace dormouse
