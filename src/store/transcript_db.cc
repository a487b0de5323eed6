#include "store/transcript_db.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>

#include "store/sqlite_util.h"

namespace dormouse {
namespace {

namespace fs = std::filesystem;
using sqlite::Statement;
using sqlite::Transaction;

// 'dmTS' in PRAGMA application_id marks the file as a dormouse transcript store.
constexpr int32_t kApplicationId = 0x646d5453;
constexpr size_t kMaxNameBytes = 256;
constexpr int kIdAttempts = 4;

// Schema version 1. Each later version appends a step here; step i migrates from
// version i to i + 1 inside the opening transaction.
constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE sessions (
  id TEXT PRIMARY KEY NOT NULL,
  name TEXT NOT NULL UNIQUE,
  model TEXT NOT NULL,
  system_prompt TEXT NOT NULL,
  sampling_json TEXT NOT NULL,
  created_at REAL NOT NULL,
  updated_at REAL NOT NULL,
  n_messages INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_by_updated_at ON sessions (updated_at);
-- Not WITHOUT ROWID: a message can be megabytes, far beyond that layout's sweet spot.
CREATE TABLE messages (
  session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  role TEXT NOT NULL,
  content TEXT NOT NULL,
  created_at REAL NOT NULL,
  PRIMARY KEY (session_id, seq)
);
CREATE TABLE model_hashes (
  path TEXT PRIMARY KEY NOT NULL,
  size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  inode INTEGER NOT NULL,
  hash_hex TEXT NOT NULL,
  stored_at REAL NOT NULL
);
)sql",
    // 2: the hash of the API key that created a server session ("" when none): such a
    // session is visible only with that key.
    R"sql(
ALTER TABLE sessions ADD COLUMN owner TEXT NOT NULL DEFAULT '';
)sql",
};
static_assert(std::size(kMigrations) == TranscriptDb::kSchemaVersion);

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

SessionRecord ReadSessionRow(const Statement& st) {
  SessionRecord s;
  s.id = st.ColumnText(0);
  s.name = st.ColumnText(1);
  s.model = st.ColumnText(2);
  s.system_prompt = st.ColumnText(3);
  s.sampling_json = st.ColumnText(4);
  s.created_at = st.ColumnDouble(5);
  s.updated_at = st.ColumnDouble(6);
  s.n_messages = st.ColumnInt(7);
  s.owner = st.ColumnText(8);
  return s;
}

std::string RandomId() {
  uint64_t bits;
  try {
    std::random_device device;
    bits = (uint64_t{device()} << 32) ^ device();
  } catch (...) {  // no entropy source: the clock and pid still make clashes unlikely,
                   // and CreateSession retries on a clash
    bits = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) *
               0x9e3779b97f4a7c15ull ^
           static_cast<uint64_t>(::getpid());
  }
  return fmt::format("{:016x}", bits);
}

Status CheckId(const std::string& id) {
  if (id.empty() || id.size() > 64) return Status::Errorf("session id '{}' has a bad length", id);
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') {
      return Status::Errorf("session id '{}' may hold only letters, digits, '_' and '-'", id);
    }
  }
  return Status::Ok();
}

Status CheckName(const std::string& name) {
  if (name.empty()) return Status::Error("session name is empty");
  if (name.size() > kMaxNameBytes) {
    return Status::Errorf("session name is {} bytes long; the limit is {}", name.size(),
                          kMaxNameBytes);
  }
  return Status::Ok();
}

// Returns the JSON text to store: "{}" for empty, else s if it is a JSON object.
StatusOr<std::string> CheckSamplingJson(const std::string& s) {
  if (s.empty()) return std::string("{}");
  nlohmann::json j = nlohmann::json::parse(s, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::Errorf("sampling settings are not a JSON object: '{}'", s.substr(0, 80));
  }
  return s;
}

Status CheckRole(const MessageRecord& m) {
  return m.role.empty() ? Status::Error("message role is empty") : Status::Ok();
}

Status NoSession(const std::string& id) { return Status::Errorf("no session with id '{}'", id); }

