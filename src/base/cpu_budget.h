// How many compute threads this process should use by default: one per physical core it
// may run on (the affinity mask, with SMT siblings counted once), capped by its cgroup's
// CPU quota. hardware_concurrency() counts SMT siblings, which share one core's FPUs and
// only slow the matmuls down, and ignores both affinity (taskset) and container quotas.
//
// The parsers take file contents and a root directory, so tests run them on fake trees.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dormouse {

struct CpuBudget {
  int allowed_cpus = 1;                   // logical CPUs in the affinity mask
  int physical_cores = 1;                 // distinct cores among them
  std::optional<double> quota_cpus;       // the tightest cgroup CPU quota, in CPUs
  std::optional<std::string> quota_from;  // the file it came from
  int threads = 1;                        // the default thread count
  bool fallback = false;                  // topology unreadable: threads = allowed_cpus

  // "2 physical cores available", "4 logical CPUs on 2 physical cores, cgroup quota 1.5 CPUs".
  std::string Reason() const;
};

// "0-3,8,10-11" (the kernel's cpulist format) -> {0,1,2,3,8,10,11}; nullopt if malformed.
std::optional<std::vector<int>> ParseCpuList(std::string_view text);

// cgroup v2 cpu.max: "max 100000" -> nullopt (no limit), "150000 100000" -> 1.5 CPUs.
// Malformed or non-positive values mean no limit.
std::optional<double> ParseCpuMax(std::string_view text);

// The cgroup v2 path of the process from /proc/self/cgroup: the "0::<path>" line.
std::optional<std::string> CgroupV2Path(std::string_view proc_self_cgroup);

// The budget for a process allowed to run on `affinity` (logical CPU numbers), with
// /proc and /sys read under `root` ("/" for the real ones).
CpuBudget ReadCpuBudget(const std::vector<int>& affinity, const std::string& root);

// This process's budget: sched_getaffinity and the real /proc and /sys. Falls back to
// hardware_concurrency() when the affinity mask cannot be read.
CpuBudget CurrentCpuBudget();

// sysfs cache "size": "32768K" -> 33554432, "1M", "512"; nullopt if malformed.
std::optional<uint64_t> ParseCacheSize(std::string_view text);

// The size of CPU 0's last-level cache (the highest "level" under
// /sys/devices/system/cpu/cpu0/cache, read under `root`); nullopt when sysfs does not say.
std::optional<uint64_t> LastLevelCacheBytes(const std::string& root = "/");

// `requested` if > 0, else CurrentCpuBudget().threads.
int ResolveThreadCount(int requested);

}  // namespace dormouse
