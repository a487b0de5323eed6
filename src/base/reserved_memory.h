// Address space reserved up front whose pages become resident only when first written:
// an anonymous private mapping with MAP_NORESERVE, so that a KV cache sized for a 128k
// context costs neither memory nor commit charge until a conversation grows into it.
// Pages read as zeros until written; Release() gives pages back (they read as zeros again).
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/status.h"

namespace dormouse {

class ReservedMemory {
 public:
  static StatusOr<ReservedMemory> ReserveOrError(size_t bytes);

  ReservedMemory() = default;
  ~ReservedMemory();
  ReservedMemory(ReservedMemory&& other) noexcept;
  ReservedMemory& operator=(ReservedMemory&& other) noexcept;
  ReservedMemory(const ReservedMemory&) = delete;
  ReservedMemory& operator=(const ReservedMemory&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  // Returns the whole pages inside [offset, offset + len) to the OS.
  void Release(size_t offset, size_t len);
  // Bytes of the pages overlapping [offset, offset + len) that are resident (mincore).
  size_t ResidentBytes(size_t offset, size_t len) const;

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace dormouse
