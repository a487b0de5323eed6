#include "engine/chat/jinja_interp.h"

#include <algorithm>

#include "engine/chat/jinja_parser.h"

namespace dormouse::jinja {

const Value* CallArgs::Get(size_t index, std::string_view name) const {
  if (index < positional.size()) return &positional[index];
  for (const auto& [key, value] : keyword) {
    if (key == name) return &value;
  }
  return nullptr;
}

Interpreter::Interpreter(const Program& program, const RenderLimits& limits, std::time_t now)
    : program_(program), limits_(limits), now_(now) {}

StatusOr<std::string> Interpreter::Render(const ValueDict& context) {
  std::string out;
  out_ = &out;
  frames_.assign(1, Frame(context.begin(), context.end()));
  ExecBody(program_.body);
  if (!error_.ok()) return error_;
  return out;
}

Value Interpreter::Fail(const std::string& message) {
  if (error_.ok()) error_ = Status::Errorf("line {}: {}", line_, message);
  return Value();
}

Value Interpreter::Raise(const std::string& message) {
  if (error_.ok()) error_ = Status::Error(message);
  return Value();
}

bool Interpreter::Charge(int64_t units) {
  if (!error_.ok()) return false;
  steps_ += units;
  if (steps_ <= limits_.max_steps) return true;
  Fail(fmt::format("template exceeded its budget of {} steps", limits_.max_steps));
  return false;
}

bool Interpreter::Equal(const Value& a, const Value& b) {
  const int64_t available = limits_.max_steps - steps_;
  int64_t budget = available;
  const bool equal = Equals(a, b, &budget);
  Charge(available - budget);
  return equal && !failed();
}

bool Interpreter::LessThan(const Value& a, const Value& b) {
  const int64_t available = limits_.max_steps - steps_;
  int64_t budget = available;
  StatusOr<bool> less = Less(a, b, &budget);
  Charge(available - budget);
  if (!less.ok()) Fail(less.status().message());
  return less.ok() && *less && !failed();
}

// Bounds the interpreter's recursion (statements, expressions and macro calls together).
class Interpreter::DepthGuard {
 public:
  explicit DepthGuard(Interpreter* in) : in_(in) {
    if (++in_->eval_depth_ > in_->limits_.max_eval_depth) in_->Fail("template nests too deeply");
  }
  ~DepthGuard() { --in_->eval_depth_; }

