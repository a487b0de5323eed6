// KV snapshots: the saved state of one conversation's context, in a versioned format of
// ours. Layout (little-endian):
//
//   "DMKVSNAP"  u32 version  u32 flags
//   fingerprint: u16 arch length, arch, i64 x 8 shapes, u64 layout hash, u64 x 2 content
//   i64 n_ctx  u32 kv_type  u32 kv_layout  i64 n_layer  i64 kv_dim  i64 n_tokens
//   u32 extra length, extra bytes (opaque to the format: the session's sampler state)
//   i32 tokens[n_tokens]
//   per layer (version 2): i64 first position; then (both versions) 2 chunks, keys then
//     values: u64 raw length, u64 stored length, u32 codec (0 raw, 1 zstd), stored
//     bytes = rows [first, n_tokens) of that layer's K or V (first = 0 in version 1),
//     kv_dim elements of kv_type per row
//   u64 XXH3-64 of every byte before it
//
// Only the rows in use are stored, never the whole context; a sliding-window layer
// stores only its window (the n_swa - 1 positions before n_tokens), whatever the
// ring it lives in. Version 1 (no first positions) still restores into models without
// sliding windows. A reader trusts nothing:
// lengths are bounded by the file size and by the loaded model, and the checksum is
// verified before the restored rows are declared valid.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "engine/context.h"
#include "engine/fingerprint.h"
#include "store/byte_io.h"

namespace dormouse {

inline constexpr uint32_t kSnapshotVersion = 2;
inline constexpr uint32_t kSnapshotVersionNoWindows = 1;  // still read
// kv_layout 1: per layer, the K rows then the V rows of positions [first, n_tokens).
inline constexpr uint32_t kKvLayoutRowsPerLayer = 1;

struct SnapshotHeader {
  uint32_t version = kSnapshotVersion;
  uint32_t flags = 0;
  ModelFingerprint fingerprint;
  int64_t n_ctx = 0;
  KvType kv_type = KvType::kF16;
  uint32_t kv_layout = kKvLayoutRowsPerLayer;
  int64_t n_layer = 0;
  int64_t kv_dim = 0;
  std::vector<int32_t> tokens;
  std::string extra;
  // Filled by SnapshotStore when a journal of incremental records followed the base:
  // how many records applied, and why the journal ended early (empty if it did not).
  int64_t journal_records = 0;
  std::string journal_note;
};

struct SnapshotWriteOptions {
  bool compress = false;  // zstd per chunk, kept only where it saves space
  int zstd_level = 1;
  // Tests write version 1 to check that older snapshots still restore; it cannot hold
  // a sliding-window cache.
  uint32_t version = kSnapshotVersion;
};

// Writes the snapshot of `ctx`'s first tokens.size() positions. `tokens` must be the
// tokens those rows were computed from (the session's history).
Status WriteSnapshot(const ModelFingerprint& fingerprint, const InferenceContext& ctx,
                     std::span<const int32_t> tokens, std::string_view extra,
                     const SnapshotWriteOptions& options, ByteSink& sink);

// Reads and bounds-checks the header and token list (not the KV rows, not the checksum).
StatusOr<SnapshotHeader> ReadSnapshotHeader(ByteSource& src);

// Restores a snapshot into `ctx`: checks the fingerprint, KV type and shapes against
// the loaded model, reads the rows straight into the KV cache, verifies the checksum,
// and only then declares the rows valid. On any error the context is left empty
// (n_past 0), and the message says why (for the "fell back to re-prefill" log).
StatusOr<SnapshotHeader> RestoreSnapshot(ByteSource& src, const ModelFingerprint& expected,
                                         InferenceContext& ctx);

}  // namespace dormouse
