// A std::vector that does not zero what resize() adds. Forward-pass scratch is written
// before it is read, so zeroing it only costs time and, worse, makes every page of it
// resident at once: a fresh context after a reload would fault in megabytes of buffers
// that a short turn never touches.
#pragma once

#include <memory>
#include <new>
#include <utility>
#include <vector>

namespace dormouse {

template <typename T>
struct DefaultInitAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  using std::allocator<T>::allocator;
  template <typename U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;  // default-init: no zeroing for arithmetic types
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

template <typename T>
using UninitVector = std::vector<T, DefaultInitAllocator<T>>;

}  // namespace dormouse
