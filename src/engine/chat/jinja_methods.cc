// Python str and dict methods that chat templates call (`content.strip()`, `d.get(k)`, ...).
// Mutating list/dict methods are absent on purpose: Hugging Face renders in an
// ImmutableSandboxedEnvironment, where they raise.
#include <algorithm>
#include <array>
#include <cctype>

#include "engine/chat/jinja_interp.h"

namespace dormouse::jinja {
namespace {

constexpr std::array<std::string_view, 20> kStringMethods = {
    "strip",   "lstrip",  "rstrip",     "split",   "startswith", "endswith",  "upper",
    "lower",   "title",   "capitalize", "replace", "find",       "count",     "join",
    "isdigit", "isalpha", "isspace",    "islower", "isupper",    "splitlines"};
constexpr std::array<std::string_view, 4> kDictMethods = {"get", "items", "keys", "values"};

bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Python's str.title(): a letter after a cased character is lowered, else raised.
// Bytes of non-ASCII characters count as cased and are left unchanged.
std::string PyTitle(std::string_view s) {
  std::string out(s);
  bool prev_cased = false;
  for (char& c : out) {
    const bool non_ascii = static_cast<unsigned char>(c) >= 0x80;
    if (IsAlpha(c)) c = static_cast<char>(prev_cased ? std::tolower(c) : std::toupper(c));
    prev_cased = IsAlpha(c) || non_ascii;
  }
  return out;
}

std::vector<Value> SplitWhitespace(std::string_view s, int64_t maxsplit) {
  std::vector<Value> parts;
  size_t i = 0;
  while (true) {
    while (i < s.size() && IsAsciiSpace(s[i])) ++i;
    if (i >= s.size()) break;
    if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
      size_t end = s.size();
      while (end > i && IsAsciiSpace(s[end - 1])) --end;
      parts.push_back(Value::String(std::string(s.substr(i, end - i))));
      break;
    }
    size_t j = i;
    while (j < s.size() && !IsAsciiSpace(s[j])) ++j;
    parts.push_back(Value::String(std::string(s.substr(i, j - i))));
    i = j;
  }
  return parts;
}

Value Split(Interpreter& in, const std::string& s, const CallArgs& args) {
  const Value* sep = args.Get(0, "sep");
  const Value* max = args.Get(1, "maxsplit");
  const int64_t maxsplit = max && max->is_int_like() ? max->int_value() : -1;
  if (!sep || sep->is_none()) return in.CheckedList(SplitWhitespace(s, maxsplit));
  if (!sep->is_string() || sep->str().empty()) return in.Fail("split: invalid separator");
  ValueList parts;
  size_t start = 0;
  while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
    const size_t hit = s.find(sep->str(), start);
    if (hit == std::string::npos) break;
    parts.push_back(Value::String(s.substr(start, hit - start)));
    start = hit + sep->str().size();
  }
  parts.push_back(Value::String(s.substr(start)));
  return in.CheckedList(std::move(parts));
}

Value AffixTest(Interpreter& in, const std::string& s, const CallArgs& args, bool prefix) {
  const Value* arg = args.Get(0, "prefix");
  if (!arg) return in.Fail("startswith/endswith takes one argument");
  std::vector<const Value*> candidates;
  if (arg->is_list()) {
    for (const Value& v : arg->list()) candidates.push_back(&v);
  } else {
    candidates.push_back(arg);
  }
  for (const Value* c : candidates) {
    if (!c->is_string()) return in.Fail("startswith/endswith needs strings");
    const std::string& a = c->str();
    if (a.size() <= s.size() && (prefix ? s.compare(0, a.size(), a) == 0
                                        : s.compare(s.size() - a.size(), a.size(), a) == 0)) {
      return Value::Bool(true);
    }
  }
  return Value::Bool(false);
}

Value CharClass(const std::string& s, std::string_view name) {
  if (s.empty()) return Value::Bool(false);
  bool all = true;
  bool any_cased = false;
  for (char c : s) {
    if (name == "isdigit") all &= c >= '0' && c <= '9';
    if (name == "isalpha") all &= IsAlpha(c);
    if (name == "isspace") all &= IsAsciiSpace(c);
    if (name == "islower") {
      all &= !(c >= 'A' && c <= 'Z');
      any_cased |= c >= 'a' && c <= 'z';
    }
    if (name == "isupper") {
      all &= !(c >= 'a' && c <= 'z');
      any_cased |= c >= 'A' && c <= 'Z';
    }
  }
  if (name == "islower" || name == "isupper") all &= any_cased;
  return Value::Bool(all);
}

