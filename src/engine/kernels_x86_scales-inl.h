// x86 helpers shared by the AVX2 and the AVX-512 (VNNI) K-quant kernels: compiled for
// those two targets only.
#if defined(DORMOUSE_ENGINE_KERNELS_X86_SCALES_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DORMOUSE_ENGINE_KERNELS_X86_SCALES_INL_H_
#undef DORMOUSE_ENGINE_KERNELS_X86_SCALES_INL_H_
#else
#define DORMOUSE_ENGINE_KERNELS_X86_SCALES_INL_H_
#endif

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3_DL
#include <immintrin.h>

#include <cstdint>

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dormouse {
namespace HWY_NAMESPACE {
namespace x86 {

// The 8 scales (bytes 0-7) and 8 mins (bytes 8-15) of a Q4_K super-block, in both 128-bit
// lanes: llama.cpp's bit twiddling of the 12 bytes in 7 vector operations (the AVX-512
// kernels are limited by their vector operations too: this measured faster there than
// the twiddling on general registers). The 16-byte load reads 4 bytes of the quants past
// the 12 scale bytes (Q4_K and Q5_K have them there).
HWY_INLINE __m256i ScalesMinsQ4_K(const uint8_t* scales) {
  const __m256i v =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales)));
  // Dwords [s0-3, s8-11, s4-7, s8-11 >> 4]: the low bits of scales 0-3, 4-7, mins 0-3, 4-7.
  const __m256i lo = _mm256_srlv_epi32(
      _mm256_shuffle_epi8(v, _mm256_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11, 0,
                                              1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11)),
      _mm256_setr_epi32(0, 0, 0, 4, 0, 0, 0, 4));
  // Dwords [-, s0-3, -, s4-7]: their top 2 bits are the high bits of scales 4-7, mins 4-7.
  const __m256i hi = _mm256_srli_epi32(
      _mm256_shuffle_epi8(v, _mm256_setr_epi8(0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 0, 0, 4, 5, 6, 7, 0, 0,
                                              0, 0, 0, 1, 2, 3, 0, 0, 0, 0, 4, 5, 6, 7)),
      2);
  const __m256i mlo = _mm256_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f,
                                        0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f);
  const __m256i mhi = _mm256_setr_epi32(0, 0x30303030, 0, 0x30303030, 0, 0x30303030, 0, 0x30303030);
  return _mm256_or_si256(_mm256_and_si256(lo, mlo), _mm256_and_si256(hi, mhi));
}

}  // namespace x86
}  // namespace HWY_NAMESPACE
}  // namespace dormouse
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3_DL
#endif  // include guard toggle
