#include "engine/chat/jinja_parser.h"

#include <algorithm>
#include <initializer_list>
#include <utility>

#include "engine/chat/jinja_lexer.h"

namespace dormouse::jinja {
namespace {

// Expression trees deeper than this (e.g. `1+1+1+...` chains, which the parser builds in a
// loop) are rejected because evaluating and freeing them recurses once per level.
constexpr int kMaxExprTreeDepth = 256;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  Status Run(Program* program) {
    std::string end_tag;
    ParseBody(&program->body, {}, &end_tag);
    if (error_.ok() && !end_tag.empty()) Fail("unexpected '" + end_tag + "'");
    return error_;
  }

 private:
  // --- token helpers -------------------------------------------------------------------
  const Token& Cur() const { return toks_[std::min(pos_, toks_.size() - 1)]; }
  const Token& PeekAt(size_t ahead) const {
    return toks_[std::min(pos_ + ahead, toks_.size() - 1)];
  }
  void Next() {
    if (pos_ < toks_.size() - 1) ++pos_;
  }
  bool IsOp(std::string_view op) const { return Cur().type == TokenType::kOp && Cur().text == op; }
  bool IsName(std::string_view name) const {
    return Cur().type == TokenType::kName && Cur().text == name;
  }
  bool SkipOp(std::string_view op) {
    if (!IsOp(op)) return false;
    Next();
    return true;
  }
  bool SkipName(std::string_view name) {
    if (!IsName(name)) return false;
    Next();
    return true;
  }
  bool ok() const { return error_.ok(); }
  void Fail(const std::string& message) {
    if (error_.ok()) error_ = Status::Errorf("line {}: {}", Cur().line, message);
  }
  void ExpectOp(std::string_view op) {
    if (!SkipOp(op)) Fail(fmt::format("expected '{}'", op));
  }
  std::string ExpectName() {
    if (Cur().type != TokenType::kName) {
      Fail("expected a name");
      return "";
    }
    std::string name = Cur().text;
    Next();
    return name;
  }
  void ExpectBlockEnd() {
    if (Cur().type != TokenType::kBlockEnd) return Fail("expected end of block tag");
    Next();
  }

  struct DepthGuard {
    explicit DepthGuard(Parser* p) : parser(p) {
      if (++parser->depth_ > kMaxNestingDepth) parser->Fail("template nests too deeply");
    }
    ~DepthGuard() { --parser->depth_; }
    Parser* parser;
  };

  ExprPtr Node(ExprKind kind, std::vector<ExprPtr> args, std::string name = {}) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = Cur().line;
    e->name = std::move(name);
    e->args = std::move(args);
    e->depth = 1;
    for (const ExprPtr& arg : e->args) {
      if (arg) e->depth = std::max(e->depth, arg->depth + 1);
    }
    if (e->depth > kMaxExprTreeDepth) Fail("expression nests too deeply");
    return e;
  }
  ExprPtr Binary(std::string op, ExprPtr lhs, ExprPtr rhs) {
    std::vector<ExprPtr> args;
    args.push_back(std::move(lhs));
    args.push_back(std::move(rhs));
    return Node(ExprKind::kBinary, std::move(args), std::move(op));
  }

  // --- expressions (Jinja's precedence, lowest first) ------------------------------------
  ExprPtr ParseExpression(bool with_condition = true) {
    DepthGuard guard(this);
    if (!ok()) return nullptr;
    ExprPtr expr = ParseOr();
    while (with_condition && ok() && SkipName("if")) {
      std::vector<ExprPtr> args;
      args.push_back(ParseOr());
      args.push_back(std::move(expr));
      args.push_back(SkipName("else") ? ParseExpression() : nullptr);
      expr = Node(ExprKind::kCondition, std::move(args));
    }
    return expr;
  }

  // A comma-separated list becomes a tuple (`{% set a, b = 1, 2 %}`).
  ExprPtr ParseTupleOrExpression() {
    ExprPtr first = ParseExpression();
    if (!IsOp(",")) return first;
    std::vector<ExprPtr> items;
    items.push_back(std::move(first));
    while (ok() && SkipOp(",")) {
      if (Cur().type == TokenType::kBlockEnd || Cur().type == TokenType::kVarEnd) break;
      items.push_back(ParseExpression());
    }
    return Node(ExprKind::kTuple, std::move(items));
  }

