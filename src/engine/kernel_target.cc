#include "engine/kernel_target.h"

#include <atomic>
#include <cstdlib>
#include <string>

#include "engine/attention.h"
#include "engine/kernels_internal.h"
#include "hwy/targets.h"

namespace dormouse {
namespace {

struct TargetChoice {
  std::string_view name;
  const char* what;  // for "this CPU lacks ..."
  int64_t accepted;  // the targets that count as this one
  int64_t disabled;  // the targets dispatch must not pick: on x86 a lower bit is a better one
};

constexpr TargetChoice kChoices[] = {
    {"avx512", "AVX-512", HWY_AVX3 | HWY_AVX3_DL, 0},
    {"avx2", "AVX2", HWY_AVX2, HWY_AVX2 - 1},
    {"sse4", "SSE4", HWY_SSE4, HWY_SSE4 - 1},
    {"neon", "NEON", HWY_NEON, HWY_NEON - 1},
    {"scalar", "scalar code", HWY_SCALAR, HWY_SCALAR - 1},
};

// The restriction in force, read by every attention call. Not hwy::SupportedTargets(): that
// runs CPUID on each call.
std::atomic<int64_t> g_disabled{0};

}  // namespace

Status RestrictKernelTarget(std::string_view name) {
  hwy::DisableTargets(0);  // the CPU's own targets, to check the request against
  g_disabled.store(0, std::memory_order_relaxed);
  if (name.empty()) return Status::Ok();
  for (const TargetChoice& c : kChoices) {
    if (c.name != name) continue;
    if ((hwy::SupportedTargets() & c.accepted) == 0) {
      return Status::Errorf("kernel target '{}': this CPU lacks {}", name, c.what);
    }
    int64_t compiled = 0;
    for (int64_t t : CompiledKernelTargets()) compiled |= t;
    if ((compiled & c.accepted) == 0) {
      return Status::Errorf("kernel target '{}': this build has no {} kernels", name, c.what);
    }
    hwy::DisableTargets(c.disabled);
    g_disabled.store(c.disabled, std::memory_order_relaxed);
    return Status::Ok();
  }
  return Status::Errorf("unknown kernel target '{}' (accepted: {})", name, kKernelTargetNames);
}

Status RestrictKernelTargetFromEnvironment() {
  const char* v = std::getenv("DORMOUSE_TARGET");
  if (v == nullptr || *v == '\0') return Status::Ok();
  return RestrictKernelTarget(v).WithContext("DORMOUSE_TARGET");
}

bool AllowAvx512Attention() {
  static const bool kCpu = attention_internal::HaveAvx512();
  return kCpu && (g_disabled.load(std::memory_order_relaxed) & HWY_AVX3) == 0;
}

bool AllowAvx2Attention() {
  static const bool kCpu = attention_internal::HaveAvx2();
  return kCpu && (g_disabled.load(std::memory_order_relaxed) & HWY_AVX2) == 0;
}

}  // namespace dormouse
