// Incremental snapshots: after each request a conversation appends only the KV rows that
// request added, as one record of a journal that follows a full snapshot (its base), so
// what is on disk is never more than one request behind. A record (little-endian):
//
//   u64 body length, body, u64 XXH3-64 of the body
//   body: "DMKVDLT1"  u64 base checksum  i64 from  i64 n
//         u32 extra length, extra  i32 tokens[n - from]
//         per layer: i64 first position, K chunk, V chunk (rows [first, n), as in
//         snapshot.h; a sliding-window layer may start above `from`, at its window)
//
// The base checksum is the one a full snapshot ends with: a journal left over from an
// older base never applies to a newer one. Records chain by position: each starts where
// the previous one ended (`from` = the positions held before it). A reader applies
// records in order and stops at the first that is torn (a crash mid-append), stale or
// out of sequence; everything before it stands.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "engine/context.h"
#include "store/byte_io.h"
#include "store/snapshot.h"

namespace dormouse {

struct SnapshotDelta {
  uint64_t base_checksum = 0;
  int64_t from = 0, n = 0;
  std::string extra;
  std::vector<int32_t> tokens;  // positions [from, n)
};

// The record of `ctx`'s positions [from, tokens.size()) (`tokens` are all the session's
// tokens, those rows' history), for a base whose checksum is `base_checksum`.
StatusOr<std::vector<uint8_t>> EncodeSnapshotDelta(uint64_t base_checksum,
                                                   const InferenceContext& ctx,
                                                   std::span<const int32_t> tokens, int64_t from,
                                                   std::string_view extra,
                                                   const SnapshotWriteOptions& options);

// Reads the next record's body from `in` and checks its length and checksum. An error
// means a torn or corrupt record (the journal ends before it).
StatusOr<std::vector<uint8_t>> ReadDeltaRecord(ByteSource& in);

// Parses a record body's header (not its rows).
StatusOr<SnapshotDelta> ParseSnapshotDelta(std::span<const uint8_t> body);

// Applies a record body to a context that holds exactly the positions before it
// (n_past == from): writes its rows and declares them valid. Errors before any row is
// written leave the context as it was; `*touched` says whether rows were written (then
// the caller must consider the context lost).
StatusOr<SnapshotDelta> ApplySnapshotDelta(std::span<const uint8_t> body, uint64_t base_checksum,
                                           InferenceContext& ctx, bool* touched);

}  // namespace dormouse
