#include "engine/attention.h"

#include <cmath>

#include "engine/kernels.h"
#include "engine/quants.h"

namespace dormouse {
namespace {

// ggml's F16 dot product (ggml_vec_dot_f16) on AVX-512: blocks of 64 go through four
// 16-lane F32 accumulators (FMA of exact F16 x F16 products), reduced pairwise and then
// across lanes in the order GCC's _mm512_reduce_add_ps uses; the tail is summed in
// double. Matching the order matters only at the last bit, but that bit decides
// near-tied greedy tokens.
float DotF16(const uint16_t* x, const uint16_t* y, int64_t n) {
  const int64_t np = n & ~int64_t{63};
  double sum = 0.0;
  if (np > 0) {
    float acc[4][16] = {};
    for (int64_t i = 0; i < np; i += 64) {
      for (int j = 0; j < 4; ++j) {
        for (int l = 0; l < 16; ++l) {
          const int64_t k = i + j * 16 + l;
          acc[j][l] = std::fma(F16ToF32(x[k]), F16ToF32(y[k]), acc[j][l]);
        }
      }
    }
    float a[16];
    for (int l = 0; l < 16; ++l) a[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    float t3[8], t6[4];
    for (int l = 0; l < 8; ++l) t3[l] = a[8 + l] + a[l];
    for (int l = 0; l < 4; ++l) t6[l] = t3[4 + l] + t3[l];
    sum = static_cast<double>((t6[0] + t6[2]) + (t6[1] + t6[3]));
  }
  for (int64_t i = np; i < n; ++i) sum += static_cast<double>(F16ToF32(x[i]) * F16ToF32(y[i]));
  return static_cast<float>(sum);
}

// y = f16(y * v), and y = f16(y + x * v): ggml_vec_scale_f16 / ggml_vec_mad_f16.
void ScaleF16(uint16_t* y, float v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = F32ToF16(F16ToF32(y[i]) * v);
}
void MadF16(uint16_t* y, const uint16_t* x, float v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = F32ToF16(std::fma(F16ToF32(x[i]), v, F16ToF32(y[i])));
}

void AttendF16(const float* q, const uint8_t* k_base, const uint8_t* v_base, size_t row_bytes,
               int64_t offset, int64_t n_keys, int64_t hd, float scale, const AttentionScratch& s,
               float* out) {
  ConvertF32ToF16(q, s.q16, hd);
  for (int64_t d = 0; d < hd; ++d) s.acc16[d] = 0;
  float M = -INFINITY, S = 0.0f;
  for (int64_t j = 0; j < n_keys; ++j) {
    const uint16_t* k = reinterpret_cast<const uint16_t*>(k_base + j * row_bytes) + offset;
    const uint16_t* v = reinterpret_cast<const uint16_t*>(v_base + j * row_bytes) + offset;
    const float score = DotF16(k, s.q16, hd) * scale;
    float ms = 1.0f, vs = 1.0f;
    if (score > M) {  // a new maximum: rescale what was accumulated
      const float old = M;
      M = score;
      ms = std::exp(old - M);
      ScaleF16(s.acc16, ms, hd);
    } else {
      vs = std::exp(score - M);
    }
    MadF16(s.acc16, v, vs, hd);
    S = S * ms + vs;
  }
  const float inv = S == 0.0f ? 0.0f : 1.0f / S;
  for (int64_t d = 0; d < hd; ++d) out[d] = F16ToF32(s.acc16[d]) * inv;
}

void AttendF32(const float* q, const uint8_t* k_base, const uint8_t* v_base, size_t row_bytes,
               int64_t offset, int64_t n_keys, int64_t hd, float scale, const AttentionScratch& s,
               float* out) {
  for (int64_t d = 0; d < hd; ++d) s.acc32[d] = 0.0f;
  float M = -INFINITY, S = 0.0f;
  for (int64_t j = 0; j < n_keys; ++j) {
    const float* k = reinterpret_cast<const float*>(k_base + j * row_bytes) + offset;
    const float* v = reinterpret_cast<const float*>(v_base + j * row_bytes) + offset;
    const float score = DotF32(k, q, hd) * scale;
    float ms = 1.0f, vs = 1.0f;
    if (score > M) {
      const float old = M;
      M = score;
      ms = std::exp(old - M);
      for (int64_t d = 0; d < hd; ++d) s.acc32[d] *= ms;
    } else {
      vs = std::exp(score - M);
    }
    AxpyF32(vs, v, s.acc32, hd);
    S = S * ms + vs;
  }
  const float inv = S == 0.0f ? 0.0f : 1.0f / S;
  for (int64_t d = 0; d < hd; ++d) out[d] = s.acc32[d] * inv;
}

}  // namespace

void AttendHead(const float* q, const uint8_t* k_base, const uint8_t* v_base, size_t row_bytes,
                int64_t offset, int64_t n_keys, int64_t hd, float scale, bool f16,
                const AttentionScratch& scratch, float* out) {
  if (f16) {
    AttendF16(q, k_base, v_base, row_bytes, offset, n_keys, hd, scale, scratch, out);
  } else {
    AttendF32(q, k_base, v_base, row_bytes, offset, n_keys, hd, scale, scratch, out);
  }
}

}  // namespace dormouse
