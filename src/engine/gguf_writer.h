// GGUF v3 writer: metadata and tensors, written atomically (a temporary file renamed into
// place). Tensor data is produced by a callback at write time, one tensor at a time, so a
// file far larger than memory needs only its largest tensor in memory.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/status.h"
#include "engine/ggml_types.h"
#include "engine/gguf.h"

namespace dormouse {

class GgufWriter {
 public:
  // Fills exactly the tensor's byte size at `dst`.
  using Fill = std::function<void(uint8_t* dst)>;

  void U32(const std::string& key, uint32_t v);
  void F32(const std::string& key, float v);
  void Str(const std::string& key, const std::string& v);
  void StrArray(const std::string& key, const std::vector<std::string>& v);
  void F32Array(const std::string& key, const std::vector<float>& v);
  void I32Array(const std::string& key, const std::vector<int32_t>& v);
  // A value read from another file (e.g. its tokenizer); nested arrays are refused.
  Status CopyOrError(const std::string& key, const GgufValue& v);

  // dims[0] is the row length (ggml's ne[0]); it must be a multiple of the type's block.
  Status AddTensorOrError(const std::string& name, std::vector<int64_t> dims, GgmlType type,
                          Fill fill);

  Status WriteOrError(const std::string& path) const;

 private:
  struct TensorEntry {
    std::string name;
    std::vector<int64_t> dims;
    GgmlType type;
    uint64_t offset, bytes;
    Fill fill;
  };
  void Key(const std::string& key, GgufValueType type);

  static constexpr uint64_t kAlignment = 32;
  std::vector<uint8_t> kv_;
  uint64_t n_kv_ = 0;
  std::vector<TensorEntry> tensors_;
  uint64_t data_bytes_ = 0;
};

}  // namespace dormouse
