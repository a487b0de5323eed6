// Deals the units of one parallel loop to the shares of a ThreadPool::Run so that they
// finish together. A static split (ThreadPool::Share) leaves one thread waiting whenever
// the other is slower: it started later, lost its core for a while, or got costlier rows
// (a Q6_K tensor beside Q4_K ones). The 1B Q4_K_M decode spent 8% of its time so.
//
// Each share starts on the range a static split gives it, so a model that fits in cache
// keeps its rows on one core from token to token. It takes chunks from the front of that
// range, smaller as the range shrinks; once its range is empty it steals from the back of
// the others' ranges. A range is one 64-bit atomic (begin, end) on its own cache line: the
// owner's claims stay on its core until someone steals. Which thread computes a unit
// changes from run to run; what the unit computes must not (as for ThreadPool::Run).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace dormouse {

class WorkDealer {
 public:
  // Ranges for up to `max_shares` shares.
  explicit WorkDealer(int max_shares);

  // Starts a loop over `units` units for `n_shares` shares (<= max_shares). Not thread-safe:
  // call it before the Run whose shares call Next.
  void Reset(int64_t units, int n_shares);

  // The next chunk [*begin, *end) for share i: from its own range, else stolen. False when
  // every unit has been dealt. Thread-safe for the shares of one Reset.
  bool Next(int i, int64_t* begin, int64_t* end);

 private:
  struct alignas(64) Range {
    std::atomic<uint64_t> v{0};  // begin in the low 32 bits, end in the high 32 bits
  };
  bool Take(int i, bool back, int64_t* begin, int64_t* end);

  int max_shares_;
  int n_shares_ = 0;
  std::unique_ptr<Range[]> ranges_;
};

}  // namespace dormouse
