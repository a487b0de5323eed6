// GELU-gated FFN activation as llama.cpp computes it on the CPU (ggml_vec_geglu_f32 with
// GGML_GELU_FP16): the gate is rounded to F16 and looked up in a 64K-entry table of
// F16-rounded tanh-approximation GELU values; |gate| >= 10 bypasses the table. A table
// lookup has nothing for SIMD to speed up, so this is the one implementation (and the
// reference that tests/engine/gelu_test.cc holds to the formula).
#pragma once

#include <cstdint>

namespace dormouse {

// out = gelu(gate) * up   (out may alias gate)
void GeluGate(const float* gate, const float* up, int64_t n, float* out);

// The tanh approximation in F32, as ggml_gelu_f32: the table's source.
float GeluF32(float x);

}  // namespace dormouse
