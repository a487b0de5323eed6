// Transcripts: sessions and their messages in SQLite, `<data_dir>/dormouse.db`. They are
// the source of truth for a conversation: a KV snapshot can always be recomputed from
// them, so nothing here is ever evicted by the snapshot disk budget. The same file
// caches model content hashes so a multi-GB model is not re-hashed on every load.
//
// Durability: WAL with synchronous=FULL. A committed message survives a crash of our
// process under either NORMAL or FULL (the WAL write has reached the kernel); FULL also
// fsyncs the WAL on every commit so it survives power loss and OS crashes. That costs one
// fsync per message (milliseconds), which is noise next to generating the message.
//
// Concurrency: one TranscriptDb is used from one thread at a time (the server wraps it in
// its own mutex or thread). Separate TranscriptDb objects - in one process or in several
// `dormouse` processes on one data dir, e.g. `chat` and `serve` - share the file safely:
// WAL lets readers run beside the writer, every write takes the write lock up front
// (BEGIN IMMEDIATE) and waits up to kBusyTimeoutMs for it. No transaction is held across
// calls, so waits are short.
//
// Schema: versioned with PRAGMA user_version and tagged with PRAGMA application_id. An
// older version is migrated on open; a newer one, or a SQLite file that is not ours, is
// refused with an error naming the file. A file that is not SQLite at all, or is
// damaged, gives an error naming the file, never a crash.
//
// Sequence numbers: messages of a session are numbered 0, 1, 2, ... in order, so seq is
// also the message's index in Messages().
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace dormouse {

namespace sqlite {
class Database;
}

struct SessionRecord {
  // Stable opaque id, the primary key and the session's snapshot key: 16 random
  // lowercase hex characters when generated; a caller-given id must be 1-64 characters of
  // [A-Za-z0-9_-] (the snapshot key rule).
  std::string id;
  std::string name;   // user-facing, unique, e.g. "default" or `--session NAME`; 1-256 bytes
  std::string model;  // model name (file name without .gguf)
  std::string system_prompt;
  // Sampling settings (temperature, top_k, top_p, min_p, repeat_penalty, seed, ...) as a
  // JSON object; empty is stored as "{}". Not interpreted here beyond checking it parses.
  std::string sampling_json;
  double created_at = 0, updated_at = 0;  // unix seconds
  int64_t n_messages = 0;                 // filled by the store; ignored on input
  // Server sessions: SHA-256 hex of the API key that created the session ("" when none).
  // Set at creation only.
  std::string owner;
};

struct MessageRecord {
  int64_t seq = 0;        // assigned by the store
  std::string role;       // "system", "user", "assistant", ...; must not be empty
  std::string content;    // stored byte for byte
  double created_at = 0;  // unix seconds; 0 on input means "now"
};

class TranscriptDb {
 public:
  static constexpr const char* kFileName = "dormouse.db";
  static constexpr int kSchemaVersion = 2;
  static constexpr int kBusyTimeoutMs = 5000;

  // Opens (creating it and data_dir, mode 0700, if missing) <data_dir>/dormouse.db.
  static StatusOr<std::unique_ptr<TranscriptDb>> OpenOrError(const std::string& data_dir);
  ~TranscriptDb();
  TranscriptDb(const TranscriptDb&) = delete;
  TranscriptDb& operator=(const TranscriptDb&) = delete;

  // Fills id (when empty), created_at and updated_at (when 0; updated_at defaults to
  // created_at) and returns the stored record. Error if the name or id exists.
  StatusOr<SessionRecord> CreateSession(const SessionRecord& s);
  StatusOr<std::optional<SessionRecord>> FindSessionByName(const std::string& name);
  StatusOr<std::optional<SessionRecord>> GetSession(const std::string& id);
  // Most recently updated first (ties: most recently created first). Reads no messages:
  // n_messages is kept in the session row.
  StatusOr<std::vector<SessionRecord>> ListSessions();
  // Writes name, model, system_prompt and sampling_json of the session s.id and sets
  // updated_at to now. Error if there is no such session or the new name is taken.
  Status UpdateSession(const SessionRecord& s);
  // Appends m as the session's next message in one transaction: assigns m->seq, sets
  // m->created_at when 0 and the session's updated_at. m is changed only on success.
  Status AppendMessage(const std::string& session_id, MessageRecord* m);
  // Appends several messages in one transaction (one fsync): a turn's user message and
  // reply, say. *ms is changed (seq, created_at) only on success.
  Status AppendMessages(const std::string& session_id, std::vector<MessageRecord>* ms);
  // Replaces the whole transcript in one transaction (edits, truncation). Messages are
  // renumbered 0..n-1 in the given order (their seq is ignored); created_at 0 means now.
  Status ReplaceMessages(const std::string& session_id, const std::vector<MessageRecord>& ms);
  // In seq order. Error if there is no such session.
  StatusOr<std::vector<MessageRecord>> Messages(const std::string& session_id);
  // Deletes the session and its messages in one transaction. Deleting an id that does not
  // exist is not an error; *existed (if given) tells, e.g. for an HTTP 404.
  Status DeleteSession(const std::string& id, bool* existed = nullptr);

  // The cached content hash of the model file at path, if one was stored while the file
  // had this exact size, mtime and inode; nullopt otherwise. These two may be called from
  // several threads at once (concurrent model loads); give the loader a connection of its
  // own, since the other methods are not guarded.
  StatusOr<std::optional<std::string>> CachedModelHash(const std::string& path, int64_t size,
                                                       int64_t mtime_ns, int64_t inode);
  Status StoreModelHash(const std::string& path, int64_t size, int64_t mtime_ns, int64_t inode,
                        const std::string& hash_hex);

  const std::string& path() const;

 private:
  explicit TranscriptDb(std::unique_ptr<sqlite::Database> db);
  Status Configure();
  struct SchemaState {
    int64_t application_id = 0, version = 0, n_objects = 0;
  };
  StatusOr<SchemaState> ReadSchemaState();
  Status CheckSchemaState(const SchemaState& state) const;
  Status MigrateSchema();
  StatusOr<std::optional<SessionRecord>> ReadSession(const char* sql, const std::string& key,
                                                     const char* what);
  std::unique_ptr<sqlite::Database> db_;
  std::mutex hash_mu_;  // serializes CachedModelHash / StoreModelHash
};

// The data directory: flag_value when not empty, else $XDG_DATA_HOME/dormouse (when set to
// an absolute path, as the XDG spec requires), else $HOME/.local/share/dormouse. Creates
// it (mode 0700; missing parents with default modes) when missing.
StatusOr<std::string> ResolveDataDir(const std::string& flag_value);

}  // namespace dormouse
