// Pieces of the snapshot format shared by full snapshots (snapshot.cc) and the journal of
// incremental ones (snapshot_delta.cc).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/kv_cache.h"
#include "store/byte_io.h"
#include "store/snapshot.h"

namespace dormouse::snapshot_internal {

// One K or V span, raw or zstd (when asked for and smaller): u64 raw length, u64 stored
// length, u32 codec, stored bytes.
Status WriteChunk(std::span<const uint8_t> raw, const SnapshotWriteOptions& o,
                  std::vector<uint8_t>& scratch, ByteSink& out);
Status ReadChunk(ByteSource& in, std::span<uint8_t> dst, std::vector<uint8_t>& scratch);

// One layer's K or V rows as one chunk, gathered where a sliding-window ring wraps.
Status WriteRows(const KvCache::Spans& spans, const SnapshotWriteOptions& o,
                 std::vector<uint8_t>& gather, std::vector<uint8_t>& scratch, ByteSink& out);
// Reads a chunk of `skip` + the spans' bytes into the spans, dropping the first `skip`.
Status ReadRows(ByteSource& in, size_t skip, const KvCache::Spans& spans,
                std::vector<uint8_t>& gather, std::vector<uint8_t>& scratch);

}  // namespace dormouse::snapshot_internal
