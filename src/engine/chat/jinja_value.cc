#include "engine/chat/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace dormouse::jinja {
namespace {

const ValueList& EmptyList() {
  static const ValueList* empty = new ValueList();
  return *empty;
}

const ValueDict& EmptyDict() {
  static const ValueDict* empty = new ValueDict();
  return *empty;
}

void AppendPyStringRepr(std::string_view s, std::string* out) {
  const bool has_single = s.find('\'') != std::string_view::npos;
  const bool has_double = s.find('"') != std::string_view::npos;
  const char quote = (has_single && !has_double) ? '"' : '\'';
  out->push_back(quote);
  for (unsigned char c : s) {
    if (c == quote || c == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out->append("\\n");
    } else if (c == '\r') {
      out->append("\\r");
    } else if (c == '\t') {
      out->append("\\t");
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out->append(buf);
    } else {
      out->push_back(static_cast<char>(c));
    }
  }
  out->push_back(quote);
}

void AppendJsonString(std::string_view s, std::string* out) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out->append(buf);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

void AppendRepr(const Value& v, std::string* out, size_t max_bytes);

void AppendContainerRepr(const Value& v, std::string* out, size_t max_bytes) {
  if (v.is_list()) {
    out->push_back(v.is_tuple() ? '(' : '[');
    const ValueList& items = v.list();
    for (size_t i = 0; i < items.size() && out->size() <= max_bytes; ++i) {
      if (i > 0) out->append(", ");
      AppendRepr(items[i], out, max_bytes);
    }
    if (v.is_tuple() && items.size() == 1) out->push_back(',');
    out->push_back(v.is_tuple() ? ')' : ']');
    return;
  }
  if (v.kind() == Value::Kind::kNamespace) out->append("<Namespace ");
  out->push_back('{');
  bool first = true;
  for (const auto& [key, value] : v.dict()) {
    if (out->size() > max_bytes) break;
    if (!first) out->append(", ");
    first = false;
    AppendPyStringRepr(key, out);
    out->append(": ");
    AppendRepr(value, out, max_bytes);
  }
  out->push_back('}');
  if (v.kind() == Value::Kind::kNamespace) out->push_back('>');
}

void AppendRepr(const Value& v, std::string* out, size_t max_bytes) {
  switch (v.kind()) {
    case Value::Kind::kString:
      AppendPyStringRepr(v.str(), out);
      return;
    case Value::Kind::kList:
    case Value::Kind::kDict:
    case Value::Kind::kNamespace:
      AppendContainerRepr(v, out, max_bytes);
      return;
    default:
      out->append(ToStr(v));
  }
}

void AppendIndent(int indent, int level, std::string* out) {
  out->push_back('\n');
  out->append(static_cast<size_t>(indent) * static_cast<size_t>(level), ' ');
}

struct JsonOptions {
  int indent;
  bool sort_keys;
  size_t max_bytes;
};

Status AppendJson(const Value& v, const JsonOptions& opt, int level, std::string* out);

Status AppendJsonContainer(const Value& v, const JsonOptions& opt, int level, std::string* out) {
  if (out->size() > opt.max_bytes) return Status::Error("JSON text is too large");
  const int indent = opt.indent;
  const char* item_sep = indent >= 0 ? "," : ", ";
  if (v.is_list()) {
    if (v.list().empty()) return out->append("[]"), Status::Ok();
    out->push_back('[');
    for (size_t i = 0; i < v.list().size(); ++i) {
      if (out->size() > opt.max_bytes) return Status::Error("JSON text is too large");
      if (i > 0) out->append(item_sep);
      if (indent >= 0) AppendIndent(indent, level + 1, out);
      DM_RETURN_IF_ERROR(AppendJson(v.list()[i], opt, level + 1, out));
    }
    if (indent >= 0) AppendIndent(indent, level, out);
    out->push_back(']');
    return Status::Ok();
  }
  if (v.dict().empty()) return out->append("{}"), Status::Ok();
  std::vector<const std::pair<std::string, Value>*> entries;
  for (const auto& entry : v.dict()) entries.push_back(&entry);
  if (opt.sort_keys) {
    std::stable_sort(entries.begin(), entries.end(),
                     [](const auto* a, const auto* b) { return a->first < b->first; });
  }
  out->push_back('{');
  for (size_t i = 0; i < entries.size(); ++i) {
    if (out->size() > opt.max_bytes) return Status::Error("JSON text is too large");
    if (i > 0) out->append(item_sep);
    if (indent >= 0) AppendIndent(indent, level + 1, out);
    AppendJsonString(entries[i]->first, out);
    out->append(": ");
    DM_RETURN_IF_ERROR(AppendJson(entries[i]->second, opt, level + 1, out));
  }
  if (indent >= 0) AppendIndent(indent, level, out);
  out->push_back('}');
  return Status::Ok();
}

Status AppendJson(const Value& v, const JsonOptions& opt, int level, std::string* out) {
  switch (v.kind()) {
    case Value::Kind::kNone:
      out->append("null");
      return Status::Ok();
    case Value::Kind::kBool:
      out->append(v.bool_value() ? "true" : "false");
      return Status::Ok();
    case Value::Kind::kInt:
      out->append(std::to_string(v.int_value()));
      return Status::Ok();
    case Value::Kind::kFloat: {
      const double d = v.number();
      if (std::isnan(d)) return out->append("NaN"), Status::Ok();
      if (std::isinf(d)) return out->append(d > 0 ? "Infinity" : "-Infinity"), Status::Ok();
      out->append(FormatFloat(d));
      return Status::Ok();
    }
    case Value::Kind::kString:
      AppendJsonString(v.str(), out);
      return Status::Ok();
    case Value::Kind::kList:
    case Value::Kind::kDict:
      return AppendJsonContainer(v, opt, level, out);
    default:
      return Status::Errorf("Object of type {} is not JSON serializable", TypeName(v));
  }
}

bool DictEquals(const Value& a, const Value& b, int64_t* budget) {
  if (a.dict().size() != b.dict().size()) return false;
  for (const auto& [key, value] : a.dict()) {
    const Value* other = b.Find(key);
    if (other == nullptr || !Equals(value, *other, budget)) return false;
  }
  return true;
}

// Charges one unit; false once the budget is spent.
bool Spend(int64_t* budget) { return budget == nullptr || --*budget >= 0; }

}  // namespace

