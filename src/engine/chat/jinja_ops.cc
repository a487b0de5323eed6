// Python semantics for Jinja's operators, attribute access, subscripts and slices.
#include <cmath>
#include <limits>

#include "engine/chat/jinja_interp.h"

namespace dormouse::jinja {
namespace {

Value TypeError(Interpreter& in, std::string_view op, const Value& a, const Value& b) {
  return in.Fail(fmt::format("unsupported operand type(s) for {}: '{}' and '{}'", op, TypeName(a),
                             TypeName(b)));
}

Value Repeat(Interpreter& in, const Value& seq, int64_t times) {
  times = std::max<int64_t>(times, 0);
  if (seq.is_string()) {
    if (times > 0 && seq.str().size() > in.limits().max_string_bytes / static_cast<size_t>(times)) {
      return in.Fail("repeated string exceeds the limit");
    }
    std::string out;
    for (int64_t i = 0; i < times; ++i) out += seq.str();
    return Value::String(std::move(out));
  }
  const size_t n = seq.list().size();
  if (times > 0 && n > in.limits().max_list_items / static_cast<size_t>(times)) {
    return in.Fail("repeated list exceeds the limit");
  }
  ValueList out;
  for (int64_t i = 0; i < times; ++i) out.insert(out.end(), seq.list().begin(), seq.list().end());
  return in.CheckedList(std::move(out));
}

Value IntArith(Interpreter& in, char op, int64_t a, int64_t b) {
  int64_t r = 0;
  bool overflow = false;
  switch (op) {
    case '+':
      overflow = __builtin_add_overflow(a, b, &r);
      break;
    case '-':
      overflow = __builtin_sub_overflow(a, b, &r);
      break;
    case '*':
      overflow = __builtin_mul_overflow(a, b, &r);
      break;
    case '/':  // floor division
    case '%': {
      if (b == 0) return in.Fail("integer division or modulo by zero");
      if (a == std::numeric_limits<int64_t>::min() && b == -1) {
        overflow = op == '/';
        break;
      }
      int64_t q = a / b;
      int64_t m = a % b;
      if (m != 0 && ((m < 0) != (b < 0))) {
        --q;
        m += b;
      }
      r = op == '/' ? q : m;
      break;
    }
    default:
      break;
  }
  if (overflow) return in.Fail("integer overflow");
  return Value::Int(r);
}

Value IntPow(Interpreter& in, int64_t base, int64_t exp) {
  if (exp < 0) return Value::Float(std::pow(static_cast<double>(base), static_cast<double>(exp)));
  int64_t result = 1;
  while (exp > 0) {
    if ((exp & 1) && __builtin_mul_overflow(result, base, &result)) {
      return in.Fail("integer overflow");
    }
    exp >>= 1;
    if (exp > 0 && __builtin_mul_overflow(base, base, &base)) return in.Fail("integer overflow");
  }
  return Value::Int(result);
}

Value Arith(Interpreter& in, std::string_view op, const Value& a, const Value& b) {
  if (!a.is_number() || !b.is_number()) return TypeError(in, op, a, b);
  const bool ints = a.is_int_like() && b.is_int_like();
  const double x = a.number();
  const double y = b.number();
  if (op == "/") {
    if (y == 0) return in.Fail("division by zero");
    return Value::Float(x / y);
  }
  if (op == "**")
    return ints ? IntPow(in, a.int_value(), b.int_value()) : Value::Float(std::pow(x, y));
  if (ints) {
    const char c = op == "//" ? '/' : op[0];
    return IntArith(in, c, a.int_value(), b.int_value());
  }
  if (op == "+") return Value::Float(x + y);
  if (op == "-") return Value::Float(x - y);
  if (op == "*") return Value::Float(x * y);
  if (y == 0) return in.Fail("float division by zero");
  if (op == "//") return Value::Float(std::floor(x / y));
  double m = std::fmod(x, y);
  if (m != 0 && ((m < 0) != (y < 0))) m += y;
  return Value::Float(m);
}

Value Add(Interpreter& in, const Value& a, const Value& b) {
  if (a.is_string() && b.is_string()) return in.CheckedString(a.str() + b.str());
  if (a.is_list() && b.is_list()) {
    ValueList items = a.list();
    items.insert(items.end(), b.list().begin(), b.list().end());
    return in.CheckedList(std::move(items), a.is_tuple());
  }
  return Arith(in, "+", a, b);
}

Value Contains(Interpreter& in, const Value& needle, const Value& haystack) {
  switch (haystack.kind()) {
    case Value::Kind::kUndefined:
      return Value::Bool(false);
    case Value::Kind::kString:
      if (!needle.is_string()) return in.Fail("'in <string>' requires string as left operand");
      return Value::Bool(haystack.str().find(needle.str()) != std::string::npos);
    case Value::Kind::kList:
      for (const Value& item : haystack.list()) {
        if (in.Equal(item, needle)) return Value::Bool(true);
      }
      return Value::Bool(false);
    case Value::Kind::kDict:
    case Value::Kind::kNamespace:
      return Value::Bool(needle.is_string() && haystack.Find(needle.str()) != nullptr);
    default:
      return in.Fail(fmt::format("argument of type '{}' is not iterable", TypeName(haystack)));
  }
}

Value Compare(Interpreter& in, std::string_view op, const Value& a, const Value& b) {
  const bool swap = op == ">" || op == "<=";
  const bool less = swap ? in.LessThan(b, a) : in.LessThan(a, b);
  if (in.failed()) return Value();
  const bool strict = op == "<" || op == ">";
  return Value::Bool(strict ? less : !less);
}

int64_t ClampIndex(int64_t i, int64_t len, int64_t lower, int64_t upper) {
  if (i < 0) return std::max(i + len, lower);
  return std::min(i, upper);
}

}  // namespace

std::vector<std::string> Utf8Chars(std::string_view s) {
  std::vector<std::string> chars;
  for (size_t i = 0; i < s.size();) {
    size_t j = i + 1;
    while (j < s.size() && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80) ++j;
    chars.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return chars;
}

Value BinaryOp(Interpreter& in, std::string_view op, const Value& a, const Value& b) {
  if (op == "==" || op == "!=") {
    const bool equal = in.Equal(a, b);
    return in.failed() ? Value() : Value::Bool(equal == (op == "=="));
  }
  if (op == "~") return in.CheckedString(ToStr(a) + ToStr(b));
  if (op == "in") return Contains(in, a, b);
  if (op == "not in") {
    const Value r = Contains(in, a, b);
    return in.failed() ? r : Value::Bool(!r.bool_value());
  }
  if (a.is_undefined()) return in.UndefinedError(a);
  if (b.is_undefined()) return in.UndefinedError(b);
  if (op == "<" || op == ">" || op == "<=" || op == ">=") return Compare(in, op, a, b);
  if (op == "+") return Add(in, a, b);
  if (op == "*") {
    if ((a.is_string() || a.is_list()) && b.is_int_like()) return Repeat(in, a, b.int_value());
    if ((b.is_string() || b.is_list()) && a.is_int_like()) return Repeat(in, b, a.int_value());
  }
  if (op == "%" && a.is_string()) return in.Fail("'%' string formatting is not supported");
  return Arith(in, op, a, b);
}

Value UnaryOp(Interpreter& in, std::string_view op, const Value& a) {
  if (op == "not") return Value::Bool(!a.Truthy());
  if (a.is_undefined()) return in.UndefinedError(a);
  if (!a.is_number()) {
    return in.Fail(fmt::format("bad operand type for unary {}: '{}'", op, TypeName(a)));
  }
  if (op == "+") return a.is_int_like() ? Value::Int(a.int_value()) : a;
  if (!a.is_int_like()) return Value::Float(-a.number());
  if (a.int_value() == std::numeric_limits<int64_t>::min()) return in.Fail("integer overflow");
  return Value::Int(-a.int_value());
}

Value GetAttr(Interpreter& in, const Value& obj, const std::string& name) {
  if (obj.is_undefined()) return in.UndefinedError(obj);
  // Like Python's getattr first: a dict's `items` is the method, not the key.
  if (HasMethod(obj, name)) {
    auto fn = std::make_shared<Callable>();
    fn->kind = Callable::Kind::kMethod;
    fn->name = name;
    fn->self = obj;
    return Value::Function(std::move(fn));
  }
  if (const Value* v = obj.Find(name)) return *v;
  return Value::Undefined(name);
}

Value GetItem(Interpreter& in, const Value& obj, const Value& key) {
  if (obj.is_undefined()) return in.UndefinedError(obj);
  if (obj.is_mapping()) {
    if (!key.is_string()) return Value::Undefined();
    if (const Value* v = obj.Find(key.str())) return *v;
    return GetAttr(in, obj, key.str());
  }
  if ((obj.is_list() || obj.is_string()) && key.is_int_like()) {
    std::vector<std::string> chars;
    if (obj.is_string()) chars = Utf8Chars(obj.str());
    const auto len = static_cast<int64_t>(obj.is_list() ? obj.list().size() : chars.size());
    int64_t i = key.int_value();
    if (i < 0) i += len;
    if (i < 0 || i >= len) return Value::Undefined();
    if (obj.is_list()) return obj.list()[static_cast<size_t>(i)];
    return Value::String(chars[static_cast<size_t>(i)]);
  }
  if (key.is_string()) return GetAttr(in, obj, key.str());
  return Value::Undefined();
}

Value GetSlice(Interpreter& in, const Value& obj, const Value& start, const Value& stop,
               const Value& step) {
  if (obj.is_undefined()) return in.UndefinedError(obj);
  if (!obj.is_list() && !obj.is_string()) {
    return in.Fail(fmt::format("'{}' object is not subscriptable", TypeName(obj)));
  }
  for (const Value* part : {&start, &stop, &step}) {
    if (!part->is_none() && !part->is_int_like()) {
      return in.Fail("slice indices must be integers or None");
    }
  }
  const int64_t st = step.is_none() ? 1 : step.int_value();
  if (st == 0) return in.Fail("slice step cannot be zero");
  std::vector<std::string> chars;
  if (obj.is_string()) chars = Utf8Chars(obj.str());
  const auto len = static_cast<int64_t>(obj.is_list() ? obj.list().size() : chars.size());
  const int64_t lower = st > 0 ? 0 : -1;
  const int64_t upper = st > 0 ? len : len - 1;
  const int64_t begin =
      start.is_none() ? (st > 0 ? lower : upper) : ClampIndex(start.int_value(), len, lower, upper);
  const int64_t end =
      stop.is_none() ? (st > 0 ? upper : lower) : ClampIndex(stop.int_value(), len, lower, upper);
  ValueList items;
  std::string text;
  for (int64_t i = begin; st > 0 ? i < end : i > end;) {
    if (obj.is_list()) {
      items.push_back(obj.list()[static_cast<size_t>(i)]);
    } else {
      text += chars[static_cast<size_t>(i)];
    }
    if (__builtin_add_overflow(i, st, &i)) break;
  }
  if (obj.is_string()) return Value::String(std::move(text));
  return in.CheckedList(std::move(items), obj.is_tuple());
}

bool Iterate(Interpreter& in, const Value& v, ValueList* items) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return true;
    case Value::Kind::kList:
      *items = v.list();
      return true;
    case Value::Kind::kDict:
    case Value::Kind::kNamespace:
      for (const auto& entry : v.dict()) items->push_back(Value::String(entry.first));
      return true;
    case Value::Kind::kString:
      for (std::string& c : Utf8Chars(v.str())) items->push_back(Value::String(std::move(c)));
      return true;
    default:
      in.Fail(fmt::format("'{}' object is not iterable", TypeName(v)));
      return false;
  }
}

}  // namespace dormouse::jinja
