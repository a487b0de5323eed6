// Jinja's tests (`x is defined`), the globals Hugging Face gives chat templates
// (range, namespace, dict, raise_exception, strftime_now), and the compile-time name check.
#include <algorithm>
#include <ctime>

#include "engine/chat/jinja_interp.h"

namespace dormouse::jinja {
namespace {

using TestFn = bool (*)(Interpreter&, const Value&, const Value*);

struct NamedTest {
  std::string_view name;
  TestFn fn;
};

bool NeedArg(Interpreter& in, const Value* arg) {
  if (arg == nullptr) in.Fail("test needs an argument");
  return arg != nullptr;
}

bool Compare(Interpreter& in, const Value& v, const Value* arg, std::string_view op) {
  return NeedArg(in, arg) && BinaryOp(in, op, v, *arg).Truthy();
}

bool Parity(Interpreter& in, const Value& v, int remainder) {
  if (!v.is_int_like()) {
    in.Fail("even/odd need an integer");
    return false;
  }
  return (v.int_value() % 2 != 0) == (remainder != 0);
}

constexpr NamedTest kTests[] = {
    {"defined", [](Interpreter&, const Value& v, const Value*) { return !v.is_undefined(); }},
    {"undefined", [](Interpreter&, const Value& v, const Value*) { return v.is_undefined(); }},
    {"none", [](Interpreter&, const Value& v, const Value*) { return v.is_none(); }},
    {"string", [](Interpreter&, const Value& v, const Value*) { return v.is_string(); }},
    {"number", [](Interpreter&, const Value& v, const Value*) { return v.is_number(); }},
    {"integer",
     [](Interpreter&, const Value& v, const Value*) { return v.kind() == Value::Kind::kInt; }},
    {"float",
     [](Interpreter&, const Value& v, const Value*) { return v.kind() == Value::Kind::kFloat; }},
    {"boolean",
     [](Interpreter&, const Value& v, const Value*) { return v.kind() == Value::Kind::kBool; }},
    {"true", [](Interpreter&, const Value& v,
                const Value*) { return v.kind() == Value::Kind::kBool && v.bool_value(); }},
    {"false", [](Interpreter&, const Value& v,
                 const Value*) { return v.kind() == Value::Kind::kBool && !v.bool_value(); }},
    {"mapping", [](Interpreter&, const Value& v, const Value*) { return v.is_dict(); }},
    // Jinja's Undefined is iterable (as empty), so `undefined is iterable` holds.
    {"iterable",
     [](Interpreter&, const Value& v, const Value*) {
       return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
     }},
    {"sequence", [](Interpreter&, const Value& v,
                    const Value*) { return v.is_list() || v.is_dict() || v.is_string(); }},
    {"callable",
     [](Interpreter&, const Value& v, const Value*) { return v.kind() == Value::Kind::kCallable; }},
    {"even", [](Interpreter& in, const Value& v, const Value*) { return Parity(in, v, 0); }},
    {"odd", [](Interpreter& in, const Value& v, const Value*) { return Parity(in, v, 1); }},
    {"divisibleby",
     [](Interpreter& in, const Value& v, const Value* a) {
       return NeedArg(in, a) && BinaryOp(in, "%", v, *a).number() == 0 && !in.failed();
     }},
    {"eq", [](Interpreter& in, const Value& v, const Value* a) { return Compare(in, v, a, "=="); }},
    {"equalto",
     [](Interpreter& in, const Value& v, const Value* a) { return Compare(in, v, a, "=="); }},
    {"==", [](Interpreter& in, const Value& v, const Value* a) { return Compare(in, v, a, "=="); }},
    {"ne", [](Interpreter& in, const Value& v, const Value* a) { return Compare(in, v, a, "!="); }},
    {"!=", [](Interpreter& in, const Value& v, const Value* a) { return Compare(in, v, a, "!="); }},
    {"lt", [](Interpreter& in, const Value& v, const Value* a) { return Compare(in, v, a, "<"); }},
    {"lessthan",
     [](Interpreter& in, const Value& v, const Value* a) { return Compare(in, v, a, "<"); }},
    {"<", [](Interpreter& in, const Value& v, const Value* a) { return Compare(in, v, a, "<"); }},
    {"gt", [](Interpreter& in, const Value& v, const Value* a) { return Compare(in, v, a, ">"); }},
    {"greaterthan",
     [](Interpreter& in, const Value& v, const Value* a) { return Compare(in, v, a, ">"); }},
    {">", [](Interpreter& in, const Value& v, const Value* a) { return Compare(in, v, a, ">"); }},
    {"le", [](Interpreter& in, const Value& v, const Value* a) { return Compare(in, v, a, "<="); }},
    {"<=", [](Interpreter& in, const Value& v, const Value* a) { return Compare(in, v, a, "<="); }},
    {"ge", [](Interpreter& in, const Value& v, const Value* a) { return Compare(in, v, a, ">="); }},
    {">=", [](Interpreter& in, const Value& v, const Value* a) { return Compare(in, v, a, ">="); }},
    {"in", [](Interpreter& in, const Value& v, const Value* a) { return Compare(in, v, a, "in"); }},
    {"sameas",
     [](Interpreter& in, const Value& v, const Value* a) {
       return NeedArg(in, a) && v.kind() == a->kind() && in.Equal(v, *a);
     }},
    {"lower",
     [](Interpreter&, const Value& v, const Value*) {
       const std::string s = ToStr(v);
       return PyLower(s) == s && PyUpper(s) != s;
     }},
    {"upper",
     [](Interpreter&, const Value& v, const Value*) {
       const std::string s = ToStr(v);
       return PyUpper(s) == s && PyLower(s) != s;
     }},
    {"escaped", [](Interpreter&, const Value&, const Value*) { return false; }},
    {"filter",
     [](Interpreter&, const Value& v, const Value*) { return v.is_string() && IsFilter(v.str()); }},
};

const NamedTest* FindTest(std::string_view name) {
  auto it = std::find_if(std::begin(kTests), std::end(kTests),
                         [&](const NamedTest& t) { return t.name == name; });
  return it == std::end(kTests) ? nullptr : it;
}

Value Range(Interpreter& in, const CallArgs& a) {
  if (a.positional.empty() || a.positional.size() > 3) return in.Fail("range takes 1 to 3 ints");
  for (const Value& v : a.positional) {
    if (!v.is_int_like()) return in.Fail("range() arguments must be integers");
  }
  const bool one = a.positional.size() == 1;
  const int64_t start = one ? 0 : a.positional[0].int_value();
  const int64_t stop = one ? a.positional[0].int_value() : a.positional[1].int_value();
  const int64_t step = a.positional.size() == 3 ? a.positional[2].int_value() : 1;
  if (step == 0) return in.Fail("range() step must not be zero");
  // Count in floating point first so that huge spans cannot overflow.
  const double span = (static_cast<double>(stop) - static_cast<double>(start)) / step;
  if (span > static_cast<double>(in.limits().max_list_items)) {
    return in.Fail(fmt::format("range() of {:.0f} items exceeds the limit", span));
  }
  ValueList items;
  for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
    items.push_back(Value::Int(i));
    if (__builtin_add_overflow(i, step, &i)) break;
  }
  return in.CheckedList(std::move(items));
}

Value MakeNamespace(Interpreter& in, const CallArgs& a, bool is_namespace) {
  ValueDict entries;
  for (const Value& arg : a.positional) {
    if (!arg.is_dict()) return in.Fail("expected keyword arguments or a dict");
    entries.insert(entries.end(), arg.dict().begin(), arg.dict().end());
  }
  for (const auto& [key, value] : a.keyword) entries.emplace_back(key, value);
  for (const auto& entry : entries) {
    if (is_namespace && entry.second.holds_namespace()) {
      return in.Fail("a namespace cannot hold another namespace");
    }
  }
  Value v = is_namespace ? Value::Namespace(std::move(entries)) : Value::Dict(std::move(entries));
  if (v.depth() > kMaxValueDepth) return in.Fail("value nests too deeply");
  return v;
}

Value StrftimeNow(Interpreter& in, const CallArgs& a) {
  const Value* format = a.Get(0, "format");
  if (!format || !format->is_string() || format->str().size() > 256) {
    return in.Fail("strftime_now needs a format string");
  }
  const std::time_t now = in.now();
  std::tm local{};
  localtime_r(&now, &local);
  char buf[1024];
  const size_t n = std::strftime(buf, sizeof(buf), format->str().c_str(), &local);
  return Value::String(std::string(buf, n));
}

void CheckExpr(const Expr* e, Status* status) {
  if (e == nullptr || !status->ok()) return;
  if (e->kind == ExprKind::kFilter && !IsFilter(e->name)) {
    *status = Status::Errorf("line {}: unknown filter '{}'", e->line, e->name);
  } else if (e->kind == ExprKind::kTest && FindTest(e->name) == nullptr) {
    *status = Status::Errorf("line {}: unknown test '{}'", e->line, e->name);
  }
  for (const ExprPtr& arg : e->args) CheckExpr(arg.get(), status);
  for (const auto& kw : e->kwargs) CheckExpr(kw.second.get(), status);
}

void CheckBody(const Body& body, Status* status) {
  for (const StmtPtr& s : body) {
    CheckExpr(s->expr.get(), status);
    CheckExpr(s->filter.get(), status);
    for (const ExprPtr& c : s->conditions) CheckExpr(c.get(), status);
    for (const MacroParam& p : s->params) CheckExpr(p.default_value.get(), status);
    for (const Body& b : s->bodies) CheckBody(b, status);
    CheckBody(s->body, status);
    CheckBody(s->else_body, status);
  }
}

}  // namespace

Value CallTest(Interpreter& in, const std::string& name, const Value& v, const CallArgs& a) {
  const NamedTest* t = FindTest(name);
  if (t == nullptr) return in.Fail("unknown test '" + name + "'");
  return Value::Bool(t->fn(in, v, a.Get(0, "")));
}

bool IsGlobal(std::string_view name) {
  return name == "range" || name == "namespace" || name == "dict" || name == "raise_exception" ||
         name == "strftime_now";
}

Value CallGlobal(Interpreter& in, const std::string& name, const CallArgs& a) {
  if (name == "range") return Range(in, a);
  if (name == "namespace") return MakeNamespace(in, a, true);
  if (name == "dict") return MakeNamespace(in, a, false);
  if (name == "strftime_now") return StrftimeNow(in, a);
  const Value* message = a.Get(0, "message");
  return in.Raise(message ? ToStr(*message) : "raise_exception() called");
}

Status CheckFiltersAndTests(const Program& program) {
  Status status;
  CheckBody(program.body, &status);
  return status;
}

}  // namespace dormouse::jinja
