// Block layouts and scalar (de)quantizers of the 32-element "legacy" types Q4_1, Q5_0,
// Q5_1, the non-linear IQ4_NL and its 256-element super-block IQ4_XS, and Q8_1 (the
// activation format llama.cpp pairs with Q4_1/Q5_1). On-disk layouts as ggml-common.h;
// plain C++, the reference the SIMD kernels are held to.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/ggml_types.h"
#include "engine/quants.h"

namespace dormouse {

inline constexpr int kQK4_1 = 32;
inline constexpr int kQK5 = 32;  // Q5_0 and Q5_1
inline constexpr int kQK4_NL = 32;

// Q4_1: x = d * q + m; byte j holds element j (low nibble) and element j + 16 (high).
struct BlockQ4_1 {
  uint16_t d;  // f16
  uint16_t m;  // f16
  uint8_t qs[kQK4_1 / 2];
};
static_assert(sizeof(BlockQ4_1) == 20);

// Q5_0: x = d * (q - 16), q = nibble as Q4_0 | bit e of qh (little-endian) << 4.
struct BlockQ5_0 {
  uint16_t d;     // f16
  uint8_t qh[4];  // 5th bit of element e is bit e of this 32-bit word
  uint8_t qs[kQK5 / 2];
};
static_assert(sizeof(BlockQ5_0) == 22);

// Q5_1: x = d * q + m, q as Q5_0.
struct BlockQ5_1 {
  uint16_t d;  // f16
  uint16_t m;  // f16
  uint8_t qh[4];
  uint8_t qs[kQK5 / 2];
};
static_assert(sizeof(BlockQ5_1) == 24);

// IQ4_NL: x = d * kIQ4NLValues[nibble], nibbles placed as Q4_0.
struct BlockIQ4_NL {
  uint16_t d;  // f16
  uint8_t qs[kQK4_NL / 2];
};
static_assert(sizeof(BlockIQ4_NL) == 18);

// IQ4_XS: 8 sub-blocks of 32, x = d * (ls - 32) * kIQ4NLValues[nibble] with the 6-bit ls of
// sub-block j = nibble j of scales_l | bits 2j..2j+1 of scales_h << 4; sub-block j's
// nibbles are qs[16j..16j+16) (low: elements 0..15, high: 16..31).
struct BlockIQ4_XS {
  uint16_t d;  // f16
  uint16_t scales_h;
  uint8_t scales_l[kQK_K / 64];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockIQ4_XS) == 136);

// Q8_1: activations for Q4_1/Q5_1; x = d * q, s = d * sum(q) (both f16).
struct BlockQ8_1 {
  uint16_t d;  // f16
  uint16_t s;  // f16
  int8_t qs[32];
};
static_assert(sizeof(BlockQ8_1) == 36);

// The 16 levels of IQ4_NL / IQ4_XS.
inline constexpr int8_t kIQ4NLValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

// The 6-bit scale ls of IQ4_XS sub-block j (0..7); the sub-block multiplier is ls - 32.
inline int IQ4XSScale(const BlockIQ4_XS& b, int j) {
  return ((b.scales_l[j / 2] >> (4 * (j % 2))) & 0xf) | (((b.scales_h >> (2 * j)) & 3) << 4);
}

// The 5-bit q of element e (0..31) of a Q5_0/Q5_1 block.
inline int Q5Value(const uint8_t* qh, const uint8_t* qs, int e) {
  const uint32_t h = static_cast<uint32_t>(qh[0]) | (static_cast<uint32_t>(qh[1]) << 8) |
                     (static_cast<uint32_t>(qh[2]) << 16) | (static_cast<uint32_t>(qh[3]) << 24);
  const int nib = e < 16 ? qs[e] & 0xf : qs[e - 16] >> 4;
  return nib | static_cast<int>(((h >> e) & 1) << 4);
}

// The types of this file (weights), for the dispatch points.
inline bool IsLegacyQuant(GgmlType t) {
  return t == GgmlType::kQ4_1 || t == GgmlType::kQ5_0 || t == GgmlType::kQ5_1 ||
         t == GgmlType::kIQ4_NL || t == GgmlType::kIQ4_XS;
}
// Weight types whose activations are Q8_1 (prepared as PreparedQ8_1).
inline bool UsesQ8_1(GgmlType t) { return t == GgmlType::kQ4_1 || t == GgmlType::kQ5_1; }

// Quantizers: Q8_1 follows llama.cpp's x86 quantize_row_q8_1 bit for bit; the weight
// quantizers are simple (round to nearest, no error search) and only make valid blocks.
void QuantizeRowQ8_1(const float* x, BlockQ8_1* y, int64_t n);
void QuantizeRowQ4_1(const float* x, BlockQ4_1* y, int64_t n);
void QuantizeRowQ5_0(const float* x, BlockQ5_0* y, int64_t n);
void QuantizeRowQ5_1(const float* x, BlockQ5_1* y, int64_t n);
void QuantizeRowIQ4_NL(const float* x, BlockIQ4_NL* y, int64_t n);
void QuantizeRowIQ4_XS(const float* x, BlockIQ4_XS* y, int64_t n);

void DequantizeRowQ4_1(const BlockQ4_1* x, float* y, int64_t n);
void DequantizeRowQ5_0(const BlockQ5_0* x, float* y, int64_t n);
void DequantizeRowQ5_1(const BlockQ5_1* x, float* y, int64_t n);
void DequantizeRowIQ4_NL(const BlockIQ4_NL* x, float* y, int64_t n);
void DequantizeRowIQ4_XS(const BlockIQ4_XS* x, float* y, int64_t n);

// Dispatch helpers for quants.cc's switches: false if `type` is not one of this file's.
bool DequantizeRowLegacy(GgmlType type, const void* src, float* dst, int64_t n);
bool QuantizeRowLegacy(GgmlType type, const float* src, void* dst, int64_t n);

}  // namespace dormouse
