// Matmul support for the weight types of quants_legacy.h: the Q8_1 prepared-activation
// layout (Q4_1/Q5_1), prepared-row sizes, and the scalar reference dot products, in
// llama.cpp's order of operations. Q5_0 and IQ4_NL use the Q8_0 layout (PreparedQ8_0,
// kernels_internal.h) and IQ4_XS uses Q8_K blocks, as llama.cpp pairs them.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/ggml_types.h"
#include "engine/kernels_internal.h"
#include "engine/quants.h"
#include "engine/quants_legacy.h"

namespace dormouse {

// Q8_1 numerics (QuantizeRowQ8_1) stored as arrays so SIMD code loads them whole:
//   int8 qs[n] | float d[n/32] (the f16-rounded scale) | float s[n/32] (the f16-rounded
//   d * sum(qs)). The weights' m multiplies s; their q are unsigned, so no offset term.
struct PreparedQ8_1 {
  const int8_t* qs;
  const float* d;
  const float* s;

  static PreparedQ8_1 At(const void* row, int64_t n) {
    const auto* p = static_cast<const uint8_t*>(row);
    return {reinterpret_cast<const int8_t*>(p), reinterpret_cast<const float*>(p + n),
            reinterpret_cast<const float*>(p + n + 4 * (n / 32))};
  }
  static size_t Bytes(int64_t n) { return static_cast<size_t>(n + 8 * (n / 32)); }
};

namespace reference {

// Q8_1 activation quantization into the PreparedQ8_1 arrays.
void PrepareQ8_1(const float* x, int64_t n, void* out);

// One weight row of a type of quants_legacy.h against one prepared activation row.
float DotRowLegacy(GgmlType wtype, const void* w_row, const void* act_row, int64_t n);

}  // namespace reference
}  // namespace dormouse
