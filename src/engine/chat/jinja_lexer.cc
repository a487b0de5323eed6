#include "engine/chat/jinja_lexer.h"

#include <charconv>
#include <cstdlib>
#include <utility>

namespace dormouse::jinja {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || IsDigit(c); }

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// \xHH, \uHHHH or \UHHHHHHHH; raw[*i] is the x/u/U, and *i ends on the last digit.
Status DecodeHexEscape(std::string_view raw, size_t* i, std::string* out) {
  const char kind = raw[*i];
  const size_t len = kind == 'x' ? 2 : (kind == 'u' ? 4 : 8);
  uint32_t cp = 0;
  for (size_t k = 1; k <= len; ++k) {
    const int h = *i + k < raw.size() ? HexDigit(raw[*i + k]) : -1;
    if (h < 0) return Status::Errorf("truncated \\{} escape in string literal", kind);
    cp = cp * 16 + static_cast<uint32_t>(h);
  }
  *i += len;
  AppendUtf8(cp, out);
  return Status::Ok();
}

// \o, \oo or \ooo; raw[*i] is the first digit.
void DecodeOctalEscape(std::string_view raw, size_t* i, std::string* out) {
  uint32_t cp = static_cast<uint32_t>(raw[*i] - '0');
  for (int k = 0; k < 2 && *i + 1 < raw.size() && raw[*i + 1] >= '0' && raw[*i + 1] <= '7'; ++k) {
    cp = cp * 8 + static_cast<uint32_t>(raw[++*i] - '0');
  }
  AppendUtf8(cp, out);
}

// Decodes a string literal body the way Jinja does (Python's unicode-escape codec):
// unknown escapes keep their backslash.
Status DecodeEscapes(std::string_view raw, std::string* out) {
  static constexpr std::string_view kSimple = "\\'\"ntrabfv";
  static constexpr std::string_view kDecoded = "\\'\"\n\t\r\a\b\f\v";
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '\\' || i + 1 >= raw.size()) {
      out->push_back(raw[i]);
      continue;
    }
    const char e = raw[++i];
    if (e == '\n') continue;  // line continuation
    if (const size_t k = kSimple.find(e); k != std::string_view::npos) {
      out->push_back(kDecoded[k]);
    } else if (e == 'x' || e == 'u' || e == 'U') {
      DM_RETURN_IF_ERROR(DecodeHexEscape(raw, &i, out));
    } else if (e >= '0' && e <= '7') {
      DecodeOctalEscape(raw, &i, out);
    } else {
      out->push_back('\\');
      out->push_back(e);
    }
  }
  return Status::Ok();
}

class Lexer {
 public:
  explicit Lexer(std::string source) : src_(std::move(source)) {}

  Status Run(std::vector<Token>* out) {
    out_ = out;
    while (pos_ < src_.size()) {
      const size_t start = FindTagStart(pos_);
      if (start == std::string::npos) {
        EmitText(src_.substr(pos_));
        Advance(src_.size());
        break;
      }
      const char kind = src_[start + 1];
      const char sign = start + 2 < src_.size() ? src_[start + 2] : '\0';
      const bool has_sign = sign == '-' || sign == '+';
      EmitText(StripBeforeTag(src_.substr(pos_, start - pos_), kind, has_sign ? sign : '\0'));
      Advance(start + 2 + (has_sign ? 1 : 0));
      DM_RETURN_IF_ERROR(kind == '#' ? LexComment() : LexTag(kind));
    }
    out_->push_back(Token{TokenType::kEof, "", 0, 0, line_});
    return Status::Ok();
  }

 private:
  size_t FindTagStart(size_t from) const {
    for (size_t p = src_.find('{', from); p != std::string::npos; p = src_.find('{', p + 1)) {
      if (p + 1 < src_.size() && (src_[p + 1] == '{' || src_[p + 1] == '%' || src_[p + 1] == '#')) {
        return p;
      }
    }
    return std::string::npos;
  }

  // `{%-` strips all whitespace before the tag; lstrip_blocks strips the blanks between the
  // start of the line and a block or comment tag.
  std::string StripBeforeTag(std::string text, char kind, char sign) const {
    if (sign == '-') {
      size_t end = text.size();
      while (end > 0 && IsSpace(text[end - 1])) --end;
      text.resize(end);
    } else if (sign != '+' && kind != '{') {
      const size_t line_pos = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
      if (line_pos > 0 || line_starting_) {
        bool blank = true;
        for (size_t i = line_pos; i < text.size(); ++i) blank &= IsSpace(text[i]);
        if (blank) text.resize(line_pos);
      }
    }
    return text;
  }

  void EmitText(std::string text) {
    if (!text.empty()) out_->push_back(Token{TokenType::kText, std::move(text), 0, 0, line_});
  }

  void Advance(size_t to) {
    for (; pos_ < to; ++pos_) {
      if (src_[pos_] == '\n') ++line_;
    }
    line_starting_ = pos_ > 0 && src_[pos_ - 1] == '\n';
  }

  void SkipSpaces() {
    size_t p = pos_;
    while (p < src_.size() && IsSpace(src_[p])) ++p;
    Advance(p);
  }

  // After a tag: `-` eats all following whitespace, a plain block/comment end eats one
  // newline (trim_blocks), `+` keeps everything.
  void AfterTagEnd(char modifier, bool trim_newline) {
    if (modifier == '-') {
      SkipSpaces();
    } else if (modifier != '+' && trim_newline && pos_ < src_.size() && src_[pos_] == '\n') {
      Advance(pos_ + 1);
    }
  }

