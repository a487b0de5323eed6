#include "base/work_dealer.h"

#include <cassert>

#include "base/thread_pool.h"

namespace dormouse {
namespace {

constexpr uint64_t Pack(uint64_t begin, uint64_t end) { return begin | (end << 32); }
constexpr int64_t BeginOf(uint64_t v) { return static_cast<int64_t>(v & 0xffffffffu); }
constexpr int64_t EndOf(uint64_t v) { return static_cast<int64_t>(v >> 32); }

}  // namespace

WorkDealer::WorkDealer(int max_shares)
    : max_shares_(max_shares < 1 ? 1 : max_shares), ranges_(new Range[max_shares_]) {}

void WorkDealer::Reset(int64_t units, int n_shares) {
  assert(n_shares >= 1 && n_shares <= max_shares_);
  assert(units >= 0 && units <= 0xffffffffll);
  n_shares_ = n_shares;
  for (int i = 0; i < n_shares; ++i) {
    auto [b, e] = ThreadPool::Share(units, i, n_shares);
    ranges_[i].v.store(Pack(b, e), std::memory_order_relaxed);
  }
  // The Run that follows publishes these stores to the shares (its generation bump).
}

// Claims 1/`divisor` of what range i has left (at least one unit), from its front (the
// owner) or its back (a thief). The owner's chunks shrink with what is left, so the last
// ones are single units and the shares end within one unit of each other, in about a dozen
// claims each; a thief takes half of what the owner has not claimed yet.
bool WorkDealer::Take(int i, bool back, int64_t* begin, int64_t* end) {
  std::atomic<uint64_t>& r = ranges_[i].v;
  const int64_t divisor = back ? 2 : 4;
  uint64_t v = r.load(std::memory_order_relaxed);
  for (;;) {
    const int64_t b = BeginOf(v), e = EndOf(v);
    if (b >= e) return false;
    const int64_t take = (e - b) / divisor > 1 ? (e - b) / divisor : 1;
    const uint64_t rest = back ? Pack(b, e - take) : Pack(b + take, e);
    if (r.compare_exchange_weak(v, rest, std::memory_order_relaxed)) {
      *begin = back ? e - take : b;
      *end = back ? e : b + take;
      return true;
    }
  }
}

bool WorkDealer::Next(int i, int64_t* begin, int64_t* end) {
  if (Take(i, /*back=*/false, begin, end)) return true;
  for (int k = 1; k < n_shares_; ++k) {
    if (Take((i + k) % n_shares_, /*back=*/true, begin, end)) return true;
  }
  return false;
}

}  // namespace dormouse
