// Jinja's filters.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <functional>

#include "engine/chat/jinja_interp.h"

namespace dormouse::jinja {
namespace {

using Builtin = Value (*)(Interpreter&, const Value&, const CallArgs&);

struct NamedBuiltin {
  std::string_view name;
  Builtin fn;
};

Value Str(Interpreter& in, std::string s) { return in.CheckedString(std::move(s)); }

// Attribute lookup for selectattr/map/join/sum: "a.b" walks nested dicts.
Value AttributePath(Interpreter& in, Value v, const std::string& path) {
  size_t start = 0;
  while (!in.failed()) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? dot : dot - start);
    v = v.is_undefined() ? Value() : GetItem(in, v, Value::String(part));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return v;
}

Value Length(Interpreter& in, const Value& v, const CallArgs&) {
  if (v.is_string()) return Value::Int(static_cast<int64_t>(Utf8Chars(v.str()).size()));
  if (v.is_list()) return Value::Int(static_cast<int64_t>(v.list().size()));
  if (v.is_mapping()) return Value::Int(static_cast<int64_t>(v.dict().size()));
  if (v.is_undefined()) return Value::Int(0);
  return in.Fail(fmt::format("object of type '{}' has no len()", TypeName(v)));
}

Value Default(Interpreter&, const Value& v, const CallArgs& a) {
  const Value* fallback = a.Get(0, "default_value");
  const Value* boolean = a.Get(1, "boolean");
  const bool use_fallback = v.is_undefined() || (boolean && boolean->Truthy() && !v.Truthy());
  if (!use_fallback) return v;
  return fallback ? *fallback : Value::String("");
}

Value Join(Interpreter& in, const Value& v, const CallArgs& a) {
  const Value* sep = a.Get(0, "d");
  const Value* attribute = a.Get(1, "attribute");
  ValueList items;
  if (!Iterate(in, v, &items)) return Value();
  std::string out;
  for (size_t i = 0; i < items.size() && !in.failed(); ++i) {
    if (i > 0 && sep) out += ToStr(*sep);
    out += ToStr(attribute ? AttributePath(in, items[i], ToStr(*attribute)) : items[i]);
    if (out.size() > in.limits().max_string_bytes) return in.Fail("joined string is too long");
  }
  return Str(in, std::move(out));
}

Value FirstOrLast(Interpreter& in, const Value& v, bool first) {
  ValueList items;
  if (!Iterate(in, v, &items)) return Value();
  if (items.empty()) return Value::Undefined();
  return first ? items.front() : items.back();
}

Value ToJsonFilter(Interpreter& in, const Value& v, const CallArgs& a) {
  const Value* indent = a.Get(0, "indent");
  const Value* sort_keys = a.Get(99, "sort_keys");
  std::string out;
  const int width = indent && indent->is_int_like()
                        ? static_cast<int>(std::clamp<int64_t>(indent->int_value(), 0, 64))
                        : -1;
  Status status =
      ToJson(v, width, sort_keys && sort_keys->Truthy(), &out, in.limits().max_string_bytes);
  if (!status.ok()) return in.Fail(status.message());
  return Str(in, std::move(out));
}

Value IntFilter(Interpreter&, const Value& v, const CallArgs& a) {
  const Value* fallback = a.Get(0, "default");
  if (v.is_int_like()) return Value::Int(v.int_value());
  if (v.kind() == Value::Kind::kFloat && std::isfinite(v.number()) &&
      std::fabs(v.number()) < 9e18) {
    return Value::Int(static_cast<int64_t>(v.number()));
  }
  if (v.is_string()) {
    const std::string s = PyStrip(v.str(), nullptr, true, true);
    int64_t i = 0;
    auto res = std::from_chars(s.data(), s.data() + s.size(), i);
    if (res.ec == std::errc() && res.ptr == s.data() + s.size()) return Value::Int(i);
  }
  return fallback ? *fallback : Value::Int(0);
}

Value FloatFilter(Interpreter&, const Value& v, const CallArgs& a) {
  const Value* fallback = a.Get(0, "default");
  if (v.is_number()) return Value::Float(v.number());
  if (v.is_string()) {
    const std::string s = PyStrip(v.str(), nullptr, true, true);
    char* end = nullptr;
    const double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size()) return Value::Float(d);
  }
  return fallback ? *fallback : Value::Float(0);
}