Value Value::Undefined(std::string name) {
  Value v;
  if (!name.empty()) v.ptr_ = std::make_shared<std::string>(std::move(name));
  return v;
}

Value Value::None() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}

Value Value::Bool(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.b_ = b;
  return v;
}

Value Value::Int(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.i_ = i;
  return v;
}

Value Value::Float(double f) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.f_ = f;
  return v;
}

Value Value::String(std::string s) {
  Value v;
  v.kind_ = Kind::kString;
  v.ptr_ = std::make_shared<std::string>(std::move(s));
  return v;
}

Value Value::List(ValueList items, bool tuple) {
  Value v;
  v.kind_ = Kind::kList;
  v.tuple_ = tuple;
  for (const Value& item : items) {
    v.depth_ = std::max(v.depth_, item.depth_);
    v.holds_namespace_ |= item.holds_namespace_;
  }
  v.depth_ += 1;
  v.ptr_ = std::make_shared<ValueList>(std::move(items));
  return v;
}

Value Value::Dict(ValueDict entries) {
  Value v;
  v.kind_ = Kind::kDict;
  for (const auto& entry : entries) {
    v.depth_ = std::max(v.depth_, entry.second.depth_);
    v.holds_namespace_ |= entry.second.holds_namespace_;
  }
  v.depth_ += 1;
  v.ptr_ = std::make_shared<ValueDict>(std::move(entries));
  return v;
}

Value Value::Namespace(ValueDict entries) {
  Value v = Dict(std::move(entries));
  v.kind_ = Kind::kNamespace;
  v.holds_namespace_ = true;
  return v;
}

Value Value::Function(std::shared_ptr<const Callable> fn) {
  Value v;
  v.kind_ = Kind::kCallable;
  v.ptr_ = std::const_pointer_cast<Callable>(std::move(fn));
  return v;
}

const std::string& Value::str() const {
  static const std::string* empty = new std::string();
  if ((kind_ == Kind::kString || kind_ == Kind::kUndefined) && ptr_) {
    return *static_cast<const std::string*>(ptr_.get());
  }
  return *empty;
}

const ValueList& Value::list() const {
  return kind_ == Kind::kList ? *static_cast<const ValueList*>(ptr_.get()) : EmptyList();
}
const ValueDict& Value::dict() const {
  return is_mapping() ? *static_cast<const ValueDict*>(ptr_.get()) : EmptyDict();
}
ValueDict& Value::mutable_entries() const {
  assert(is_mapping());
  return *static_cast<ValueDict*>(ptr_.get());
}

void Value::InheritBounds(const Value& source) {
  depth_ = std::max(depth_, source.depth_ + 1);
  holds_namespace_ |= source.holds_namespace_;
}

