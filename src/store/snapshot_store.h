// A directory of KV snapshots, one file per key (a session id): `<dir>/<key>.dmkv`,
// followed by a journal of incremental records `<dir>/<key>.dmkj` (store/snapshot_delta.h)
// that Append adds to after each request; a full Save replaces both (compaction).
// Full writes are atomic (store/byte_io.h); appends are synced before they return. A disk budget
// bounds the directory: after each save the least recently used snapshots are deleted until the
// total fits, never the one just written. "Used" means saved or restored; the file's mtime records
// it, so the order survives restarts. Transcripts live elsewhere and are never touched here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "store/snapshot.h"

namespace dormouse {

struct SnapshotInfo {
  std::string key;
  std::string path;
  uint64_t bytes = 0;
  double last_used = 0;  // unix seconds
};

struct SnapshotSaveResult {
  SnapshotInfo info;
  double seconds = 0;                // write + fsync + rename
  std::vector<std::string> evicted;  // keys deleted to stay within the budget
};

class SnapshotStore {
 public:
  // Creates `dir` if needed and removes temporaries left by dead writers.
  // budget_bytes 0 means unlimited.
  static StatusOr<std::unique_ptr<SnapshotStore>> OpenOrError(const std::string& dir,
                                                              uint64_t budget_bytes);

  // The default disk budget: min(2 GiB, 5% of the filesystem), so an idle server that
  // runs for months stays small on disk (transcripts are not counted, never evicted).
  static uint64_t DefaultBudgetFor(uint64_t filesystem_bytes);
  // DefaultBudgetFor the filesystem holding `dir` (or the nearest existing parent).
  static StatusOr<uint64_t> DefaultBudget(const std::string& dir);

  // Keys are session ids: 1-64 characters of [A-Za-z0-9_-].
  static Status CheckKey(const std::string& key);
  std::string PathFor(const std::string& key) const;
  std::string JournalPathFor(const std::string& key) const;

  StatusOr<SnapshotSaveResult> Save(const std::string& key, const ModelFingerprint& fingerprint,
                                    const InferenceContext& ctx, std::span<const int32_t> tokens,
                                    std::string_view extra, const SnapshotWriteOptions& options);
  // Appends the rows of ctx's positions [from, tokens.size()) to the key's journal. The
  // caller guarantees that the base and journal hold exactly tokens[0, from) of this
  // context (a reader refuses records out of sequence). Fails if there is no base.
  StatusOr<SnapshotSaveResult> Append(const std::string& key, const InferenceContext& ctx,
                                      std::span<const int32_t> tokens, int64_t from,
                                      std::string_view extra, const SnapshotWriteOptions& options);
  // Restores the base and then the journal's records into ctx (see RestoreSnapshot). A
  // torn or stale record ends the journal there (it is cut off, and the header's
  // journal_note says why); a record that fails after writing rows fails the restore.
  // Marks the snapshot used.
  StatusOr<SnapshotHeader> Restore(const std::string& key, const ModelFingerprint& expected,
                                   InferenceContext& ctx);
  StatusOr<SnapshotHeader> ReadHeader(const std::string& key) const;
  bool Exists(const std::string& key) const;
  Status Remove(const std::string& key);
  std::vector<SnapshotInfo> List() const;  // most recently used first
  uint64_t TotalBytes() const;
  uint64_t budget_bytes() const { return budget_bytes_; }
  const std::string& dir() const { return dir_; }

 private:
  SnapshotStore(std::string dir, uint64_t budget) : dir_(std::move(dir)), budget_bytes_(budget) {}
  std::vector<std::string> EnforceBudget(const std::string& keep);
  void RemoveFiles(const std::string& key);
  void RemoveAbandonedTemporaries();
  std::string dir_;
  uint64_t budget_bytes_;
};

}  // namespace dormouse
