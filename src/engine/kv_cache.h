// The per-sequence key/value cache: for every layer, one row of kv_dim keys and one of
// values per position, F16 (default) or F32. A global layer holds every position of the
// context; a sliding-window layer (gemma) holds a ring of n_swa + n_ubatch rows (position
// p in row p % rows), so a long conversation does not keep a full-context cache for
// layers that only ever look back n_swa - 1 positions. The ring's extra n_ubatch rows let
// a whole prefill chunk be stored before its first query reads the window, and let a
// context step back (Truncate) by up to n_ubatch positions.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "base/reserved_memory.h"
#include "base/status.h"
#include "engine/model_config.h"

namespace dormouse {

enum class KvType : uint32_t { kF16 = 1, kF32 = 0 };  // numbered like GgmlType
const char* KvTypeName(KvType t);

class KvCache {
 public:
  // Memory is reserved, not committed (ReservedMemory): a page becomes resident when a
  // row in it is first written, so the cache grows with the conversation and a large
  // context costs address space, not RSS, until it is used. Nothing writes rows ahead
  // of the positions evaluated or restored.
  static StatusOr<KvCache> CreateOrError(const ModelConfig& c, int64_t n_ctx, int64_t n_ubatch,
                                         KvType type);
  // Rows a layer keeps for a context of n_ctx (the memory estimate uses this too).
  static int64_t LayerRows(const ModelConfig& c, int64_t layer, int64_t n_ctx, int64_t n_ubatch);
  // Bytes of K and V for every layer, as CreateOrError would reserve (0 on overflow).
  static uint64_t BytesFor(const ModelConfig& c, int64_t n_ctx, int64_t n_ubatch, KvType type);

  KvType type() const { return type_; }
  int64_t n_ctx() const { return n_ctx_; }
  int64_t n_layer() const { return static_cast<int64_t>(rows_.size()); }
  int64_t kv_dim() const { return kv_dim_; }
  size_t elem_bytes() const { return type_ == KvType::kF16 ? 2 : 4; }
  size_t row_bytes() const { return static_cast<size_t>(kv_dim_) * elem_bytes(); }
  // Rows held by `layer`: n_ctx, or the ring's size for a sliding-window layer.
  int64_t rows(int64_t layer) const { return rows_[static_cast<size_t>(layer)]; }
  bool is_ring(int64_t layer) const { return rows(layer) < n_ctx_; }
  // Bytes reserved (K and V, all layers).
  uint64_t capacity_bytes() const { return 2ull * total_rows_ * row_bytes(); }
  // Bytes of K and V that positions [0, n_pos) occupy (a ring layer: its rows at most).
  uint64_t BytesInUse(int64_t n_pos) const;
  // Gives back the memory of the rows past positions [0, n_pos) (whole pages only); a
  // ring layer's only when n_pos is 0. Later writes commit pages again.
  void Release(int64_t n_pos);
  // Bytes of K and V actually resident (mincore): what the tests hold BytesInUse to.
  uint64_t ResidentBytes() const;

  uint8_t* KRow(int64_t layer, int64_t pos) { return Row(k_.data(), layer, pos); }
  uint8_t* VRow(int64_t layer, int64_t pos) { return Row(v_.data(), layer, pos); }
  const uint8_t* KRow(int64_t layer, int64_t pos) const { return Row(k_.data(), layer, pos); }
  const uint8_t* VRow(int64_t layer, int64_t pos) const { return Row(v_.data(), layer, pos); }
  // The layer's row 0: attention addresses row (pos % rows) from here.
  const uint8_t* KBase(int64_t layer) const { return Row(k_.data(), layer, 0); }
  const uint8_t* VBase(int64_t layer) const { return Row(v_.data(), layer, 0); }

  // The rows of positions [first, end) of one layer's keys or values, in position
  // order: one span, or two where a ring wraps (the second may be empty). end - first
  // must not exceed rows(layer). This is what a snapshot writes and a restore fills.
  using Spans = std::array<std::span<uint8_t>, 2>;
  Spans KSpans(int64_t layer, int64_t first, int64_t end) const {
    return SpansOf(k_.data(), layer, first, end);
  }
  Spans VSpans(int64_t layer, int64_t first, int64_t end) const {
    return SpansOf(v_.data(), layer, first, end);
  }

  KvCache(KvCache&&) = default;
  KvCache& operator=(KvCache&&) = default;

 private:
  KvCache() = default;
  uint8_t* Row(uint8_t* base, int64_t layer, int64_t pos) const {
    const size_t l = static_cast<size_t>(layer);
    return base + (first_row_[l] + static_cast<size_t>(pos % rows_[l])) * row_bytes();
  }
  Spans SpansOf(uint8_t* base, int64_t layer, int64_t first, int64_t end) const;

  KvType type_ = KvType::kF16;
  int64_t n_ctx_ = 0;
  int64_t kv_dim_ = 0;
  std::vector<int64_t> rows_;      // (n_layer)
  std::vector<size_t> first_row_;  // (n_layer): the layer's row 0 within k_ / v_
  uint64_t total_rows_ = 0;
  ReservedMemory k_;
  ReservedMemory v_;
};

}  // namespace dormouse
