// Per-target (Highway) vector kernels, float-weight matmuls and activation preparation.
// Included once per target by kernels.cc (foreach_target); no include guard on purpose.
#if defined(DORMOUSE_ENGINE_KERNELS_VEC_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DORMOUSE_ENGINE_KERNELS_VEC_INL_H_
#undef DORMOUSE_ENGINE_KERNELS_VEC_INL_H_
#else
#define DORMOUSE_ENGINE_KERNELS_VEC_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "engine/attention.h"
#include "engine/f16_vec-inl.h"
#include "engine/kernels_internal.h"
#include "engine/quants.h"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dormouse {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

#ifndef DM_UNROLL
#define DM_UNROLL _Pragma("GCC unroll 16")
#endif

// Loads N floats from F32, F16 or BF16 storage.
template <typename T>
HWY_INLINE hn::Vec<DF> LoadAsF32(DF df, const T* p) {
  if constexpr (sizeof(T) == 4) {
    return hn::LoadU(df, p);
  } else if constexpr (std::is_same_v<T, hwy::float16_t>) {
    return f16::LoadF16(df, reinterpret_cast<const uint16_t*>(p));
  } else {
    const hn::Rebind<T, DF> dh;
    return hn::PromoteTo(df, hn::LoadU(dh, p));
  }
}

template <typename T>
HWY_INLINE float ScalarAsF32(const T* p) {
  if constexpr (sizeof(T) == 4) {
    return *p;
  } else if constexpr (hwy::IsSame<T, hwy::float16_t>()) {
    return F16ToF32(LoadUnaligned(reinterpret_cast<const uint16_t*>(p)));
  } else {
    return BF16ToF32(LoadUnaligned(reinterpret_cast<const uint16_t*>(p)));
  }
}

// sum a[i] * b[i] with four independent accumulators.
template <typename TA, typename TB>
HWY_INLINE float DotImpl(const TA* a, const TB* b, int64_t n) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  auto s0 = hn::Zero(df), s1 = hn::Zero(df), s2 = hn::Zero(df), s3 = hn::Zero(df);
  int64_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    s0 = hn::MulAdd(LoadAsF32(df, a + i), LoadAsF32(df, b + i), s0);
    s1 = hn::MulAdd(LoadAsF32(df, a + i + N), LoadAsF32(df, b + i + N), s1);
    s2 = hn::MulAdd(LoadAsF32(df, a + i + 2 * N), LoadAsF32(df, b + i + 2 * N), s2);
    s3 = hn::MulAdd(LoadAsF32(df, a + i + 3 * N), LoadAsF32(df, b + i + 3 * N), s3);
  }
  for (; i + N <= n; i += N) s0 = hn::MulAdd(LoadAsF32(df, a + i), LoadAsF32(df, b + i), s0);
  float sum = hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(s0, s1), hn::Add(s2, s3))));
  for (; i < n; ++i) sum += ScalarAsF32(a + i) * ScalarAsF32(b + i);
  return sum;
}

float DotF32(const float* a, const float* b, int64_t n) { return DotImpl(a, b, n); }

float DotF32F16(const float* a, const uint16_t* b, int64_t n) {
  return DotImpl(a, reinterpret_cast<const hwy::float16_t*>(b), n);
}

template <typename T>
HWY_INLINE void AxpyImpl(float alpha, const T* x, float* y, int64_t n) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const auto va = hn::Set(df, alpha);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    hn::StoreU(hn::MulAdd(va, LoadAsF32(df, x + i), hn::LoadU(df, y + i)), df, y + i);
  }
  for (; i < n; ++i) y[i] += alpha * ScalarAsF32(x + i);
}

void AxpyF32(float alpha, const float* x, float* y, int64_t n) { AxpyImpl(alpha, x, y, n); }

void AxpyF16(float alpha, const uint16_t* x, float* y, int64_t n) {
  AxpyImpl(alpha, reinterpret_cast<const hwy::float16_t*>(x), y, n);
}

void ConvertF32ToF16(const float* x, uint16_t* out, int64_t n) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  int64_t i = 0;
  for (; i + N <= n; i += N) f16::StoreF16(df, hn::LoadU(df, x + i), out + i);
  for (; i < n; ++i) out[i] = F32ToF16(x[i]);
}

