// The engine's hot kernels, behind one dispatch point each. Every function here has a
// plain scalar reference in namespace `reference` (kernels_reference.cc) and SIMD
// variants chosen at run time with Highway's dynamic dispatch (kernels.cc); tests hold
// every variant to its reference (tests/engine/kernels_test.cc).
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/ggml_types.h"

namespace dormouse {

// ---- Matrix x activations -------------------------------------------------------------
// Weights are GGUF rows of `n` elements of `wtype` (n a multiple of the block size);
// activations are first converted once per matmul to the form the weight type's dot
// product consumes (e.g. Q8_0 blocks for Q4_0/Q8_0 weights, Q8_K blocks for K-quants,
// plain F32 for float weights), then every thread computes its share of output rows.

// Bytes of one prepared activation row of n elements for weights of `wtype`.
size_t PreparedRowBytes(GgmlType wtype, int64_t n);

// Converts x[0..n) into `out` (PreparedRowBytes(wtype, n) bytes).
void PrepareActivations(GgmlType wtype, const float* x, int64_t n, void* out);

// True when PrepareActivations writes the same bytes for weights of types a and b (e.g.
// Q8_K blocks for every K-quant), so that matmuls of both can share one prepared input.
bool SamePreparedActivations(GgmlType a, GgmlType b);

// For each token t in [0, n_tokens) and weight row r in [row_begin, row_end):
//   out[t * out_stride + r] = dot(weight row r, activation t)
// `w` points at row 0; `act` at token 0's prepared row, rows PreparedRowBytes apart.
void MatMulRows(GgmlType wtype, const void* w, int64_t n, int64_t row_begin, int64_t row_end,
                const void* act, int64_t n_tokens, float* out, int64_t out_stride);

// Reads [p, p + bytes) once as the decode kernels read weights (the widest vector loads,
// the same software prefetch) and returns the sum of its 64-bit words, so that the reads
// cannot be skipped. bench --bandwidth times it. `bytes` is a multiple of 8.
uint64_t StreamRead(const void* p, int64_t bytes);

// ---- Vector kernels (attention, norms, activations) -----------------------------------
float DotF32(const float* a, const float* b, int64_t n);
float DotF32F16(const float* a, const uint16_t* b_f16, int64_t n);
void AxpyF32(float alpha, const float* x, float* y, int64_t n);         // y += alpha * x
void AxpyF16(float alpha, const uint16_t* x_f16, float* y, int64_t n);  // y += alpha * x
void ConvertF32ToF16(const float* x, uint16_t* out, int64_t n);
// out = x / sqrt(mean(x^2) + eps) * w   (out may alias x)
void RmsNorm(const float* x, const float* w, float eps, int64_t n, float* out);
// out = silu(gate) * up   (out may alias gate)
void SwiGlu(const float* gate, const float* up, int64_t n, float* out);

// F16 steps of attention.cc's portable path, bit-identical to their scalar references there
// (attention_internal::DotF16Reference, ScaleF16Reference, MadF16Reference): ggml's F16
// dot product in its AVX-512 order, y = f16(y * v), y = f16(fma(x, v, y)).
float DotF16Ggml(const uint16_t* x, const uint16_t* y, int64_t n);
void ScaleF16(uint16_t* y, float v, int64_t n);
void MadF16(uint16_t* y, const uint16_t* x, float v, int64_t n);
// out = f32(f16(x)), as the vector kernels round their F16 accumulators (NaN payloads aside).
void RoundToF16(const float* x, float* out, int64_t n);

// Name of the SIMD target the dispatcher picked ("AVX3_DL", "AVX2", ...), for `info`.
const char* KernelTargetName();

}  // namespace dormouse
