// A thin RAII layer over the SQLite C API: a connection, prepared statements with bound
// parameters, and an IMMEDIATE transaction that rolls back unless committed. Every call
// that can fail returns a Status naming the database file, the operation and SQLite's
// message; nothing throws or aborts. SQL text is always a constant; values travel only
// as bound parameters.
//
// Not thread-safe: a Database and its Statements are used from one thread at a time
// (connections are opened with SQLITE_OPEN_NOMUTEX).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include "base/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace dormouse::sqlite {

class Statement;

class Database {
 public:
  // Opens (creating, mode 0600) a read-write connection. Nothing is read from the file
  // yet, so a file that is not a database only fails at the first statement.
  static StatusOr<std::unique_ptr<Database>> OpenOrError(const std::string& path);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs constant SQL that takes no parameters and returns no rows we need.
  Status Exec(const char* sql, std::string_view what);
  StatusOr<Statement> Prepare(const char* sql, std::string_view what);
  // "<path>: <what>: <sqlite message>", plus a hint for damaged or foreign files.
  Status Error(std::string_view what, int rc) const;
  // Rows changed by the most recent INSERT/UPDATE/DELETE on this connection.
  int64_t Changes() const;
  bool InTransaction() const;

  sqlite3* raw() const { return db_; }
  const std::string& path() const { return path_; }

 private:
  Database(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;
  std::string path_;
};

class Statement {
 public:
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Parameters are 1-based, as in SQLite. Text is copied (SQLITE_TRANSIENT).
  Status BindText(int index, std::string_view text);
  Status BindInt(int index, int64_t value);
  Status BindDouble(int index, double value);
  // Binds parameters 1..N in order: integers as INTEGER, floating point as REAL, the
  // rest as TEXT.
  template <typename... Args>
  Status BindAll(const Args&... args) {
    int index = 0;
    Status s;
    ((s.ok() ? (s = BindOne(++index, args), 0) : 0), ...);
    return s;
  }

  // true: a row is ready to read; false: the statement is done.
  StatusOr<bool> Step();
  // Steps once and expects no row (INSERT/UPDATE/DELETE).
  Status Run();
  // Makes the statement ready to run again; bindings are kept until rebound.
  void Reset();
  // The result code of the last failed Step/Run (extended), e.g. to tell which
  // constraint failed.
  int last_error() const { return last_error_; }

  std::string ColumnText(int column) const;  // 0-based; NULL reads as ""
  int64_t ColumnInt(int column) const;
  double ColumnDouble(int column) const;

 private:
  friend class Database;
  Statement(const Database* db, sqlite3_stmt* stmt, std::string what)
      : db_(db), stmt_(stmt), what_(std::move(what)) {}
  template <typename T>
  Status BindOne(int index, const T& value) {
    if constexpr (std::is_integral_v<T>) {
      return BindInt(index, static_cast<int64_t>(value));
    } else if constexpr (std::is_floating_point_v<T>) {
      return BindDouble(index, static_cast<double>(value));
    } else {
      return BindText(index, std::string_view(value));
    }
  }
  const Database* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  std::string what_;
  int last_error_ = 0;
};

// BEGIN IMMEDIATE: takes the write lock up front, so the busy timeout applies to it. A
// deferred transaction that reads first and then writes can fail with SQLITE_BUSY at
// once (without waiting) when another process committed in between.
class Transaction {
 public:
  static StatusOr<Transaction> BeginOrError(Database& db, std::string_view what);
  Transaction(Transaction&& other) noexcept : db_(other.db_) { other.db_ = nullptr; }
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  ~Transaction();  // rolls back unless committed
  Status Commit();

 private:
  explicit Transaction(Database* db) : db_(db) {}
  Database* db_;
};

}  // namespace dormouse::sqlite
