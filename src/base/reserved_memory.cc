#include "base/reserved_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

namespace dormouse {
namespace {

size_t PageSize() {
  static const size_t kPage = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return kPage;
}

}  // namespace

StatusOr<ReservedMemory> ReservedMemory::ReserveOrError(size_t bytes) {
  ReservedMemory m;
  if (bytes == 0) return m;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    return Status::Errorf("cannot reserve {} MiB of address space: {}", bytes >> 20,
                          std::strerror(errno));
  }
  m.data_ = static_cast<uint8_t*>(p);
  m.size_ = bytes;
  return m;
}

ReservedMemory::~ReservedMemory() {
  if (data_ != nullptr) munmap(data_, size_);
}

ReservedMemory::ReservedMemory(ReservedMemory&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

ReservedMemory& ReservedMemory::operator=(ReservedMemory&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) munmap(data_, size_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void ReservedMemory::Release(size_t offset, size_t len) {
  if (offset >= size_) return;
  len = std::min(len, size_ - offset);
  const size_t page = PageSize();
  const size_t begin = (offset + page - 1) / page * page;
  const size_t end = (offset + len) / page * page;
  // MADV_DONTNEED on a private anonymous mapping frees the pages; they read as zeros.
  if (begin < end) madvise(data_ + begin, end - begin, MADV_DONTNEED);
}

size_t ReservedMemory::ResidentBytes(size_t offset, size_t len) const {
  if (offset >= size_ || len == 0) return 0;
  len = std::min(len, size_ - offset);
  const size_t page = PageSize();
  const size_t begin = offset / page * page;
  const size_t end = (offset + len + page - 1) / page * page;
  std::vector<unsigned char> vec((end - begin) / page);
  if (mincore(data_ + begin, end - begin, vec.data()) != 0) return 0;
  size_t resident = 0;
  for (unsigned char v : vec) resident += (v & 1) ? page : 0;
  return resident;
}

}  // namespace dormouse
