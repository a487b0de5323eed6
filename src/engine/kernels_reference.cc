#include "engine/kernels_reference.h"

#include <cassert>
#include <cmath>
#include <cstring>

#include "engine/kernels.h"
#include "engine/kernels_internal.h"
#include "engine/kernels_legacy.h"
#include "engine/quants.h"

namespace dormouse::reference {
namespace {

// Q8_0 activation quantization into the prepared arrays (numerics of QuantizeRowQ8_0).
void PrepareQ8_0(GgmlType wtype, const float* x, int64_t n, void* out) {
  auto* qs = static_cast<int8_t*>(out);
  auto* bytes = static_cast<uint8_t*>(out);
  int32_t offset = PreparedQ8_0::Offset(wtype);
  for (int64_t b = 0; b < n / 32; ++b) {
    BlockQ8_0 blk;
    QuantizeRowQ8_0(x + 32 * b, &blk, 32);
    std::memcpy(qs + 32 * b, blk.qs, 32);
    int32_t sum = 0;
    for (int8_t q : blk.qs) sum += q;
    float d = F16ToF32(blk.d);
    int32_t corr = -offset * sum;
    std::memcpy(bytes + n + 4 * b, &d, 4);
    std::memcpy(bytes + n + 4 * (n / 32) + 4 * b, &corr, 4);
  }
}

float DotQ8_0(const BlockQ8_0* w, PreparedQ8_0 a, int64_t n) {
  float sum = 0.0f;
  for (int64_t b = 0; b < n / 32; ++b) {
    int32_t isum = 0;
    for (int i = 0; i < 32; ++i) isum += w[b].qs[i] * a.qs[32 * b + i];
    sum += static_cast<float>(isum) * (F16ToF32(w[b].d) * LoadUnaligned(a.d + b));
  }
  return sum;
}

float DotQ4_0(const BlockQ4_0* w, PreparedQ8_0 a, int64_t n) {
  float sum = 0.0f;
  for (int64_t b = 0; b < n / 32; ++b) {
    const int8_t* q8 = a.qs + 32 * b;
    int32_t isum = 0;
    for (int j = 0; j < 16; ++j) {
      isum += ((w[b].qs[j] & 0xf) - 8) * q8[j] + ((w[b].qs[j] >> 4) - 8) * q8[j + 16];
    }
    sum += static_cast<float>(isum) * (F16ToF32(w[b].d) * LoadUnaligned(a.d + b));
  }
  return sum;
}

float DotQ4_K(const BlockQ4_K* w, const BlockQ8_K* a, int64_t n) {
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    BlockQ8_K y;
    std::memcpy(&y, a + b, sizeof(y));
    int32_t scaled = 0, mins = 0;
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      GetScaleMinK4(j, w[b].scales, &sc, &m);
      const uint8_t* q = w[b].qs + 32 * (j / 2);
      int shift = 4 * (j % 2);
      int32_t isum = 0;
      for (int l = 0; l < 32; ++l) isum += ((q[l] >> shift) & 0xf) * y.qs[32 * j + l];
      scaled += sc * isum;
      mins += m * (y.bsums[2 * j] + y.bsums[2 * j + 1]);
    }
    sum += F16ToF32(w[b].d) * y.d * static_cast<float>(scaled);
    sum -= F16ToF32(w[b].dmin) * y.d * static_cast<float>(mins);
  }
  return sum;
}

float DotQ6_K(const BlockQ6_K* w, const BlockQ8_K* a, int64_t n) {
  float sum = 0.0f;
  float wq[kQK_K];
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    BlockQ8_K y;
    std::memcpy(&y, a + b, sizeof(y));
    // Recover the integer q - 32 from the reference dequantizer with d = scales = 1.
    BlockQ6_K unit = w[b];
    unit.d = F32ToF16(1.0f);
    for (int8_t& s : unit.scales) s = 1;
    DequantizeRowQ6_K(&unit, wq, kQK_K);
    int32_t isum = 0;
    for (int g = 0; g < 16; ++g) {
      int32_t gsum = 0;
      for (int l = 0; l < 16; ++l) gsum += static_cast<int32_t>(wq[16 * g + l]) * y.qs[16 * g + l];
      isum += w[b].scales[g] * gsum;
    }
    sum += F16ToF32(w[b].d) * y.d * static_cast<float>(isum);
  }
  return sum;
}

}  // namespace

