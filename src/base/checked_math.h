// Overflow-safe size arithmetic for untrusted offsets and counts (model and state
// files). Every size computed from file data goes through these.
#pragma once

#include <cstdint>
#include <optional>

namespace dormouse {

inline std::optional<uint64_t> CheckedAdd(uint64_t a, uint64_t b) {
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

inline std::optional<uint64_t> CheckedMul(uint64_t a, uint64_t b) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

// Rounds up to a multiple of `align` (> 0); nullopt on overflow.
inline std::optional<uint64_t> CheckedAlignUp(uint64_t v, uint64_t align) {
  auto sum = CheckedAdd(v, align - 1);
  if (!sum) return std::nullopt;
  return *sum / align * align;
}

// True when [offset, offset + size) lies within [0, limit).
inline bool RangeWithin(uint64_t offset, uint64_t size, uint64_t limit) {
  auto end = CheckedAdd(offset, size);
  return end && *end <= limit;
}

}  // namespace dormouse
