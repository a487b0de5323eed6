// The dispatch point of every kernel in kernels.h. Bodies live in the -inl.h files, compiled
// once per Highway target (foreach_target); HWY_DYNAMIC_DISPATCH picks the best one the CPU
// supports. AVX3_DL (AVX-512 with VNNI) has hand-written int8 matmuls, AVX2 hand-written
// vpmaddubsw ones for every quantized type (kernels_avx2_*-inl.h); every other target
// uses portable Highway code; HWY_SCALAR uses the scalar reference where Highway's scalar
// rounding differs from llama.cpp's.
#include "engine/kernels.h"

// AVX3_DL is opt-in in Highway 1.0.3. Must precede the first Highway include.
#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "engine/kernels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

// Per-target bodies. kernels_x86_scales-inl.h is included in every pass (its toggle must
// flip with each target), although only the AVX2 and AVX-512 kernels use it.
#include "engine/attention_lanes-inl.h"
#include "engine/attention_rows_vec-inl.h"
#include "engine/kernels_avx2_k-inl.h"
#include "engine/kernels_avx2_legacy-inl.h"
#include "engine/kernels_avx2_prefill-inl.h"
#include "engine/kernels_avx2_prefill_k-inl.h"
#include "engine/kernels_avx2_prefill_legacy-inl.h"
#include "engine/kernels_internal.h"
#include "engine/kernels_k-inl.h"
#include "engine/kernels_legacy.h"
#include "engine/kernels_portable-inl.h"
#include "engine/kernels_quant-inl.h"
#include "engine/kernels_quant_legacy-inl.h"
#include "engine/kernels_reference.h"
#include "engine/kernels_vec-inl.h"
#include "engine/kernels_vnni_decode-inl.h"
#include "engine/kernels_vnni_decode_legacy-inl.h"
#include "engine/kernels_vnni_prefill-inl.h"
#include "engine/kernels_vnni_prefill_legacy-inl.h"
#include "engine/kernels_x86_scales-inl.h"
#include "engine/quants.h"

