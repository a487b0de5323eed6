// Error values for paths a request or a file can reach. Programmer errors assert;
// everything else returns a Status or StatusOr<T> whose message names the problem.
#pragma once

#include <fmt/format.h>

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace dormouse {

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(std::string message) { return Status(std::move(message), true); }
  template <typename... Args>
  static Status Errorf(fmt::format_string<Args...> f, Args&&... args) {
    return Error(fmt::format(f, std::forward<Args>(args)...));
  }

  bool ok() const { return !failed_; }
  const std::string& message() const { return message_; }
  // Prefixes context, e.g. the file name: "model.gguf: tensor 'x' ...".
  Status WithContext(const std::string& context) const {
    return ok() ? *this : Error(context + ": " + message_);
  }

 private:
  Status(std::string message, bool failed) : message_(std::move(message)), failed_(failed) {}
  std::string message_;
  bool failed_ = false;
};

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T value) : value_(std::move(value)) {}         // NOLINT: implicit by design
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT
    assert(!status_.ok() && "StatusOr needs an error status or a value");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  // By value: a reference into a temporary StatusOr would dangle, as in
  // `for (auto& x : F().value())`, where the temporary dies before the loop runs.
  T value() && {
    assert(ok());
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace dormouse

// Early-return helpers; keep call sites short without hiding control flow in macros
// beyond this one well-known shape.
#define DM_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::dormouse::Status dm_status_ = (expr);  \
    if (!dm_status_.ok()) return dm_status_; \
  } while (0)

#define DM_CONCAT_INNER(a, b) a##b
#define DM_CONCAT(a, b) DM_CONCAT_INNER(a, b)
#define DM_ASSIGN_OR_RETURN(lhs, expr) \
  DM_ASSIGN_OR_RETURN_IMPL(DM_CONCAT(dm_or_, __LINE__), lhs, expr)
#define DM_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()
