#include "lifecycle/memory_probe.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "disk_scratch.h"

namespace dormouse {
namespace {

TEST(MemoryProbeTest, ParsesSmapsRollupAndStatus) {
  const std::string rollup =
      "55d0c0a00000-7ffd5e9fe000 ---p 00000000 00:00 0    [rollup]\n"
      "Rss:              131072 kB\nPss:              130000 kB\nPss_Anon:  58000 kB\n"
      "Pss_File:   72000 kB\nPss_Shmem:  1024 kB\nAnonymous:  58368 kB\n";
  ProcessMemory m = ParseSmapsRollup(rollup);
  EXPECT_EQ(m.rss, 131072ull * 1024);
  EXPECT_EQ(m.anon, 58368ull * 1024);
  EXPECT_EQ(m.shmem, 1024ull * 1024);
  EXPECT_EQ(m.file, (131072ull - 58368 - 1024) * 1024);
  ProcessMemory s = ParseSmapsRollup("VmRSS:\t  4000 kB\nRssAnon:\t  1000 kB\nRssFile:  3000 kB\n");
  EXPECT_EQ(s.rss, 4000ull * 1024);
  EXPECT_EQ(s.anon, 1000ull * 1024);
  EXPECT_EQ(s.file, 3000ull * 1024);
}

TEST(MemoryProbeTest, ParsesMeminfoAndPsi) {
  SystemMemory m = ParseMeminfo("MemTotal:  1000 kB\nMemFree: 100 kB\nMemAvailable:  600 kB\n");
  EXPECT_EQ(m.total, 1000ull * 1024);
  EXPECT_EQ(m.available, 600ull * 1024);
  EXPECT_EQ(*ParsePsiSomeAvg10("some avg10=1.25 avg60=0.50 avg300=0.10 total=1234\n"), 1.25);
  EXPECT_FALSE(ParsePsiSomeAvg10("").has_value());
}

TEST(MemoryProbeTest, ReadsThisProcessAndSystem) {
  ProcMemoryProbe probe;
  ProcessMemory p = probe.Process();
  EXPECT_GT(p.rss, 0u);
  EXPECT_GT(p.anon, 0u);
  SystemMemory s = probe.System();
  EXPECT_GT(s.total, 0u);
  EXPECT_GT(s.available, 0u);
}

TEST(MemoryProbeTest, CgroupLimitLowersAvailable) {
  namespace fs = std::filesystem;
  fs::path root = fs::temp_directory_path() / "dm_probe_fixture";
  fs::remove_all(root);
  fs::create_directories(root / "proc" / "self");
  fs::create_directories(root / "cg" / "app");
  std::ofstream(root / "proc" / "meminfo") << "MemTotal: 8000000 kB\nMemAvailable: 4000000 kB\n";
  std::ofstream(root / "proc" / "self" / "cgroup") << "0::/app\n";
  std::ofstream(root / "cg" / "app" / "memory.max") << "1073741824\n";
  std::ofstream(root / "cg" / "app" / "memory.current") << "973741824\n";
  ProcMemoryProbe probe((root / "proc").string(), (root / "cg").string());
  SystemMemory s = probe.System();
  EXPECT_EQ(*s.cgroup_max, 1073741824ull);
  EXPECT_EQ(s.available, 100000000ull);  // the cgroup's headroom, not MemAvailable
  fs::remove_all(root);
}

TEST(MemoryProbeTest, PageCacheResidencyAndDrop) {
  namespace fs = std::filesystem;
  const fs::path f = DiskScratchDir("dm_probe_pages_" + std::to_string(::getpid()) + ".bin");
  if (f.empty()) GTEST_SKIP() << "no disk-backed scratch dir (all tmpfs): set DM_DISK_TMPDIR";
  {
    std::ofstream out(f, std::ios::binary);
    std::string block(1 << 20, 'x');
    for (int i = 0; i < 8; ++i) out << block;
  }
  StatusOr<double> before = PageCacheResidency(f.string());
  ASSERT_TRUE(before.ok()) << before.status().message();
  EXPECT_GT(*before, 0.5);  // just written: in the page cache
  ::sync();
  ASSERT_TRUE(DropFromPageCache(f.string()).ok());
  StatusOr<double> after = PageCacheResidency(f.string());
  ASSERT_TRUE(after.ok());
  EXPECT_LT(*after, 0.1);
  fs::remove(f);
  EXPECT_FALSE(PageCacheResidency(f.string()).ok());
}

}  // namespace
}  // namespace dormouse
