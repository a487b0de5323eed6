#include "engine/attention.h"

#include <cmath>
#include <cstring>

#include "engine/kernel_target.h"
#include "engine/kernels.h"
#include "engine/quants.h"

namespace dormouse {
namespace attention_internal {

// ggml's F16 dot product (ggml_vec_dot_f16) on AVX-512: blocks of 64 go through four
// 16-lane F32 accumulators (FMA of exact F16 x F16 products), reduced pairwise and then
// across lanes in the order GCC's _mm512_reduce_add_ps uses; the tail is summed in
// double. The order matters only in the last bit, but that bit can decide a near-tied
// greedy token.
float DotF16Reference(const uint16_t* x, const uint16_t* y, int64_t n) {
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
    sum = ReduceLanes16(a);
  }
  for (int64_t i = np; i < n; ++i) sum += static_cast<double>(F16ToF32(x[i]) * F16ToF32(y[i]));
  return static_cast<float>(sum);
}

double ReduceLanes16(const float* a) {
  float t3[8], t6[4];
  for (int l = 0; l < 8; ++l) t3[l] = a[8 + l] + a[l];
  for (int l = 0; l < 4; ++l) t6[l] = t3[4 + l] + t3[l];
  return static_cast<double>((t6[0] + t6[2]) + (t6[1] + t6[3]));
}

const uint64_t* ExpfTable() {
  struct Table {
    alignas(64) uint64_t t[32];
    Table() {
      for (int i = 0; i < 32; ++i) {
        const double v = static_cast<double>(exp2l(static_cast<long double>(i) / 32));
        uint64_t b;
        std::memcpy(&b, &v, 8);
        t[i] = b - (static_cast<uint64_t>(i) << 47);
      }
    }
  };
  static const Table kTable;
  return kTable.t;
}

void ScaleF16Reference(uint16_t* y, float v, int64_t n) {  // ggml_vec_scale_f16
  for (int64_t d = 0; d < n; ++d) y[d] = F32ToF16(F16ToF32(y[d]) * v);
}

void MadF16Reference(uint16_t* y, const uint16_t* x, float v, int64_t n) {  // ggml_vec_mad_f16
  for (int64_t d = 0; d < n; ++d) y[d] = F32ToF16(std::fma(F16ToF32(x[d]), v, F16ToF32(y[d])));
}

namespace {

// The F16 path, once for the scalar reference and once for the dispatched kernels.
template <float (*Dot)(const uint16_t*, const uint16_t*, int64_t),
          void (*Scale)(uint16_t*, float, int64_t),
          void (*Mad)(uint16_t*, const uint16_t*, float, int64_t)>
void AttendF16With(const AttentionArgs& a, const AttentionScratch& s, float* out) {
  const int64_t hd = a.head_dim;
  ConvertF32ToF16(a.q, s.q16, hd);
  for (int64_t d = 0; d < hd; ++d) s.acc16[d] = 0;
  float M = -INFINITY, S = 0.0f;
  for (int64_t j = a.first_key; j < a.n_keys; ++j) {
    const uint16_t* k = reinterpret_cast<const uint16_t*>(a.KRow(j)) + a.offset;
    const uint16_t* v = reinterpret_cast<const uint16_t*>(a.VRow(j)) + a.offset;
    const float score = a.Score(Dot(k, s.q16, hd));
    float ms = 1.0f, vs = 1.0f;
    if (score > M) {  // a new maximum: rescale what was accumulated
      const float old = M;
      M = score;
      ms = std::exp(old - M);
      Scale(s.acc16, ms, hd);
    } else {
      vs = std::exp(score - M);
    }
    Mad(s.acc16, v, vs, hd);
    S = std::fma(S, ms, vs);  // contracted, as ggml's -O3 -march=native build does
  }
  const float inv = S == 0.0f ? 0.0f : 1.0f / S;
  for (int64_t d = 0; d < hd; ++d) out[d] = F16ToF32(s.acc16[d]) * inv;
  if (a.stats != nullptr) *a.stats = {M, S};
}

}  // namespace

void AttendF16Reference(const AttentionArgs& a, const AttentionScratch& s, float* out) {
  AttendF16With<DotF16Reference, ScaleF16Reference, MadF16Reference>(a, s, out);
}

void AttendF16Portable(const AttentionArgs& a, const AttentionScratch& s, float* out) {
  AttendF16With<DotF16Ggml, ScaleF16, MadF16>(a, s, out);
}

}  // namespace attention_internal

namespace {

void AttendF32(const AttentionArgs& a, const AttentionScratch& s, float* out) {
  const int64_t hd = a.head_dim;
  for (int64_t d = 0; d < hd; ++d) s.acc32[d] = 0.0f;
  float M = -INFINITY, S = 0.0f;
  for (int64_t j = a.first_key; j < a.n_keys; ++j) {
    const float* k = reinterpret_cast<const float*>(a.KRow(j)) + a.offset;
    const float* v = reinterpret_cast<const float*>(a.VRow(j)) + a.offset;
    const float score = a.Score(DotF32(k, a.q, hd));
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
    S = std::fma(S, ms, vs);  // contracted, as ggml's -O3 -march=native build does
  }
  const float inv = S == 0.0f ? 0.0f : 1.0f / S;
  for (int64_t d = 0; d < hd; ++d) out[d] = s.acc32[d] * inv;
  if (a.stats != nullptr) *a.stats = {M, S};
}

}  // namespace

void AttendHead(const AttentionArgs& a, bool f16, const AttentionScratch& scratch, float* out) {
  if (!f16) {
    AttendF32(a, scratch, out);
  } else if (AllowAvx512Attention()) {
    attention_internal::AttendF16Avx512(a, scratch, out);
  } else {
    attention_internal::AttendF16Portable(a, scratch, out);
  }
}

bool AttentionRowsFit(int64_t head_dim, bool f16) {
  if (!f16 || !AttentionRowsHeadDim(head_dim)) return false;
  return AllowAvx512Attention() || AllowAvx2Attention() ||
         attention_internal::HaveAttentionRowsVec();
}

bool AttendRowsF16(const AttentionArgs* a, int n, float* const* out) {
  if (n <= 0 || !AttentionRowsFit(a[0].head_dim, true)) return false;
  if (AllowAvx512Attention()) return attention_internal::AttendRowsF16Avx512(a, n, out);
  if (AllowAvx2Attention()) return attention_internal::AttendRowsF16Avx2(a, n, out);
  return attention_internal::AttendRowsF16Vec(a, n, out);
}

void AttendGroup(const AttentionArgs* a, int n, bool f16, const AttentionScratch& scratch,
                 float* const* out) {
  if (f16 && AttendLanesF16(a, n, out)) return;
  if (f16 && AttendRowsF16(a, n, out)) return;
  if (f16 && AllowAvx512Attention() && attention_internal::AttendGroupF16Avx512(a, n, scratch, out))
    return;
  if (f16 && !AllowAvx512Attention() && AllowAvx2Attention() &&
      attention_internal::AttendGroupF16Avx2(a, n, scratch, out))
    return;
  for (int i = 0; i < n; ++i) AttendHead(a[i], f16, scratch, out[i]);
}

}  // namespace dormouse
