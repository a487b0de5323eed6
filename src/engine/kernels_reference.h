// Plain scalar references of every kernel in kernels.h: the definition the SIMD variants
// are held to (tests/engine/kernels_test.cc). Same signatures and semantics; written for
// clarity, in llama.cpp's order of operations, not for speed.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/ggml_types.h"
#include "engine/quants_k.h"

namespace dormouse::reference {

void PrepareActivations(GgmlType wtype, const float* x, int64_t n, void* out);
void MatMulRows(GgmlType wtype, const void* w, int64_t n, int64_t row_begin, int64_t row_end,
                const void* act, int64_t n_tokens, float* out, int64_t out_stride);

float DotF32(const float* a, const float* b, int64_t n);
float DotF32F16(const float* a, const uint16_t* b_f16, int64_t n);
void AxpyF32(float alpha, const float* x, float* y, int64_t n);
void AxpyF16(float alpha, const uint16_t* x_f16, float* y, int64_t n);
void ConvertF32ToF16(const float* x, uint16_t* out, int64_t n);
void RmsNorm(const float* x, const float* w, float eps, int64_t n, float* out);
void SwiGlu(const float* gate, const float* up, int64_t n, float* out);

// The dot product of one weight row with one prepared activation row.
float DotRow(GgmlType wtype, const void* w_row, const void* act_row, int64_t n);

// Q2_K / Q3_K / Q5_K weights against Q8_K activations (kernels_reference_k.cc).
float DotQ2_K(const BlockQ2_K* w, const BlockQ8_K* a, int64_t n);
float DotQ3_K(const BlockQ3_K* w, const BlockQ8_K* a, int64_t n);
float DotQ5_K(const BlockQ5_K* w, const BlockQ8_K* a, int64_t n);

}  // namespace dormouse::reference