  ExprPtr ParseOr() {
    ExprPtr lhs = ParseAnd();
    while (ok() && SkipName("or")) lhs = Binary("or", std::move(lhs), ParseAnd());
    return lhs;
  }
  ExprPtr ParseAnd() {
    ExprPtr lhs = ParseNot();
    while (ok() && SkipName("and")) lhs = Binary("and", std::move(lhs), ParseNot());
    return lhs;
  }
  ExprPtr ParseNot() {
    if (!IsName("not")) return ParseCompare();
    DepthGuard guard(this);
    if (!ok()) return nullptr;
    Next();
    std::vector<ExprPtr> args;
    args.push_back(ParseNot());
    return Node(ExprKind::kUnary, std::move(args), "not");
  }
  ExprPtr ParseCompare() {
    ExprPtr lhs = ParseMath1();
    while (ok()) {
      std::string op;
      if (Cur().type == TokenType::kOp &&
          (IsOp("==") || IsOp("!=") || IsOp("<") || IsOp(">") || IsOp("<=") || IsOp(">="))) {
        op = Cur().text;
        Next();
      } else if (SkipName("in")) {
        op = "in";
      } else if (IsName("not") && PeekAt(1).type == TokenType::kName && PeekAt(1).text == "in") {
        Next();
        Next();
        op = "not in";
      } else {
        break;
      }
      lhs = Binary(op, std::move(lhs), ParseMath1());
    }
    return lhs;
  }
  ExprPtr ParseBinaryLevel(std::initializer_list<std::string_view> ops, ExprPtr (Parser::*next)()) {
    ExprPtr lhs = (this->*next)();
    while (ok()) {
      const auto it = std::find_if(ops.begin(), ops.end(), [&](auto op) { return IsOp(op); });
      if (it == ops.end()) break;
      Next();
      lhs = Binary(std::string(*it), std::move(lhs), (this->*next)());
    }
    return lhs;
  }
  ExprPtr ParseMath1() { return ParseBinaryLevel({"+", "-"}, &Parser::ParseConcat); }
  ExprPtr ParseConcat() { return ParseBinaryLevel({"~"}, &Parser::ParseMath2); }
  ExprPtr ParseMath2() { return ParseBinaryLevel({"*", "/", "//", "%"}, &Parser::ParsePow); }
  ExprPtr ParsePow() { return ParseBinaryLevel({"**"}, &Parser::ParseUnaryWithFilters); }
  ExprPtr ParseUnaryWithFilters() { return ParseUnary(true); }

  ExprPtr ParseUnary(bool with_filters) {
    ExprPtr node;
    if (IsOp("-") || IsOp("+")) {
      DepthGuard guard(this);
      if (!ok()) return nullptr;
      std::string op = Cur().text;
      Next();
      std::vector<ExprPtr> args;
      args.push_back(ParseUnary(false));
      node = Node(ExprKind::kUnary, std::move(args), std::move(op));
    } else {
      node = ParsePrimary();
    }
    node = ParsePostfix(std::move(node));
    return with_filters ? ParseFilters(std::move(node)) : std::move(node);
  }

  ExprPtr LiteralNoAdvance(Value v) {
    ExprPtr e = Node(ExprKind::kLiteral, {});
    e->literal = std::move(v);
    return e;
  }
  ExprPtr Literal(Value v) {
    ExprPtr e = LiteralNoAdvance(std::move(v));
    Next();
    return e;
  }

