#include "lifecycle/memory_probe.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace dormouse {
namespace {

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "";
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Value of a "Key:   123 kB" line, in bytes; nullopt if absent.
std::optional<uint64_t> KbField(const std::string& text, const std::string& key) {
  size_t at = 0;
  while ((at = text.find(key + ":", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') {
      return std::strtoull(text.c_str() + at + key.size() + 1, nullptr, 10) * 1024;
    }
    at += key.size();
  }
  return std::nullopt;
}

std::optional<uint64_t> ReadCgroupValue(const std::string& path) {
  std::string t = ReadText(path);
  if (t.empty() || t.rfind("max", 0) == 0) return std::nullopt;
  return std::strtoull(t.c_str(), nullptr, 10);
}

}  // namespace

ProcessMemory ParseSmapsRollup(const std::string& text) {
  ProcessMemory m;
  if (auto rss = KbField(text, "Rss")) {
    m.rss = *rss;
    m.anon = KbField(text, "Anonymous").value_or(0);
    m.shmem = KbField(text, "Pss_Shmem").value_or(0);
  } else {  // /proc/<pid>/status
    m.rss = KbField(text, "VmRSS").value_or(0);
    m.anon = KbField(text, "RssAnon").value_or(0);
    m.shmem = KbField(text, "RssShmem").value_or(0);
  }
  m.file = m.rss > m.anon + m.shmem ? m.rss - m.anon - m.shmem : 0;
  return m;
}

SystemMemory ParseMeminfo(const std::string& text) {
  SystemMemory m;
  m.total = KbField(text, "MemTotal").value_or(0);
  m.available = KbField(text, "MemAvailable").value_or(KbField(text, "MemFree").value_or(0));
  return m;
}

std::optional<double> ParsePsiSomeAvg10(const std::string& text) {
  size_t at = text.find("some avg10=");
  if (at == std::string::npos) return std::nullopt;
  return std::strtod(text.c_str() + at + 11, nullptr);
}

ProcMemoryProbe::ProcMemoryProbe(std::string proc, std::string cgroup_root)
    : proc_(std::move(proc)), cgroup_root_(std::move(cgroup_root)) {
  // cgroup v2: "/proc/self/cgroup" holds "0::/path".
  std::string self = ReadText(proc_ + "/self/cgroup");
  size_t at = self.find("0::");
  if (at != std::string::npos) {
    std::string rel = self.substr(at + 3, self.find('\n', at) - at - 3);
    cgroup_dir_ = cgroup_root_ + rel;
  }
}

SystemMemory ProcMemoryProbe::System() {
  SystemMemory m = ParseMeminfo(ReadText(proc_ + "/meminfo"));
  if (!cgroup_dir_.empty()) {
    m.cgroup_max = ReadCgroupValue(cgroup_dir_ + "/memory.max");
    m.cgroup_current = ReadCgroupValue(cgroup_dir_ + "/memory.current");
    if (m.cgroup_max && m.cgroup_current) {
      uint64_t headroom = *m.cgroup_max > *m.cgroup_current ? *m.cgroup_max - *m.cgroup_current : 0;
      m.available = std::min(m.available, headroom);
    }
  }
  m.psi_some_avg10 = ParsePsiSomeAvg10(ReadText(proc_ + "/pressure/memory"));
  return m;
}

ProcessMemory ProcMemoryProbe::Process() {
  std::string t = ReadText(proc_ + "/self/smaps_rollup");
  if (t.empty()) t = ReadText(proc_ + "/self/status");
  return ParseSmapsRollup(t);
}

StatusOr<double> PageCacheResidency(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Errorf("{}: cannot open: {}", path, std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || st.st_size == 0) {
    ::close(fd);
    return 0.0;
  }
  void* p = ::mmap(nullptr, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) return Status::Errorf("{}: cannot mmap: {}", path, std::strerror(errno));
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t pages = (static_cast<size_t>(st.st_size) + page - 1) / page;
  std::vector<unsigned char> vec(pages);
  int rc = ::mincore(p, st.st_size, vec.data());
  int err = errno;
  ::munmap(p, st.st_size);
  if (rc != 0) return Status::Errorf("{}: mincore failed: {}", path, std::strerror(err));
  size_t resident = 0;
  for (unsigned char v : vec) resident += v & 1;
  return static_cast<double>(resident) / static_cast<double>(pages);
}

Status DropFromPageCache(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Errorf("{}: cannot open: {}", path, std::strerror(errno));
  // Dirty pages (a model just downloaded or copied) are not dropped: write them first.
  (void)::fdatasync(fd);
  int rc = ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
  if (rc != 0) return Status::Errorf("{}: posix_fadvise failed: {}", path, std::strerror(rc));
  return Status::Ok();
}

uint64_t MappedFileRss(const std::string& path) {
  std::ifstream in("/proc/self/smaps");
  std::string line;
  bool inside = false;
  uint64_t total = 0;
  while (std::getline(in, line)) {
    // Mapping headers start with an address range; their last field is the path.
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) &&
        line.find('-') < line.find(' ')) {
      inside = line.size() >= path.size() &&
               line.compare(line.size() - path.size(), path.size(), path) == 0;
    } else if (inside && line.rfind("Rss:", 0) == 0) {
      total += std::strtoull(line.c_str() + 4, nullptr, 10) * 1024;
    }
  }
  return total;
}

void TrimAllocator() { ::malloc_trim(0); }

}  // namespace dormouse
