#include "engine/kv_cache.h"

#include "base/checked_math.h"

namespace dormouse {

const char* KvTypeName(KvType t) { return t == KvType::kF16 ? "f16" : "f32"; }

StatusOr<KvCache> KvCache::CreateOrError(const ModelConfig& c, int64_t n_ctx, KvType type) {
  if (n_ctx < 1) return Status::Errorf("context size {} must be at least 1", n_ctx);
  KvCache kv;
  kv.type_ = type;
  kv.n_ctx_ = n_ctx;
  kv.n_layer_ = c.n_layer;
  kv.kv_dim_ = c.kv_dim();
  auto per_layer = CheckedMul(static_cast<uint64_t>(n_ctx), kv.row_bytes());
  auto total = per_layer ? CheckedMul(*per_layer, static_cast<uint64_t>(c.n_layer)) : per_layer;
  if (!total) return Status::Errorf("KV cache for context {} overflows", n_ctx);
  kv.k_.reset(static_cast<uint8_t*>(std::calloc(*total, 1)));
  kv.v_.reset(static_cast<uint8_t*>(std::calloc(*total, 1)));
  if (!kv.k_ || !kv.v_) {
    return Status::Errorf("cannot allocate a {} MiB KV cache (context {})",
                          2 * *total / (1024 * 1024), n_ctx);
  }
  return kv;
}

}  // namespace dormouse