const Value* Value::Find(std::string_view key) const {
  if (!is_mapping()) return nullptr;
  for (const auto& entry : dict()) {
    if (entry.first == key) return &entry.second;
  }
  return nullptr;
}

bool Value::Truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return b_;
    case Kind::kInt:
      return i_ != 0;
    case Kind::kFloat:
      return f_ != 0;
    case Kind::kString:
      return !str().empty();
    case Kind::kList:
      return !list().empty();
    case Kind::kDict:
      return !dict().empty();
    default:
      return true;
  }
}

std::string FormatFloat(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  // Shortest round-trip digits, then Python's layout: positional for 1e-4 <= |d| < 1e16.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  const size_t e_pos = sci.find('e');
  std::string mantissa = sci.substr(0, e_pos);
  const int exp = std::atoi(sci.c_str() + e_pos + 1);
  const bool negative = mantissa[0] == '-';
  if (negative) mantissa.erase(0, 1);
  std::string digits;
  for (char c : mantissa) {
    if (c != '.') digits.push_back(c);
  }
  std::string out = negative ? "-" : "";
  if (exp >= 16 || exp < -4) {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char ebuf[16];
    std::snprintf(ebuf, sizeof(ebuf), "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    return out + ebuf;
  }
  if (exp < 0) return out + "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
  const size_t int_len = static_cast<size_t>(exp) + 1;
  if (digits.size() <= int_len)
    return out + digits + std::string(int_len - digits.size(), '0') + ".0";
  return out + digits.substr(0, int_len) + "." + digits.substr(int_len);
}

std::string ToStr(const Value& v, size_t max_bytes) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return "";
    case Value::Kind::kNone:
      return "None";
    case Value::Kind::kBool:
      return v.bool_value() ? "True" : "False";
    case Value::Kind::kInt:
      return std::to_string(v.int_value());
    case Value::Kind::kFloat:
      return FormatFloat(v.number());
    case Value::Kind::kString:
      return v.str();
    case Value::Kind::kCallable:
      return "<function>";
    default: {
      std::string out;
      AppendContainerRepr(v, &out, max_bytes);
      return out;
    }
  }
}

std::string Repr(const Value& v, size_t max_bytes) {
  std::string out;
  AppendRepr(v, &out, max_bytes);
  return out;
}

Status ToJson(const Value& v, int indent, bool sort_keys, std::string* out, size_t max_bytes) {
  return AppendJson(v, JsonOptions{indent, sort_keys, max_bytes}, 0, out);
}

bool Equals(const Value& a, const Value& b, int64_t* budget) {
  if (!Spend(budget)) return false;
  if (a.is_number() && b.is_number()) {
    if (a.is_int_like() && b.is_int_like()) return a.int_value() == b.int_value();
    return a.number() == b.number();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kString:
      return a.str() == b.str();
    case Value::Kind::kList: {
      if (a.list().size() != b.list().size()) return false;
      for (size_t i = 0; i < a.list().size(); ++i) {
        if (!Equals(a.list()[i], b.list()[i], budget)) return false;
      }
      return true;
    }
    case Value::Kind::kDict:
      return DictEquals(a, b, budget);
    case Value::Kind::kNamespace:
      return &a.dict() == &b.dict();
    default:
      return &a.callable() == &b.callable();
  }
}

StatusOr<bool> Less(const Value& a, const Value& b, int64_t* budget) {
  if (!Spend(budget)) return false;
  if (a.is_number() && b.is_number()) {
    if (a.is_int_like() && b.is_int_like()) return a.int_value() < b.int_value();
    return a.number() < b.number();
  }
  if (a.is_string() && b.is_string()) return a.str() < b.str();
  if (a.is_list() && b.is_list()) {
    const ValueList& x = a.list();
    const ValueList& y = b.list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (Equals(x[i], y[i], budget)) continue;
      return Less(x[i], y[i], budget);
    }
    return x.size() < y.size();
  }
  return Status::Errorf("'<' not supported between instances of '{}' and '{}'", TypeName(a),
                        TypeName(b));
}

std::string_view TypeName(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return "Undefined";
    case Value::Kind::kNone:
      return "NoneType";
    case Value::Kind::kBool:
      return "bool";
    case Value::Kind::kInt:
      return "int";
    case Value::Kind::kFloat:
      return "float";
    case Value::Kind::kString:
      return "str";
    case Value::Kind::kList:
      return v.is_tuple() ? "tuple" : "list";
    case Value::Kind::kDict:
      return "dict";
    case Value::Kind::kNamespace:
      return "Namespace";
    default:
      return "function";
  }
}

}  // namespace dormouse::jinja
