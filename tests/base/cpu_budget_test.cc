#include "base/cpu_budget.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace dormouse {
namespace {

namespace fs = std::filesystem;

// A fake / with just the /proc and /sys files the budget reads.
class FakeRoot {
 public:
  FakeRoot() {
    const ::testing::TestInfo* t = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = fs::temp_directory_path() /
            (std::string("dm_cpu_budget_") + t->name() + "_" + std::to_string(getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  ~FakeRoot() { fs::remove_all(root_); }
  std::string path() const { return root_.string(); }

  void Write(const std::string& absolute, const std::string& text) {
    const fs::path p = root_ / fs::path(absolute).relative_path();
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  // CPUs 0..n_cores*2-1 with Linux's usual numbering: cpu c and c + n_cores are siblings.
  void SmtPairs(int n_cores) {
    for (int c = 0; c < 2 * n_cores; ++c) {
      const int first = c % n_cores;
      Write(Topology(c) + "thread_siblings_list",
            std::to_string(first) + "," + std::to_string(first + n_cores) + "\n");
    }
  }
  void OneThreadPerCore(int n) {
    for (int c = 0; c < n; ++c) Write(Topology(c) + "thread_siblings_list", std::to_string(c));
  }
  static std::string Topology(int cpu) {
    return "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
  }

 private:
  fs::path root_;
};

TEST(CpuBudgetTest, ParsesCpuLists) {
  EXPECT_EQ(ParseCpuList("0-3,8,10-11\n"), (std::vector<int>{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(ParseCpuList("5"), (std::vector<int>{5}));
  EXPECT_EQ(ParseCpuList(""), (std::vector<int>{}));
  EXPECT_FALSE(ParseCpuList("3-1"));
  EXPECT_FALSE(ParseCpuList("a"));
  EXPECT_FALSE(ParseCpuList("0-99999999"));  // absurd: refused, not allocated
  EXPECT_FALSE(ParseCpuList("1,,2"));
}

TEST(CpuBudgetTest, ParsesCpuMax) {
  EXPECT_DOUBLE_EQ(*ParseCpuMax("150000 100000\n"), 1.5);
  EXPECT_DOUBLE_EQ(*ParseCpuMax("200000 100000"), 2.0);
  EXPECT_FALSE(ParseCpuMax("max 100000\n"));
  EXPECT_FALSE(ParseCpuMax("garbage"));
  EXPECT_FALSE(ParseCpuMax("0 100000"));
  EXPECT_FALSE(ParseCpuMax("100000 0"));
}

TEST(CpuBudgetTest, FindsTheV2CgroupLine) {
  EXPECT_EQ(CgroupV2Path("0::/user.slice/session-1.scope\n"), "/user.slice/session-1.scope");
  EXPECT_EQ(CgroupV2Path("4:memory:/x\n1:cpu:/\n0::/\n"), "/");
  EXPECT_FALSE(CgroupV2Path("4:memory:/x\n1:cpu:/\n"));  // v1 only
}

TEST(CpuBudgetTest, ParsesCacheSizes) {
  EXPECT_EQ(ParseCacheSize("32768K\n"), 32u << 20);
  EXPECT_EQ(ParseCacheSize("1M"), 1u << 20);
  EXPECT_EQ(ParseCacheSize("512"), 512u);
  EXPECT_EQ(ParseCacheSize(""), std::nullopt);
  EXPECT_EQ(ParseCacheSize("K"), std::nullopt);
  EXPECT_EQ(ParseCacheSize("-1K"), std::nullopt);
  EXPECT_EQ(ParseCacheSize("12Q"), std::nullopt);
}

TEST(CpuBudgetTest, LastLevelCacheIsTheHighestLevel) {
  FakeRoot root;
  EXPECT_EQ(LastLevelCacheBytes(root.path()), std::nullopt);  // no cache directory
  const std::string cache = "/sys/devices/system/cpu/cpu0/cache/";
  root.Write(cache + "index0/level", "1\n");
  root.Write(cache + "index0/size", "32K\n");
  root.Write(cache + "index2/level", "3\n");
  root.Write(cache + "index2/size", "32768K\n");
  root.Write(cache + "index3/level", "2\n");
  root.Write(cache + "index3/size", "512K\n");
  root.Write(cache + "index4/level", "4\n");  // a level without a readable size counts not
  root.Write(cache + "index4/size", "lots\n");
  root.Write(cache + "uevent", "");
  EXPECT_EQ(LastLevelCacheBytes(root.path()), 32u << 20);
}

TEST(CpuBudgetTest, CountsSmtSiblingsOnce) {
  FakeRoot root;
  root.SmtPairs(4);  // 8 logical CPUs on 4 cores
  const CpuBudget b = ReadCpuBudget({0, 1, 2, 3, 4, 5, 6, 7}, root.path());
  EXPECT_EQ(b.allowed_cpus, 8);
  EXPECT_EQ(b.physical_cores, 4);
  EXPECT_EQ(b.threads, 4);
  EXPECT_FALSE(b.fallback);
  EXPECT_EQ(b.Reason(), "8 logical CPUs on 4 physical cores");
}

TEST(CpuBudgetTest, CountsOnlyTheCoresOfTheAffinityMask) {
  FakeRoot root;
  root.SmtPairs(4);
  // cpu 1 and 5 are one core; 2 and 3 are two more.
  const CpuBudget b = ReadCpuBudget({1, 5, 2, 3}, root.path());
  EXPECT_EQ(b.allowed_cpus, 4);
  EXPECT_EQ(b.physical_cores, 3);
  EXPECT_EQ(b.threads, 3);
}

TEST(CpuBudgetTest, FallsBackToCoreIdsWithoutSiblingLists) {
  FakeRoot root;
  for (int c = 0; c < 4; ++c) {
    root.Write(FakeRoot::Topology(c) + "core_id", std::to_string(c / 2) + "\n");
    root.Write(FakeRoot::Topology(c) + "physical_package_id", "0\n");
  }
  EXPECT_EQ(ReadCpuBudget({0, 1, 2, 3}, root.path()).physical_cores, 2);
}

TEST(CpuBudgetTest, CgroupQuotaCapsThreadsRoundingUp) {
  FakeRoot root;
  root.OneThreadPerCore(8);
  root.Write("/proc/self/cgroup", "0::/box/job\n");
  root.Write("/sys/fs/cgroup/box/job/cpu.max", "150000 100000\n");
  const CpuBudget b = ReadCpuBudget({0, 1, 2, 3, 4, 5, 6, 7}, root.path());
  EXPECT_EQ(b.physical_cores, 8);
  ASSERT_TRUE(b.quota_cpus);
  EXPECT_DOUBLE_EQ(*b.quota_cpus, 1.5);
  EXPECT_EQ(b.threads, 2);
  EXPECT_EQ(b.Reason(), "8 physical cores available, cgroup quota 1.5 CPUs");
}

TEST(CpuBudgetTest, AParentCgroupQuotaLimitsToo) {
  FakeRoot root;
  root.OneThreadPerCore(8);
  root.Write("/proc/self/cgroup", "0::/box/job\n");
  root.Write("/sys/fs/cgroup/box/cpu.max", "300000 100000\n");
  root.Write("/sys/fs/cgroup/box/job/cpu.max", "max 100000\n");
  EXPECT_EQ(ReadCpuBudget({0, 1, 2, 3, 4, 5, 6, 7}, root.path()).threads, 3);
}

TEST(CpuBudgetTest, HybridMountIsRead) {
  FakeRoot root;
  root.OneThreadPerCore(4);
  root.Write("/proc/self/cgroup", "1:cpu:/\n0::/svc\n");
  root.Write("/sys/fs/cgroup/unified/svc/cpu.max", "100000 100000\n");
  EXPECT_EQ(ReadCpuBudget({0, 1, 2, 3}, root.path()).threads, 1);
}

TEST(CpuBudgetTest, MaxMeansNoQuota) {
  FakeRoot root;
  root.OneThreadPerCore(4);
  root.Write("/proc/self/cgroup", "0::/\n");
  root.Write("/sys/fs/cgroup/cpu.max", "max 100000\n");
  const CpuBudget b = ReadCpuBudget({0, 1, 2, 3}, root.path());
  EXPECT_FALSE(b.quota_cpus);
  EXPECT_EQ(b.threads, 4);
  EXPECT_EQ(b.Reason(), "4 physical cores available");
}

TEST(CpuBudgetTest, MissingFilesFallBackToTheAffinityCount) {
  FakeRoot root;  // empty: no /proc, no /sys
  const CpuBudget b = ReadCpuBudget({0, 2, 4}, root.path());
  EXPECT_TRUE(b.fallback);
  EXPECT_EQ(b.allowed_cpus, 3);
  EXPECT_EQ(b.threads, 3);
  EXPECT_FALSE(b.quota_cpus);
  EXPECT_EQ(b.Reason(), "3 CPUs available, core topology unknown");
}

TEST(CpuBudgetTest, CorruptFilesAreIgnored) {
  FakeRoot root;
  for (int c = 0; c < 2; ++c) root.Write(FakeRoot::Topology(c) + "thread_siblings_list", "x-y");
  root.Write("/proc/self/cgroup", "0::/../../etc\n");
  root.Write("/sys/fs/cgroup/cpu.max", "-5 100000");
  const CpuBudget b = ReadCpuBudget({0, 1}, root.path());
  EXPECT_TRUE(b.fallback);
  EXPECT_EQ(b.threads, 2);
}

TEST(CpuBudgetTest, ThisProcessHasAtLeastOneThread) {
  const CpuBudget b = CurrentCpuBudget();
  EXPECT_GE(b.threads, 1);
  EXPECT_LE(b.threads, b.allowed_cpus);
  EXPECT_FALSE(b.Reason().empty());
  EXPECT_EQ(ResolveThreadCount(3), 3);
  EXPECT_EQ(ResolveThreadCount(0), b.threads);
}

}  // namespace
}  // namespace dormouse
