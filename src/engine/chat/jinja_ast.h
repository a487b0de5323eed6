// Syntax tree of a parsed chat template. Owned by jinja::Program; the interpreter only reads it.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/chat/jinja_value.h"

namespace dormouse::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind {
  kLiteral,    // literal
  kName,       // name
  kList,       // args
  kTuple,      // args
  kDict,       // args: key, value, key, value, ...
  kAttr,       // args[0].name
  kIndex,      // args[0][args[1]]
  kSlice,      // args[0][args[1]:args[2]:args[3]]; absent parts are null
  kCall,       // args[0](args[1:], kwargs)
  kFilter,     // args[0] | name(args[1:], kwargs)
  kTest,       // args[0] is [not] name(args[1:])
  kUnary,      // op args[0]: "not", "-", "+"
  kBinary,     // args[0] op args[1]
  kCondition,  // args[1] if args[0] else args[2] (args[2] may be null)
};

struct Expr {
  ExprKind kind = ExprKind::kLiteral;
  int line = 0;
  int depth = 1;     // height of this subtree
  std::string name;  // name, attribute, filter, test or operator
  bool negated = false;
  Value literal;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class StmtKind {
  kText,      // text
  kOutput,    // {{ expr }}
  kIf,        // conditions[i] -> bodies[i]; an extra trailing body is the else branch
  kFor,       // for targets in expr [if filter] body [else else_body]
  kSet,       // set targets = expr, or set targets[0].attr = expr
  kSetBlock,  // set targets[0] %}body{% endset
  kMacro,     // macro name(params) body
  kBreak,
  kContinue,
  kScope,  // body (e.g. {% generation %})
};

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // null when required
};

struct Stmt {
  StmtKind kind = StmtKind::kText;
  int line = 0;
  std::string text;  // text, macro name, or the attribute of `set ns.attr`
  std::vector<std::string> targets;
  ExprPtr expr;
  ExprPtr filter;
  std::vector<ExprPtr> conditions;
  std::vector<Body> bodies;
  Body body;
  Body else_body;
  std::vector<MacroParam> params;
};

struct Program {
  Body body;
};

}  // namespace dormouse::jinja
