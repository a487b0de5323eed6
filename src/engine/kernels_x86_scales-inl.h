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
#include <cstring>

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

// Q3_K's 16 6-bit scales minus 32, as int8 (llama.cpp's unpacking of the 12 bytes), kept
// in registers: a round trip through memory stalls on store forwarding (GCC spills an
// _mm_set_epi64x of two computed words to the stack).
inline __m128i ScalesQ3_K(const uint8_t* s) {
  uint64_t lo;
  uint32_t tmp;
  std::memcpy(&lo, s, 8);
  std::memcpy(&tmp, s + 8, 4);
  // Scales 0..3 take bits 0-1 of tmp's bytes, 4..7 bits 2-3; 8..15 the same 4 bits higher.
  const uint64_t t = tmp | (static_cast<uint64_t>(tmp >> 2) << 32);
  const __m128i l = _mm_cvtsi64_si128(static_cast<int64_t>(lo));
  const __m128i tv = _mm_cvtsi64_si128(static_cast<int64_t>(t));
  const __m128i low =
      _mm_and_si128(_mm_unpacklo_epi64(l, _mm_srli_epi64(l, 4)), _mm_set1_epi8(0x0f));
  const __m128i high =
      _mm_and_si128(_mm_unpacklo_epi64(tv, _mm_srli_epi64(tv, 4)), _mm_set1_epi8(0x03));
  return _mm_sub_epi8(_mm_or_si128(low, _mm_slli_epi16(high, 4)), _mm_set1_epi8(32));
}

}  // namespace x86
}  // namespace HWY_NAMESPACE
}  // namespace dormouse
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3_DL
#endif  // include guard toggle
