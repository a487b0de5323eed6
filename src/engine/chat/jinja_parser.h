// Parser for the Jinja subset used by chat templates: {{ }}, if/elif/else, for (with else,
// filtering `if`, loop controls), set (plain, tuple, namespace attribute, block), macro,
// and {% generation %}. Expressions follow Jinja's precedence and syntax.
#pragma once

#include <memory>
#include <string_view>

#include "base/status.h"
#include "engine/chat/jinja_ast.h"

namespace dormouse::jinja {

// Nesting (of blocks and of expressions) beyond this is rejected so that neither the parser
// nor the interpreter can exhaust the stack on a hostile template.
inline constexpr int kMaxNestingDepth = 64;
inline constexpr size_t kMaxTemplateBytes = 1 << 20;

StatusOr<std::unique_ptr<Program>> Parse(std::string_view source);

}  // namespace dormouse::jinja
