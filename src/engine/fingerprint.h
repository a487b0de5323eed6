// What a saved KV cache belongs to. A snapshot is only valid for the exact weights that
// computed it, so the fingerprint holds the shapes (for a readable mismatch message) and
// two hashes: one of the tensor layout (names, shapes, types, offsets; cheap, from the
// header) and one of the whole file's bytes (the content hash, which the store caches
// per file so a load does not re-read gigabytes).
#pragma once

#include <cstdint>
#include <string>

#include "engine/model.h"

namespace dormouse {

struct Hash128 {
  uint64_t lo = 0, hi = 0;
  bool operator==(const Hash128&) const = default;
  std::string Hex() const;  // 32 hex digits, hi first
  static bool FromHex(const std::string& hex, Hash128* out);
};

struct ModelFingerprint {
  std::string arch;
  int64_t n_vocab = 0, n_embd = 0, n_layer = 0, n_ff = 0;
  int64_t n_head = 0, n_head_kv = 0, head_dim = 0, rope_dim = 0;
  uint64_t layout_hash = 0;
  Hash128 content_hash;

  bool operator==(const ModelFingerprint&) const = default;
  // Why `other` (e.g. a snapshot's) does not match this one, or "" when it does.
  std::string Mismatch(const ModelFingerprint& other) const;
  std::string Describe() const;  // "llama n_layer 8 n_embd 512 ... content 1f2e..."

  // Shapes and layout hash from the model; content_hash left for the caller to fill
  // (from a cache, or with HashFileContent).
  static ModelFingerprint OfModel(const Model& model);
};

// XXH3-128 of every byte of the model file (reads the whole mapping).
Hash128 HashFileContent(const GgufFile& gguf);

}  // namespace dormouse
