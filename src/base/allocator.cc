#include "base/allocator.h"

#include <malloc.h>

namespace dormouse {

void TuneAllocatorForReclaim() {
  ::mallopt(M_MMAP_THRESHOLD, 1 << 20);  // fixed: no dynamic raise after big frees
  ::mallopt(M_TRIM_THRESHOLD, 2 << 20);
  ::mallopt(M_ARENA_MAX, 2);
}

}  // namespace dormouse
