// The runtime ceiling on the kernel target (DORMOUSE_TARGET, `bench --target`) changes what
// dispatch picks, attention included, and rejects what it cannot honour with a clear error.
#include "engine/kernel_target.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>

#include "engine/attention.h"
#include "engine/kernels.h"
#include "engine/kernels_internal.h"
#include "hwy/targets.h"

namespace dormouse {
namespace {

class KernelTargetTest : public ::testing::Test {
 protected:
  void TearDown() override {
    hwy::SetSupportedTargetsForTest(0);
    ASSERT_TRUE(RestrictKernelTarget("").ok());
    unsetenv("DORMOUSE_TARGET");
  }
  static bool CpuHas(int64_t targets) { return (hwy::SupportedTargets() & targets) != 0; }
};

TEST_F(KernelTargetTest, EachNameCapsTheChosenTarget) {
  const std::string best = hwy::TargetName(CompiledKernelTargets()[0]);
  struct Case {
    const char* name;
    int64_t needs;
    std::string expect;
    bool avx512_attention;
    bool row_attention;  // AttendRowsF16 (AVX-512, AVX2, or the Highway kernel)
  } cases[] = {
      {"avx2", HWY_AVX2, "AVX2", false, true},
      {"sse4", HWY_SSE4, "SSE4", false, true},
      {"neon", HWY_NEON, "NEON", false, true},
      {"scalar", HWY_SCALAR, "SCALAR", false, false},
      {"avx512", HWY_AVX3 | HWY_AVX3_DL, best, attention_internal::HaveAvx512(), true},
  };
  for (const Case& c : cases) {
    if (!CpuHas(c.needs)) continue;
    SCOPED_TRACE(c.name);
    ASSERT_TRUE(RestrictKernelTarget(c.name).ok());
    EXPECT_EQ(KernelTargetName(), c.expect);
    EXPECT_EQ(AllowAvx512Attention(), c.avx512_attention);
    EXPECT_EQ(AttentionRowsFit(64, true), c.row_attention);
    // phi-3's and gemma's heads too.
    EXPECT_EQ(AttentionRowsFit(96, true), c.row_attention);
    EXPECT_EQ(AttentionRowsFit(256, true), c.row_attention);
  }
  ASSERT_TRUE(RestrictKernelTarget("").ok());
  EXPECT_EQ(KernelTargetName(), best);
  EXPECT_EQ(AllowAvx512Attention(), attention_internal::HaveAvx512());
}

TEST_F(KernelTargetTest, UnknownNameListsTheAcceptedOnes) {
  Status s = RestrictKernelTarget("avx3");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(),
            "unknown kernel target 'avx3' (accepted: avx512, avx2, sse4, neon, scalar)");
  EXPECT_EQ(KernelTargetName(), std::string(hwy::TargetName(CompiledKernelTargets()[0])));
}

TEST_F(KernelTargetTest, TargetTheCpuLacksSaysSo) {
#if HWY_ARCH_X86
  // A CPU with AVX2 at most.
  hwy::SetSupportedTargetsForTest(HWY_AVX2 | HWY_SSE4 | HWY_SSSE3 | HWY_SCALAR);
  Status s = RestrictKernelTarget("avx512");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "kernel target 'avx512': this CPU lacks AVX-512");
  EXPECT_TRUE(RestrictKernelTarget("sse4").ok());
  EXPECT_EQ(KernelTargetName(), std::string("SSE4"));
  s = RestrictKernelTarget("neon");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "kernel target 'neon': this CPU lacks NEON");
#else
  Status s = RestrictKernelTarget("avx2");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "kernel target 'avx2': this CPU lacks AVX2");
  EXPECT_TRUE(RestrictKernelTarget("scalar").ok());
  EXPECT_EQ(KernelTargetName(), std::string("SCALAR"));
#endif
}

TEST_F(KernelTargetTest, EnvironmentVariableAppliesAndNamesItselfInErrors) {
  if (!CpuHas(HWY_AVX2)) GTEST_SKIP() << "no AVX2 on this CPU";
  setenv("DORMOUSE_TARGET", "avx2", 1);
  ASSERT_TRUE(RestrictKernelTargetFromEnvironment().ok());
  EXPECT_EQ(KernelTargetName(), std::string("AVX2"));
  setenv("DORMOUSE_TARGET", "altivec", 1);
  Status s = RestrictKernelTargetFromEnvironment();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(),
            "DORMOUSE_TARGET: unknown kernel target 'altivec' (accepted: avx512, avx2, sse4, neon, "
            "scalar)");
  setenv("DORMOUSE_TARGET", "", 1);
  EXPECT_TRUE(RestrictKernelTargetFromEnvironment().ok());
}

}  // namespace
}  // namespace dormouse