// attention.cc's F16 steps (kernels.h), with f16_vec-inl.h's exact conversions and FMA: the
// scalar references' bits on every target but HWY_SCALAR, which runs the references.
#if HWY_TARGET != HWY_SCALAR && (HWY_NATIVE_FMA || HWY_HAVE_FLOAT64)
// Lanes of ggml's 16-lane accumulators: 4 per vector on 128-bit targets (fixed, so that
// scalable ones sum in the same order), 8 on AVX2, 16 from AVX3 on.
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
using DF16L = hn::CappedTag<float, 16>;
constexpr int kAccVecs = 16 / HWY_MIN(16, static_cast<int>(HWY_LANES(float)));
#else
using DF16L = hn::FixedTag<float, 4>;
constexpr int kAccVecs = 4;
#endif

HWY_INLINE hn::Vec<DF16L> LoadF16(const uint16_t* p) { return f16::LoadF16(DF16L(), p); }
HWY_INLINE void StoreF16(hn::Vec<DF16L> v, uint16_t* p) { f16::StoreF16(DF16L(), v, p); }

float DotF16Ggml(const uint16_t* x, const uint16_t* y, int64_t n) {
  const DF16L df;
  constexpr int64_t N = 16 / kAccVecs;
  const int64_t np = n & ~int64_t{63};
  double sum = 0.0;
  if (np > 0) {
    hn::Vec<DF16L> acc[4][kAccVecs];
    for (auto& row : acc) {
      for (auto& v : row) v = hn::Zero(df);
    }
    for (int64_t i = 0; i < np; i += 64) {
      DM_UNROLL
      for (int j = 0; j < 4; ++j) {
        DM_UNROLL
        for (int v = 0; v < kAccVecs; ++v) {
          const int64_t k = i + 16 * j + N * v;
          // F16 x F16 is exact in float, so MulAdd gives std::fma's sum with or without FMA.
          acc[j][v] = hn::MulAdd(LoadF16(x + k), LoadF16(y + k), acc[j][v]);
        }
      }
    }
    HWY_ALIGN float a[16];
    for (int v = 0; v < kAccVecs; ++v) {
      hn::Store(hn::Add(hn::Add(acc[0][v], acc[2][v]), hn::Add(acc[1][v], acc[3][v])), df,
                a + N * v);
    }
    sum = attention_internal::ReduceLanes16(a);
  }
  for (int64_t i = np; i < n; ++i) sum += static_cast<double>(F16ToF32(x[i]) * F16ToF32(y[i]));
  return static_cast<float>(sum);
}

void ScaleF16(uint16_t* y, float v, int64_t n) {
  const DF16L df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const auto vv = hn::Set(df, v);
  int64_t i = 0;
  for (; i + N <= n; i += N) StoreF16(hn::Mul(LoadF16(y + i), vv), y + i);
  attention_internal::ScaleF16Reference(y + i, v, n - i);
}

void MadF16(uint16_t* y, const uint16_t* x, float v, int64_t n) {
  const DF16L df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const auto vv = hn::Set(df, v);
  int64_t i = 0;
  for (; i + N <= n; i += N)
    StoreF16(f16::FmaForF16(df, LoadF16(x + i), vv, LoadF16(y + i)), y + i);
  attention_internal::MadF16Reference(y + i, x + i, v, n - i);
}

void RoundToF16(const float* x, float* out, int64_t n) {
  const DF16L df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(f16::Round(df, hn::LoadU(df, x + i)), df, out + i);
  for (; i < n; ++i) out[i] = F16ToF32(F32ToF16(x[i]));
}
#else
float DotF16Ggml(const uint16_t* x, const uint16_t* y, int64_t n) {
  return attention_internal::DotF16Reference(x, y, n);
}
void ScaleF16(uint16_t* y, float v, int64_t n) { attention_internal::ScaleF16Reference(y, v, n); }
void MadF16(uint16_t* y, const uint16_t* x, float v, int64_t n) {
  attention_internal::MadF16Reference(y, x, v, n);
}
void RoundToF16(const float* x, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = F16ToF32(F32ToF16(x[i]));
}
#endif

