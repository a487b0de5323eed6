#include "engine/kv_cache.h"

#include <algorithm>

#include "base/checked_math.h"

namespace dormouse {

const char* KvTypeName(KvType t) { return t == KvType::kF16 ? "f16" : "f32"; }

int64_t KvCache::LayerRows(const ModelConfig& c, int64_t layer, int64_t n_ctx, int64_t n_ubatch) {
  if (!c.IsSwa(layer)) return n_ctx;
  return std::min(n_ctx, c.n_swa + std::max<int64_t>(n_ubatch, 1));
}

uint64_t KvCache::BytesFor(const ModelConfig& c, int64_t n_ctx, int64_t n_ubatch, KvType type) {
  uint64_t rows = 0;
  for (int64_t l = 0; l < c.n_layer; ++l) rows += LayerRows(c, l, n_ctx, n_ubatch);
  const uint64_t row = static_cast<uint64_t>(c.kv_dim()) * (type == KvType::kF16 ? 2 : 4);
  auto total = CheckedMul(rows, row);
  return total ? 2 * *total : 0;
}

StatusOr<KvCache> KvCache::CreateOrError(const ModelConfig& c, int64_t n_ctx, int64_t n_ubatch,
                                         KvType type) {
  if (n_ctx < 1) return Status::Errorf("context size {} must be at least 1", n_ctx);
  KvCache kv;
  kv.type_ = type;
  kv.n_ctx_ = n_ctx;
  kv.kv_dim_ = c.kv_dim();
  for (int64_t l = 0; l < c.n_layer; ++l) {
    kv.first_row_.push_back(static_cast<size_t>(kv.total_rows_));
    kv.rows_.push_back(LayerRows(c, l, n_ctx, n_ubatch));
    kv.total_rows_ += static_cast<uint64_t>(kv.rows_.back());
  }
  auto total = CheckedMul(kv.total_rows_, kv.row_bytes());
  if (!total) return Status::Errorf("KV cache for context {} overflows", n_ctx);
  for (ReservedMemory* m : {&kv.k_, &kv.v_}) {
    StatusOr<ReservedMemory> r = ReservedMemory::ReserveOrError(*total);
    if (!r.ok()) {
      return Status::Errorf("cannot reserve a {} MiB KV cache (context {}): {}",
                            2 * *total / (1024 * 1024), n_ctx, r.status().message());
    }
    *m = std::move(r).value();
  }
  return kv;
}

uint64_t KvCache::BytesInUse(int64_t n_pos) const {
  uint64_t rows = 0;
  for (int64_t r : rows_) rows += static_cast<uint64_t>(std::clamp<int64_t>(n_pos, 0, r));
  return 2 * rows * row_bytes();
}

void KvCache::Release(int64_t n_pos) {
  for (size_t l = 0; l < rows_.size(); ++l) {
    const int64_t keep = rows_[l] < n_ctx_ && n_pos > 0 ? rows_[l] : std::min(n_pos, rows_[l]);
    const size_t begin = (first_row_[l] + static_cast<size_t>(keep)) * row_bytes();
    const size_t len = static_cast<size_t>(rows_[l] - keep) * row_bytes();
    k_.Release(begin, len);
    v_.Release(begin, len);
  }
}

uint64_t KvCache::ResidentBytes() const {
  return k_.ResidentBytes(0, k_.size()) + v_.ResidentBytes(0, v_.size());
}

KvCache::Spans KvCache::SpansOf(uint8_t* base, int64_t layer, int64_t first, int64_t end) const {
  const int64_t rows = rows_[static_cast<size_t>(layer)];
  const int64_t n = end - first;
  const int64_t start = first % rows;
  const int64_t head = std::min(n, rows - start);  // rows before the ring wraps
  uint8_t* layer_base = base + first_row_[static_cast<size_t>(layer)] * row_bytes();
  return {std::span<uint8_t>(layer_base + start * row_bytes(), head * row_bytes()),
          std::span<uint8_t>(layer_base, (n - head) * row_bytes())};
}

}  // namespace dormouse