Value StringMethod(Interpreter& in, const std::string& s, const std::string& name,
                   const CallArgs& args) {
  const Value* a0 = args.Get(0, "");
  if (name == "strip") return Value::String(PyStrip(s, a0, true, true));
  if (name == "lstrip") return Value::String(PyStrip(s, a0, true, false));
  if (name == "rstrip") return Value::String(PyStrip(s, a0, false, true));
  if (name == "split") return Split(in, s, args);
  if (name == "splitlines") return Split(in, s, CallArgs{{Value::String("\n")}, {}});
  if (name == "startswith" || name == "endswith") {
    return AffixTest(in, s, args, name == "startswith");
  }
  if (name == "upper") return Value::String(PyUpper(s));
  if (name == "lower") return Value::String(PyLower(s));
  if (name == "title") return Value::String(PyTitle(s));
  if (name == "capitalize") return Value::String(PyCapitalize(s));
  if (name == "replace") {
    const Value* from = args.Get(0, "old");
    const Value* to = args.Get(1, "new");
    const Value* count = args.Get(2, "count");
    if (!from || !to || !from->is_string() || !to->is_string()) {
      return in.Fail("replace() needs two strings");
    }
    return PyReplace(in, s, from->str(), to->str(),
                     count && count->is_int_like() ? count->int_value() : -1);
  }
  if (!a0 && name != "isdigit" && name != "isalpha" && name != "isspace" && name != "islower" &&
      name != "isupper") {
    return in.Fail(name + "() takes one argument");
  }
  if (name == "join") {
    ValueList items;
    if (!Iterate(in, *a0, &items)) return Value();
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].is_string()) return in.Fail("join() needs strings");
      if (i > 0) out += s;
      out += items[i].str();
      if (out.size() > in.limits().max_string_bytes) return in.Fail("joined string is too long");
    }
    return Value::String(std::move(out));
  }
  if (name == "find" || name == "count") {
    if (!a0->is_string()) return in.Fail(name + "() needs a string");
    if (name == "find") {
      const size_t hit = s.find(a0->str());
      if (hit == std::string::npos) return Value::Int(-1);
      return Value::Int(static_cast<int64_t>(Utf8Chars(s.substr(0, hit)).size()));
    }
    if (a0->str().empty()) return Value::Int(static_cast<int64_t>(Utf8Chars(s).size()) + 1);
    int64_t n = 0;
    const std::string& needle = a0->str();
    for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + needle.size())) {
      ++n;
    }
    return Value::Int(n);
  }
  return CharClass(s, name);
}

Value DictMethod(Interpreter& in, const Value& self, const std::string& name,
                 const CallArgs& args) {
  if (name == "get") {
    const Value* key = args.Get(0, "key");
    const Value* fallback = args.Get(1, "default");
    if (!key) return in.Fail("get() takes a key");
    const Value* found = key->is_string() ? self.Find(key->str()) : nullptr;
    if (found) return *found;
    return fallback ? *fallback : Value::None();
  }
  ValueList out;
  for (const auto& [key, value] : self.dict()) {
    if (name == "keys") {
      out.push_back(Value::String(key));
    } else if (name == "values") {
      out.push_back(value);
    } else {
      out.push_back(Value::List({Value::String(key), value}, /*tuple=*/true));
    }
  }
  return in.CheckedList(std::move(out));
}

}  // namespace

std::string PyStrip(std::string_view s, const Value* chars, bool left, bool right) {
  std::vector<std::string> cps = Utf8Chars(s);
  std::vector<std::string> set;
  const bool whitespace = chars == nullptr || !chars->is_string();
  if (!whitespace) set = Utf8Chars(chars->str());
  auto strip_this = [&](const std::string& c) {
    if (whitespace) return c.size() == 1 && IsAsciiSpace(c[0]);
    return std::find(set.begin(), set.end(), c) != set.end();
  };
  size_t begin = 0;
  size_t end = cps.size();
  while (left && begin < end && strip_this(cps[begin])) ++begin;
  while (right && end > begin && strip_this(cps[end - 1])) --end;
  std::string out;
  for (size_t i = begin; i < end; ++i) out += cps[i];
  return out;
}

std::string PyUpper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c;
  return out;
}

std::string PyLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
  return out;
}

std::string PyCapitalize(std::string_view s) {
  std::string out = PyLower(s);
  if (!out.empty()) out[0] = PyUpper(out.substr(0, 1))[0];
  return out;
}

Value PyReplace(Interpreter& in, const std::string& s, const std::string& from,
                const std::string& to, int64_t count) {
  std::string out;
  int64_t done = 0;
  if (from.empty()) {  // Python inserts `to` around every character
    for (const std::string& c : Utf8Chars(s)) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      out += c;
      if (out.size() > in.limits().max_string_bytes) break;
    }
    if (count < 0 || done < count) out += to;
    return in.CheckedString(std::move(out));
  }
  size_t start = 0;
  for (size_t hit = s.find(from); hit != std::string::npos && (count < 0 || done < count);
       hit = s.find(from, start)) {
    out.append(s, start, hit - start);
    out += to;
    start = hit + from.size();
    ++done;
    if (out.size() > in.limits().max_string_bytes) break;
  }
  out.append(s, start);
  return in.CheckedString(std::move(out));
}

bool HasMethod(const Value& self, std::string_view name) {
  if (self.is_string()) {
    return std::find(kStringMethods.begin(), kStringMethods.end(), name) != kStringMethods.end();
  }
  if (self.is_dict()) {
    return std::find(kDictMethods.begin(), kDictMethods.end(), name) != kDictMethods.end();
  }
  return false;
}

Value CallMethod(Interpreter& in, const Value& self, const std::string& name, const CallArgs& a) {
  if (self.is_string()) return StringMethod(in, self.str(), name, a);
  if (self.is_dict()) return DictMethod(in, self, name, a);
  return in.Fail("unknown method '" + name + "'");
}

}  // namespace dormouse::jinja