// Makes dir (parents with default modes, dir itself 0700) unless it is already a directory.
Status EnsureDirectory(const std::string& dir) {
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return Status::Ok();
  if (fs::exists(dir, ec)) return Status::Errorf("{}: exists but is not a directory", dir);
  fs::path parent = fs::path(dir).parent_path();
  if (!parent.empty()) {
    fs::create_directories(parent, ec);
    if (ec) return Status::Errorf("{}: cannot create directory: {}", parent.string(), ec.message());
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && !(errno == EEXIST && fs::is_directory(dir, ec))) {
    return Status::Errorf("{}: cannot create directory: {}", dir, std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace

TranscriptDb::TranscriptDb(std::unique_ptr<sqlite::Database> db) : db_(std::move(db)) {}
TranscriptDb::~TranscriptDb() = default;

const std::string& TranscriptDb::path() const { return db_->path(); }

StatusOr<std::unique_ptr<TranscriptDb>> TranscriptDb::OpenOrError(const std::string& data_dir) {
  DM_RETURN_IF_ERROR(EnsureDirectory(data_dir));
  const std::string path = (fs::path(data_dir) / kFileName).string();
  DM_ASSIGN_OR_RETURN(std::unique_ptr<sqlite::Database> db, sqlite::Database::OpenOrError(path));
  std::unique_ptr<TranscriptDb> t(new TranscriptDb(std::move(db)));
  DM_RETURN_IF_ERROR(t->Configure());
  DM_RETURN_IF_ERROR(t->MigrateSchema());
  return t;
}

Status TranscriptDb::Configure() {
  sqlite::Database& db = *db_;
  // First, so that switching to WAL and the schema check below wait for another process
  // instead of failing.
  int rc = sqlite3_busy_timeout(db.raw(), kBusyTimeoutMs);
  if (rc != SQLITE_OK) return db.Error("set busy timeout", rc);
  // The first statement that reads the file: a file that is not a database fails here.
  {
    DM_ASSIGN_OR_RETURN(Statement st, db.Prepare("PRAGMA journal_mode = WAL", "open"));
    DM_ASSIGN_OR_RETURN(bool row, st.Step());
    // A file system without shared memory (some network mounts) keeps the rollback
    // journal; that is slower and blocks readers during writes, but still correct.
    (void)row;
  }
  DM_RETURN_IF_ERROR(db.Exec("PRAGMA synchronous = FULL", "set synchronous"));
  DM_RETURN_IF_ERROR(db.Exec("PRAGMA foreign_keys = ON", "enable foreign keys"));
  return Status::Ok();
}

StatusOr<TranscriptDb::SchemaState> TranscriptDb::ReadSchemaState() {
  auto read_int = [&](const char* sql) -> StatusOr<int64_t> {
    DM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(sql, "check schema"));
    DM_ASSIGN_OR_RETURN(bool row, st.Step());
    return row ? st.ColumnInt(0) : 0;
  };
  SchemaState state;
  DM_ASSIGN_OR_RETURN(state.application_id, read_int("PRAGMA application_id"));
  DM_ASSIGN_OR_RETURN(state.version, read_int("PRAGMA user_version"));
  DM_ASSIGN_OR_RETURN(state.n_objects, read_int("SELECT count(*) FROM sqlite_schema"));
  return state;
}

Status TranscriptDb::CheckSchemaState(const SchemaState& state) const {
  const bool fresh = state.application_id == 0 && state.version == 0 && state.n_objects == 0;
  if (!fresh && state.application_id != kApplicationId) {
    return Status::Errorf(
        "{}: is a SQLite database but not a dormouse transcript store (application_id {:#x}); "
        "move it away or choose another --data-dir",
        db_->path(), static_cast<uint32_t>(state.application_id));
  }
  if (state.version > kSchemaVersion) {
    return Status::Errorf(
        "{}: schema version {} was written by a newer dormouse; this one knows up to {}",
        db_->path(), state.version, kSchemaVersion);
  }
  return Status::Ok();
}

Status TranscriptDb::MigrateSchema() {
  // The common case reads only, so opening does not wait for another process's writes.
  DM_ASSIGN_OR_RETURN(SchemaState state, ReadSchemaState());
  DM_RETURN_IF_ERROR(CheckSchemaState(state));
  if (state.version == kSchemaVersion) return Status::Ok();

  // Under the write lock, and looking again: two processes opening a fresh file must not
  // both create the schema.
  DM_ASSIGN_OR_RETURN(Transaction txn, Transaction::BeginOrError(*db_, "migrate schema"));
  DM_ASSIGN_OR_RETURN(state, ReadSchemaState());
  DM_RETURN_IF_ERROR(CheckSchemaState(state));
  for (int64_t v = state.version; v < kSchemaVersion; ++v) {
    DM_RETURN_IF_ERROR(
        db_->Exec(kMigrations[v], fmt::format("migrate schema to version {}", v + 1)));
  }
  // PRAGMA values cannot be bound parameters; these are our own integer constants.
  DM_RETURN_IF_ERROR(db_->Exec(fmt::format("PRAGMA application_id = {}", kApplicationId).c_str(),
                               "set schema id"));
  DM_RETURN_IF_ERROR(db_->Exec(fmt::format("PRAGMA user_version = {}", kSchemaVersion).c_str(),
                               "set schema version"));
  return txn.Commit();
}

StatusOr<SessionRecord> TranscriptDb::CreateSession(const SessionRecord& s) {
  DM_RETURN_IF_ERROR(CheckName(s.name));
  const bool generate_id = s.id.empty();
  if (!generate_id) DM_RETURN_IF_ERROR(CheckId(s.id));
  SessionRecord out = s;
  DM_ASSIGN_OR_RETURN(out.sampling_json, CheckSamplingJson(s.sampling_json));
  if (out.created_at == 0) out.created_at = NowSeconds();
  if (out.updated_at == 0) out.updated_at = out.created_at;
  out.n_messages = 0;

  DM_ASSIGN_OR_RETURN(Statement st, db_->Prepare("INSERT INTO sessions (id, name, model, "
                                                 "system_prompt, sampling_json, created_at, "
                                                 "updated_at, owner) VALUES (?, ?, ?, ?, ?, ?, "
                                                 "?, ?)",
                                                 "create session"));
  for (int attempt = 0;; ++attempt) {
    if (generate_id) out.id = RandomId();
    DM_RETURN_IF_ERROR(st.BindAll(out.id, out.name, out.model, out.system_prompt, out.sampling_json,
                                  out.created_at, out.updated_at, out.owner));
    Status run = st.Run();
    if (run.ok()) return out;
    if (st.last_error() == SQLITE_CONSTRAINT_UNIQUE) {
      return Status::Errorf("a session named '{}' already exists", out.name);
    }
    if (st.last_error() != SQLITE_CONSTRAINT_PRIMARYKEY) return run;
    if (!generate_id) return Status::Errorf("a session with id '{}' already exists", out.id);
    if (attempt + 1 == kIdAttempts) return run;
    st.Reset();
  }
}

StatusOr<std::optional<SessionRecord>> TranscriptDb::ReadSession(const char* sql,
                                                                 const std::string& key,
                                                                 const char* what) {
  DM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(sql, what));
  DM_RETURN_IF_ERROR(st.BindText(1, key));
  DM_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<SessionRecord>();
  return std::optional<SessionRecord>(ReadSessionRow(st));
}

StatusOr<std::optional<SessionRecord>> TranscriptDb::FindSessionByName(const std::string& name) {
  return ReadSession(
      "SELECT id, name, model, system_prompt, sampling_json, created_at, "
      "updated_at, n_messages, owner FROM sessions WHERE name = ?",
      name, "find session by name");
}

StatusOr<std::optional<SessionRecord>> TranscriptDb::GetSession(const std::string& id) {
  return ReadSession(
      "SELECT id, name, model, system_prompt, sampling_json, created_at, "
      "updated_at, n_messages, owner FROM sessions WHERE id = ?",
      id, "get session");
}

StatusOr<std::vector<SessionRecord>> TranscriptDb::ListSessions() {
  DM_ASSIGN_OR_RETURN(Statement st,
                      db_->Prepare("SELECT id, name, model, system_prompt, sampling_json, "
                                   "created_at, updated_at, n_messages, owner FROM sessions "
                                   "ORDER BY updated_at DESC, rowid DESC",
                                   "list sessions"));
  std::vector<SessionRecord> out;
  for (;;) {
    DM_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out.push_back(ReadSessionRow(st));
  }
  return out;
}

Status TranscriptDb::UpdateSession(const SessionRecord& s) {
  DM_RETURN_IF_ERROR(CheckName(s.name));
  DM_ASSIGN_OR_RETURN(std::string sampling, CheckSamplingJson(s.sampling_json));
  DM_ASSIGN_OR_RETURN(Statement st,
                      db_->Prepare("UPDATE sessions SET name = ?, model = ?, system_prompt = ?, "
                                   "sampling_json = ?, updated_at = ? WHERE id = ?",
                                   "update session"));
  DM_RETURN_IF_ERROR(st.BindAll(s.name, s.model, s.system_prompt, sampling, NowSeconds(), s.id));
  Status run = st.Run();
  if (!run.ok() && st.last_error() == SQLITE_CONSTRAINT_UNIQUE) {
    return Status::Errorf("a session named '{}' already exists", s.name);
  }
  DM_RETURN_IF_ERROR(run);
  return db_->Changes() == 0 ? NoSession(s.id) : Status::Ok();
}

Status TranscriptDb::AppendMessage(const std::string& session_id, MessageRecord* m) {
  assert(m != nullptr);
  std::vector<MessageRecord> one = {*m};
  DM_RETURN_IF_ERROR(AppendMessages(session_id, &one));
  *m = std::move(one[0]);
  return Status::Ok();
}

Status TranscriptDb::AppendMessages(const std::string& session_id, std::vector<MessageRecord>* ms) {
  assert(ms != nullptr);
  if (ms->empty()) return Status::Ok();
  for (const MessageRecord& m : *ms) DM_RETURN_IF_ERROR(CheckRole(m));
  const double now = NowSeconds();
  DM_ASSIGN_OR_RETURN(Transaction txn, Transaction::BeginOrError(*db_, "append message"));
  {
    DM_ASSIGN_OR_RETURN(Statement st, db_->Prepare("UPDATE sessions SET n_messages = n_messages "
                                                   "+ ?, updated_at = ? WHERE id = ?",
                                                   "append message"));
    DM_RETURN_IF_ERROR(st.BindAll(static_cast<int64_t>(ms->size()), now, session_id));
    DM_RETURN_IF_ERROR(st.Run());
    if (db_->Changes() == 0) return NoSession(session_id);
  }
  int64_t seq = 0;
  {
    DM_ASSIGN_OR_RETURN(Statement st, db_->Prepare("SELECT coalesce(max(seq) + 1, 0) FROM "
                                                   "messages WHERE session_id = ?",
                                                   "append message"));
    DM_RETURN_IF_ERROR(st.BindText(1, session_id));
    DM_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row) seq = st.ColumnInt(0);
  }
  std::vector<MessageRecord> stored = *ms;
  for (MessageRecord& m : stored) {
    if (m.created_at == 0) m.created_at = now;
    m.seq = seq++;
    DM_ASSIGN_OR_RETURN(Statement st, db_->Prepare("INSERT INTO messages (session_id, seq, role, "
                                                   "content, created_at) VALUES (?, ?, ?, ?, ?)",
                                                   "append message"));
    DM_RETURN_IF_ERROR(st.BindAll(session_id, m.seq, m.role, m.content, m.created_at));
    DM_RETURN_IF_ERROR(st.Run());
  }
  DM_RETURN_IF_ERROR(txn.Commit());
  *ms = std::move(stored);  // changed only on success
  return Status::Ok();
}