  ExprPtr ParsePrimary() {
    if (!ok()) return nullptr;
    const Token& t = Cur();
    switch (t.type) {
      case TokenType::kName:
        if (t.text == "true" || t.text == "True") return Literal(Value::Bool(true));
        if (t.text == "false" || t.text == "False") return Literal(Value::Bool(false));
        if (t.text == "none" || t.text == "None") return Literal(Value::None());
        {
          ExprPtr e = Node(ExprKind::kName, {}, t.text);
          Next();
          return e;
        }
      case TokenType::kString: {
        std::string s;
        while (Cur().type == TokenType::kString) {  // adjacent literals concatenate
          s += Cur().text;
          Next();
        }
        return LiteralNoAdvance(Value::String(std::move(s)));
      }
      case TokenType::kInt:
        return Literal(Value::Int(t.int_value));
      case TokenType::kFloat:
        return Literal(Value::Float(t.float_value));
      default:
        break;
    }
    if (IsOp("(")) return ParseParenthesized();
    if (IsOp("[")) return ParseSequence("]", ExprKind::kList);
    if (IsOp("{")) return ParseSequence("}", ExprKind::kDict);
    Fail(t.type == TokenType::kOp ? "unexpected '" + t.text + "'" : "expected an expression");
    return nullptr;
  }
  ExprPtr ParseParenthesized() {
    DepthGuard guard(this);
    if (!ok()) return nullptr;
    Next();  // (
    if (SkipOp(")")) return Node(ExprKind::kTuple, {});
    ExprPtr first = ParseExpression();
    if (SkipOp(")")) return first;
    std::vector<ExprPtr> items;
    items.push_back(std::move(first));
    while (ok() && SkipOp(",")) {
      if (IsOp(")")) break;
      items.push_back(ParseExpression());
    }
    ExpectOp(")");
    return Node(ExprKind::kTuple, std::move(items));
  }

  ExprPtr ParseSequence(std::string_view close, ExprKind kind) {
    DepthGuard guard(this);
    if (!ok()) return nullptr;
    Next();  // [ or {
    std::vector<ExprPtr> items;
    while (ok() && !IsOp(close)) {
      if (!items.empty()) {
        ExpectOp(",");
        if (IsOp(close)) break;
      }
      items.push_back(ParseExpression());
      if (kind == ExprKind::kDict) {
        ExpectOp(":");
        items.push_back(ParseExpression());
      }
    }
    ExpectOp(close);
    return Node(kind, std::move(items));
  }

  ExprPtr ParsePostfix(ExprPtr node) {
    while (ok()) {
      if (SkipOp(".")) {
        if (Cur().type == TokenType::kInt) {
          std::vector<ExprPtr> args;
          args.push_back(std::move(node));
          args.push_back(Literal(Value::Int(Cur().int_value)));
          node = Node(ExprKind::kIndex, std::move(args));
          continue;
        }
        std::vector<ExprPtr> args;
        args.push_back(std::move(node));
        node = Node(ExprKind::kAttr, std::move(args), ExpectName());
      } else if (IsOp("[")) {
        node = ParseSubscript(std::move(node));
      } else if (IsOp("(")) {
        node = ParseCall(std::move(node), ExprKind::kCall, "");
      } else {
        break;
      }
    }
    return node;
  }

  ExprPtr ParseSubscript(ExprPtr target) {
    DepthGuard guard(this);
    if (!ok()) return nullptr;
    Next();  // [
    std::vector<ExprPtr> parts;
    parts.push_back(std::move(target));
    bool is_slice = false;
    for (int part = 0; part < 3 && ok(); ++part) {
      if (IsOp(":") || IsOp("]")) {
        parts.push_back(nullptr);
      } else {
        parts.push_back(ParseExpression());
      }
      if (part < 2 && SkipOp(":")) {
        is_slice = true;
        continue;
      }
      break;
    }
    ExpectOp("]");
    if (!is_slice) {
      parts.resize(2);
      if (!parts[1]) Fail("empty subscript");
      return Node(ExprKind::kIndex, std::move(parts));
    }
    parts.resize(4);
    return Node(ExprKind::kSlice, std::move(parts));
  }

