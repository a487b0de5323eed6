#include "base/cpu_budget.h"

#include <fmt/format.h>
#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

namespace dormouse {
namespace {

namespace fs = std::filesystem;

// Kernel pseudo-files are a few bytes; anything past this is not one of them.
constexpr size_t kMaxPseudoFileBytes = 64 * 1024;
// More logical CPUs than any machine has; bounds what a corrupt cpulist can make us do.
constexpr int kMaxCpu = 1 << 16;

std::optional<std::string> ReadSmallFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string text(kMaxPseudoFileBytes, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  return text;
}

std::string_view Trim(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

std::optional<int64_t> ParseInt(std::string_view s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

fs::path Under(const std::string& root, std::string_view absolute) {
  return fs::path(root) / fs::path(absolute).relative_path();
}

// A key that is the same for every logical CPU of one physical core: the lowest CPU of
// its SMT siblings, or else (package, core id); nullopt when the kernel shows neither.
std::optional<int64_t> CoreKey(const std::string& root, int cpu) {
  const fs::path topo = Under(root, fmt::format("/sys/devices/system/cpu/cpu{}/topology", cpu));
  if (auto text = ReadSmallFile(topo / "thread_siblings_list")) {
    auto siblings = ParseCpuList(*text);
    if (siblings && !siblings->empty())
      return *std::min_element(siblings->begin(), siblings->end());
  }
  auto core = ReadSmallFile(topo / "core_id");
  auto package = ReadSmallFile(topo / "physical_package_id");
  if (!core || !package) return std::nullopt;
  auto c = ParseInt(Trim(*core)), p = ParseInt(Trim(*package));
  if (!c || !p || *c < 0 || *p < 0 || *c >= (1 << 24) || *p >= (1 << 16)) return std::nullopt;
  return kMaxCpu + (*p << 24) + *c;  // disjoint from the sibling keys (CPU numbers)
}

// The tightest cpu.max from the process's cgroup up to the hierarchy's root: a parent's
// quota limits its children too. Looks at the pure v2 mount and the hybrid one.
void ReadCgroupQuota(const std::string& root, CpuBudget* b) {
  auto self = ReadSmallFile(Under(root, "/proc/self/cgroup"));
  if (!self) return;
  auto path = CgroupV2Path(*self);
  if (!path) return;
  for (const char* mount : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
    fs::path dir = Under(root, mount);
    // The mount's root, then each cgroup below it down to the process's own.
    std::vector<fs::path> dirs = {dir};
    for (const fs::path& part : fs::path(*path).relative_path()) {
      if (part.empty() || part == "." || part == "..") continue;
      dir /= part;
      dirs.push_back(dir);
    }
    for (const fs::path& d : dirs) {
      const fs::path file = d / "cpu.max";
      auto text = ReadSmallFile(file);
      auto quota = text ? ParseCpuMax(*text) : std::nullopt;
      if (quota && (!b->quota_cpus || *quota < *b->quota_cpus)) {
        b->quota_cpus = quota;
        b->quota_from = file.string();
      }
    }
  }
}

}  // namespace

std::optional<std::vector<int>> ParseCpuList(std::string_view text) {
  std::vector<int> cpus;
  text = Trim(text);
  if (text.empty()) return cpus;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    const size_t dash = item.find('-');
    auto lo = ParseInt(item.substr(0, dash));
    auto hi = dash == std::string_view::npos ? lo : ParseInt(item.substr(dash + 1));
    if (!lo || !hi || *lo < 0 || *hi < *lo || *hi >= kMaxCpu) return std::nullopt;
    if (cpus.size() + static_cast<size_t>(*hi - *lo) >= static_cast<size_t>(kMaxCpu)) {
      return std::nullopt;
    }
    for (int64_t c = *lo; c <= *hi; ++c) cpus.push_back(static_cast<int>(c));
  }
  return cpus;
}

std::optional<uint64_t> ParseCacheSize(std::string_view text) {
  text = Trim(text);
  uint64_t unit = 1;
  if (!text.empty() && (text.back() == 'K' || text.back() == 'M' || text.back() == 'G')) {
    unit = text.back() == 'K' ? 1024 : text.back() == 'M' ? 1024 * 1024 : 1024 * 1024 * 1024;
    text.remove_suffix(1);
  }
  auto v = ParseInt(text);
  if (!v || *v <= 0 || *v > (int64_t{1} << 40)) return std::nullopt;
  return static_cast<uint64_t>(*v) * unit;
}

std::optional<uint64_t> LastLevelCacheBytes(const std::string& root) {
  std::error_code ec;
  const fs::path dir = Under(root, "/sys/devices/system/cpu/cpu0/cache");
  int64_t best_level = 0;
  std::optional<uint64_t> best;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().filename().string().rfind("index", 0) != 0) continue;
    auto level_text = ReadSmallFile(entry.path() / "level");
    auto size_text = ReadSmallFile(entry.path() / "size");
    auto level = level_text ? ParseInt(Trim(*level_text)) : std::nullopt;
    auto size = size_text ? ParseCacheSize(*size_text) : std::nullopt;
    if (level && size && *level > best_level) best_level = *level, best = size;
  }
  return best;
}

