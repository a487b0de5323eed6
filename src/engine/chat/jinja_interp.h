// The Jinja-subset interpreter behind ChatTemplate. Internal to src/engine/chat.
//
// Errors never throw: the first failure is recorded (Fail) and every evaluation step
// after it returns immediately, so a render ends with that one error. Work is bounded by
// RenderLimits so that an untrusted template cannot hang, exhaust memory or the stack.
#pragma once

#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "engine/chat/jinja_ast.h"
#include "engine/chat/jinja_value.h"

namespace dormouse::jinja {

struct RenderLimits {
  size_t max_output_bytes = 8 << 20;          // everything printed, captured blocks included
  size_t max_string_bytes = kMaxStringBytes;  // any single string value
  size_t max_list_items = 100000;             // any single list (range(), `*`, `+`)
  // Statements executed plus expressions evaluated. Real templates spend ~100 per message;
  // a hostile loop reaches the budget in about a second.
  int64_t max_steps = 2000000;
  int max_call_depth = 32;   // nested macro calls
  int max_eval_depth = 400;  // nested statements and expressions, macro calls included
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;

  // The argument at `index`, else the keyword `name`; nullptr when neither was passed.
  const Value* Get(size_t index, std::string_view name) const;
};

struct Callable {
  enum class Kind { kMacro, kGlobal, kMethod };
  Kind kind = Kind::kGlobal;
  std::string name;
  const Stmt* macro = nullptr;  // kMacro
  Value self;                   // kMethod: the receiver
};

class Interpreter {
 public:
  Interpreter(const Program& program, const RenderLimits& limits, std::time_t now);

  // Renders the program with `context` as its top-level variables.
  StatusOr<std::string> Render(const ValueDict& context);

  // --- for the builtins --------------------------------------------------------------
  // Records the first error (with the current template line) and returns undefined.
  Value Fail(const std::string& message);
  // Records an error raised by the template itself (raise_exception), without decoration.
  Value Raise(const std::string& message);
  bool failed() const { return !error_.ok(); }
  // Counts one unit of work (or `units`); false (after recording an error) once over budget.
  bool Tick() { return Charge(1); }
  bool Charge(int64_t units);
  // Python == and <, with the work charged to the step budget; LessThan records an error
  // for unorderable types.
  bool Equal(const Value& a, const Value& b);
  bool LessThan(const Value& a, const Value& b);
  Value CheckedString(std::string s);  // fails when over max_string_bytes
  Value CheckedList(ValueList items, bool tuple = false);
  Value UndefinedError(const Value& undefined);
  Value Call(const Value& callee, const CallArgs& args);
  const RenderLimits& limits() const { return limits_; }
  std::time_t now() const { return now_; }

 private:
  enum class Flow { kNormal, kBreak, kContinue };
  class DepthGuard;
  using Frame = std::vector<std::pair<std::string, Value>>;

  Flow ExecBody(const Body& body);
  Flow ExecStmt(const Stmt& s);
  Flow ExecIf(const Stmt& s);
  Flow ExecFor(const Stmt& s);
  void ExecSet(const Stmt& s);
  std::string Capture(const Body& body);
  void Write(std::string_view text);

  Value Eval(const Expr& e);
  Value EvalCollection(const Expr& e);
  Value EvalCall(const Expr& e);
  Value EvalFilterOrTest(const Expr& e);
  Value EvalBinary(const Expr& e);
  bool EvalArgs(const Expr& e, CallArgs* args);
  Value CallMacro(const Callable& fn, const CallArgs& args);

  Value Lookup(const std::string& name) const;
  void Assign(const std::string& name, Value v);
  ValueList FilterLoopItems(const Stmt& s, ValueList items);
  bool BindTargets(const std::vector<std::string>& targets, const Value& v);

  const Program& program_;
  RenderLimits limits_;
  std::time_t now_;
  std::vector<Frame> frames_;
  size_t scope_floor_ = 0;  // macros see their own frames and the root frame only
  std::string* out_ = nullptr;
  size_t bytes_written_ = 0;
  int64_t steps_ = 0;
  int call_depth_ = 0;
  int eval_depth_ = 0;  // statements and expressions being evaluated, across macro calls
  int line_ = 0;
  Status error_;
};

// --- jinja_ops.cc: Python operator semantics ---------------------------------------
Value BinaryOp(Interpreter& in, std::string_view op, const Value& a, const Value& b);
Value UnaryOp(Interpreter& in, std::string_view op, const Value& a);
Value GetAttr(Interpreter& in, const Value& obj, const std::string& name);
Value GetItem(Interpreter& in, const Value& obj, const Value& key);
Value GetSlice(Interpreter& in, const Value& obj, const Value& start, const Value& stop,
               const Value& step);
// The items a `for` loop or filter walks: list items, dict keys, string characters;
// undefined iterates as empty. Fails for other types.
bool Iterate(Interpreter& in, const Value& v, ValueList* items);
// Splits UTF-8 text into code points (Python's str is a sequence of code points).
std::vector<std::string> Utf8Chars(std::string_view s);

// --- jinja_methods.cc: Python str and dict methods ----------------------------------
Value CallMethod(Interpreter& in, const Value& self, const std::string& name, const CallArgs& a);
bool HasMethod(const Value& self, std::string_view name);
// str.strip/lstrip/rstrip; `chars` null or None strips whitespace.
std::string PyStrip(std::string_view s, const Value* chars, bool left, bool right);
std::string PyUpper(std::string_view s);  // ASCII case mapping only
std::string PyLower(std::string_view s);
std::string PyCapitalize(std::string_view s);
// str.replace(old, new, count); fails past the string size limit.
Value PyReplace(Interpreter& in, const std::string& s, const std::string& from,
                const std::string& to, int64_t count);

// --- jinja_filters.cc / jinja_tests.cc: filters, tests and global functions ----------
Value CallFilter(Interpreter& in, const std::string& name, const Value& v, const CallArgs& a);
bool IsFilter(std::string_view name);
Value CallTest(Interpreter& in, const std::string& name, const Value& v, const CallArgs& a);
Value CallGlobal(Interpreter& in, const std::string& name, const CallArgs& a);
bool IsGlobal(std::string_view name);
// Jinja rejects unknown filters and tests when it compiles a template; so does this.
Status CheckFiltersAndTests(const Program& program);

}  // namespace dormouse::jinja
