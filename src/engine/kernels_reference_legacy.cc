// Scalar reference dot products of the quants_legacy.h weight types (kernels_legacy.h).
#include <cassert>
#include <cstring>
#include <type_traits>

#include "engine/kernels_legacy.h"

namespace dormouse::reference {
namespace {

// Q5_0 / IQ4_NL against Q8_0: sum += (dw * da) * isum per block.
template <typename Block>
float DotQ8_0Family(const Block* w, PreparedQ8_0 a, int64_t n) {
  float sum = 0.0f;
  for (int64_t b = 0; b < n / 32; ++b) {
    const int8_t* q8 = a.qs + 32 * b;
    int32_t isum = 0;
    for (int e = 0; e < 32; ++e) {
      int q;
      if constexpr (std::is_same_v<Block, BlockQ5_0>) {
        q = Q5Value(w[b].qh, w[b].qs, e) - 16;
      } else {
        const uint8_t byte = w[b].qs[e % 16];
        q = kIQ4NLValues[e < 16 ? byte & 0xf : byte >> 4];
      }
      isum += q * q8[e];
    }
    sum += static_cast<float>(isum) * (F16ToF32(w[b].d) * LoadUnaligned(a.d + b));
  }
  return sum;
}

// Q4_1 / Q5_1 against Q8_1: sum += (dw * da) * isum + m * s per block.
template <typename Block>
float DotQ8_1Family(const Block* w, PreparedQ8_1 a, int64_t n) {
  float sum = 0.0f;
  for (int64_t b = 0; b < n / 32; ++b) {
    const int8_t* q8 = a.qs + 32 * b;
    int32_t isum = 0;
    for (int e = 0; e < 32; ++e) {
      int q;
      if constexpr (std::is_same_v<Block, BlockQ5_1>) {
        q = Q5Value(w[b].qh, w[b].qs, e);
      } else {
        q = e < 16 ? w[b].qs[e] & 0xf : w[b].qs[e - 16] >> 4;
      }
      isum += q * q8[e];
    }
    const float scaled = (F16ToF32(w[b].d) * LoadUnaligned(a.d + b)) * static_cast<float>(isum);
    sum += scaled + F16ToF32(w[b].m) * LoadUnaligned(a.s + b);
  }
  return sum;
}

// IQ4_XS against Q8_K: the sub-block scales applied to exact integer sums (as llama.cpp's
// x86 kernels), one float multiply per super-block.
float DotIQ4_XS(const BlockIQ4_XS* w, const BlockQ8_K* a, int64_t n) {
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    BlockQ8_K y;
    std::memcpy(&y, a + b, sizeof(y));
    int32_t isum = 0;
    for (int j = 0; j < 8; ++j) {
      const uint8_t* qs = w[b].qs + 16 * j;
      const int8_t* q8 = y.qs + 32 * j;
      int32_t sub = 0;
      for (int k = 0; k < 16; ++k) {
        sub += kIQ4NLValues[qs[k] & 0xf] * q8[k] + kIQ4NLValues[qs[k] >> 4] * q8[k + 16];
      }
      isum += (IQ4XSScale(w[b], j) - 32) * sub;
    }
    sum += F16ToF32(w[b].d) * y.d * static_cast<float>(isum);
  }
  return sum;
}

}  // namespace

void PrepareQ8_1(const float* x, int64_t n, void* out) {
  auto* bytes = static_cast<uint8_t*>(out);
  for (int64_t b = 0; b < n / 32; ++b) {
    BlockQ8_1 blk;
    QuantizeRowQ8_1(x + 32 * b, &blk, 32);
    std::memcpy(bytes + 32 * b, blk.qs, 32);
    const float d = F16ToF32(blk.d), s = F16ToF32(blk.s);
    std::memcpy(bytes + n + 4 * b, &d, 4);
    std::memcpy(bytes + n + 4 * (n / 32) + 4 * b, &s, 4);
  }
}

float DotRowLegacy(GgmlType wtype, const void* w, const void* act, int64_t n) {
  switch (wtype) {
    case GgmlType::kQ4_1:
      return DotQ8_1Family(static_cast<const BlockQ4_1*>(w), PreparedQ8_1::At(act, n), n);
    case GgmlType::kQ5_1:
      return DotQ8_1Family(static_cast<const BlockQ5_1*>(w), PreparedQ8_1::At(act, n), n);
    case GgmlType::kQ5_0:
      return DotQ8_0Family(static_cast<const BlockQ5_0*>(w), PreparedQ8_0::At(act, n), n);
    case GgmlType::kIQ4_NL:
      return DotQ8_0Family(static_cast<const BlockIQ4_NL*>(w), PreparedQ8_0::At(act, n), n);
    case GgmlType::kIQ4_XS:
      return DotIQ4_XS(static_cast<const BlockIQ4_XS*>(w), static_cast<const BlockQ8_K*>(act), n);
    default:
      assert(false && "DotRowLegacy: not a legacy type");
      return 0.0f;
  }
}

}  // namespace dormouse::reference