std::optional<double> ParseCpuMax(std::string_view text) {
  text = Trim(text);
  const size_t space = text.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  auto quota = ParseInt(text.substr(0, space));  // "max" fails here: no limit
  auto period = ParseInt(Trim(text.substr(space + 1)));
  if (!quota || !period || *quota <= 0 || *period <= 0) return std::nullopt;
  return static_cast<double>(*quota) / static_cast<double>(*period);
}

std::optional<std::string> CgroupV2Path(std::string_view proc_self_cgroup) {
  std::istringstream lines{std::string(proc_self_cgroup)};
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("0::", 0) == 0) return std::string(Trim(std::string_view(line).substr(3)));
  }
  return std::nullopt;
}

CpuBudget ReadCpuBudget(const std::vector<int>& affinity, const std::string& root) {
  CpuBudget b;
  std::set<int> cpus(affinity.begin(), affinity.end());
  b.allowed_cpus = std::max<int>(1, static_cast<int>(cpus.size()));
  std::set<int64_t> cores;
  for (int cpu : cpus) {
    std::optional<int64_t> key = CoreKey(root, cpu);
    if (!key) {
      b.fallback = true;
      break;
    }
    cores.insert(*key);
  }
  b.physical_cores = b.fallback || cores.empty() ? b.allowed_cpus : static_cast<int>(cores.size());
  ReadCgroupQuota(root, &b);
  b.threads = b.physical_cores;
  if (b.quota_cpus) {
    b.threads = std::min(b.threads, static_cast<int>(std::ceil(*b.quota_cpus - 1e-9)));
  }
  b.threads = std::max(1, b.threads);
  return b;
}

CpuBudget CurrentCpuBudget() {
  // The mask grows with the machine's CPU count; retry with a larger set if it is short.
  for (int n = 1024; n <= kMaxCpu; n *= 4) {
    cpu_set_t* set = CPU_ALLOC(n);
    if (set == nullptr) break;
    const size_t bytes = CPU_ALLOC_SIZE(n);
    CPU_ZERO_S(bytes, set);
    if (sched_getaffinity(0, bytes, set) == 0) {
      std::vector<int> affinity;
      for (int c = 0; c < n; ++c) {
        if (CPU_ISSET_S(c, bytes, set)) affinity.push_back(c);
      }
      CPU_FREE(set);
      return ReadCpuBudget(affinity, "/");
    }
    CPU_FREE(set);
    if (errno != EINVAL) break;
  }
  CpuBudget b;
  const unsigned hc = std::thread::hardware_concurrency();
  b.allowed_cpus = b.physical_cores = b.threads = hc > 0 ? static_cast<int>(hc) : 1;
  b.fallback = true;
  return b;
}

int ResolveThreadCount(int requested) {
  return requested > 0 ? requested : CurrentCpuBudget().threads;
}

std::string CpuBudget::Reason() const {
  std::string r;
  if (fallback) {
    r = fmt::format("{} CPUs available, core topology unknown", allowed_cpus);
  } else if (physical_cores == allowed_cpus) {
    r = fmt::format("{} physical core{} available", physical_cores, physical_cores == 1 ? "" : "s");
  } else {
    r = fmt::format("{} logical CPUs on {} physical cores", allowed_cpus, physical_cores);
  }
  if (quota_cpus && *quota_cpus < physical_cores) {
    r += fmt::format(", cgroup quota {:g} CPUs", *quota_cpus);
  }
  return r;
}

}  // namespace dormouse
