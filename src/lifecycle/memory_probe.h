// What the lifecycle policies know about memory: the system's (MemAvailable, the cgroup
// v2 limit and usage, pressure stall information) and this process's resident set split
// into anonymous and file-backed pages. Injected, so policies are tested without real
// memory; ProcMemoryProbe reads /proc and /sys/fs/cgroup.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "base/status.h"

namespace dormouse {

struct SystemMemory {
  uint64_t total = 0;
  uint64_t available = 0;              // MemAvailable, lowered to the cgroup's headroom
  std::optional<uint64_t> cgroup_max;  // memory.max when limited
  std::optional<uint64_t> cgroup_current;
  std::optional<double> psi_some_avg10;  // % of time some task stalled on memory, last 10 s
};

struct ProcessMemory {
  uint64_t rss = 0;
  uint64_t anon = 0;  // Anonymous: heap, KV caches, malloc arenas
  uint64_t file = 0;  // file-backed: mapped model weights, code
  uint64_t shmem = 0;
};

class MemoryProbe {
 public:
  virtual ~MemoryProbe() = default;
  virtual SystemMemory System() = 0;
  virtual ProcessMemory Process() = 0;
};

class ProcMemoryProbe : public MemoryProbe {
 public:
  // Paths are parameters so tests can point them at fixture files.
  explicit ProcMemoryProbe(std::string proc = "/proc", std::string cgroup_root = "/sys/fs/cgroup");
  SystemMemory System() override;
  ProcessMemory Process() override;

 private:
  std::string proc_, cgroup_root_;
  std::string cgroup_dir_;  // this process's cgroup v2 directory, "" if none
};

// Parses /proc/<pid>/smaps_rollup text (or /proc/<pid>/status as a fallback format).
ProcessMemory ParseSmapsRollup(const std::string& text);
// Parses /proc/meminfo text: MemTotal and MemAvailable.
SystemMemory ParseMeminfo(const std::string& text);
// "some avg10=1.23 ..." -> 1.23.
std::optional<double> ParsePsiSomeAvg10(const std::string& text);

// Resident bytes of this process's mappings of `path` (from /proc/self/smaps).
uint64_t MappedFileRss(const std::string& path);

// Fraction of the file's pages in the page cache (mmap + mincore), in [0, 1].
StatusOr<double> PageCacheResidency(const std::string& path);
// Asks the kernel to drop the file's clean pages from the page cache.
Status DropFromPageCache(const std::string& path);
// Returns freed heap memory to the OS (glibc malloc_trim).
void TrimAllocator();

}  // namespace dormouse
