#include "engine/quants_legacy.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>

namespace dormouse {
namespace {

void MinMax(const float* x, int n, float* lo, float* hi) {
  *lo = *hi = x[0];
  for (int i = 1; i < n; ++i) {
    *lo = std::min(*lo, x[i]);
    *hi = std::max(*hi, x[i]);
  }
}

// Largest-magnitude element with its sign (the first one wins ties).
float SignedMax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  return max;
}

// Index of the IQ4_NL level nearest to v.
int NearestIQ4(float v) {
  int best = 0;
  for (int k = 1; k < 16; ++k) {
    if (std::fabs(v - kIQ4NLValues[k]) < std::fabs(v - kIQ4NLValues[best])) best = k;
  }
  return best;
}

// Packs 32 values q[0..32) as Q4_0-style nibbles into qs[16] and their 5th bits into qh.
void PackQ5(const int* q, uint8_t* qh, uint8_t* qs) {
  uint32_t h = 0;
  for (int j = 0; j < 16; ++j) {
    qs[j] = static_cast<uint8_t>((q[j] & 0xf) | ((q[j + 16] & 0xf) << 4));
    h |= static_cast<uint32_t>((q[j] >> 4) & 1) << j;
    h |= static_cast<uint32_t>((q[j + 16] >> 4) & 1) << (j + 16);
  }
  for (int k = 0; k < 4; ++k) qh[k] = static_cast<uint8_t>(h >> (8 * k));
}

// q = round((x - lo) / d) in [0, qmax] for a block with an offset (Q4_1/Q5_1).
void AffineBlock(const float* x, int qmax, uint16_t* d16, uint16_t* m16, int* q) {
  float lo, hi;
  MinMax(x, 32, &lo, &hi);
  const float d = (hi - lo) / static_cast<float>(qmax);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  *d16 = F32ToF16(d);
  *m16 = F32ToF16(lo);
  for (int i = 0; i < 32; ++i) {
    q[i] = std::clamp(static_cast<int>((x[i] - lo) * id + 0.5f), 0, qmax);
  }
}

}  // namespace

// ---- Quantizers -------------------------------------------------------------------------

void QuantizeRowQ8_1(const float* x, BlockQ8_1* y, int64_t n) {
  assert(n % 32 == 0);
  for (int64_t b = 0; b < n / 32; ++b, x += 32) {
    float amax = 0.0f;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
    // As llama.cpp's x86 quantize_row_q8_1: d = amax / 127 (its f16 is stored), values
    // scaled by 127 / amax and rounded to nearest even, s = f16(d * sum(q)) with the
    // unrounded d.
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int i = 0; i < 32; ++i) {
      y[b].qs[i] = static_cast<int8_t>(std::nearbyint(x[i] * id));
      sum += y[b].qs[i];
    }
    y[b].d = F32ToF16(d);
    y[b].s = F32ToF16(d * static_cast<float>(sum));
  }
}

void QuantizeRowQ4_1(const float* x, BlockQ4_1* y, int64_t n) {
  assert(n % kQK4_1 == 0);
  int q[32];
  for (int64_t b = 0; b < n / kQK4_1; ++b, x += kQK4_1) {
    AffineBlock(x, 15, &y[b].d, &y[b].m, q);
    for (int j = 0; j < 16; ++j) y[b].qs[j] = static_cast<uint8_t>(q[j] | (q[j + 16] << 4));
  }
}

void QuantizeRowQ5_0(const float* x, BlockQ5_0* y, int64_t n) {
  assert(n % kQK5 == 0);
  int q[32];
  for (int64_t b = 0; b < n / kQK5; ++b, x += kQK5) {
    const float d = SignedMax(x, 32) / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = F32ToF16(d);
    for (int i = 0; i < 32; ++i) q[i] = std::clamp(NearestInt(x[i] * id) + 16, 0, 31);
    PackQ5(q, y[b].qh, y[b].qs);
  }
}

void QuantizeRowQ5_1(const float* x, BlockQ5_1* y, int64_t n) {
  assert(n % kQK5 == 0);
  int q[32];
  for (int64_t b = 0; b < n / kQK5; ++b, x += kQK5) {
    AffineBlock(x, 31, &y[b].d, &y[b].m, q);
    PackQ5(q, y[b].qh, y[b].qs);
  }
}

void QuantizeRowIQ4_NL(const float* x, BlockIQ4_NL* y, int64_t n) {
  assert(n % kQK4_NL == 0);
  for (int64_t b = 0; b < n / kQK4_NL; ++b, x += kQK4_NL) {
    const float d = SignedMax(x, 32) / static_cast<float>(kIQ4NLValues[0]);
    y[b].d = F32ToF16(d);
    const float dq = F16ToF32(y[b].d);
    const float id = dq != 0.0f ? 1.0f / dq : 0.0f;
    for (int j = 0; j < 16; ++j) {
      y[b].qs[j] = static_cast<uint8_t>(NearestIQ4(x[j] * id) | (NearestIQ4(x[j + 16] * id) << 4));
    }
  }
}

