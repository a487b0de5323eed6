#include "engine/quants.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>

#include "engine/quants_k.h"
#include "engine/quants_legacy.h"

namespace dormouse {
namespace {

uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

// Largest-magnitude element of x[0..n), keeping its sign; the first one wins ties (ggml).
float SignedAbsMax(const float* x, int n, float* amax_out) {
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < n; ++i) {
    float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  *amax_out = amax;
  return max;
}

// Element e (0..255) of a Q6_K block: index into ql, whether it is the high nibble, index
// into qh and the shift of its 2 high bits.
struct Q6Pos {
  int ql, ql_shift, qh, qh_shift;
};
Q6Pos Q6Position(int e) {
  int h = e / 128, s = (e % 128) / 32, l = e % 32;
  return {64 * h + l + (s & 1) * 32, s >= 2 ? 4 : 0, 32 * h + l, 2 * s};
}

}  // namespace

int NearestInt(float x) {
  assert(std::fabs(x) <= 4194303.0f);
  float v = x + 12582912.0f;  // 1.5 * 2^23: the FPU rounds to an integer grid
  return static_cast<int>(FloatBits(v) & 0x007fffff) - 0x00400000;
}

void SetScaleMinK4(int j, uint8_t sc, uint8_t m, uint8_t* q) {
  assert(sc < 64 && m < 64);
  if (j < 4) {
    q[j] = static_cast<uint8_t>((q[j] & 0xc0) | sc);
    q[j + 4] = static_cast<uint8_t>((q[j + 4] & 0xc0) | m);
  } else {
    q[j + 4] = static_cast<uint8_t>((sc & 0xf) | ((m & 0xf) << 4));
    q[j - 4] = static_cast<uint8_t>((q[j - 4] & 0x3f) | ((sc >> 4) << 6));
    q[j] = static_cast<uint8_t>((q[j] & 0x3f) | ((m >> 4) << 6));
  }
}

size_t RowBytes(GgmlType type, int64_t n) {
  GgmlTypeTraits t = TraitsOf(type);
  return static_cast<size_t>(n / t.block_elems) * t.block_bytes;
}

// ---- Quantizers -------------------------------------------------------------------------

void QuantizeRowQ8_0(const float* x, BlockQ8_0* y, int64_t n) {
  assert(n % kQK8_0 == 0);
  for (int64_t b = 0; b < n / kQK8_0; ++b, x += kQK8_0) {
    float amax;
    SignedAbsMax(x, kQK8_0, &amax);
    // As llama.cpp's x86 quantize_row_q8_0: scale stored as f16(amax / 127) while the
    // values use 127 / amax, rounded to nearest even.
    y[b].d = F32ToF16(amax / 127.0f);
    float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    for (int i = 0; i < kQK8_0; ++i) y[b].qs[i] = static_cast<int8_t>(std::nearbyint(x[i] * id));
  }
}

void QuantizeRowQ8_K(const float* x, BlockQ8_K* y, int64_t n) {
  assert(n % kQK_K == 0);
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    float amax;
    float max = SignedAbsMax(x, kQK_K, &amax);
    BlockQ8_K& o = y[b];
    if (amax == 0.0f) {
      std::memset(&o, 0, sizeof(o));
      continue;
    }
    float iscale = -127.0f / max;
    for (int i = 0; i < kQK_K; ++i) {
      o.qs[i] = static_cast<int8_t>(std::min(127, NearestInt(iscale * x[i])));
    }
    for (int g = 0; g < kQK_K / 16; ++g) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += o.qs[16 * g + i];
      o.bsums[g] = static_cast<int16_t>(sum);
    }
    o.d = 1.0f / iscale;
  }
}

void QuantizeRowQ4_0(const float* x, BlockQ4_0* y, int64_t n) {
  assert(n % kQK4_0 == 0);
  for (int64_t b = 0; b < n / kQK4_0; ++b, x += kQK4_0) {
    float amax;
    float max = SignedAbsMax(x, kQK4_0, &amax);
    float d = max / -8.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = F32ToF16(d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      int lo = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
      int hi = std::min(15, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 8.5f)));
      y[b].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

void QuantizeRowQ4_K(const float* x, BlockQ4_K* y, int64_t n) {
  assert(n % kQK_K == 0);
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    BlockQ4_K& o = y[b];
    std::memset(&o, 0, sizeof(o));
    float scale[8], minv[8], max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 8; ++j) {
      const float* s = x + 32 * j;
      float lo = std::min(0.0f, *std::min_element(s, s + 32));
      float hi = *std::max_element(s, s + 32);
      scale[j] = (hi - lo) / 15.0f;
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
        int e = 32 * j + l;
        int q = dl > 0.0f ? std::clamp(NearestInt((x[e] + ml) / dl), 0, 15) : 0;
        int byte = 32 * (e / 64) + (e % 32);
        o.qs[byte] |= static_cast<uint8_t>((e % 64) < 32 ? q : q << 4);
      }
    }
  }
}

