// Values of the Jinja-subset interpreter that renders chat templates (chat_template.h).
// They follow Python's semantics where templates can observe them: str() and repr()
// formatting, truthiness, ==, ordering, and json.dumps for the `tojson` filter.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace dormouse::jinja {

class Value;
using ValueList = std::vector<Value>;
// Insertion-ordered like a Python dict; keys are strings (all chat-template data is).
using ValueDict = std::vector<std::pair<std::string, Value>>;

struct Callable;  // jinja_interp.h: macros, builtin globals and bound methods.

// Containers nest at most this deep; it bounds every recursive walk over a value
// (printing, tojson, ==) and the destructor chain of shared pointers.
inline constexpr int kMaxValueDepth = 64;

class Value {
 public:
  enum class Kind : uint8_t {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kDict,
    kNamespace,
    kCallable
  };

  Value() = default;  // undefined
  static Value Undefined(std::string name = {});
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double f);
  static Value String(std::string s);
  static Value List(ValueList items, bool tuple = false);
  static Value Dict(ValueDict entries);
  static Value Namespace(ValueDict entries);
  static Value Function(std::shared_ptr<const Callable> fn);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_mapping() const { return kind_ == Kind::kDict || kind_ == Kind::kNamespace; }
  // Python's bool is an int; Jinja's `is number` and arithmetic treat it so.
  bool is_int_like() const { return kind_ == Kind::kInt || kind_ == Kind::kBool; }
  bool is_number() const { return is_int_like() || kind_ == Kind::kFloat; }
  bool is_tuple() const { return tuple_; }

  bool bool_value() const { return kind_ == Kind::kBool && b_; }
  int64_t int_value() const { return kind_ == Kind::kBool ? (b_ ? 1 : 0) : i_; }
  double number() const { return kind_ == Kind::kFloat ? f_ : static_cast<double>(int_value()); }
  const std::string& str() const;  // the string, or an undefined value's name
  const ValueList& list() const;
  const ValueDict& dict() const;  // dict or namespace entries
  // Entries of a namespace, or of a dict the interpreter updates in place (a for loop's
  // `loop` object, which Jinja also advances in place).
  ValueDict& mutable_entries() const;
  // Makes this container's nesting bounds cover values taken from `source` later on.
  void InheritBounds(const Value& source);
  const Callable& callable() const { return *static_cast<const Callable*>(ptr_.get()); }

  int depth() const { return depth_; }
  bool holds_namespace() const { return holds_namespace_; }

  // Key lookup in a dict or namespace; nullptr when absent.
  const Value* Find(std::string_view key) const;
  bool Truthy() const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool tuple_ = false;
  bool holds_namespace_ = false;
  int depth_ = 0;
  union {
    bool b_;
    int64_t i_ = 0;
    double f_;
  };
  // std::string (kString, and kUndefined's name), ValueList (kList), ValueDict (kDict,
  // kNamespace) or Callable (kCallable): copying a value never copies its contents.
  // Nothing is mutated after construction except through mutable_entries().
  std::shared_ptr<void> ptr_;
};

// Strings built by ToStr, Repr and ToJson stop growing soon after this many bytes; the
// interpreter rejects any string longer than that (RenderLimits::max_string_bytes), so a
// value that shares one big list many times cannot make them run away.
inline constexpr size_t kMaxStringBytes = 8 << 20;

// Python str(): what `{{ x }}` prints. Undefined prints as "".
std::string ToStr(const Value& v, size_t max_bytes = kMaxStringBytes);
// Python repr(): how values print inside lists and dicts.
std::string Repr(const Value& v, size_t max_bytes = kMaxStringBytes);
// Python float repr ("1.0", "0.1", "1e+16").
std::string FormatFloat(double d);
// json.dumps(v, ensure_ascii=False, indent=indent (<0: none), sort_keys=sort_keys).
Status ToJson(const Value& v, int indent, bool sort_keys, std::string* out,
              size_t max_bytes = kMaxStringBytes);

// Python ==. Each compared element costs one unit of *budget when given; once it is spent
// the comparison stops early (with an unspecified result) and leaves *budget negative.
bool Equals(const Value& a, const Value& b, int64_t* budget = nullptr);
// Python's a < b; an error for unorderable types. Budget as for Equals.
StatusOr<bool> Less(const Value& a, const Value& b, int64_t* budget = nullptr);
// A name for error messages ("str", "int", "dict", ...).
std::string_view TypeName(const Value& v);

}  // namespace dormouse::jinja