  Status LexComment() {
    const size_t end = src_.find("#}", pos_);
    if (end == std::string::npos) return Status::Errorf("line {}: unterminated comment", line_);
    const char modifier = end > pos_ ? src_[end - 1] : '\0';
    Advance(end + 2);
    AfterTagEnd(modifier, true);
    return Status::Ok();
  }

  // Returns true when the tag ends at pos_ (only outside brackets, as Jinja does).
  bool TryTagEnd(char kind, int depth) {
    if (depth > 0) return false;
    const std::string_view rest = std::string_view(src_).substr(pos_);
    const std::string_view close = kind == '{' ? "}}" : "%}";
    char modifier = '\0';
    size_t len = 0;
    if (rest.substr(0, 2) == close) {
      len = 2;
    } else if (rest.size() >= 3 && (rest[0] == '-' || (rest[0] == '+' && kind == '%')) &&
               rest.substr(1, 2) == close) {
      modifier = rest[0];
      len = 3;
    } else {
      return false;
    }
    const int line = line_;
    Advance(pos_ + len);
    out_->push_back(Token{kind == '{' ? TokenType::kVarEnd : TokenType::kBlockEnd, "", 0, 0, line});
    AfterTagEnd(modifier, kind == '%');
    return true;
  }

  Status LexTag(char kind) {
    out_->push_back(
        Token{kind == '{' ? TokenType::kVarBegin : TokenType::kBlockBegin, "", 0, 0, line_});
    int depth = 0;
    while (true) {
      SkipSpaces();
      if (pos_ >= src_.size()) return Status::Errorf("line {}: unterminated tag", line_);
      if (TryTagEnd(kind, depth)) return Status::Ok();
      DM_RETURN_IF_ERROR(LexToken(&depth));
    }
  }

  Status LexToken(int* depth) {
    const char c = src_[pos_];
    if (IsNameStart(c)) {
      size_t p = pos_;
      while (p < src_.size() && IsNameChar(src_[p])) ++p;
      out_->push_back(Token{TokenType::kName, src_.substr(pos_, p - pos_), 0, 0, line_});
      Advance(p);
      return Status::Ok();
    }
    if (IsDigit(c)) return LexNumber();
    if (c == '\'' || c == '"') return LexString(c);
    static constexpr std::string_view kTwoCharOps[] = {"//", "**", "==", "!=", "<=", ">="};
    for (std::string_view op : kTwoCharOps) {
      if (std::string_view(src_).substr(pos_, 2) == op) {
        out_->push_back(Token{TokenType::kOp, std::string(op), 0, 0, line_});
        Advance(pos_ + 2);
        return Status::Ok();
      }
    }
    if (std::string_view("+-*/%~[](){}<>=.:|,;").find(c) == std::string_view::npos) {
      return Status::Errorf("line {}: unexpected character '{}'", line_, c);
    }
    if (c == '(' || c == '[' || c == '{') ++*depth;
    if (c == ')' || c == ']' || c == '}') --*depth;
    out_->push_back(Token{TokenType::kOp, std::string(1, c), 0, 0, line_});
    Advance(pos_ + 1);
    return Status::Ok();
  }

  Status LexNumber() {
    std::string digits;
    size_t p = pos_;
    auto take_digits = [&] {
      while (p < src_.size() && (IsDigit(src_[p]) || src_[p] == '_')) {
        if (src_[p] != '_') digits.push_back(src_[p]);
        ++p;
      }
    };
    take_digits();
    bool is_float = false;
    if (p + 1 < src_.size() && src_[p] == '.' && IsDigit(src_[p + 1])) {
      is_float = true;
      digits.push_back(src_[p++]);
      take_digits();
    }
    if (p < src_.size() && (src_[p] == 'e' || src_[p] == 'E')) {
      size_t q = p + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < src_.size() && IsDigit(src_[q])) {
        is_float = true;
        digits += 'e';
        digits.append(src_, p + 1, q - p - 1);
        p = q;
        take_digits();
      }
    }
    Token tok{is_float ? TokenType::kFloat : TokenType::kInt, digits, 0, 0, line_};
    if (is_float) {
      tok.float_value = std::strtod(digits.c_str(), nullptr);
    } else {
      auto res = std::from_chars(digits.data(), digits.data() + digits.size(), tok.int_value);
      if (res.ec != std::errc()) return Status::Errorf("line {}: integer out of range", line_);
    }
    out_->push_back(std::move(tok));
    Advance(p);
    return Status::Ok();
  }

  Status LexString(char quote) {
    size_t p = pos_ + 1;
    while (p < src_.size() && src_[p] != quote) p += src_[p] == '\\' ? 2 : 1;
    if (p >= src_.size()) return Status::Errorf("line {}: unterminated string", line_);
    Token tok{TokenType::kString, "", 0, 0, line_};
    DM_RETURN_IF_ERROR(
        DecodeEscapes(std::string_view(src_).substr(pos_ + 1, p - pos_ - 1), &tok.text)
            .WithContext(fmt::format("line {}", line_)));
    out_->push_back(std::move(tok));
    Advance(p + 1);
    return Status::Ok();
  }

  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;
  std::vector<Token>* out_ = nullptr;
};

// Jinja turns "\r\n" and "\r" into "\n" and drops one trailing newline.
std::string NormalizeNewlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

StatusOr<std::vector<Token>> Tokenize(std::string_view source) {
  std::vector<Token> tokens;
  Lexer lexer(NormalizeNewlines(source));
  DM_RETURN_IF_ERROR(lexer.Run(&tokens));
  return tokens;
}

}  // namespace dormouse::jinja
