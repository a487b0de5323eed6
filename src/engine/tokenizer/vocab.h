// The tokenizer's state as read from GGUF metadata; shared, immutable, by Tokenizer copies.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/tokenizer/pre_tokenizer.h"

namespace dormouse::tokenizer_internal {

enum class VocabKind { kSpm, kBpe };

// tokenizer.ggml.token_type values; anything else reads as kUndefined.
enum class TokenType : uint8_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct TokenInfo {
  std::string text;
  float score = 0.0f;
  TokenType type = TokenType::kNormal;
  bool lstrip = false;  // special-token matching eats ASCII spaces on its left / right
  bool rstrip = false;
};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct TokenizerState {
  VocabKind kind = VocabKind::kSpm;
  std::vector<TokenInfo> tokens;
  StringMap token_to_id;
  // BPE: "left\xFFright" -> rank. 0xFF never occurs in UTF-8, so the key is unambiguous.
  StringMap merge_ranks;
  std::string pre_name;
  bool pre_known = true;
  std::optional<PreTokenizer> pre;

  bool ignore_merges = false;
  bool add_space_prefix = false;
  bool add_bos = false;
  bool add_eos = false;
  int32_t bos = -1, eos = -1, unk = -1, eot = -1, eom = -1;

  std::vector<uint8_t> eog;                // per id: ends generation
  std::vector<int32_t> special_tokens;     // control / user-defined / unknown, longest text first
  std::array<int32_t, 256> byte_tokens{};  // SPM byte fallback per byte value, -1 when none

  int32_t Find(std::string_view text) const {
    auto it = token_to_id.find(text);
    return it == token_to_id.end() ? -1 : it->second;
  }
  bool IsType(int32_t id, TokenType t) const {
    return id >= 0 && static_cast<size_t>(id) < tokens.size() && tokens[id].type == t;
  }
};

// Encoders for one fragment of plain text (special tokens already cut out).
// `text` for SPM is already space-escaped; BPE takes raw bytes.
void SpmEncode(const TokenizerState& s, std::string_view text, std::vector<int32_t>* out);
void BpeEncode(const TokenizerState& s, std::string_view text, std::vector<int32_t>* out);

}  // namespace dormouse::tokenizer_internal
