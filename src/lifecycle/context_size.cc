#include "lifecycle/context_size.h"

#include <algorithm>

#include "engine/kv_cache.h"
#include "lifecycle/gguf_loader.h"

namespace dormouse {

int64_t DefaultContextSize(const ModelConfig& c, uint64_t weight_bytes, const ContextParams& p,
                           int64_t contexts, uint64_t memory) {
  const int64_t trained = std::max<int64_t>(c.n_ctx_train, 1);
  if (memory == 0) return trained;
  const uint64_t n = static_cast<uint64_t>(std::max<int64_t>(contexts, 1));
  auto fits = [&](int64_t n_ctx) {
    ContextParams at = p;
    at.n_ctx = n_ctx;
    const uint64_t kv =
        KvCache::BytesFor(c, n_ctx, std::min(p.n_ubatch, n_ctx), p.kv_type);  // 0: overflow
    const uint64_t base = EstimateModelBytes(c, weight_bytes, at, contexts);
    return kv > 0 && kv <= (memory - std::min(memory, base)) / n;
  };
  if (fits(trained)) return trained;
  const int64_t floor = std::min(trained, kMinDefaultContext);
  // The longest multiple of the granule that fits (the need grows with the length).
  int64_t lo = floor / kContextGranule, hi = trained / kContextGranule;
  if (lo < 1 || !fits(lo * kContextGranule)) return floor;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (fits(mid * kContextGranule)) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo * kContextGranule;
}

uint64_t MemoryForContexts(MemoryProbe& probe, uint64_t budget) {
  const uint64_t available = probe.System().available;
  if (budget == 0) return available;
  return available == 0 ? budget : std::min(available, budget);
}

void ApplyDefaultContext(Model& model, const ContextParams& p, int64_t contexts, uint64_t memory) {
  model.set_default_n_ctx(
      DefaultContextSize(model.config(), model.weight_bytes(), p, contexts, memory));
}

}  // namespace dormouse
