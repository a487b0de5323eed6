// Block layouts and scalar reference (de)quantizers of the K-quants Q2_K, Q3_K and Q5_K,
// as stored in GGUF (ggml-common.h). Like quants.h, plain C++ that doubles as the reference
// the SIMD kernels are tested against. All three pair with Q8_K activations.
#pragma once

#include <cstdint>

#include "engine/quants.h"

namespace dormouse {

// Q2_K: 16 sub-blocks of 16, x = d * (scales[g] & 15) * q - dmin * (scales[g] >> 4), q in
// 0..3. Element e = 128h + 32j + l sits in qs[32h + l] at bits 2j..2j+1.
struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];
  uint8_t qs[kQK_K / 4];
  uint16_t d;     // f16, scale of the sub-block scales
  uint16_t dmin;  // f16, scale of the sub-block mins
};
static_assert(sizeof(BlockQ2_K) == 84);

// Q3_K: 16 sub-blocks of 16, x = d * (sc[g] - 32) * (q - 4), sc 6 bits packed in `scales`
// (GetScaleK3), q = 2 low bits (as Q2_K's qs) + 4 * bit (4h + j) of hmask[l].
struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[12];
  uint16_t d;  // f16
};
static_assert(sizeof(BlockQ3_K) == 110);

// Q5_K: as Q4_K (8 sub-blocks of 32, 6-bit scales and mins packed as Q4_K's) with a fifth
// bit: element e = 32j + l has 16 * bit j of qh[l] added to its nibble.
struct BlockQ5_K {
  uint16_t d;     // f16
  uint16_t dmin;  // f16
  uint8_t scales[12];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ5_K) == 176);

// Q3_K's 6-bit scale g (0..15), unsigned (subtract 32 for the signed scale); and its setter.
int GetScaleK3(int g, const uint8_t* scales);
void SetScaleK3(int g, int sc, uint8_t* scales);

// Simple quantizers (no error search): valid blocks for tests and generated files.
void QuantizeRowQ2_K(const float* x, BlockQ2_K* y, int64_t n);
void QuantizeRowQ3_K(const float* x, BlockQ3_K* y, int64_t n);
void QuantizeRowQ5_K(const float* x, BlockQ5_K* y, int64_t n);

void DequantizeRowQ2_K(const BlockQ2_K* x, float* y, int64_t n);
void DequantizeRowQ3_K(const BlockQ3_K* x, float* y, int64_t n);
void DequantizeRowQ5_K(const BlockQ5_K* x, float* y, int64_t n);

// Integer quant of element e (0..255) of a block as the dot products multiply it: Q2_K
// 0..3, Q3_K -4..3, Q5_K 0..31.
int QuantQ2_K(const BlockQ2_K& b, int e);
int QuantQ3_K(const BlockQ3_K& b, int e);
int QuantQ5_K(const BlockQ5_K& b, int e);

}  // namespace dormouse
