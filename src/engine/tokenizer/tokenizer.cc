// Encode / Decode on top of the vocabulary: special tokens are cut out of the text first
// (longest first, as llama.cpp's tokenizer_st_partition), then each plain fragment goes to
// the SentencePiece or BPE encoder.
#include "engine/tokenizer/tokenizer.h"

#include <fmt/format.h>

#include <utility>

#include "engine/tokenizer/unicode.h"
#include "engine/tokenizer/vocab.h"

namespace dormouse {
namespace {

using tokenizer_internal::TokenizerState;
using tokenizer_internal::TokenType;
using tokenizer_internal::VocabKind;

// A plain-text range of the input, or a special token (token >= 0).
struct Fragment {
  int32_t token;
  size_t offset, length;
};

bool IsAsciiSpace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

// Cuts every occurrence of special token `id` out of one text fragment.
void CutToken(std::string_view text, const Fragment& f, int32_t id,
              const tokenizer_internal::TokenInfo& t, std::vector<Fragment>* out) {
  size_t base = f.offset, len = f.length;
  while (len > 0) {
    const size_t match = text.substr(0, base + len).find(t.text, base);
    if (match == std::string_view::npos) break;
    size_t left_len = match - base;
    if (t.lstrip) {
      while (left_len > 0 && IsAsciiSpace(text[base + left_len - 1])) --left_len;
    }
    if (left_len > 0) out->push_back({-1, base, left_len});
    out->push_back({id, 0, 0});
    size_t right = match + t.text.size();
    size_t right_len = base + len - right;
    if (t.rstrip) {
      while (right_len > 0 && IsAsciiSpace(text[right])) {
        ++right;
        --right_len;
      }
    }
    base = right;
    len = right_len;
  }
  if (len > 0) out->push_back({-1, base, len});
}

std::vector<Fragment> Partition(const TokenizerState& s, std::string_view text,
                                bool parse_special) {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  frags.push_back({-1, 0, text.size()});
  std::vector<Fragment> next;
  for (int32_t id : s.special_tokens) {
    const tokenizer_internal::TokenInfo& t = s.tokens[id];
    // User-defined tokens are matched even when special text is not parsed, as llama.cpp.
    if (!parse_special && (t.type == TokenType::kControl || t.type == TokenType::kUnknown)) {
      continue;
    }
    if (text.find(t.text) == std::string_view::npos) continue;
    next.clear();
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
      } else {
        CutToken(text, f, id, t, &next);
      }
    }
    frags.swap(next);
  }
  return frags;
}

// SentencePiece: a space goes in front of the text and of every fragment that follows a
// special token (llama.cpp's is_prev_special), then spaces become U+2581.
void EncodeSpm(const TokenizerState& s, std::string_view text, const std::vector<Fragment>& frags,
               std::vector<int32_t>* out) {
  bool prev_special = true;
  for (const Fragment& f : frags) {
    if (f.token >= 0) {
      out->push_back(f.token);
      prev_special = true;
      continue;
    }
    std::string piece = s.add_space_prefix && prev_special ? " " : "";
    piece.append(text.substr(f.offset, f.length));
    tokenizer_internal::SpmEncode(s, tokenizer_internal::EscapeSpaces(piece), out);
    prev_special = false;
  }
}

// Byte token "<0xXX>" -> its byte; nullopt when the text is not of that form.
std::optional<char> ParseByteToken(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return std::nullopt;
  int value = 0;
  for (char c : text.substr(3, 2)) {
    int digit = -1;
    if (c >= '0' && c <= '9') digit = c - '0';
    if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
    if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
    if (digit < 0) return std::nullopt;
    value = value * 16 + digit;
  }
  return static_cast<char>(value);
}

}  // namespace

Tokenizer::Tokenizer(std::shared_ptr<const TokenizerState> state) : state_(std::move(state)) {}

int32_t Tokenizer::n_vocab() const { return static_cast<int32_t>(state_->tokens.size()); }

std::string Tokenizer::ModelName() const {
  if (state_->kind == VocabKind::kSpm) return "llama (SentencePiece)";
  if (!state_->pre_known) {
    return fmt::format("gpt2 (byte-level BPE, pre {} unknown, using gpt-2)", state_->pre_name);
  }
  return fmt::format("gpt2 (byte-level BPE, pre {})", state_->pre_name);
}

int32_t Tokenizer::bos() const { return state_->bos; }
int32_t Tokenizer::eos() const { return state_->eos; }
bool Tokenizer::add_bos() const { return state_->add_bos; }
bool Tokenizer::add_eos() const { return state_->add_eos; }

bool Tokenizer::IsEog(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < state_->eog.size() && state_->eog[id] != 0;
}

bool Tokenizer::IsControl(int32_t id) const { return state_->IsType(id, TokenType::kControl); }

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_special,
                                       bool parse_special) const {
  const TokenizerState& s = *state_;
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_special && s.add_bos) out.push_back(s.bos);
  const std::vector<Fragment> frags = Partition(s, text, parse_special);
  if (s.kind == VocabKind::kSpm) {
    EncodeSpm(s, text, frags, &out);
  } else {
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        out.push_back(f.token);
      } else {
        tokenizer_internal::BpeEncode(s, text.substr(f.offset, f.length), &out);
      }
    }
  }
  if (add_special && s.add_eos) out.push_back(s.eos);
  return out;
}

std::string Tokenizer::DecodeToken(int32_t id) const {
  const TokenizerState& s = *state_;
  if (id < 0 || static_cast<size_t>(id) >= s.tokens.size()) return "";
  const tokenizer_internal::TokenInfo& t = s.tokens[id];
  switch (t.type) {
    case TokenType::kUserDefined:
      return t.text;
    case TokenType::kNormal:
      return s.kind == VocabKind::kSpm ? tokenizer_internal::UnescapeSpaces(t.text)
                                       : tokenizer_internal::UnicodeToBytes(t.text);
    case TokenType::kByte:
      if (s.kind == VocabKind::kSpm) {
        const std::optional<char> byte = ParseByteToken(t.text);
        return byte.has_value() ? std::string(1, *byte) : "";
      }
      return "";
    default:  // control, unknown, unused, undefined: nothing to print, as llama.cpp
      return "";
  }
}

std::string Tokenizer::Decode(std::span<const int32_t> ids) const {
  std::string out;
  size_t i = 0;
  while (i < ids.size() && ids[i] == state_->bos && state_->bos >= 0) ++i;
  if (i < ids.size() && state_->add_space_prefix) {
    std::string first = DecodeToken(ids[i++]);
    out = !first.empty() && first[0] == ' ' ? first.substr(1) : first;
  }
  for (; i < ids.size(); ++i) out += DecodeToken(ids[i]);
  return out;
}

const std::string& Tokenizer::TokenText(int32_t id) const {
  static const std::string kEmpty;
  if (id < 0 || static_cast<size_t>(id) >= state_->tokens.size()) return kEmpty;
  return state_->tokens[id].text;
}

std::optional<int32_t> Tokenizer::FindToken(std::string_view text) const {
  const int32_t id = state_->Find(text);
  return id >= 0 ? std::optional<int32_t>(id) : std::nullopt;
}

}  // namespace dormouse