Value Items(Interpreter& in, const Value& v, const CallArgs&) {
  if (v.is_undefined()) return Value::List({});
  if (!v.is_mapping()) return in.Fail("items: expected a mapping");
  ValueList out;
  for (const auto& [key, value] : v.dict()) {
    out.push_back(Value::List({Value::String(key), value}, /*tuple=*/true));
  }
  return in.CheckedList(std::move(out));
}

// select/reject/selectattr/rejectattr: `attr` is null for select/reject.
Value SelectItems(Interpreter& in, const Value& v, const CallArgs& a, bool by_attr, bool keep) {
  ValueList items;
  if (!Iterate(in, v, &items)) return Value();
  size_t next = 0;
  std::string attr;
  if (by_attr) {
    if (a.positional.empty()) return in.Fail("selectattr needs an attribute name");
    attr = ToStr(a.positional[next++]);
  }
  std::string test;
  if (next < a.positional.size()) test = ToStr(a.positional[next++]);
  CallArgs test_args;
  test_args.positional.assign(a.positional.begin() + static_cast<ptrdiff_t>(next),
                              a.positional.end());
  ValueList out;
  for (const Value& item : items) {
    const Value subject = by_attr ? AttributePath(in, item, attr) : item;
    const bool pass =
        test.empty() ? subject.Truthy() : CallTest(in, test, subject, test_args).Truthy();
    if (in.failed()) return Value();
    if (pass == keep) out.push_back(item);
  }
  return in.CheckedList(std::move(out));
}

Value Map(Interpreter& in, const Value& v, const CallArgs& a) {
  ValueList items;
  if (!Iterate(in, v, &items)) return Value();
  const Value* attribute = a.Get(99, "attribute");
  const Value* fallback = a.Get(99, "default");
  CallArgs filter_args;
  std::string filter;
  if (!attribute) {
    if (a.positional.empty()) return in.Fail("map needs a filter or attribute");
    filter = ToStr(a.positional[0]);
    filter_args.positional.assign(a.positional.begin() + 1, a.positional.end());
  }
  ValueList out;
  for (const Value& item : items) {
    Value mapped = attribute ? AttributePath(in, item, ToStr(*attribute))
                             : CallFilter(in, filter, item, filter_args);
    if (mapped.is_undefined() && fallback) mapped = *fallback;
    if (in.failed()) return Value();
    out.push_back(std::move(mapped));
  }
  return in.CheckedList(std::move(out));
}

Value Reverse(Interpreter& in, const Value& v, const CallArgs&) {
  if (v.is_string()) {
    std::vector<std::string> chars = Utf8Chars(v.str());
    std::string out;
    for (auto it = chars.rbegin(); it != chars.rend(); ++it) out += *it;
    return Value::String(std::move(out));
  }
  ValueList items;
  if (!Iterate(in, v, &items)) return Value();
  std::reverse(items.begin(), items.end());
  return in.CheckedList(std::move(items));
}

Value Unique(Interpreter& in, const Value& v, const CallArgs&) {
  ValueList items;
  if (!Iterate(in, v, &items)) return Value();
  ValueList out;
  for (Value& item : items) {
    if (!in.Tick()) return Value();
    if (std::none_of(out.begin(), out.end(), [&](const Value& o) { return in.Equal(o, item); })) {
      out.push_back(std::move(item));
    }
  }
  return in.CheckedList(std::move(out));
}

Value Sort(Interpreter& in, const Value& v, const CallArgs& a) {
  const Value* reverse = a.Get(0, "reverse");
  const Value* attribute = a.Get(2, "attribute");
  ValueList items;
  if (!Iterate(in, v, &items)) return Value();
  auto key = [&](const Value& x) {
    return attribute ? AttributePath(in, x, ToStr(*attribute)) : x;
  };
  // After a failed comparison every comparison is false, which stable_sort tolerates.
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    return !in.failed() && in.LessThan(key(x), key(y));
  });
  if (in.failed()) return Value();
  if (reverse && reverse->Truthy()) std::reverse(items.begin(), items.end());
  return in.CheckedList(std::move(items));
}