  // Parses `(args, name=value)` after `callee`; also used for filter and test arguments.
  ExprPtr ParseCall(ExprPtr callee, ExprKind kind, std::string name) {
    DepthGuard guard(this);
    if (!ok()) return nullptr;
    std::vector<ExprPtr> args;
    args.push_back(std::move(callee));
    std::vector<std::pair<std::string, ExprPtr>> kwargs;
    if (SkipOp("(")) {
      while (ok() && !IsOp(")")) {
        if (args.size() + kwargs.size() > 1) ExpectOp(",");
        if (IsOp(")")) break;
        if (Cur().type == TokenType::kName && PeekAt(1).type == TokenType::kOp &&
            PeekAt(1).text == "=") {
          std::string key = Cur().text;
          Next();
          Next();
          kwargs.emplace_back(std::move(key), ParseExpression());
        } else {
          if (!kwargs.empty()) Fail("positional argument after keyword argument");
          args.push_back(ParseExpression());
        }
      }
      ExpectOp(")");
    }
    ExprPtr e = Node(kind, std::move(args), std::move(name));
    for (auto& kw : kwargs) e->depth = std::max(e->depth, kw.second ? kw.second->depth + 1 : 1);
    e->kwargs = std::move(kwargs);
    return e;
  }

  ExprPtr ParseFilters(ExprPtr node) {
    while (ok()) {
      if (SkipOp("|")) {
        node = ParseCall(std::move(node), ExprKind::kFilter, ExpectName());
      } else if (SkipName("is")) {
        node = ParseTest(std::move(node));
      } else if (IsOp("(")) {
        node = ParseCall(std::move(node), ExprKind::kCall, "");
      } else {
        break;
      }
    }
    return node;
  }

  ExprPtr ParseTest(ExprPtr node) {
    const bool negated = SkipName("not");
    std::string name = ExpectName();
    ExprPtr test;
    const Token& t = Cur();
    const bool bare_arg = t.type == TokenType::kName || t.type == TokenType::kString ||
                          t.type == TokenType::kInt || t.type == TokenType::kFloat || IsOp("[") ||
                          IsOp("{");
    if (IsOp("(")) {
      test = ParseCall(std::move(node), ExprKind::kTest, std::move(name));
    } else if (bare_arg && !IsName("else") && !IsName("or") && !IsName("and")) {
      std::vector<ExprPtr> args;
      args.push_back(std::move(node));
      args.push_back(ParsePostfix(ParsePrimary()));
      test = Node(ExprKind::kTest, std::move(args), std::move(name));
    } else {
      std::vector<ExprPtr> args;
      args.push_back(std::move(node));
      test = Node(ExprKind::kTest, std::move(args), std::move(name));
    }
    test->negated = negated;
    return test;
  }

