// Scalar references of the Q2_K / Q3_K / Q5_K dot products against Q8_K activations, in
// the order of operations of llama.cpp's x86 vec_dot_qX_K_q8_K: exact integer sums per
// super-block (sub-block scales applied in integers), then one float multiply-add by
// d * y.d (and, for the types with mins, dmin * y.d times the integer min term).
#include <cstring>

#include "engine/kernels_reference.h"
#include "engine/quants_k.h"

namespace dormouse::reference {
namespace {

BlockQ8_K LoadQ8_K(const BlockQ8_K* a) {  // prepared rows may be unaligned
  BlockQ8_K y;
  std::memcpy(&y, a, sizeof(y));
  return y;
}

int32_t Dot16(const int8_t* y, int (*quant)(const void*, int), const void* blk, int e0) {
  int32_t s = 0;
  for (int l = 0; l < 16; ++l) s += quant(blk, e0 + l) * y[e0 + l];
  return s;
}

}  // namespace

float DotQ2_K(const BlockQ2_K* w, const BlockQ8_K* a, int64_t n) {
  auto quant = [](const void* b, int e) { return QuantQ2_K(*static_cast<const BlockQ2_K*>(b), e); };
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    BlockQ8_K y = LoadQ8_K(a + b);
    int32_t scaled = 0, mins = 0;
    for (int g = 0; g < 16; ++g) {
      scaled += (w[b].scales[g] & 0xf) * Dot16(y.qs, quant, &w[b], 16 * g);
      mins += (w[b].scales[g] >> 4) * y.bsums[g];
    }
    const float dall = y.d * F16ToF32(w[b].d), dmin = y.d * F16ToF32(w[b].dmin);
    sum += dall * static_cast<float>(scaled) - dmin * static_cast<float>(mins);
  }
  return sum;
}

float DotQ3_K(const BlockQ3_K* w, const BlockQ8_K* a, int64_t n) {
  auto quant = [](const void* b, int e) { return QuantQ3_K(*static_cast<const BlockQ3_K*>(b), e); };
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    BlockQ8_K y = LoadQ8_K(a + b);
    int32_t isum = 0;
    for (int g = 0; g < 16; ++g) {
      isum += (GetScaleK3(g, w[b].scales) - 32) * Dot16(y.qs, quant, &w[b], 16 * g);
    }
    sum += F16ToF32(w[b].d) * y.d * static_cast<float>(isum);
  }
  return sum;
}

float DotQ5_K(const BlockQ5_K* w, const BlockQ8_K* a, int64_t n) {
  auto quant = [](const void* b, int e) { return QuantQ5_K(*static_cast<const BlockQ5_K*>(b), e); };
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    BlockQ8_K y = LoadQ8_K(a + b);
    int32_t scaled = 0, mins = 0;
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      GetScaleMinK4(j, w[b].scales, &sc, &m);
      scaled += sc * (Dot16(y.qs, quant, &w[b], 32 * j) + Dot16(y.qs, quant, &w[b], 32 * j + 16));
      mins += m * (y.bsums[2 * j] + y.bsums[2 * j + 1]);
    }
    sum += F16ToF32(w[b].d) * y.d * static_cast<float>(scaled);
    sum -= F16ToF32(w[b].dmin) * y.d * static_cast<float>(mins);
  }
  return sum;
}

}  // namespace dormouse::reference