Status TranscriptDb::ReplaceMessages(const std::string& session_id,
                                     const std::vector<MessageRecord>& ms) {
  for (const MessageRecord& m : ms) DM_RETURN_IF_ERROR(CheckRole(m));
  const double now = NowSeconds();
  DM_ASSIGN_OR_RETURN(Transaction txn, Transaction::BeginOrError(*db_, "replace messages"));
  {
    DM_ASSIGN_OR_RETURN(Statement st,
                        db_->Prepare("UPDATE sessions SET n_messages = ?, updated_at = ? "
                                     "WHERE id = ?",
                                     "replace messages"));
    DM_RETURN_IF_ERROR(st.BindAll(static_cast<int64_t>(ms.size()), now, session_id));
    DM_RETURN_IF_ERROR(st.Run());
    if (db_->Changes() == 0) return NoSession(session_id);
  }
  {
    DM_ASSIGN_OR_RETURN(Statement st, db_->Prepare("DELETE FROM messages WHERE session_id = ?",
                                                   "replace messages"));
    DM_RETURN_IF_ERROR(st.BindText(1, session_id));
    DM_RETURN_IF_ERROR(st.Run());
  }
  DM_ASSIGN_OR_RETURN(Statement st, db_->Prepare("INSERT INTO messages (session_id, seq, role, "
                                                 "content, created_at) VALUES (?, ?, ?, ?, ?)",
                                                 "replace messages"));
  for (size_t i = 0; i < ms.size(); ++i) {
    const MessageRecord& m = ms[i];
    DM_RETURN_IF_ERROR(st.BindAll(session_id, static_cast<int64_t>(i), m.role, m.content,
                                  m.created_at != 0 ? m.created_at : now));
    DM_RETURN_IF_ERROR(st.Run());
    st.Reset();
  }
  return txn.Commit();
}

