// Shared by the scalar reference (kernels_reference.cc), the SIMD kernels (kernels*.cc) and
// their tests: the layout of prepared activation rows, and the list of compiled targets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "engine/ggml_types.h"

namespace dormouse {

// Decode streams every weight from memory once per token. The hardware prefetcher alone
// held the 1B decode at ~35 GB/s where a read loop reaches ~50: the decode kernels (and
// StreamRead, bench's read loop) also ask for the lines this many bytes ahead of the ones
// they read. Past a row's end that is the next row, which the same thread reads next. 1B
// Q4_K_M decode, best of alternating runs: without 47 t/s, 2 KB ahead 54, 4 KB 57. Later,
// timing the kernels alone against a read of the same rows in one process (2 threads,
// best of 20): 8 KB ahead read 0.88 of it where 4 KB read 0.82-0.86 (Q4_K_M), and 12-16 KB
// no better.
inline constexpr int kDecodePrefetchBytes = 8192;

// Where PrefetchAhead puts the lines: L1 (prefetcht0) or L2 (prefetcht1). Measured as
// above: 1B Q8_0 read 0.95-1.0 of the read loop's rate into L2, 0.89-0.93 into L1; 1B
// Q4_K_M 0.77-0.80 into L2. (Our guess: Q8_0 does little work per byte, and prefetches
// into L1 take the miss buffers its own loads need; the K-quants' loads need the lines in
// L1 by the time they come.)
enum class PrefetchTo { kL1, kL2 };

// Prefetches the cache lines of [p, p + kBytes) shifted kDecodePrefetchBytes ahead.
template <size_t kBytes, PrefetchTo kTo = PrefetchTo::kL1>
inline void PrefetchAhead(const void* p) {
  const char* c = static_cast<const char*>(p) + kDecodePrefetchBytes;
#pragma GCC unroll 16
  for (size_t o = 0; o < kBytes; o += 64) {
    __builtin_prefetch(c + o, 0, kTo == PrefetchTo::kL1 ? 3 : 2);
  }
}

// Calls fn(std::integral_constant<int, k>{}) with k = count, for 1 <= count <= kMax: the
// kernels take their token count as a template argument.
template <int kMax, typename F>
inline void WithTokenCount(int64_t count, F&& fn) {
  if constexpr (kMax > 1) {
    if (count < kMax) return WithTokenCount<kMax - 1>(count, fn);
  }
  fn(std::integral_constant<int, kMax>{});
}

// Calls fn(nt, t) for the token tiles t = 0, kMax, 2 kMax... of [0, n_tokens), nt an
// std::integral_constant of the tile's count (kMax but for the last).
template <int kMax, typename F>
inline void ForTokenTiles(int64_t n_tokens, F&& fn) {
  for (int64_t t = 0; t < n_tokens; t += kMax) {
    WithTokenCount<kMax>(n_tokens - t < kMax ? n_tokens - t : kMax, [&](auto nt) { fn(nt, t); });
  }
}

// The form of activations a weight type is multiplied with: what PrepareActivations writes
// for it. The one table of it; the preparers, row sizes and SamePreparedActivations switch
// on the form. kNone: not a matmul weight type.
enum class ActivationForm { kNone, kF32, kF16, kBF16, kQ8_0, kQ8_K, kQ8_1 };

inline ActivationForm ActivationFormOf(GgmlType t) {
  switch (t) {
    case GgmlType::kF32:
      return ActivationForm::kF32;
    case GgmlType::kF16:
      return ActivationForm::kF16;
    case GgmlType::kBF16:
      return ActivationForm::kBF16;
    case GgmlType::kQ8_0:
    case GgmlType::kQ4_0:
    case GgmlType::kQ5_0:
    case GgmlType::kIQ4_NL:
      return ActivationForm::kQ8_0;  // with the weight's offset folded in (PreparedQ8_0)
    case GgmlType::kQ4_K:
    case GgmlType::kQ6_K:
    case GgmlType::kIQ4_XS:
    case GgmlType::kQ2_K:
    case GgmlType::kQ3_K:
    case GgmlType::kQ5_K:
      return ActivationForm::kQ8_K;
    case GgmlType::kQ4_1:
    case GgmlType::kQ5_1:
      return ActivationForm::kQ8_1;
    default:
      return ActivationForm::kNone;
  }
}

// Prepared activations, one row per token (PreparedRowBytes apart):
//   F32 weights:  n floats.   F16 / BF16 weights: n f16 / bf16 values (as llama.cpp's
//                 vec_dot_type: the activations are rounded to the weight's float type).
//   Q4_K / Q6_K:  n / 256 BlockQ8_K (llama.cpp's quantize_row_q8_K).
//   Q8_0 / Q4_0 / Q5_0 / IQ4_NL:  Q8_0 numerics (llama.cpp's quantize_row_q8_0) stored as
//                 arrays so SIMD code loads them whole:  int8 qs[n] | float d[n/32] (the
//                 f16-rounded scale) | int32 corr[n/32] = -offset * sum(qs of the block),
//                 where offset (128 for Q8_0 and IQ4_NL, 8 for Q4_0, 16 for Q5_0) is what the
//                 VNNI kernels add to weights to make them unsigned. The reference ignores corr.
//   Q4_1 / Q5_1 (Q8_1), IQ4_XS (Q8_K): see kernels_legacy.h.
struct PreparedQ8_0 {
  const int8_t* qs;
  const float* d;
  const int32_t* corr;

  static PreparedQ8_0 At(const void* row, int64_t n) {
    const auto* p = static_cast<const uint8_t*>(row);
    return {reinterpret_cast<const int8_t*>(p), reinterpret_cast<const float*>(p + n),
            reinterpret_cast<const int32_t*>(p + n + 4 * (n / 32))};
  }
  static size_t Bytes(int64_t n) { return static_cast<size_t>(n + 8 * (n / 32)); }
  // Weight offset folded into corr for weights of type t.
  static int32_t Offset(GgmlType t) {
    return t == GgmlType::kQ8_0 || t == GgmlType::kIQ4_NL ? 128 : t == GgmlType::kQ5_0 ? 16 : 8;
  }
};

// Unaligned scalar loads for the prepared arrays (rows are packed at arbitrary offsets).
template <typename T>
inline T LoadUnaligned(const T* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Highway targets compiled into kernels.cc that this CPU supports, best first; tests call
// hwy::SetSupportedTargetsForTest(t) with each to run every variant.
std::vector<int64_t> CompiledKernelTargets();

}  // namespace dormouse
