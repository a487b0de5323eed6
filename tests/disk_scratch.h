// A scratch directory on a disk-backed filesystem, for tests of the page cache: on tmpfs
// every page is resident and none can be dropped, so residency and drop checks would fail
// (or pass for the wrong reason) wherever /tmp is tmpfs.
#pragma once

#include <sys/vfs.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace dormouse {

inline bool IsTmpfs(const std::filesystem::path& dir) {
  constexpr long kTmpfsMagic = 0x01021994;  // TMPFS_MAGIC, <linux/magic.h>
  struct statfs st {};
  return ::statfs(dir.c_str(), &st) == 0 && static_cast<long>(st.f_type) == kTmpfsMagic;
}

// `name` under $DM_DISK_TMPDIR, the system temp dir, or the build dir (DM_BINARY's), the
// first of them that is not tmpfs; empty when all are (the caller skips its test).
inline std::filesystem::path DiskScratchDir(const std::string& name) {
  namespace fs = std::filesystem;
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("DM_DISK_TMPDIR")) candidates.emplace_back(env);
  candidates.push_back(fs::temp_directory_path());
  candidates.push_back(fs::path(DM_BINARY).parent_path());
  for (const fs::path& c : candidates) {
    if (fs::is_directory(c) && !IsTmpfs(c)) return c / name;
  }
  return {};
}

}  // namespace dormouse