// F32 -> BF16 with ggml's rounding (nearest even, NaN kept quiet), in integer ops.
void ConvertF32ToBF16(const float* x, uint16_t* out, int64_t n) {
  const DF df;
  const hn::RebindToUnsigned<DF> du;
  const hn::RebindToSigned<DF> di;
  const hn::Rebind<uint16_t, DF> d16;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const auto bits = hn::BitCast(du, hn::LoadU(df, x + i));
    const auto odd = hn::And(hn::ShiftRight<16>(bits), hn::Set(du, 1));
    const auto rounded = hn::ShiftRight<16>(hn::Add(bits, hn::Add(odd, hn::Set(du, 0x7fff))));
    const auto quiet = hn::Or(hn::ShiftRight<16>(bits), hn::Set(du, 64));
    const auto is_nan =
        hn::Gt(hn::BitCast(di, hn::And(bits, hn::Set(du, 0x7fffffffu))), hn::Set(di, 0x7f800000));
    const auto r = hn::IfThenElse(hn::RebindMask(du, is_nan), quiet, rounded);
    hn::StoreU(hn::DemoteTo(d16, hn::BitCast(di, r)), d16, out + i);
  }
  for (; i < n; ++i) out[i] = F32ToBF16(x[i]);
}

void RmsNorm(const float* x, const float* w, float eps, int64_t n, float* out) {
  // Squares in float, summed in double (ggml_float), as ggml's rms_norm.
  const hn::ScalableTag<double> dd;
  const hn::Rebind<float, decltype(dd)> dfh;
  const int64_t Nd = static_cast<int64_t>(hn::Lanes(dd));
  auto s0 = hn::Zero(dd), s1 = hn::Zero(dd);
  int64_t i = 0;
  for (; i + 2 * Nd <= n; i += 2 * Nd) {
    const auto a = hn::LoadU(dfh, x + i), b = hn::LoadU(dfh, x + i + Nd);
    s0 = hn::Add(s0, hn::PromoteTo(dd, hn::Mul(a, a)));
    s1 = hn::Add(s1, hn::PromoteTo(dd, hn::Mul(b, b)));
  }
  double sum = hn::GetLane(hn::SumOfLanes(dd, hn::Add(s0, s1)));
  for (; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  const float scale = 1.0f / std::sqrt(mean + eps);

  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const auto vs = hn::Set(df, scale);
  for (i = 0; i + N <= n; i += N) {
    hn::StoreU(hn::Mul(hn::Mul(hn::LoadU(df, x + i), vs), hn::LoadU(df, w + i)), df, out + i);
  }
  for (; i < n; ++i) out[i] = (x[i] * scale) * w[i];
}

void SwiGlu(const float* gate, const float* up, int64_t n, float* out) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const auto one = hn::Set(df, 1.0f), limit = hn::Set(df, 100.0f);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const auto g = hn::LoadU(df, gate + i);
    // Exp is valid up to +104 (inf beyond 88.7, as std::exp); clamp to stay in range.
    const auto e = hn::Exp(df, hn::Min(hn::Neg(g), limit));
    hn::StoreU(hn::Mul(hn::Div(g, hn::Add(one, e)), hn::LoadU(df, up + i)), df, out + i);
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

// ---- Float-weight matmul: NR rows x NT tokens register tile ------------------------------

template <int NR, int NT, typename T>
HWY_INLINE void FloatTile(const T* w, int64_t wstride, const T* a, int64_t astride, int64_t n,
                          float* out, int64_t out_stride) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  hn::Vec<DF> acc[NR][NT];
  DM_UNROLL
  for (int r = 0; r < NR; ++r) {
    DM_UNROLL
    for (int t = 0; t < NT; ++t) acc[r][t] = hn::Zero(df);
  }
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    hn::Vec<DF> av[NT];
    DM_UNROLL
    for (int t = 0; t < NT; ++t) av[t] = LoadAsF32(df, a + t * astride + i);
    DM_UNROLL
    for (int r = 0; r < NR; ++r) {
      const auto wv = LoadAsF32(df, w + r * wstride + i);
      DM_UNROLL
      for (int t = 0; t < NT; ++t) acc[r][t] = hn::MulAdd(wv, av[t], acc[r][t]);
    }
  }
  DM_UNROLL
  for (int r = 0; r < NR; ++r) {
    DM_UNROLL
    for (int t = 0; t < NT; ++t) {
      float sum = hn::GetLane(hn::SumOfLanes(df, acc[r][t]));
      for (int64_t j = i; j < n; ++j) {
        sum += ScalarAsF32(w + r * wstride + j) * ScalarAsF32(a + t * astride + j);
      }
      out[t * out_stride + r] = sum;
    }
  }
}

template <int NT, typename T>
HWY_INLINE void FloatRowsNT(const T* w, int64_t n, int64_t r0, int64_t r1, const T* a, float* out,
                            int64_t out_stride) {
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) FloatTile<4, NT>(w + r * n, n, a, n, n, out + r, out_stride);
  for (; r < r1; ++r) FloatTile<1, NT>(w + r * n, n, a, n, n, out + r, out_stride);
}

