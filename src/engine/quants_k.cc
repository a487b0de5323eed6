#include "engine/quants_k.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>

namespace dormouse {
namespace {

// Byte and bit shift of element e's 2 low bits in a Q2_K/Q3_K qs array.
int Qs2Byte(int e) { return 32 * (e / 128) + e % 32; }
int Qs2Shift(int e) { return 2 * ((e % 128) / 32); }

// Smallest and largest of x[0..n), with the range extended to include 0.
void RangeWithZero(const float* x, int n, float* lo, float* hi) {
  *lo = std::min(0.0f, *std::min_element(x, x + n));
  *hi = std::max(0.0f, *std::max_element(x, x + n));
}

}  // namespace

int GetScaleK3(int g, const uint8_t* s) {
  int lo = (s[g % 8] >> (4 * (g / 8))) & 0xf;
  int hi = (s[8 + g % 4] >> (2 * (g / 4))) & 3;
  return lo | (hi << 4);
}

void SetScaleK3(int g, int sc, uint8_t* s) {
  assert(sc >= 0 && sc < 64);
  int lo_shift = 4 * (g / 8), hi_shift = 2 * (g / 4);
  s[g % 8] = static_cast<uint8_t>((s[g % 8] & ~(0xf << lo_shift)) | ((sc & 0xf) << lo_shift));
  s[8 + g % 4] = static_cast<uint8_t>((s[8 + g % 4] & ~(3 << hi_shift)) | ((sc >> 4) << hi_shift));
}

int QuantQ2_K(const BlockQ2_K& b, int e) { return (b.qs[Qs2Byte(e)] >> Qs2Shift(e)) & 3; }

int QuantQ3_K(const BlockQ3_K& b, int e) {
  int low = (b.qs[Qs2Byte(e)] >> Qs2Shift(e)) & 3;
  int bit = 4 * (e / 128) + (e % 128) / 32;
  return low - ((b.hmask[e % 32] >> bit) & 1 ? 0 : 4);
}

int QuantQ5_K(const BlockQ5_K& b, int e) {
  int j = e / 32, l = e % 32;
  int nib = (b.qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0xf;
  return nib | (((b.qh[l] >> j) & 1) << 4);
}

// ---- Quantizers -------------------------------------------------------------------------

void QuantizeRowQ2_K(const float* x, BlockQ2_K* y, int64_t n) {
  assert(n % kQK_K == 0);
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    BlockQ2_K& o = y[b];
    std::memset(&o, 0, sizeof(o));
    float scale[16], minv[16], max_scale = 0.0f, max_min = 0.0f;
    for (int g = 0; g < 16; ++g) {
      float lo, hi;
      RangeWithZero(x + 16 * g, 16, &lo, &hi);
      scale[g] = (hi - lo) / 3.0f;
      minv[g] = -lo;
      max_scale = std::max(max_scale, scale[g]);
      max_min = std::max(max_min, minv[g]);
    }
    o.d = F32ToF16(max_scale / 15.0f);
    o.dmin = F32ToF16(max_min / 15.0f);
    float d = F16ToF32(o.d), dmin = F16ToF32(o.dmin);
    for (int g = 0; g < 16; ++g) {
      int sc = d > 0.0f ? std::clamp(NearestInt(scale[g] / d), 0, 15) : 0;
      int m = dmin > 0.0f ? std::clamp(NearestInt(minv[g] / dmin), 0, 15) : 0;
      o.scales[g] = static_cast<uint8_t>(sc | (m << 4));
      float dl = d * static_cast<float>(sc), ml = dmin * static_cast<float>(m);
      for (int l = 0; l < 16; ++l) {
        int e = 16 * g + l;
        int q = dl > 0.0f ? std::clamp(NearestInt((x[e] + ml) / dl), 0, 3) : 0;
        o.qs[Qs2Byte(e)] |= static_cast<uint8_t>(q << Qs2Shift(e));
      }
    }
  }
}

void QuantizeRowQ3_K(const float* x, BlockQ3_K* y, int64_t n) {
  assert(n % kQK_K == 0);
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    BlockQ3_K& o = y[b];
    std::memset(&o, 0, sizeof(o));
    float scale[16], max_abs_scale = 0.0f;
    for (int g = 0; g < 16; ++g) {
      float lo, hi;
      RangeWithZero(x + 16 * g, 16, &lo, &hi);
      scale[g] = -lo >= hi ? lo / -4.0f : hi / -4.0f;  // largest magnitude maps to q = -4
      max_abs_scale = std::max(max_abs_scale, std::fabs(scale[g]));
    }
    o.d = F32ToF16(max_abs_scale / 31.0f);
    float d = F16ToF32(o.d);
    for (int g = 0; g < 16; ++g) {
      int sc = d > 0.0f ? std::clamp(NearestInt(scale[g] / d), -32, 31) : 0;
      SetScaleK3(g, sc + 32, o.scales);
      float dl = d * static_cast<float>(sc);
      for (int l = 0; l < 16; ++l) {
        int e = 16 * g + l;
        int q = dl != 0.0f ? std::clamp(NearestInt(x[e] / dl), -4, 3) + 4 : 4;
        o.qs[Qs2Byte(e)] |= static_cast<uint8_t>((q & 3) << Qs2Shift(e));
        int bit = 4 * (e / 128) + (e % 128) / 32;
        o.hmask[e % 32] |= static_cast<uint8_t>((q >> 2) << bit);
      }
    }
  }
}

