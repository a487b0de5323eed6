// The per-sequence key/value cache: for every layer, one row of kv_dim keys and one of
// values per position, F16 (default) or F32. Rows are contiguous per layer so the used
// prefix [0, n_used) of each layer is one span: that is what a snapshot stores and
// restores (sessions), never the whole context.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>

#include "base/status.h"
#include "engine/model_config.h"

namespace dormouse {

enum class KvType : uint32_t { kF16 = 1, kF32 = 0 };  // numbered like GgmlType
const char* KvTypeName(KvType t);

class KvCache {
 public:
  // Memory is reserved with calloc (zero pages stay unmapped until first written), so a
  // large context costs address space, not RSS, until it is used.
  static StatusOr<KvCache> CreateOrError(const ModelConfig& c, int64_t n_ctx, KvType type);

  KvType type() const { return type_; }
  int64_t n_ctx() const { return n_ctx_; }
  int64_t n_layer() const { return n_layer_; }
  int64_t kv_dim() const { return kv_dim_; }
  size_t elem_bytes() const { return type_ == KvType::kF16 ? 2 : 4; }
  size_t row_bytes() const { return static_cast<size_t>(kv_dim_) * elem_bytes(); }
  // Bytes reserved for the whole context (K and V, all layers).
  uint64_t capacity_bytes() const { return 2ull * n_layer_ * n_ctx_ * row_bytes(); }

  uint8_t* KRow(int64_t layer, int64_t pos) { return Row(k_.get(), layer, pos); }
  uint8_t* VRow(int64_t layer, int64_t pos) { return Row(v_.get(), layer, pos); }
  const uint8_t* KRow(int64_t layer, int64_t pos) const { return Row(k_.get(), layer, pos); }
  const uint8_t* VRow(int64_t layer, int64_t pos) const { return Row(v_.get(), layer, pos); }

  // Rows [0, n) of one layer's keys or values: one contiguous span, which is what a
  // snapshot writes and a restore fills.
  std::span<const uint8_t> KRows(int64_t layer, int64_t n) const {
    return {KRow(layer, 0), static_cast<size_t>(n) * row_bytes()};
  }
  std::span<const uint8_t> VRows(int64_t layer, int64_t n) const {
    return {VRow(layer, 0), static_cast<size_t>(n) * row_bytes()};
  }
  std::span<uint8_t> MutableKRows(int64_t layer, int64_t n) {
    return {KRow(layer, 0), static_cast<size_t>(n) * row_bytes()};
  }
  std::span<uint8_t> MutableVRows(int64_t layer, int64_t n) {
    return {VRow(layer, 0), static_cast<size_t>(n) * row_bytes()};
  }

  KvCache(KvCache&&) = default;
  KvCache& operator=(KvCache&&) = default;

 private:
  KvCache() = default;
  struct FreeDeleter {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  uint8_t* Row(uint8_t* base, int64_t layer, int64_t pos) const {
    return base + (static_cast<size_t>(layer) * n_ctx_ + pos) * row_bytes();
  }
  const uint8_t* Row(const uint8_t* base, int64_t layer, int64_t pos) const {
    return base + (static_cast<size_t>(layer) * n_ctx_ + pos) * row_bytes();
  }
  KvType type_ = KvType::kF16;
  int64_t n_ctx_ = 0;
  int64_t n_layer_ = 0;
  int64_t kv_dim_ = 0;
  std::unique_ptr<uint8_t, FreeDeleter> k_;
  std::unique_ptr<uint8_t, FreeDeleter> v_;
};

}  // namespace dormouse
