// Builds GGUF files byte by byte for tests: well-formed ones to parse, and hostile ones
// (the builder writes whatever counts and offsets it is told, consistent or not).
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "engine/gguf.h"

namespace dormouse::testing_util {

class GgufBuilder {
 public:
  explicit GgufBuilder(uint32_t version = 3) : version_(version) {}

  // ---- metadata ----
  // "general.alignment" also sets the alignment the builder pads to.
  GgufBuilder& U32(const std::string& key, uint32_t v) {
    if (key == "general.alignment" && v > 0 && (v & (v - 1)) == 0) alignment_ = v;
    return Scalar(key, 4, v);
  }
  GgufBuilder& I32(const std::string& key, int32_t v) { return Scalar(key, 5, v); }
  GgufBuilder& U64(const std::string& key, uint64_t v) { return Scalar(key, 10, v); }
  GgufBuilder& F32(const std::string& key, float v) { return Scalar(key, 6, v); }
  GgufBuilder& Bool(const std::string& key, bool v) { return Scalar(key, 7, uint8_t{v}); }
  GgufBuilder& Str(const std::string& key, const std::string& v) {
    Key(key, 8);
    PutString(kv_, v);
    ++n_kv_;
    return *this;
  }
  GgufBuilder& StrArray(const std::string& key, const std::vector<std::string>& v) {
    Key(key, 9);
    Put(kv_, uint32_t{8});
    Put(kv_, uint64_t{v.size()});
    for (const std::string& s : v) PutString(kv_, s);
    ++n_kv_;
    return *this;
  }
  GgufBuilder& F32Array(const std::string& key, const std::vector<float>& v) {
    Key(key, 9);
    Put(kv_, uint32_t{6});
    Put(kv_, uint64_t{v.size()});
    for (float f : v) Put(kv_, f);
    ++n_kv_;
    return *this;
  }
  GgufBuilder& I32Array(const std::string& key, const std::vector<int32_t>& v) {
    Key(key, 9);
    Put(kv_, uint32_t{5});
    Put(kv_, uint64_t{v.size()});
    for (int32_t i : v) Put(kv_, i);
    ++n_kv_;
    return *this;
  }
  // Raw bytes appended to the metadata section, counted as `entries` key-values.
  GgufBuilder& RawKv(const std::vector<uint8_t>& bytes, uint64_t entries) {
    kv_.insert(kv_.end(), bytes.begin(), bytes.end());
    n_kv_ += entries;
    return *this;
  }

  // ---- tensors ----
  // Adds a tensor whose data is `bytes`, placed at the next aligned offset.
  GgufBuilder& Tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type,
                      const std::vector<uint8_t>& bytes) {
    uint64_t offset = (data_.size() + alignment_ - 1) / alignment_ * alignment_;
    data_.resize(offset);
    data_.insert(data_.end(), bytes.begin(), bytes.end());
    return TensorInfo(name, std::move(dims), type, offset);
  }
  GgufBuilder& F32Tensor(const std::string& name, std::vector<uint64_t> dims,
                         const std::vector<float>& values) {
    std::vector<uint8_t> bytes(values.size() * 4);
    std::memcpy(bytes.data(), values.data(), bytes.size());
    return Tensor(name, std::move(dims), 0, bytes);
  }
  // Only the info; the data may or may not be there (hostile files).
  GgufBuilder& TensorInfo(const std::string& name, std::vector<uint64_t> dims, uint32_t type,
                          uint64_t offset) {
    PutString(ti_, name);
    Put(ti_, static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) Put(ti_, d);
    Put(ti_, type);
    Put(ti_, offset);
    ++n_tensors_;
    return *this;
  }

  GgufBuilder& OverrideCounts(uint64_t n_tensors, uint64_t n_kv) {
    override_tensors_ = n_tensors;
    override_kv_ = n_kv;
    return *this;
  }

  std::vector<uint8_t> Bytes() const {
    std::vector<uint8_t> out;
    Put(out, uint32_t{0x46554747});
    Put(out, version_);
    Put(out, override_tensors_ ? *override_tensors_ : n_tensors_);
    Put(out, override_kv_ ? *override_kv_ : n_kv_);
    out.insert(out.end(), kv_.begin(), kv_.end());
    out.insert(out.end(), ti_.begin(), ti_.end());
    if (n_tensors_ > 0) {
      out.resize((out.size() + alignment_ - 1) / alignment_ * alignment_);
      out.insert(out.end(), data_.begin(), data_.end());
    }
    return out;
  }

  void WriteTo(const std::filesystem::path& path) const { WriteBytes(path, Bytes()); }

  static void WriteBytes(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
  }

  template <typename T>
  static void Put(std::vector<uint8_t>& out, T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.insert(out.end(), b, b + sizeof(T));
  }
  static void PutString(std::vector<uint8_t>& out, const std::string& s) {
    Put(out, uint64_t{s.size()});
    out.insert(out.end(), s.begin(), s.end());
  }

 private:
  template <typename T>
  GgufBuilder& Scalar(const std::string& key, uint32_t type, T v) {
    Key(key, type);
    Put(kv_, v);
    ++n_kv_;
    return *this;
  }
  void Key(const std::string& key, uint32_t type) {
    PutString(kv_, key);
    Put(kv_, type);
  }

  uint32_t version_;
  uint64_t alignment_ = 32;
  uint64_t n_kv_ = 0, n_tensors_ = 0;
  std::optional<uint64_t> override_tensors_, override_kv_;
  std::vector<uint8_t> kv_, ti_, data_;
};

}  // namespace dormouse::testing_util