Value Indent(Interpreter& in, const Value& v, const CallArgs& a) {
  const Value* width = a.Get(0, "width");
  const Value* first = a.Get(1, "first");
  const Value* blank = a.Get(2, "blank");
  std::string pad =
      width && width->is_string()
          ? width->str()
          : std::string(
                static_cast<size_t>(std::clamp<int64_t>(width ? width->int_value() : 4, 0, 64)),
                ' ');
  std::string out;
  const std::string s = ToStr(v);
  size_t start = 0;
  for (bool is_first = true; start <= s.size(); is_first = false) {
    const size_t nl = s.find('\n', start);
    const std::string line = s.substr(start, nl == std::string::npos ? nl : nl - start);
    const bool add =
        is_first ? (first && first->Truthy()) : (!line.empty() || (blank && blank->Truthy()));
    if (!is_first) out += '\n';
    if (add) out += pad;
    out += line;
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return Str(in, std::move(out));
}

Value Round(Interpreter& in, const Value& v, const CallArgs& a) {
  if (!v.is_number()) return in.Fail("round: expected a number");
  const Value* precision = a.Get(0, "precision");
  const Value* method = a.Get(1, "method");
  const double scale =
      std::pow(10.0, precision ? std::clamp<double>(precision->number(), -20, 20) : 0);
  const std::string m = method ? ToStr(*method) : "common";
  double x = v.number() * scale;
  x = m == "ceil" ? std::ceil(x) : m == "floor" ? std::floor(x) : std::round(x);
  return Value::Float(x / scale);
}

Value Escape(Interpreter& in, const Value& v, const CallArgs&) {
  std::string out;
  for (char c : ToStr(v)) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return Str(in, std::move(out));
}

Value SumMinMax(Interpreter& in, const Value& v, const CallArgs& a, int mode) {
  ValueList items;
  if (!Iterate(in, v, &items)) return Value();
  const Value* attribute = a.Get(mode == 0 ? 0 : 99, "attribute");
  Value acc = mode == 0 ? (a.Get(1, "start") ? *a.Get(1, "start") : Value::Int(0)) : Value();
  for (const Value& raw : items) {
    const Value item = attribute ? AttributePath(in, raw, ToStr(*attribute)) : raw;
    if (mode == 0) {
      acc = BinaryOp(in, "+", acc, item);
    } else if (acc.is_undefined() || BinaryOp(in, mode < 0 ? "<" : ">", item, acc).Truthy()) {
      acc = item;
    }
    if (in.failed()) return Value();
  }
  return acc;
}

Value StringCase(Interpreter& in, const Value& v, int mode) {
  const std::string s = ToStr(v);
  if (mode == 0) return Str(in, PyUpper(s));
  if (mode == 1) return Str(in, PyLower(s));
  if (mode == 2) return Str(in, PyCapitalize(s));
  // Jinja's title filter: words start after whitespace, '-', and opening brackets.
  std::string out = PyLower(s);
  bool word_start = true;
  for (char& c : out) {
    if (word_start && c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
    word_start = std::string_view(" \t\n\r\f\v-({[<").find(c) != std::string_view::npos;
  }
  return Str(in, std::move(out));
}

constexpr NamedBuiltin kFilters[] = {
    {"length", Length},
    {"count", Length},
    {"default", Default},
    {"d", Default},
    {"join", Join},
    {"tojson", ToJsonFilter},
    {"int", IntFilter},
    {"float", FloatFilter},
    {"items", Items},
    {"map", Map},
    {"reverse", Reverse},
    {"unique", Unique},
    {"sort", Sort},
    {"indent", Indent},
    {"round", Round},
    {"escape", Escape},
    {"e", Escape},
    {"forceescape", Escape},
    {"trim",
     [](Interpreter& in, const Value& v, const CallArgs& a) {
       return Str(in, PyStrip(ToStr(v), a.Get(0, "chars"), true, true));
     }},
    {"upper",
     [](Interpreter& in, const Value& v, const CallArgs&) { return StringCase(in, v, 0); }},
    {"lower",
     [](Interpreter& in, const Value& v, const CallArgs&) { return StringCase(in, v, 1); }},
    {"capitalize",
     [](Interpreter& in, const Value& v, const CallArgs&) { return StringCase(in, v, 2); }},
    {"title",
     [](Interpreter& in, const Value& v, const CallArgs&) { return StringCase(in, v, 3); }},
    {"replace",
     [](Interpreter& in, const Value& v, const CallArgs& a) {
       const Value* from = a.Get(0, "old");
       const Value* to = a.Get(1, "new");
       const Value* count = a.Get(2, "count");
       if (!from || !to) return in.Fail("replace needs two arguments");
       return PyReplace(in, ToStr(v), ToStr(*from), ToStr(*to),
                        count && count->is_int_like() ? count->int_value() : -1);
     }},
    {"first",
     [](Interpreter& in, const Value& v, const CallArgs&) { return FirstOrLast(in, v, true); }},
    {"last",
     [](Interpreter& in, const Value& v, const CallArgs&) { return FirstOrLast(in, v, false); }},
    {"string", [](Interpreter& in, const Value& v, const CallArgs&) { return Str(in, ToStr(v)); }},
    {"safe", [](Interpreter&, const Value& v, const CallArgs&) { return v; }},
    {"list",
     [](Interpreter& in, const Value& v, const CallArgs&) {
       ValueList items;
       return Iterate(in, v, &items) ? in.CheckedList(std::move(items)) : Value();
     }},
    {"abs",
     [](Interpreter& in, const Value& v, const CallArgs&) {
       if (!v.is_number()) return in.Fail("abs: expected a number");
       return v.is_int_like() ? UnaryOp(in, v.int_value() < 0 ? "-" : "+", v)
                              : Value::Float(std::fabs(v.number()));
     }},
    {"select", [](Interpreter& in, const Value& v,
                  const CallArgs& a) { return SelectItems(in, v, a, false, true); }},
    {"reject", [](Interpreter& in, const Value& v,
                  const CallArgs& a) { return SelectItems(in, v, a, false, false); }},
    {"selectattr", [](Interpreter& in, const Value& v,
                      const CallArgs& a) { return SelectItems(in, v, a, true, true); }},
    {"rejectattr", [](Interpreter& in, const Value& v,
                      const CallArgs& a) { return SelectItems(in, v, a, true, false); }},
    {"sum",
     [](Interpreter& in, const Value& v, const CallArgs& a) { return SumMinMax(in, v, a, 0); }},
    {"min",
     [](Interpreter& in, const Value& v, const CallArgs& a) { return SumMinMax(in, v, a, -1); }},
    {"max",
     [](Interpreter& in, const Value& v, const CallArgs& a) { return SumMinMax(in, v, a, 1); }},
    // Python getattr only: unlike `x.name`, `x|attr(name)` does not fall back to dict keys.
    {"attr",
     [](Interpreter& in, const Value& v, const CallArgs& a) {
       const Value* name = a.Get(0, "name");
       if (!name) return in.Fail("attr needs a name");
       if (HasMethod(v, ToStr(*name)) || v.kind() == Value::Kind::kNamespace) {
         return GetAttr(in, v, ToStr(*name));
       }
       return Value::Undefined(ToStr(*name));
     }},
};

const NamedBuiltin* FindBuiltin(const NamedBuiltin* begin, const NamedBuiltin* end,
                                std::string_view name) {
  const NamedBuiltin* it =
      std::find_if(begin, end, [&](const NamedBuiltin& b) { return b.name == name; });
  return it == end ? nullptr : it;
}

}  // namespace

Value CallFilter(Interpreter& in, const std::string& name, const Value& v, const CallArgs& a) {
  const NamedBuiltin* f = FindBuiltin(std::begin(kFilters), std::end(kFilters), name);
  if (f == nullptr) return in.Fail("unknown filter '" + name + "'");
  return f->fn(in, v, a);
}

bool IsFilter(std::string_view name) {
  return FindBuiltin(std::begin(kFilters), std::end(kFilters), name) != nullptr;
}

}  // namespace dormouse::jinja