StatusOr<std::vector<MessageRecord>> TranscriptDb::Messages(const std::string& session_id) {
  std::vector<MessageRecord> out;
  {
    DM_ASSIGN_OR_RETURN(Statement st,
                        db_->Prepare("SELECT seq, role, content, created_at FROM messages "
                                     "WHERE session_id = ? ORDER BY seq",
                                     "read messages"));
    DM_RETURN_IF_ERROR(st.BindText(1, session_id));
    for (;;) {
      DM_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      out.push_back(
          MessageRecord{st.ColumnInt(0), st.ColumnText(1), st.ColumnText(2), st.ColumnDouble(3)});
    }
  }
  // Only an empty result needs telling apart from a missing session.
  if (out.empty()) {
    DM_ASSIGN_OR_RETURN(std::optional<SessionRecord> s, GetSession(session_id));
    if (!s) return NoSession(session_id);
  }
  return out;
}

Status TranscriptDb::DeleteSession(const std::string& id, bool* existed) {
  DM_ASSIGN_OR_RETURN(Transaction txn, Transaction::BeginOrError(*db_, "delete session"));
  // Explicit, although ON DELETE CASCADE would do it: correct even if foreign keys are off.
  {
    DM_ASSIGN_OR_RETURN(
        Statement st, db_->Prepare("DELETE FROM messages WHERE session_id = ?", "delete session"));
    DM_RETURN_IF_ERROR(st.BindText(1, id));
    DM_RETURN_IF_ERROR(st.Run());
  }
  DM_ASSIGN_OR_RETURN(Statement st,
                      db_->Prepare("DELETE FROM sessions WHERE id = ?", "delete session"));
  DM_RETURN_IF_ERROR(st.BindText(1, id));
  DM_RETURN_IF_ERROR(st.Run());
  const bool found = db_->Changes() > 0;
  DM_RETURN_IF_ERROR(txn.Commit());
  if (existed != nullptr) *existed = found;
  return Status::Ok();
}

