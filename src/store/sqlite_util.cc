#include "store/sqlite_util.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace dormouse::sqlite {

StatusOr<std::unique_ptr<Database>> Database::OpenOrError(const std::string& path) {
  // SQLite would create the file 0644; conversations are private. Its -wal and -shm
  // files copy the database file's mode.
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Errorf("{}: cannot open: {}", path, std::strerror(errno));
  ::close(fd);

  sqlite3* raw = nullptr;
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    sqlite3_close(raw);
    return Status::Errorf("{}: cannot open database: {}", path, message);
  }
  std::unique_ptr<Database> db(new Database(raw, path));
  sqlite3_extended_result_codes(raw, 1);
  // The file may come from anywhere: no schema-defined functions in triggers or views,
  // and no writes that could corrupt it through writable_schema.
  sqlite3_db_config(raw, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  sqlite3_db_config(raw, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
  return db;
}

Database::~Database() { sqlite3_close_v2(db_); }

Status Database::Exec(const char* sql, std::string_view what) {
  char* message = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &message);
  sqlite3_free(message);  // sqlite3_errmsg still holds it
  return rc == SQLITE_OK ? Status::Ok() : Error(what, rc);
}

StatusOr<Statement> Database::Prepare(const char* sql, std::string_view what) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr);
  if (rc != SQLITE_OK) return Error(what, rc);
  return Statement(this, stmt, std::string(what));
}

Status Database::Error(std::string_view what, int rc) const {
  // sqlite3_errmsg describes the most recent failure on this connection; fall back to
  // the generic text for rc when it has been overwritten by a success.
  const char* message =
      sqlite3_errcode(db_) == SQLITE_OK ? sqlite3_errstr(rc) : sqlite3_errmsg(db_);
  const char* hint = "";
  switch (rc & 0xff) {
    case SQLITE_NOTADB:
      hint = " (this is not a dormouse transcript database; move it away to start afresh)";
      break;
    case SQLITE_CORRUPT:
      hint = " (the file is damaged; `sqlite3 FILE .recover` may save its transcripts)";
      break;
    case SQLITE_BUSY:
      hint = " (another process kept the database locked too long)";
      break;
    default:
      break;
  }
  return Status::Errorf("{}: {}: {}{}", path_, what, message, hint);
}

int64_t Database::Changes() const { return sqlite3_changes64(db_); }

bool Database::InTransaction() const { return sqlite3_get_autocommit(db_) == 0; }

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_), stmt_(other.stmt_), what_(std::move(other.what_)) {
  other.stmt_ = nullptr;
}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    db_ = other.db_;
    stmt_ = other.stmt_;
    what_ = std::move(other.what_);
    last_error_ = other.last_error_;
    other.stmt_ = nullptr;
  }
  return *this;
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Status Statement::BindText(int index, std::string_view text) {
  // A null pointer would bind SQL NULL; an empty string_view may carry one.
  const char* data = text.data() != nullptr ? text.data() : "";
  int rc = sqlite3_bind_text64(stmt_, index, data, text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  return rc == SQLITE_OK ? Status::Ok() : db_->Error(what_, rc);
}

Status Statement::BindInt(int index, int64_t value) {
  int rc = sqlite3_bind_int64(stmt_, index, value);
  return rc == SQLITE_OK ? Status::Ok() : db_->Error(what_, rc);
}

Status Statement::BindDouble(int index, double value) {
  int rc = sqlite3_bind_double(stmt_, index, value);
  return rc == SQLITE_OK ? Status::Ok() : db_->Error(what_, rc);
}

StatusOr<bool> Statement::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  last_error_ = rc;
  Status error = db_->Error(what_, rc);
  sqlite3_reset(stmt_);  // releases the statement's locks; the message is already taken
  return error;
}

Status Statement::Run() {
  DM_ASSIGN_OR_RETURN(bool row, Step());
  if (row) return Status::Errorf("{}: {}: unexpected result row", db_->path(), what_);
  return Status::Ok();
}

void Statement::Reset() { sqlite3_reset(stmt_); }

std::string Statement::ColumnText(int column) const {
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return std::string();
  // Length from column_bytes, not strlen: content is stored byte for byte.
  return std::string(reinterpret_cast<const char*>(text), sqlite3_column_bytes(stmt_, column));
}

int64_t Statement::ColumnInt(int column) const { return sqlite3_column_int64(stmt_, column); }

double Statement::ColumnDouble(int column) const { return sqlite3_column_double(stmt_, column); }

StatusOr<Transaction> Transaction::BeginOrError(Database& db, std::string_view what) {
  DM_RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE", what));
  return Transaction(&db);
}

Transaction::~Transaction() {
  if (db_ != nullptr && db_->InTransaction()) {
    // Best effort: if even ROLLBACK fails, SQLite rolls back when the connection closes
    // or the next BEGIN fails loudly.
    (void)db_->Exec("ROLLBACK", "roll back");
  }
}

Status Transaction::Commit() {
  Database* db = db_;
  Status s = db->Exec("COMMIT", "commit");
  // A failed COMMIT (e.g. SQLITE_BUSY) leaves the transaction open; the destructor then
  // rolls it back, so the caller's change is reported as failed and not half-applied.
  if (s.ok()) db_ = nullptr;
  return s;
}

}  // namespace dormouse::sqlite
