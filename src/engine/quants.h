// GGUF/ggml tensor block layouts and scalar reference (de)quantizers. The layouts are the
// on-disk ones (ggml-common.h); everything here is plain C++ so it doubles as the reference
// the SIMD kernels (kernels.cc) are tested against.
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "engine/ggml_types.h"

namespace dormouse {

inline constexpr int kQK8_0 = 32;
inline constexpr int kQK4_0 = 32;
inline constexpr int kQK_K = 256;  // K-quant super-block

// Q8_0: x = d * q.
struct BlockQ8_0 {
  uint16_t d;  // f16
  int8_t qs[kQK8_0];
};
static_assert(sizeof(BlockQ8_0) == 34);

// Q4_0: x = d * (q - 8); byte j holds element j (low nibble) and element j + 16 (high).
struct BlockQ4_0 {
  uint16_t d;  // f16
  uint8_t qs[kQK4_0 / 2];
};
static_assert(sizeof(BlockQ4_0) == 18);

// Q4_K: 8 sub-blocks of 32, x = d * sc[j] * q - dmin * m[j] with 6-bit sc/m packed in
// `scales` (see GetScaleMinK4). qs[32c + l] holds element 64c + l (low nibble) and
// element 64c + 32 + l (high nibble).
struct BlockQ4_K {
  uint16_t d;     // f16, scale of the sub-block scales
  uint16_t dmin;  // f16, scale of the sub-block mins
  uint8_t scales[12];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144);

// Q6_K: 16 sub-blocks of 16, x = d * scales[e / 16] * (q - 32), q = 4 low bits from ql and
// 2 high bits from qh (layout in DequantizeQ6_K).
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;  // f16
};
static_assert(sizeof(BlockQ6_K) == 210);

// Q8_K: activation format of the K-quant dot products; x = d * q, bsums = sums of 16 q.
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};
static_assert(sizeof(BlockQ8_K) == 292);

// ---- Scalar conversions ---------------------------------------------------------------
// Inline and branch-free (the FP16 library's float-arithmetic tricks, exact for every input)
// so that callers' loops stay cheap and vectorizable; the SIMD kernels convert in bulk.
inline float F16ToF32(uint16_t h);
inline uint16_t F32ToF16(float f);  // IEEE half, round-to-nearest-even, overflow to inf
inline float BF16ToF32(uint16_t h);
inline uint16_t F32ToBF16(float f);  // round-to-nearest-even, NaN kept quiet (as ggml)

// Round-to-nearest-even of |x| < 2^22 (ggml's nearest_int).
int NearestInt(float x);

// Q4_K's packed 6-bit scale and min of sub-block j (0..7).
// Inline: the kernels unpack 8 per super-block, and a call each cost as much as unpacking.
inline void GetScaleMinK4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}
void SetScaleMinK4(int j, uint8_t sc, uint8_t m, uint8_t* scales);

// ---- Rows -----------------------------------------------------------------------------
// Bytes of a row of n elements of `type` (n a multiple of the block size).
size_t RowBytes(GgmlType type, int64_t n);

// Converts n elements (n a multiple of the type's block size) of a row of `type` to F32.
void DequantizeRow(GgmlType type, const void* src, float* dst, int64_t n);

// Quantizes n elements (a multiple of the block size) of `type`. Q8_0 and Q8_K follow
// llama.cpp's activation quantizers bit for bit; Q4_0 is llama.cpp's reference; Q4_K and
// Q6_K are simple (no error search) and only produce valid blocks for tests.
void QuantizeRow(GgmlType type, const float* src, void* dst, int64_t n);

void QuantizeRowQ8_0(const float* x, BlockQ8_0* y, int64_t n);
void QuantizeRowQ8_K(const float* x, BlockQ8_K* y, int64_t n);
void QuantizeRowQ4_0(const float* x, BlockQ4_0* y, int64_t n);
void QuantizeRowQ4_K(const float* x, BlockQ4_K* y, int64_t n);
void QuantizeRowQ6_K(const float* x, BlockQ6_K* y, int64_t n);

void DequantizeRowQ8_0(const BlockQ8_0* x, float* y, int64_t n);
void DequantizeRowQ4_0(const BlockQ4_0* x, float* y, int64_t n);
void DequantizeRowQ4_K(const BlockQ4_K* x, float* y, int64_t n);
void DequantizeRowQ6_K(const BlockQ6_K* x, float* y, int64_t n);
void DequantizeRowQ8_K(const BlockQ8_K* x, float* y, int64_t n);

// ---- Inline definitions -----------------------------------------------------------------
namespace quants_detail {
inline uint32_t Bits(float f) { return std::bit_cast<uint32_t>(f); }
inline float Float(uint32_t u) { return std::bit_cast<float>(u); }
}  // namespace quants_detail

inline float F16ToF32(uint16_t h) {
  using quants_detail::Bits, quants_detail::Float;
  const uint32_t w = static_cast<uint32_t>(h) << 16;
  const uint32_t sign = w & 0x80000000u;
  const uint32_t two_w = w + w;
  // Normal (and inf/NaN): rebias the exponent by scaling; subnormal: exact via a magic add.
  const float normalized = Float((two_w >> 4) + (0xe0u << 23)) * 0x1p-112f;
  const float denormalized = Float((two_w >> 17) | (126u << 23)) - 0.5f;
  const uint32_t r = two_w < (1u << 27) ? Bits(denormalized) : Bits(normalized);
  return Float(sign | r);
}

inline uint16_t F32ToF16(float f) {
  using quants_detail::Bits, quants_detail::Float;
  // Scaling up then down lets the FPU round to the half grid (nearest even) and saturate.
  float base = (std::fabs(f) * 0x1p+112f) * 0x1p-110f;
  const uint32_t w = Bits(f);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & 0x80000000u;
  uint32_t bias = shl1_w & 0xff000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = Float((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = Bits(base);
  const uint32_t nonsign = ((bits >> 13) & 0x00007c00u) + (bits & 0x00000fffu);
  return static_cast<uint16_t>((sign >> 16) | (shl1_w > 0xff000000u ? 0x7e00u : nonsign));
}

inline float BF16ToF32(uint16_t h) { return quants_detail::Float(static_cast<uint32_t>(h) << 16); }

inline uint16_t F32ToBF16(float f) {
  const uint32_t u = quants_detail::Bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 64);
  return static_cast<uint16_t>((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

}  // namespace dormouse