void PrepareActivations(GgmlType wtype, const float* x, int64_t n, void* out) {
  switch (ActivationFormOf(wtype)) {
    case ActivationForm::kF32:
      std::memcpy(out, x, static_cast<size_t>(n) * sizeof(float));
      return;
    case ActivationForm::kF16:
    case ActivationForm::kBF16: {
      uint16_t* h = static_cast<uint16_t*>(out);
      for (int64_t i = 0; i < n; ++i) {
        uint16_t v = wtype == GgmlType::kF16 ? F32ToF16(x[i]) : F32ToBF16(x[i]);
        std::memcpy(h + i, &v, 2);
      }
      return;
    }
    case ActivationForm::kQ8_0:
      return PrepareQ8_0(wtype, x, n, out);
    case ActivationForm::kQ8_K:
      return QuantizeRowQ8_K(x, static_cast<BlockQ8_K*>(out), n);
    case ActivationForm::kQ8_1:
      return PrepareQ8_1(x, n, out);
    case ActivationForm::kNone:
      break;
  }
  assert(false && "PrepareActivations: unsupported type");
}

float DotRow(GgmlType wtype, const void* w, const void* act, int64_t n) {
  switch (wtype) {
    case GgmlType::kF32: {
      const auto* a = static_cast<const float*>(act);
      const auto* b = static_cast<const float*>(w);
      float sum = 0.0f;
      for (int64_t i = 0; i < n; ++i) sum += LoadUnaligned(b + i) * LoadUnaligned(a + i);
      return sum;
    }
    case GgmlType::kF16:
    case GgmlType::kBF16: {
      auto cvt = wtype == GgmlType::kF16 ? F16ToF32 : BF16ToF32;
      const auto* a = static_cast<const uint16_t*>(act);
      const auto* b = static_cast<const uint16_t*>(w);
      float sum = 0.0f;
      for (int64_t i = 0; i < n; ++i) {
        sum += cvt(LoadUnaligned(b + i)) * cvt(LoadUnaligned(a + i));
      }
      return sum;
    }
    case GgmlType::kQ8_0:
      return DotQ8_0(static_cast<const BlockQ8_0*>(w), PreparedQ8_0::At(act, n), n);
    case GgmlType::kQ4_0:
      return DotQ4_0(static_cast<const BlockQ4_0*>(w), PreparedQ8_0::At(act, n), n);
    case GgmlType::kQ4_K:
      return DotQ4_K(static_cast<const BlockQ4_K*>(w), static_cast<const BlockQ8_K*>(act), n);
    case GgmlType::kQ6_K:
      return DotQ6_K(static_cast<const BlockQ6_K*>(w), static_cast<const BlockQ8_K*>(act), n);
    case GgmlType::kQ2_K:
      return DotQ2_K(static_cast<const BlockQ2_K*>(w), static_cast<const BlockQ8_K*>(act), n);
    case GgmlType::kQ3_K:
      return DotQ3_K(static_cast<const BlockQ3_K*>(w), static_cast<const BlockQ8_K*>(act), n);
    case GgmlType::kQ5_K:
      return DotQ5_K(static_cast<const BlockQ5_K*>(w), static_cast<const BlockQ8_K*>(act), n);
    default:
      if (IsLegacyQuant(wtype)) return DotRowLegacy(wtype, w, act, n);
  }
  assert(false && "DotRow: unsupported type");
  return 0.0f;
}

void MatMulRows(GgmlType wtype, const void* w, int64_t n, int64_t row_begin, int64_t row_end,
                const void* act, int64_t n_tokens, float* out, int64_t out_stride) {
  size_t wrow = RowBytes(wtype, n);
  size_t arow = PreparedRowBytes(wtype, n);  // a pure function, the same for every target
  for (int64_t t = 0; t < n_tokens; ++t) {
    const void* a = static_cast<const uint8_t*>(act) + t * arow;
    for (int64_t r = row_begin; r < row_end; ++r) {
      out[t * out_stride + r] = DotRow(wtype, static_cast<const uint8_t*>(w) + r * wrow, a, n);
    }
  }
}

float DotF32(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

float DotF32F16(const float* a, const uint16_t* b, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += a[i] * F16ToF32(b[i]);
  return sum;
}

void AxpyF32(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void AxpyF16(float alpha, const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * F16ToF32(x[i]);
}

void ConvertF32ToF16(const float* x, uint16_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = F32ToF16(x[i]);
}

void RmsNorm(const float* x, const float* w, float eps, int64_t n, float* out) {
  // As ggml: squares in float, summed in double; mean and scale in float.
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  const float scale = 1.0f / std::sqrt(mean + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = (x[i] * scale) * w[i];
}

void SwiGlu(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

}  // namespace dormouse::reference