void QuantizeRowQ5_K(const float* x, BlockQ5_K* y, int64_t n) {
  assert(n % kQK_K == 0);
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    BlockQ5_K& o = y[b];
    std::memset(&o, 0, sizeof(o));
    float scale[8], minv[8], max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 8; ++j) {
      float lo, hi;
      RangeWithZero(x + 32 * j, 32, &lo, &hi);
      scale[j] = (hi - lo) / 31.0f;
      minv[j] = -lo;
      max_scale = std::max(max_scale, scale[j]);
      max_min = std::max(max_min, minv[j]);
    }
    o.d = F32ToF16(max_scale / 63.0f);
    o.dmin = F32ToF16(max_min / 63.0f);
    float d = F16ToF32(o.d), dmin = F16ToF32(o.dmin);
    for (int j = 0; j < 8; ++j) {
      int sc = d > 0.0f ? std::clamp(NearestInt(scale[j] / d), 0, 63) : 0;
      int m = dmin > 0.0f ? std::clamp(NearestInt(minv[j] / dmin), 0, 63) : 0;
      SetScaleMinK4(j, static_cast<uint8_t>(sc), static_cast<uint8_t>(m), o.scales);
      float dl = d * static_cast<float>(sc), ml = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) {
        int q = dl > 0.0f ? std::clamp(NearestInt((x[32 * j + l] + ml) / dl), 0, 31) : 0;
        o.qs[32 * (j / 2) + l] |= static_cast<uint8_t>((q & 0xf) << (4 * (j % 2)));
        o.qh[l] |= static_cast<uint8_t>((q >> 4) << j);
      }
    }
  }
}

// ---- Dequantizers -----------------------------------------------------------------------

void DequantizeRowQ2_K(const BlockQ2_K* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    float d = F16ToF32(x[b].d), dmin = F16ToF32(x[b].dmin);
    for (int e = 0; e < kQK_K; ++e) {
      int s = x[b].scales[e / 16];
      float dl = d * static_cast<float>(s & 0xf), ml = dmin * static_cast<float>(s >> 4);
      *y++ = dl * static_cast<float>(QuantQ2_K(x[b], e)) - ml;
    }
  }
}

void DequantizeRowQ3_K(const BlockQ3_K* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    float d = F16ToF32(x[b].d);
    for (int e = 0; e < kQK_K; ++e) {
      float dl = d * static_cast<float>(GetScaleK3(e / 16, x[b].scales) - 32);
      *y++ = dl * static_cast<float>(QuantQ3_K(x[b], e));
    }
  }
}

void DequantizeRowQ5_K(const BlockQ5_K* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    float d = F16ToF32(x[b].d), dmin = F16ToF32(x[b].dmin);
    for (int e = 0; e < kQK_K; ++e) {
      uint8_t sc, m;
      GetScaleMinK4(e / 32, x[b].scales, &sc, &m);
      float dl = d * static_cast<float>(sc), ml = dmin * static_cast<float>(m);
      *y++ = dl * static_cast<float>(QuantQ5_K(x[b], e)) - ml;
    }
  }
}

}  // namespace dormouse