 private:
  Interpreter* in_;
};

Value Interpreter::CheckedString(std::string s) {
  Charge(static_cast<int64_t>(s.size() / 64));  // building it cost a copy
  if (s.size() > limits_.max_string_bytes) {
    return Fail(fmt::format("string of {} bytes exceeds the limit", s.size()));
  }
  return Value::String(std::move(s));
}

Value Interpreter::CheckedList(ValueList items, bool tuple) {
  Charge(static_cast<int64_t>(items.size()));
  if (items.size() > limits_.max_list_items) {
    return Fail(fmt::format("list of {} items exceeds the limit", items.size()));
  }
  Value v = Value::List(std::move(items), tuple);
  if (v.depth() > kMaxValueDepth) return Fail("value nests too deeply");
  return v;
}

Value Interpreter::UndefinedError(const Value& undefined) {
  if (undefined.str().empty()) return Fail("value is undefined");
  return Fail("'" + undefined.str() + "' is undefined");
}

void Interpreter::Write(std::string_view text) {
  bytes_written_ += text.size();
  if (bytes_written_ > limits_.max_output_bytes) {
    Fail(fmt::format("output exceeds the limit of {} bytes", limits_.max_output_bytes));
    return;
  }
  out_->append(text);
}

// --- statements ----------------------------------------------------------------------

Interpreter::Flow Interpreter::ExecBody(const Body& body) {
  for (const StmtPtr& s : body) {
    const Flow flow = ExecStmt(*s);
    if (failed()) return Flow::kNormal;
    if (flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::ExecStmt(const Stmt& s) {
  DepthGuard guard(this);
  if (!Tick()) return Flow::kNormal;
  line_ = s.line;
  switch (s.kind) {
    case StmtKind::kText:
      Write(s.text);
      break;
    case StmtKind::kOutput: {
      const Value v = Eval(*s.expr);
      if (!failed()) Write(ToStr(v));
      break;
    }
    case StmtKind::kIf:
      return ExecIf(s);
    case StmtKind::kFor:
      return ExecFor(s);
    case StmtKind::kSet:
      ExecSet(s);
      break;
    case StmtKind::kSetBlock: {
      std::string captured = Capture(s.body);
      Assign(s.targets[0], Value::String(std::move(captured)));
      break;
    }
    case StmtKind::kMacro: {
      auto fn = std::make_shared<Callable>();
      fn->kind = Callable::Kind::kMacro;
      fn->name = s.text;
      fn->macro = &s;
      Assign(s.text, Value::Function(std::move(fn)));
      break;
    }
    case StmtKind::kBreak:
      return Flow::kBreak;
    case StmtKind::kContinue:
      return Flow::kContinue;
    case StmtKind::kScope:
      return ExecBody(s.body);
  }
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::ExecIf(const Stmt& s) {
  for (size_t i = 0; i < s.conditions.size(); ++i) {
    const Value cond = Eval(*s.conditions[i]);
    if (failed()) return Flow::kNormal;
    if (cond.Truthy()) return ExecBody(s.bodies[i]);
  }
  if (s.bodies.size() > s.conditions.size()) return ExecBody(s.bodies.back());
  return Flow::kNormal;
}

bool Interpreter::BindTargets(const std::vector<std::string>& targets, const Value& v) {
  if (targets.size() == 1) {
    Assign(targets[0], v);
    return true;
  }
  if (!v.is_list() || v.list().size() != targets.size()) {
    Fail(fmt::format("cannot unpack {} into {} names", Repr(v, 200), targets.size()));
    return false;
  }
  for (size_t i = 0; i < targets.size(); ++i) Assign(targets[i], v.list()[i]);
  return true;
}

ValueList Interpreter::FilterLoopItems(const Stmt& s, ValueList items) {
  if (!s.filter) return items;
  ValueList kept;
  for (Value& item : items) {
    frames_.emplace_back();
    const bool keep = BindTargets(s.targets, item) && Eval(*s.filter).Truthy();
    frames_.pop_back();
    if (failed()) return {};
    if (keep) kept.push_back(std::move(item));
  }
  return kept;
}

// Jinja's `loop` object: one dict per loop, advanced in place for each item.
Value MakeLoopInfo(const Value& iterable, int64_t length) {
  Value loop = Value::Dict({{"index", Value()},
                            {"index0", Value()},
                            {"revindex", Value()},
                            {"revindex0", Value()},
                            {"first", Value()},
                            {"last", Value()},
                            {"length", Value::Int(length)},
                            {"depth", Value::Int(1)},
                            {"depth0", Value::Int(0)},
                            {"previtem", Value()},
                            {"nextitem", Value()}});
  loop.InheritBounds(iterable);
  return loop;
}

void AdvanceLoopInfo(const Value& loop, const ValueList& items, size_t i) {
  const auto n = static_cast<int64_t>(items.size());
  const auto k = static_cast<int64_t>(i);
  ValueDict& e = loop.mutable_entries();
  e[0].second = Value::Int(k + 1);
  e[1].second = Value::Int(k);
  e[2].second = Value::Int(n - k);
  e[3].second = Value::Int(n - k - 1);
  e[4].second = Value::Bool(k == 0);
  e[5].second = Value::Bool(k == n - 1);
  e[9].second = i > 0 ? items[i - 1] : Value::Undefined("previtem");
  e[10].second = i + 1 < items.size() ? items[i + 1] : Value::Undefined("nextitem");
}

Interpreter::Flow Interpreter::ExecFor(const Stmt& s) {
  const Value iterable = Eval(*s.expr);
  ValueList items;
  if (failed() || !Iterate(*this, iterable, &items)) return Flow::kNormal;
  items = FilterLoopItems(s, std::move(items));
  if (failed()) return Flow::kNormal;
  const Value loop = MakeLoopInfo(iterable, static_cast<int64_t>(items.size()));
  for (size_t i = 0; i < items.size(); ++i) {
    if (!Tick()) return Flow::kNormal;
    AdvanceLoopInfo(loop, items, i);
    frames_.emplace_back();  // each iteration has its own scope, as in Jinja
    frames_.back().emplace_back("loop", loop);
    Flow flow = BindTargets(s.targets, items[i]) ? ExecBody(s.body) : Flow::kNormal;
    frames_.pop_back();
    if (failed() || flow == Flow::kBreak) return Flow::kNormal;
  }
  if (items.empty()) return ExecBody(s.else_body);
  return Flow::kNormal;
}

void Interpreter::ExecSet(const Stmt& s) {
  Value v = Eval(*s.expr);
  if (failed()) return;
  if (s.text.empty()) {
    BindTargets(s.targets, v);
    return;
  }
  const Value target = Lookup(s.targets[0]);
  if (target.kind() != Value::Kind::kNamespace) {
    Fail("cannot assign attribute '" + s.text + "' on a non-namespace object");
    return;
  }
  // A namespace inside a namespace could form a reference cycle.
  if (v.holds_namespace()) {
    Fail("a namespace cannot hold another namespace");
    return;
  }
  ValueDict& entries = target.mutable_entries();
  for (auto& entry : entries) {
    if (entry.first == s.text) {
      entry.second = std::move(v);
      return;
    }
  }
  entries.emplace_back(s.text, std::move(v));
}

std::string Interpreter::Capture(const Body& body) {
  std::string captured;
  std::string* saved = out_;
  out_ = &captured;
  ExecBody(body);
  out_ = saved;
  return captured;
}

// --- scopes --------------------------------------------------------------------------

Value Interpreter::Lookup(const std::string& name) const {
  for (size_t i = frames_.size(); i-- > 0;) {
    if (i < scope_floor_ && i != 0) continue;
    for (const auto& [key, value] : frames_[i]) {
      if (key == name) return value;
    }
  }
  if (IsGlobal(name)) {
    auto fn = std::make_shared<Callable>();
    fn->kind = Callable::Kind::kGlobal;
    fn->name = name;
    return Value::Function(std::move(fn));
  }
  return Value::Undefined(name);
}

void Interpreter::Assign(const std::string& name, Value v) {
  Frame& frame = frames_.back();
  for (auto& entry : frame) {
    if (entry.first == name) {
      entry.second = std::move(v);
      return;
    }
  }
  frame.emplace_back(name, std::move(v));
}

// --- expressions ---------------------------------------------------------------------

Value Interpreter::Eval(const Expr& e) {
  DepthGuard guard(this);
  if (!Tick()) return Value();
  switch (e.kind) {
    case ExprKind::kLiteral:
      return e.literal;
    case ExprKind::kName:
      return Lookup(e.name);
    case ExprKind::kList:
    case ExprKind::kTuple:
    case ExprKind::kDict:
      return EvalCollection(e);
    case ExprKind::kAttr: {
      const Value obj = Eval(*e.args[0]);
      if (failed()) return Value();
      return GetAttr(*this, obj, e.name);
    }
    case ExprKind::kIndex: {
      const Value obj = Eval(*e.args[0]);
      const Value key = Eval(*e.args[1]);
      if (failed()) return Value();
      return GetItem(*this, obj, key);
    }
    case ExprKind::kSlice: {
      Value parts[4];
      for (size_t i = 0; i < 4; ++i) parts[i] = e.args[i] ? Eval(*e.args[i]) : Value::None();
      if (failed()) return Value();
      return GetSlice(*this, parts[0], parts[1], parts[2], parts[3]);
    }
    case ExprKind::kCall:
      return EvalCall(e);
    case ExprKind::kFilter:
    case ExprKind::kTest:
      return EvalFilterOrTest(e);
    case ExprKind::kUnary: {
      const Value v = Eval(*e.args[0]);
      if (failed()) return Value();
      return UnaryOp(*this, e.name, v);
    }
    case ExprKind::kBinary:
      return EvalBinary(e);
    case ExprKind::kCondition: {
      const Value cond = Eval(*e.args[0]);
      if (failed()) return Value();
      if (cond.Truthy()) return Eval(*e.args[1]);
      return e.args[2] ? Eval(*e.args[2]) : Value();
    }
  }
  return Value();
}

Value Interpreter::EvalCollection(const Expr& e) {
  if (e.kind != ExprKind::kDict) {
    ValueList items;
    for (const ExprPtr& arg : e.args) items.push_back(Eval(*arg));
    if (failed()) return Value();
    return CheckedList(std::move(items), e.kind == ExprKind::kTuple);
  }
  ValueDict entries;
  for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
    const Value key = Eval(*e.args[i]);
    Value value = Eval(*e.args[i + 1]);
    if (failed()) return Value();
    if (!key.is_string()) return Fail("only string dictionary keys are supported");
    auto it = std::find_if(entries.begin(), entries.end(),
                           [&](const auto& entry) { return entry.first == key.str(); });
    if (it != entries.end()) {
      it->second = std::move(value);
    } else {
      entries.emplace_back(key.str(), std::move(value));
    }
  }
  Value v = Value::Dict(std::move(entries));
  if (v.depth() > kMaxValueDepth) return Fail("value nests too deeply");
  return v;
}

bool Interpreter::EvalArgs(const Expr& e, CallArgs* args) {
  for (size_t i = 1; i < e.args.size(); ++i) args->positional.push_back(Eval(*e.args[i]));
  for (const auto& [key, expr] : e.kwargs) args->keyword.emplace_back(key, Eval(*expr));
  return !failed();
}

Value Interpreter::EvalCall(const Expr& e) {
  const Value callee = Eval(*e.args[0]);
  CallArgs args;
  if (failed() || !EvalArgs(e, &args)) return Value();
  return Call(callee, args);
}

Value Interpreter::Call(const Value& callee, const CallArgs& args) {
  if (callee.is_undefined()) return UndefinedError(callee);
  if (callee.kind() != Value::Kind::kCallable) {
    return Fail(fmt::format("'{}' object is not callable", TypeName(callee)));
  }
  const Callable& fn = callee.callable();
  switch (fn.kind) {
    case Callable::Kind::kMacro:
      return CallMacro(fn, args);
    case Callable::Kind::kGlobal:
      return CallGlobal(*this, fn.name, args);
    case Callable::Kind::kMethod:
      return CallMethod(*this, fn.self, fn.name, args);
  }
  return Value();
}

Value Interpreter::CallMacro(const Callable& fn, const CallArgs& args) {
  if (call_depth_ >= limits_.max_call_depth) return Fail("macro calls nest too deeply");
  const Stmt& macro = *fn.macro;
  const size_t saved_floor = scope_floor_;
  const int saved_line = line_;
  ++call_depth_;
  frames_.emplace_back();
  scope_floor_ = frames_.size() - 1;
  for (size_t i = 0; i < macro.params.size() && !failed(); ++i) {
    const MacroParam& param = macro.params[i];
    const Value* arg = args.Get(i, param.name);
    Assign(param.name, arg                   ? *arg
                       : param.default_value ? Eval(*param.default_value)
                                             : Value::Undefined(param.name));
  }
  std::string result = failed() ? std::string() : Capture(macro.body);
  frames_.pop_back();
  scope_floor_ = saved_floor;
  --call_depth_;
  line_ = saved_line;
  if (failed()) return Value();
  return Value::String(std::move(result));
}

Value Interpreter::EvalFilterOrTest(const Expr& e) {
  const Value input = Eval(*e.args[0]);
  CallArgs args;
  if (failed() || !EvalArgs(e, &args)) return Value();
  if (e.kind == ExprKind::kFilter) return CallFilter(*this, e.name, input, args);
  const Value result = CallTest(*this, e.name, input, args);
  if (failed()) return Value();
  return Value::Bool(result.Truthy() != e.negated);
}

Value Interpreter::EvalBinary(const Expr& e) {
  const Value lhs = Eval(*e.args[0]);
  if (failed()) return Value();
  if (e.name == "and") return lhs.Truthy() ? Eval(*e.args[1]) : lhs;
  if (e.name == "or") return lhs.Truthy() ? lhs : Eval(*e.args[1]);
  const Value rhs = Eval(*e.args[1]);
  if (failed()) return Value();
  return BinaryOp(*this, e.name, lhs, rhs);
}

}  // namespace dormouse::jinja