StatusOr<std::optional<std::string>> TranscriptDb::CachedModelHash(const std::string& path,
                                                                   int64_t size, int64_t mtime_ns,
                                                                   int64_t inode) {
  std::lock_guard<std::mutex> lock(hash_mu_);
  DM_ASSIGN_OR_RETURN(Statement st,
                      db_->Prepare("SELECT hash_hex FROM model_hashes WHERE path = ? AND "
                                   "size = ? AND mtime_ns = ? AND inode = ?",
                                   "read model hash cache"));
  DM_RETURN_IF_ERROR(st.BindAll(path, size, mtime_ns, inode));
  DM_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(st.ColumnText(0));
}

Status TranscriptDb::StoreModelHash(const std::string& path, int64_t size, int64_t mtime_ns,
                                    int64_t inode, const std::string& hash_hex) {
  std::lock_guard<std::mutex> lock(hash_mu_);
  const bool hex = !hash_hex.empty() && std::all_of(hash_hex.begin(), hash_hex.end(), [](char c) {
    return std::isxdigit(static_cast<unsigned char>(c));
  });
  if (!hex) return Status::Errorf("model hash '{}' is not hexadecimal", hash_hex);
  DM_ASSIGN_OR_RETURN(Statement st,
                      db_->Prepare("INSERT INTO model_hashes (path, size, mtime_ns, inode, "
                                   "hash_hex, stored_at) VALUES (?, ?, ?, ?, ?, ?) "
                                   "ON CONFLICT (path) DO UPDATE SET size = excluded.size, "
                                   "mtime_ns = excluded.mtime_ns, inode = excluded.inode, "
                                   "hash_hex = excluded.hash_hex, stored_at = excluded.stored_at",
                                   "store model hash"));
  DM_RETURN_IF_ERROR(st.BindAll(path, size, mtime_ns, inode, hash_hex, NowSeconds()));
  return st.Run();
}

StatusOr<std::string> ResolveDataDir(const std::string& flag_value) {
  std::string dir;
  const char* xdg = std::getenv("XDG_DATA_HOME");
  const char* home = std::getenv("HOME");
  if (!flag_value.empty()) {
    dir = flag_value;
  } else if (xdg != nullptr && xdg[0] == '/') {
    dir = (fs::path(xdg) / "dormouse").string();
  } else if (home != nullptr && home[0] != '\0') {
    dir = (fs::path(home) / ".local" / "share" / "dormouse").string();
  } else {
    return Status::Error("no data directory: pass --data-dir or set XDG_DATA_HOME or HOME");
  }
  DM_RETURN_IF_ERROR(EnsureDirectory(dir));
  return dir;
}

}  // namespace dormouse