void QuantizeRowIQ4_XS(const float* x, BlockIQ4_XS* y, int64_t n) {
  assert(n % kQK_K == 0);
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    BlockIQ4_XS& o = y[b];
    std::memset(&o, 0, sizeof(o));
    float scale[8], max_abs = 0.0f;
    for (int j = 0; j < 8; ++j) {
      scale[j] = SignedMax(x + 32 * j, 32) / static_cast<float>(kIQ4NLValues[0]);
      max_abs = std::max(max_abs, std::fabs(scale[j]));
    }
    o.d = F32ToF16(max_abs / 31.0f);
    const float d = F16ToF32(o.d);
    for (int j = 0; j < 8; ++j) {
      const int l = d > 0.0f ? std::clamp(NearestInt(scale[j] / d), -32, 31) : 0;
      const int ls = l + 32;
      o.scales_l[j / 2] |= static_cast<uint8_t>((ls & 0xf) << (4 * (j % 2)));
      o.scales_h |= static_cast<uint16_t>((ls >> 4) << (2 * j));
      const float dl = d * static_cast<float>(l);
      const float id = dl != 0.0f ? 1.0f / dl : 0.0f;
      const float* s = x + 32 * j;
      for (int k = 0; k < 16; ++k) {
        o.qs[16 * j + k] =
            static_cast<uint8_t>(NearestIQ4(s[k] * id) | (NearestIQ4(s[k + 16] * id) << 4));
      }
    }
  }
}

// ---- Dequantizers -----------------------------------------------------------------------

void DequantizeRowQ4_1(const BlockQ4_1* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK4_1; ++b, y += kQK4_1) {
    const float d = F16ToF32(x[b].d), m = F16ToF32(x[b].m);
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>(x[b].qs[j] & 0xf) * d + m;
      y[j + 16] = static_cast<float>(x[b].qs[j] >> 4) * d + m;
    }
  }
}

void DequantizeRowQ5_0(const BlockQ5_0* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK5; ++b, y += kQK5) {
    const float d = F16ToF32(x[b].d);
    for (int e = 0; e < 32; ++e) {
      y[e] = static_cast<float>(Q5Value(x[b].qh, x[b].qs, e) - 16) * d;
    }
  }
}

void DequantizeRowQ5_1(const BlockQ5_1* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK5; ++b, y += kQK5) {
    const float d = F16ToF32(x[b].d), m = F16ToF32(x[b].m);
    for (int e = 0; e < 32; ++e) {
      y[e] = static_cast<float>(Q5Value(x[b].qh, x[b].qs, e)) * d + m;
    }
  }
}

void DequantizeRowIQ4_NL(const BlockIQ4_NL* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK4_NL; ++b, y += kQK4_NL) {
    const float d = F16ToF32(x[b].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>(kIQ4NLValues[x[b].qs[j] & 0xf]);
      y[j + 16] = d * static_cast<float>(kIQ4NLValues[x[b].qs[j] >> 4]);
    }
  }
}

void DequantizeRowIQ4_XS(const BlockIQ4_XS* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = F16ToF32(x[b].d);
    for (int j = 0; j < 8; ++j, y += 32) {
      const float dl = d * static_cast<float>(IQ4XSScale(x[b], j) - 32);
      const uint8_t* qs = x[b].qs + 16 * j;
      for (int k = 0; k < 16; ++k) {
        y[k] = dl * static_cast<float>(kIQ4NLValues[qs[k] & 0xf]);
        y[k + 16] = dl * static_cast<float>(kIQ4NLValues[qs[k] >> 4]);
      }
    }
  }
}

bool DequantizeRowLegacy(GgmlType type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case GgmlType::kQ4_1:
      DequantizeRowQ4_1(static_cast<const BlockQ4_1*>(src), dst, n);
      return true;
    case GgmlType::kQ5_0:
      DequantizeRowQ5_0(static_cast<const BlockQ5_0*>(src), dst, n);
      return true;
    case GgmlType::kQ5_1:
      DequantizeRowQ5_1(static_cast<const BlockQ5_1*>(src), dst, n);
      return true;
    case GgmlType::kIQ4_NL:
      DequantizeRowIQ4_NL(static_cast<const BlockIQ4_NL*>(src), dst, n);
      return true;
    case GgmlType::kIQ4_XS:
      DequantizeRowIQ4_XS(static_cast<const BlockIQ4_XS*>(src), dst, n);
      return true;
    default:
      return false;
  }
}

bool QuantizeRowLegacy(GgmlType type, const float* src, void* dst, int64_t n) {
  switch (type) {
    case GgmlType::kQ4_1:
      QuantizeRowQ4_1(src, static_cast<BlockQ4_1*>(dst), n);
      return true;
    case GgmlType::kQ5_0:
      QuantizeRowQ5_0(src, static_cast<BlockQ5_0*>(dst), n);
      return true;
    case GgmlType::kQ5_1:
      QuantizeRowQ5_1(src, static_cast<BlockQ5_1*>(dst), n);
      return true;
    case GgmlType::kIQ4_NL:
      QuantizeRowIQ4_NL(src, static_cast<BlockIQ4_NL*>(dst), n);
      return true;
    case GgmlType::kIQ4_XS:
      QuantizeRowIQ4_XS(src, static_cast<BlockIQ4_XS*>(dst), n);
      return true;
    default:
      return false;
  }
}

}  // namespace dormouse