template <typename T>
void MatMulFloat(const void* wv, int64_t n, int64_t r0, int64_t r1, const void* av,
                 int64_t n_tokens, float* out, int64_t out_stride) {
  const T* w = static_cast<const T*>(wv);
  const T* a = static_cast<const T*>(av);
  ForTokenTiles<4>(n_tokens, [&](auto nt, int64_t t) {
    const T* at = a + t * n;
    float* o = out + t * out_stride;
    FloatRowsNT<nt>(w, n, r0, r1, at, o, out_stride);
  });
}

// ---- Activation quantization (bit-exact with the reference) ------------------------------

// Q8_0 numerics into the PreparedQ8_0 arrays.
void PrepareQ8_0(GgmlType wtype, const float* x, int64_t n, uint8_t* out) {
  const DF df;
  const hn::RebindToSigned<DF> di;
  const hn::Rebind<int8_t, DF> d8;
  const int N = static_cast<int>(hn::Lanes(df));
  const int32_t offset = PreparedQ8_0::Offset(wtype);
  auto* qs = reinterpret_cast<int8_t*>(out);
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x + 32 * b;
    auto vmax = hn::Zero(df);
    for (int i = 0; i < 32; i += N) vmax = hn::Max(vmax, hn::Abs(hn::LoadU(df, xb + i)));
    const float amax = hn::GetLane(hn::MaxOfLanes(df, vmax));
    const float d = F16ToF32(F32ToF16(amax / 127.0f));
    const auto id = hn::Set(df, amax != 0.0f ? 127.0f / amax : 0.0f);
    auto sum = hn::Zero(di);
    for (int i = 0; i < 32; i += N) {
      const auto q = hn::NearestInt(hn::Mul(hn::LoadU(df, xb + i), id));
      sum = hn::Add(sum, q);
      hn::StoreU(hn::DemoteTo(d8, q), d8, qs + 32 * b + i);
    }
    const int32_t corr = -offset * hn::GetLane(hn::SumOfLanes(di, sum));
    std::memcpy(out + n + 4 * b, &d, 4);
    std::memcpy(out + n + 4 * (n / 32) + 4 * b, &corr, 4);
  }
}

// llama.cpp's quantize_row_q8_K.
void PrepareQ8_K(const float* x, int64_t n, BlockQ8_K* y) {
  const DF df;
  const hn::CappedTag<float, 16> dq;
  const hn::RebindToSigned<decltype(dq)> di;
  const hn::Rebind<int8_t, decltype(dq)> d8;
  const int N = static_cast<int>(hn::Lanes(df));
  const int NQ = static_cast<int>(hn::Lanes(dq));
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    auto vmax = hn::Zero(df);
    for (int i = 0; i < kQK_K; i += N) vmax = hn::Max(vmax, hn::Abs(hn::LoadU(df, x + i)));
    const float amax = hn::GetLane(hn::MaxOfLanes(df, vmax));
    BlockQ8_K& o = y[b];
    if (amax == 0.0f) {
      std::memset(&o, 0, sizeof(o));
      continue;
    }
    float max = 0.0f;  // first element of largest magnitude, with its sign
    for (int i = 0; i < kQK_K; i += N) {
      intptr_t k = hn::FindFirstTrue(df, hn::Eq(hn::Abs(hn::LoadU(df, x + i)), hn::Set(df, amax)));
      if (k >= 0) {
        max = x[i + k];
        break;
      }
    }
    const float iscale = -127.0f / max;
    const auto vi = hn::Set(dq, iscale);
    const auto q_max = hn::Set(di, 127);
    for (int g = 0; g < kQK_K / 16; ++g) {
      auto sum = hn::Zero(di);
      for (int i = 16 * g; i < 16 * g + 16; i += NQ) {
        const auto q = hn::Min(hn::NearestInt(hn::Mul(hn::LoadU(dq, x + i), vi)), q_max);
        sum = hn::Add(sum, q);
        hn::StoreU(hn::DemoteTo(d8, q), d8, o.qs + i);
      }
      o.bsums[g] = static_cast<int16_t>(hn::GetLane(hn::SumOfLanes(di, sum)));
    }
    o.d = 1.0f / iscale;
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace dormouse
HWY_AFTER_NAMESPACE();

#endif  // include guard toggle
