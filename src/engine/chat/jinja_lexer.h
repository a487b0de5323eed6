// Tokenizer for the Jinja subset used by chat templates. It applies the whitespace rules
// Hugging Face renders with (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False,
// plus the `-`/`+` tag modifiers), so the parser only sees text that will be printed.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace dormouse::jinja {

enum class TokenType {
  kText,
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,
  kInt,
  kFloat,
  kOp,
  kEof,
};

struct Token {
  TokenType type = TokenType::kEof;
  std::string text;  // text, name, decoded string literal or operator
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;
};

// Comments are dropped. Fails on unterminated tags, strings and comments, and on characters
// that start no token.
StatusOr<std::vector<Token>> Tokenize(std::string_view source);

}  // namespace dormouse::jinja