  // --- statements ---------------------------------------------------------------------
  StmtPtr MakeStmt(StmtKind kind) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = Cur().line;
    return s;
  }

  // Parses until a block tag named in `end_tags`, consuming `{% name` and storing the name in
  // *end_tag; the caller consumes the rest of that tag. Stops at the end of input otherwise.
  void ParseBody(Body* body, std::initializer_list<std::string_view> end_tags,
                 std::string* end_tag) {
    DepthGuard guard(this);
    while (ok()) {
      const Token& t = Cur();
      if (t.type == TokenType::kEof) {
        if (end_tags.size() > 0)
          Fail("unexpected end of template, expected '" + std::string(*end_tags.begin()) + "'");
        return;
      }
      if (t.type == TokenType::kText) {
        body->push_back(MakeStmt(StmtKind::kText));
        body->back()->text = t.text;
        Next();
      } else if (t.type == TokenType::kVarBegin) {
        Next();
        body->push_back(MakeStmt(StmtKind::kOutput));
        body->back()->expr = ParseTupleOrExpression();
        if (Cur().type != TokenType::kVarEnd) return Fail("expected '}}'");
        Next();
      } else if (t.type == TokenType::kBlockBegin) {
        Next();
        const std::string name = Cur().type == TokenType::kName ? Cur().text : "";
        if (std::find(end_tags.begin(), end_tags.end(), name) != end_tags.end()) {
          Next();
          *end_tag = name;
          return;
        }
        ParseStatement(body);
      } else {
        return Fail("unexpected '" + t.text + "'");
      }
    }
  }

  void ParseStatement(Body* body) {
    const std::string tag = ExpectName();
    if (!ok()) return;
    if (tag == "if") return body->push_back(ParseIf());
    if (tag == "for") return body->push_back(ParseFor());
    if (tag == "set") return body->push_back(ParseSet());
    if (tag == "macro") return body->push_back(ParseMacro());
    if (tag == "break" || tag == "continue") {
      body->push_back(MakeStmt(tag == "break" ? StmtKind::kBreak : StmtKind::kContinue));
      return ExpectBlockEnd();
    }
    if (tag == "generation") {  // Hugging Face's assistant-mask marker renders its body as is
      StmtPtr s = MakeStmt(StmtKind::kScope);
      ExpectBlockEnd();
      std::string end;
      ParseBody(&s->body, {"endgeneration"}, &end);
      ExpectBlockEnd();
      return body->push_back(std::move(s));
    }
    Fail("unsupported tag '" + tag + "'");
  }

  StmtPtr ParseIf() {
    StmtPtr s = MakeStmt(StmtKind::kIf);
    s->conditions.push_back(ParseTupleOrExpression());
    ExpectBlockEnd();
    while (ok()) {
      std::string end;
      s->bodies.emplace_back();
      ParseBody(&s->bodies.back(), {"elif", "else", "endif"}, &end);
      if (end == "elif") {
        s->conditions.push_back(ParseTupleOrExpression());
        ExpectBlockEnd();
        continue;
      }
      if (end == "else") {
        ExpectBlockEnd();
        s->bodies.emplace_back();
        ParseBody(&s->bodies.back(), {"endif"}, &end);
      }
      ExpectBlockEnd();
      break;
    }
    return s;
  }

  StmtPtr ParseFor() {
    StmtPtr s = MakeStmt(StmtKind::kFor);
    const bool parenthesized = SkipOp("(");
    do {
      s->targets.push_back(ExpectName());
    } while (ok() && SkipOp(","));
    if (parenthesized) ExpectOp(")");
    if (!SkipName("in")) Fail("expected 'in'");
    s->expr = ParseExpression(false);
    if (SkipName("if")) s->filter = ParseExpression();
    if (IsName("recursive")) Fail("recursive loops are not supported");
    ExpectBlockEnd();
    std::string end;
    ParseBody(&s->body, {"endfor", "else"}, &end);
    if (end == "else") {
      ExpectBlockEnd();
      ParseBody(&s->else_body, {"endfor"}, &end);
    }
    ExpectBlockEnd();
    return s;
  }

  StmtPtr ParseSet() {
    StmtPtr s = MakeStmt(StmtKind::kSet);
    s->targets.push_back(ExpectName());
    if (SkipOp(".")) {
      s->text = ExpectName();
    } else {
      while (ok() && SkipOp(",")) s->targets.push_back(ExpectName());
    }
    if (SkipOp("=")) {
      s->expr = ParseTupleOrExpression();
      ExpectBlockEnd();
      return s;
    }
    if (s->targets.size() != 1 || !s->text.empty()) Fail("expected '='");
    s->kind = StmtKind::kSetBlock;
    ExpectBlockEnd();
    std::string end;
    ParseBody(&s->body, {"endset"}, &end);
    ExpectBlockEnd();
    return s;
  }

  StmtPtr ParseMacro() {
    StmtPtr s = MakeStmt(StmtKind::kMacro);
    s->text = ExpectName();
    ExpectOp("(");
    while (ok() && !IsOp(")")) {
      if (!s->params.empty()) ExpectOp(",");
      MacroParam param;
      param.name = ExpectName();
      if (SkipOp("=")) param.default_value = ParseExpression();
      s->params.push_back(std::move(param));
    }
    ExpectOp(")");
    ExpectBlockEnd();
    std::string end;
    ParseBody(&s->body, {"endmacro"}, &end);
    if (Cur().type == TokenType::kName) Next();  // {% endmacro name %}
    ExpectBlockEnd();
    return s;
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  int depth_ = 0;
  Status error_;
};

}  // namespace

StatusOr<std::unique_ptr<Program>> Parse(std::string_view source) {
  if (source.size() > kMaxTemplateBytes) {
    return Status::Errorf("template is {} bytes, the limit is {}", source.size(),
                          kMaxTemplateBytes);
  }
  DM_ASSIGN_OR_RETURN(std::vector<Token> tokens, Tokenize(source));
  auto program = std::make_unique<Program>();
  Parser parser(std::move(tokens));
  DM_RETURN_IF_ERROR(parser.Run(program.get()));
  return program;
}

}  // namespace dormouse::jinja
