// glibc malloc tuned for giving memory back. By default glibc raises its mmap threshold
// each time a large mmapped block is freed (up to 32 MiB) and its trim threshold with
// it: after the first KV cache is freed, big buffers come from the heap, and the
// per-thread arenas of a server keep megabytes of freed memory resident for good. Fixed
// thresholds keep large buffers in their own mappings (freed straight to the OS), and two
// arenas bound what HTTP threads can strand.
#pragma once

namespace dormouse {

// Call once at start, before threads are created.
void TuneAllocatorForReclaim();

}  // namespace dormouse
