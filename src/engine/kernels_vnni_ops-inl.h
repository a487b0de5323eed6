// AVX-512 VNNI instructions as inline asm, for the AVX3_DL kernels. Highway 1.0.3's AVX3_DL
// compiler flags enable "avxvnni" (VEX-encoded; many AVX-512 CPUs, these Zen 5 VMs among
// them, lack it: SIGILL) but not the EVEX "avx512vnni" its runtime check for AVX3_DL
// requires, and GCC and clang disagree on how to add a target to Highway's pragmas. The
// assembler encodes these as EVEX; operands are plain vector registers or an embedded
// broadcast from memory, which GCC 12 does not fold for the intrinsics.
#if defined(DORMOUSE_ENGINE_KERNELS_VNNI_OPS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DORMOUSE_ENGINE_KERNELS_VNNI_OPS_INL_H_
#undef DORMOUSE_ENGINE_KERNELS_VNNI_OPS_INL_H_
#else
#define DORMOUSE_ENGINE_KERNELS_VNNI_OPS_INL_H_
#endif

#if HWY_TARGET == HWY_AVX3_DL
#include <immintrin.h>

#include <cstdint>

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dormouse {
namespace HWY_NAMESPACE {
namespace vnni {

// acc += sum of 4 products u8 (a) x s8 (b) per int32 lane (vpdpbusd, no saturation).
inline __m512i Dpbusd(__m512i acc, __m512i a, __m512i b) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
  return acc;
}

inline __m256i Dpbusd(__m256i acc, __m256i a, __m256i b) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
  return acc;
}

// As Dpbusd with b = the 4 signed bytes at p broadcast to every lane.
inline __m512i DpbusdBcast(__m512i acc, __m512i a, const void* p) {
  asm("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(a), "m"(*static_cast<const int32_t*>(p)));
  return acc;
}

// acc += sum of 2 products s16 x s16 per int32 lane (vpdpwssd).
inline __m512i Dpwssd(__m512i acc, __m512i a, __m512i b) {
  asm("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
  return acc;
}

inline __m512i DpwssdBcast(__m512i acc, __m512i a, const void* p) {
  asm("vpdpwssd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(a), "m"(*static_cast<const int32_t*>(p)));
  return acc;
}

}  // namespace vnni
}  // namespace HWY_NAMESPACE
}  // namespace dormouse
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX3_DL
#endif  // include guard toggle
