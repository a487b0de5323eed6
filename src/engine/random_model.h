// Random, well-formed llama-family GGUF files of any shape and tensor type, for benchmarks
// (`dormouse make-gguf`): finite scales, weights of realistic magnitude (rows of unit
// norm, norms near 1), quantized through QuantizeRow, and a tokenizer copied from another
// GGUF or a synthetic SentencePiece-style one.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"
#include "engine/ggml_types.h"

namespace dormouse {

class GgufFile;

struct RandomModelSpec {
  int64_t n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, n_ff = 0, n_vocab = 0;
  int64_t n_ctx = 2048;
  float rope_freq_base = 10000.0f;
  float rms_eps = 1e-5f;
  // A tensor type ("Q5_K") or llama-quantize file type ("Q4_K_M"): as llama-quantize, a
  // K-quant name means its _M mix (output Q6_K, more bits in some attn_v/ffn_down/
  // attn_output tensors); `pure` puts every matrix in the named type instead.
  std::string type = "Q8_0";
  bool pure = false;
  // No output.weight: the output reuses token_embd (Llama 3.2 1B, Qwen2.5 0.5B), which then
  // takes the output's type, as llama-quantize gives it.
  bool tied_output = false;
  uint64_t seed = 1;
};

// The shape (and vocabulary size) of an existing llama-family file.
StatusOr<RandomModelSpec> SpecLikeOrError(const GgufFile& like);

// Type of the 2-D tensor `name` (e.g. "blk.3.attn_v.weight") in layer `layer` (-1 for
// token_embd / output) of a spec; an error names an unknown or unsupported type.
StatusOr<GgmlType> TensorTypeOrError(const RandomModelSpec& spec, const std::string& name,
                                     int64_t layer);

// Writes the model to `path` (atomically). The tokenizer's `tokenizer.*` metadata comes
// from `tokenizer` when given (padded with control tokens up to n_vocab), else a synthetic
// one (n_vocab >= 260).
Status WriteRandomModelOrError(const RandomModelSpec& spec, const GgufFile* tokenizer,
                               const std::string& path);

}  // namespace dormouse