HWY_BEFORE_NAMESPACE();
namespace dormouse {
namespace HWY_NAMESPACE {

// Below this many tokens the decode kernel (weights streamed once per 4 tokens, no packing)
// wins; from here on packing a 16-row panel pays for itself. Measured end to end with
// `dormouse bench -p N -n 0 -t 2` on llama-58m Q8_0 and Q4_K_M: at 6 the decode path is
// 2.3x faster, at 16 1.1x, at 24 the prefill path is 1.2x faster.
constexpr int64_t kPrefillMinTokens = 24;

int64_t ChosenTarget() { return HWY_TARGET; }

void PrepareActivationsT(GgmlType wtype, const float* x, int64_t n, void* out) {
#if HWY_TARGET == HWY_SCALAR
  reference::PrepareActivations(wtype, x, n, out);
#else
  switch (ActivationFormOf(wtype)) {
    case ActivationForm::kF32:
      std::memcpy(out, x, static_cast<size_t>(n) * sizeof(float));
      return;
    case ActivationForm::kF16:
      return ConvertF32ToF16(x, static_cast<uint16_t*>(out), n);
    case ActivationForm::kBF16:
      return ConvertF32ToBF16(x, static_cast<uint16_t*>(out), n);
    case ActivationForm::kQ8_0:
      return PrepareQ8_0(wtype, x, n, static_cast<uint8_t*>(out));
    case ActivationForm::kQ8_K:
      return PrepareQ8_K(x, n, static_cast<BlockQ8_K*>(out));
    case ActivationForm::kQ8_1:
      return PrepareQ8_1(x, n, static_cast<uint8_t*>(out));
    case ActivationForm::kNone:
      return;
  }
#endif
}

void MatMulRowsT(GgmlType wtype, const void* w, int64_t n, int64_t row_begin, int64_t row_end,
                 const void* act, int64_t n_tokens, float* out, int64_t out_stride) {
  const size_t arow = PreparedRowBytes(wtype, n);
  switch (wtype) {
    case GgmlType::kF32:
      return MatMulFloat<float>(w, n, row_begin, row_end, act, n_tokens, out, out_stride);
    case GgmlType::kF16:
      return MatMulFloat<hwy::float16_t>(w, n, row_begin, row_end, act, n_tokens, out, out_stride);
    case GgmlType::kBF16:
      return MatMulFloat<hwy::bfloat16_t>(w, n, row_begin, row_end, act, n_tokens, out, out_stride);
    default:
      break;
  }
#if HWY_TARGET == HWY_AVX3_DL
  if (n_tokens >= kPrefillMinTokens) {
    return vnni::MatMulQuantPrefill(wtype, w, n, row_begin, row_end, act, arow, n_tokens, out,
                                    out_stride);
  }
  if (IsKQuantLowBits(wtype)) {
    return MatMulKQuantDecode(wtype, w, n, row_begin, row_end, act, arow, n_tokens, out,
                              out_stride);
  }
  vnni::MatMulQuantDecode(wtype, w, n, row_begin, row_end, act, arow, n_tokens, out, out_stride);
#else
#if HWY_TARGET == HWY_AVX2
  if (avx2::HasPrefillKernel(wtype) && n_tokens >= avx2::PrefillMinTokens(wtype)) {
    return avx2::MatMulQuantPrefill(wtype, w, n, row_begin, row_end, act, arow, n_tokens, out,
                                    out_stride);
  }
  if (avx2::HasLegacyKernel(wtype)) {
    return avx2::MatMulLegacy(wtype, w, n, row_begin, row_end, act, arow, n_tokens, out,
                              out_stride);
  }
  if (avx2::HasSuperBlockKernel(wtype)) {
    return avx2::MatMulSuperBlock(wtype, w, n, row_begin, row_end, act, arow, n_tokens, out,
                                  out_stride);
  }
#endif
  if (IsKQuantLowBits(wtype)) {
    return MatMulKQuantDecode(wtype, w, n, row_begin, row_end, act, arow, n_tokens, out,
                              out_stride);
  }
  if (portable::HasTiledKernel(wtype)) {
    return portable::MatMulTiled(wtype, w, n, row_begin, row_end, act, arow, n_tokens, out,
                                 out_stride);
  }
  MatMulLegacyPortable(wtype, w, n, row_begin, row_end, act, arow, n_tokens, out, out_stride);
#endif
}

uint64_t StreamReadT(const void* p, int64_t bytes) {
  namespace hn = hwy::HWY_NAMESPACE;
  const hn::ScalableTag<uint64_t> d;
  const size_t lanes = hn::Lanes(d);
  const auto* w = static_cast<const uint64_t*>(p);
  const int64_t n = bytes / 8;
  auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  const int64_t step = static_cast<int64_t>(4 * lanes);
  int64_t i = 0;
  for (; i + step <= n; i += step) {
    const char* c = reinterpret_cast<const char*>(w + i) + kDecodePrefetchBytes;
    for (int64_t o = 0; o < step * 8; o += 64) __builtin_prefetch(c + o);
    a0 = hn::Add(a0, hn::LoadU(d, w + i));
    a1 = hn::Add(a1, hn::LoadU(d, w + i + lanes));
    a2 = hn::Add(a2, hn::LoadU(d, w + i + 2 * lanes));
    a3 = hn::Add(a3, hn::LoadU(d, w + i + 3 * lanes));
  }
  uint64_t sum = hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
  for (; i < n; ++i) sum += w[i];
  return sum;
}

float DotF32T(const float* a, const float* b, int64_t n) { return DotF32(a, b, n); }
float DotF32F16T(const float* a, const uint16_t* b, int64_t n) { return DotF32F16(a, b, n); }
void AxpyF32T(float alpha, const float* x, float* y, int64_t n) { AxpyF32(alpha, x, y, n); }
void AxpyF16T(float alpha, const uint16_t* x, float* y, int64_t n) { AxpyF16(alpha, x, y, n); }
void ConvertF32ToF16T(const float* x, uint16_t* out, int64_t n) { ConvertF32ToF16(x, out, n); }
float DotF16GgmlT(const uint16_t* x, const uint16_t* y, int64_t n) { return DotF16Ggml(x, y, n); }
void ScaleF16T(uint16_t* y, float v, int64_t n) { ScaleF16(y, v, n); }
void MadF16T(uint16_t* y, const uint16_t* x, float v, int64_t n) { MadF16(y, x, v, n); }
void RoundToF16T(const float* x, float* out, int64_t n) { RoundToF16(x, out, n); }
void RmsNormT(const float* x, const float* w, float eps, int64_t n, float* out) {
  RmsNorm(x, w, eps, n, out);
}
void SwiGluT(const float* gate, const float* up, int64_t n, float* out) {
  SwiGlu(gate, up, n, out);
}

}  // namespace HWY_NAMESPACE
}  // namespace dormouse
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace dormouse {

HWY_EXPORT(ChosenTarget);
HWY_EXPORT(PrepareActivationsT);
HWY_EXPORT(MatMulRowsT);
HWY_EXPORT(StreamReadT);
HWY_EXPORT(DotF32T);
HWY_EXPORT(DotF32F16T);
HWY_EXPORT(AxpyF32T);
HWY_EXPORT(AxpyF16T);
HWY_EXPORT(ConvertF32ToF16T);
HWY_EXPORT(DotF16GgmlT);
HWY_EXPORT(ScaleF16T);
HWY_EXPORT(MadF16T);
HWY_EXPORT(RoundToF16T);
HWY_EXPORT(RmsNormT);
HWY_EXPORT(SwiGluT);
HWY_EXPORT(AttendLanesF16T);
HWY_EXPORT(AttentionLaneWidthT);
HWY_EXPORT(ExpfBatchT);
HWY_EXPORT(AttendRowsF16VecT);
HWY_EXPORT(HaveAttentionRowsVecT);

size_t PreparedRowBytes(GgmlType wtype, int64_t n) {
  switch (ActivationFormOf(wtype)) {
    case ActivationForm::kF32:
      return static_cast<size_t>(n) * sizeof(float);
    case ActivationForm::kF16:
    case ActivationForm::kBF16:
      return static_cast<size_t>(n) * sizeof(uint16_t);
    case ActivationForm::kQ8_0:
      return PreparedQ8_0::Bytes(n);
    case ActivationForm::kQ8_K:
      return static_cast<size_t>(n / kQK_K) * sizeof(BlockQ8_K);
    case ActivationForm::kQ8_1:
      return PreparedQ8_1::Bytes(n);
    case ActivationForm::kNone:
      break;
  }
  return 0;
}

void PrepareActivations(GgmlType wtype, const float* x, int64_t n, void* out) {
  HWY_DYNAMIC_DISPATCH(PrepareActivationsT)(wtype, x, n, out);
}

bool SamePreparedActivations(GgmlType a, GgmlType b) {
  const ActivationForm f = ActivationFormOf(a);
  if (f != ActivationFormOf(b) || f == ActivationForm::kNone) return a == b;
  // Q8_0 rows fold the weight's offset into corr.
  return f != ActivationForm::kQ8_0 || PreparedQ8_0::Offset(a) == PreparedQ8_0::Offset(b);
}

void MatMulRows(GgmlType wtype, const void* w, int64_t n, int64_t row_begin, int64_t row_end,
                const void* act, int64_t n_tokens, float* out, int64_t out_stride) {
  if (row_begin >= row_end || n_tokens <= 0) return;
  HWY_DYNAMIC_DISPATCH(MatMulRowsT)
  (wtype, w, n, row_begin, row_end, act, n_tokens, out, out_stride);
}

uint64_t StreamRead(const void* p, int64_t bytes) {
  return HWY_DYNAMIC_DISPATCH(StreamReadT)(p, bytes);
}
float DotF32(const float* a, const float* b, int64_t n) {
  return HWY_DYNAMIC_DISPATCH(DotF32T)(a, b, n);
}
float DotF32F16(const float* a, const uint16_t* b_f16, int64_t n) {
  return HWY_DYNAMIC_DISPATCH(DotF32F16T)(a, b_f16, n);
}
void AxpyF32(float alpha, const float* x, float* y, int64_t n) {
  HWY_DYNAMIC_DISPATCH(AxpyF32T)(alpha, x, y, n);
}
void AxpyF16(float alpha, const uint16_t* x_f16, float* y, int64_t n) {
  HWY_DYNAMIC_DISPATCH(AxpyF16T)(alpha, x_f16, y, n);
}
void ConvertF32ToF16(const float* x, uint16_t* out, int64_t n) {
  HWY_DYNAMIC_DISPATCH(ConvertF32ToF16T)(x, out, n);
}
float DotF16Ggml(const uint16_t* x, const uint16_t* y, int64_t n) {
  return HWY_DYNAMIC_DISPATCH(DotF16GgmlT)(x, y, n);
}
void ScaleF16(uint16_t* y, float v, int64_t n) { HWY_DYNAMIC_DISPATCH(ScaleF16T)(y, v, n); }
void MadF16(uint16_t* y, const uint16_t* x, float v, int64_t n) {
  HWY_DYNAMIC_DISPATCH(MadF16T)(y, x, v, n);
}
void RoundToF16(const float* x, float* out, int64_t n) {
  HWY_DYNAMIC_DISPATCH(RoundToF16T)(x, out, n);
}
void RmsNorm(const float* x, const float* w, float eps, int64_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(RmsNormT)(x, w, eps, n, out);
}
void SwiGlu(const float* gate, const float* up, int64_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(SwiGluT)(gate, up, n, out);
}

bool AttendLanesF16(const AttentionArgs* a, int n, float* const* out) {
  return n > 0 && HWY_DYNAMIC_DISPATCH(AttendLanesF16T)(a, n, out);
}
bool attention_internal::AttendRowsF16Vec(const AttentionArgs* a, int n, float* const* out) {
  return HWY_DYNAMIC_DISPATCH(AttendRowsF16VecT)(a, n, out);
}
bool attention_internal::HaveAttentionRowsVec() {
  return HWY_DYNAMIC_DISPATCH(HaveAttentionRowsVecT)();
}
int AttentionLaneWidth() { return HWY_DYNAMIC_DISPATCH(AttentionLaneWidthT)(); }
void attention_internal::ExpfBatch(const float* x, float* out, int64_t n) {
  HWY_DYNAMIC_DISPATCH(ExpfBatchT)(x, out, n);
}

const char* KernelTargetName() { return hwy::TargetName(HWY_DYNAMIC_DISPATCH(ChosenTarget)()); }

std::vector<int64_t> CompiledKernelTargets() {
  std::vector<int64_t> out;
  for (int64_t t = hwy::SupportedTargets() & HWY_TARGETS; t != 0; t &= t - 1) {
    out.push_back(t & ~(t - 1));
  }
  return out;
}

}  // namespace dormouse
#endif  // HWY_ONCE
