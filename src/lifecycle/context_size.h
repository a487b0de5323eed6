// How long a context is when nobody says: the one decision the CLI and the server share.
#pragma once

#include <cstdint>

#include "engine/context.h"
#include "engine/model.h"
#include "lifecycle/memory_probe.h"

namespace dormouse {

// Contexts are rounded down to this many tokens, and are never made shorter than
// min(n_ctx_train, kMinDefaultContext) by the memory cap.
inline constexpr int64_t kContextGranule = 256;
inline constexpr int64_t kMinDefaultContext = 2048;

// The model's trained length, capped so that `contexts` KV caches at full length, with the
// weights and forward-pass buffers (EstimateModelBytes), fit in `memory` bytes. The KV
// cache only commits what a conversation uses, but a conversation may grow to the full
// length, and then it should still fit. memory 0: no cap.
int64_t DefaultContextSize(const ModelConfig& c, uint64_t weight_bytes, const ContextParams& p,
                           int64_t contexts, uint64_t memory);

// The memory a model's contexts may grow into: what the system has available now, or the
// budget when that is smaller (budget 0: none).
uint64_t MemoryForContexts(MemoryProbe& probe, uint64_t budget);

// Makes DefaultContextSize the context that `model` gets when ContextParams::n_ctx is 0.
void ApplyDefaultContext(Model& model, const ContextParams& p, int64_t contexts, uint64_t memory);

}  // namespace dormouse