void QuantizeRowQ6_K(const float* x, BlockQ6_K* y, int64_t n) {
  assert(n % kQK_K == 0);
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    BlockQ6_K& o = y[b];
    std::memset(&o, 0, sizeof(o));
    float scale[16], max_abs_scale = 0.0f;
    for (int g = 0; g < 16; ++g) {
      float amax;
      scale[g] = SignedAbsMax(x + 16 * g, 16, &amax) / -32.0f;
      max_abs_scale = std::max(max_abs_scale, std::fabs(scale[g]));
    }
    o.d = F32ToF16(max_abs_scale / 127.0f);
    float d = F16ToF32(o.d);
    for (int g = 0; g < 16; ++g) {
      int sc = d > 0.0f ? std::clamp(NearestInt(scale[g] / d), -128, 127) : 0;
      o.scales[g] = static_cast<int8_t>(sc);
      float dl = d * static_cast<float>(sc);
      for (int l = 0; l < 16; ++l) {
        int e = 16 * g + l;
        int q = dl != 0.0f ? std::clamp(NearestInt(x[e] / dl), -32, 31) + 32 : 32;
        Q6Pos p = Q6Position(e);
        o.ql[p.ql] |= static_cast<uint8_t>((q & 0xf) << p.ql_shift);
        o.qh[p.qh] |= static_cast<uint8_t>((q >> 4) << p.qh_shift);
      }
    }
  }
}

// ---- Dequantizers -----------------------------------------------------------------------

void DequantizeRowQ8_0(const BlockQ8_0* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK8_0; ++b) {
    float d = F16ToF32(x[b].d);
    for (int i = 0; i < kQK8_0; ++i) *y++ = d * static_cast<float>(x[b].qs[i]);
  }
}

void DequantizeRowQ4_0(const BlockQ4_0* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK4_0; ++b, y += kQK4_0) {
    float d = F16ToF32(x[b].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>((x[b].qs[j] & 0xf) - 8);
      y[j + 16] = d * static_cast<float>((x[b].qs[j] >> 4) - 8);
    }
  }
}

void DequantizeRowQ4_K(const BlockQ4_K* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    float d = F16ToF32(x[b].d), dmin = F16ToF32(x[b].dmin);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      GetScaleMinK4(j, x[b].scales, &sc, &m);
      float dl = d * static_cast<float>(sc), ml = dmin * static_cast<float>(m);
      const uint8_t* q = x[b].qs + 32 * (j / 2);
      int shift = (j % 2) * 4;
      for (int l = 0; l < 32; ++l) *y++ = dl * static_cast<float>((q[l] >> shift) & 0xf) - ml;
    }
  }
}

void DequantizeRowQ6_K(const BlockQ6_K* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    float d = F16ToF32(x[b].d);
    for (int e = 0; e < kQK_K; ++e) {
      Q6Pos p = Q6Position(e);
      int q = ((x[b].ql[p.ql] >> p.ql_shift) & 0xf) | (((x[b].qh[p.qh] >> p.qh_shift) & 3) << 4);
      *y++ = d * static_cast<float>(x[b].scales[e / 16]) * static_cast<float>(q - 32);
    }
  }
}

void DequantizeRowQ8_K(const BlockQ8_K* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    for (int i = 0; i < kQK_K; ++i) *y++ = x[b].d * static_cast<float>(x[b].qs[i]);
  }
}

void DequantizeRow(GgmlType type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::kF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = F16ToF32(h[i]);
      return;
    }
    case GgmlType::kBF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = BF16ToF32(h[i]);
      return;
    }
    case GgmlType::kQ8_0:
      return DequantizeRowQ8_0(static_cast<const BlockQ8_0*>(src), dst, n);
    case GgmlType::kQ4_0:
      return DequantizeRowQ4_0(static_cast<const BlockQ4_0*>(src), dst, n);
    case GgmlType::kQ4_K:
      return DequantizeRowQ4_K(static_cast<const BlockQ4_K*>(src), dst, n);
    case GgmlType::kQ6_K:
      return DequantizeRowQ6_K(static_cast<const BlockQ6_K*>(src), dst, n);
    case GgmlType::kQ2_K:
      return DequantizeRowQ2_K(static_cast<const BlockQ2_K*>(src), dst, n);
    case GgmlType::kQ3_K:
      return DequantizeRowQ3_K(static_cast<const BlockQ3_K*>(src), dst, n);
    case GgmlType::kQ5_K:
      return DequantizeRowQ5_K(static_cast<const BlockQ5_K*>(src), dst, n);
    default:
      if (DequantizeRowLegacy(type, src, dst, n)) return;
  }
  assert(false && "DequantizeRow: unsupported type");
}

void QuantizeRow(GgmlType type, const float* src, void* dst, int64_t n) {
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::kF16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = F32ToF16(src[i]);
      return;
    }
    case GgmlType::kBF16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = F32ToBF16(src[i]);
      return;
    }
    case GgmlType::kQ8_0:
      return QuantizeRowQ8_0(src, static_cast<BlockQ8_0*>(dst), n);
    case GgmlType::kQ4_0:
      return QuantizeRowQ4_0(src, static_cast<BlockQ4_0*>(dst), n);
    case GgmlType::kQ4_K:
      return QuantizeRowQ4_K(src, static_cast<BlockQ4_K*>(dst), n);
    case GgmlType::kQ6_K:
      return QuantizeRowQ6_K(src, static_cast<BlockQ6_K*>(dst), n);
    case GgmlType::kQ2_K:
      return QuantizeRowQ2_K(src, static_cast<BlockQ2_K*>(dst), n);
    case GgmlType::kQ3_K:
      return QuantizeRowQ3_K(src, static_cast<BlockQ3_K*>(dst), n);
    case GgmlType::kQ5_K:
      return QuantizeRowQ5_K(src, static_cast<BlockQ5_K*>(dst), n);
    default:
      if (QuantizeRowLegacy(type, src, dst, n)) return;
  }
  assert(false && "QuantizeRow: unsupported type");
}

}  // namespace dormouse
