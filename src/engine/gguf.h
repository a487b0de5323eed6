// GGUF v2/v3 reader. The file is untrusted: every count, length and offset is checked
// (overflow-safe) before use, and any problem comes back as an error naming the file.
// Tensor data stays in the read-only mapping and is used in place.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/mapped_file.h"
#include "base/status.h"
#include "engine/ggml_types.h"

namespace dormouse {

enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

struct GgufValue;

// Arrays keep elements in the vector that fits their type, so a 150k-entry vocabulary
// is one vector<string>, not 150k variants.
struct GgufArray {
  GgufValueType elem_type = GgufValueType::kUint8;
  std::vector<std::string> strings;  // kString
  std::vector<int64_t> ints;         // all integer types and kBool (uint64 as bit pattern)
  std::vector<double> floats;        // kFloat32, kFloat64
  std::vector<GgufValue> arrays;     // nested arrays (rare)
  uint64_t size() const;
};

struct GgufValue {
  GgufValueType type = GgufValueType::kUint8;
  // Integers and bools in `integer` (uint64 as bit pattern), floats in `real`.
  std::variant<int64_t, double, std::string, GgufArray> data;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> dims;  // dims[0] is the contiguous (row) length, as in ggml's ne[]
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;  // relative to the start of the tensor data section
  uint64_t n_elements = 0;
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;  // inside the mapping; valid while the GgufFile lives
  uint32_t raw_type = 0;          // the type id as stored (== type when known_type)
  bool known_type = true;         // false only in DescribeOrError's result: no data bound
};

class GgufFile {
 public:
  // Maps and parses `path`. Accepts files with no tensors (vocabulary-only GGUFs).
  static StatusOr<GgufFile> OpenOrError(const std::string& path);
  // For describing a file (`dormouse info`): like OpenOrError, but tensors of types this
  // build cannot read are listed (known_type false, no data) instead of refused. Never
  // bind a model to the result: Model::FromGguf refuses it.
  static StatusOr<GgufFile> DescribeOrError(const std::string& path);
  // Parses an already mapped file (tests and fuzzers use this).
  static StatusOr<GgufFile> ParseOrError(MappedFile file);
  // Parses bytes the caller keeps alive for the lifetime of the result (fuzzing).
  static StatusOr<GgufFile> ParseBytesOrError(const uint8_t* data, uint64_t size,
                                              const std::string& name);
  // Parses metadata and tensor infos from the first `available` bytes of a
  // `file_size`-byte file (a header read without mapping the file). Tensor ranges are
  // checked against `file_size`; tensors have no data (data == nullptr). An error when
  // the header does not fit in `available` bytes: read more and retry.
  static StatusOr<GgufFile> ParseHeaderOrError(const uint8_t* data, uint64_t available,
                                               uint64_t file_size, const std::string& name);

  GgufFile() = default;
  GgufFile(GgufFile&&) = default;
  GgufFile& operator=(GgufFile&&) = default;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return size_; }
  const uint8_t* file_data() const { return base_; }

  const std::map<std::string, GgufValue, std::less<>>& metadata() const { return metadata_; }
  const GgufValue* Find(std::string_view key) const;

  // Typed getters: nullopt when the key is absent; an error when present with a type
  // that cannot convert (e.g. a string where an integer belongs).
  StatusOr<std::optional<int64_t>> GetInt(std::string_view key) const;
  StatusOr<std::optional<double>> GetFloat(std::string_view key) const;
  StatusOr<std::optional<bool>> GetBool(std::string_view key) const;
  StatusOr<std::optional<std::string>> GetString(std::string_view key) const;
  // nullptr when absent or not an array.
  const GgufArray* GetArray(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* FindTensor(std::string_view name) const;

 private:
  MappedFile file_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::map<std::string, GgufValue, std::less<>> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;

  friend class GgufParser;
};

}  // namespace dormouse
