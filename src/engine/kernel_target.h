// A runtime ceiling on the SIMD target the kernels dispatch to, so that the portable paths
// (AVX2, SSE4, scalar) can be measured and tested on a CPU that has AVX-512. Everything that
// picks a code path from the CPU's features (Highway's dispatch in kernels.cc, the AVX-512
// and AVX2 attention in attention_avx512.cc, attention_avx2.cc) follows it.
#pragma once

#include <string_view>

#include "base/status.h"

namespace dormouse {

// The accepted names, best first, as error messages list them.
inline constexpr std::string_view kKernelTargetNames = "avx512, avx2, sse4, neon, scalar";

// Restricts dispatch to `name` or lower ("" lifts the restriction). Errors name the
// accepted values for an unknown name, and say so when this CPU lacks the target. Call it
// before running kernels (it is not safe while other threads compute).
Status RestrictKernelTarget(std::string_view name);

// RestrictKernelTarget($DORMOUSE_TARGET) when the variable is set and not empty.
Status RestrictKernelTargetFromEnvironment();

// Whether the AVX-512 attention may run: the CPU has it and dispatch is not restricted
// below AVX-512.
bool AllowAvx512Attention();
// Likewise for the AVX2 attention (attention_avx2.cc).
bool AllowAvx2Attention();

}  // namespace dormouse
