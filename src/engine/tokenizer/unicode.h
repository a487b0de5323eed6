// UTF-8 helpers shared by the tokenizers: sequence lengths, validation, and GPT-2's mapping of
// bytes to printable code points. Character classes (letters, numbers, spaces) are PCRE2's job,
// see pre_tokenizer.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dormouse::tokenizer_internal {

// The length a lead byte announces, as llama.cpp's unicode_len_utf8: continuation and invalid
// bytes count as 1 so that a stray byte becomes a symbol of its own.
inline size_t Utf8SeqLen(uint8_t lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

// Length of the well-formed UTF-8 sequence starting at s[0] (no overlongs, no surrogates,
// at most U+10FFFF), or 0 when there is none. `s` must not be empty.
size_t ValidUtf8Len(std::string_view s);

// True when `s` (not empty) is a proper prefix of some well-formed sequence, i.e. more bytes
// could still complete it.
bool IsIncompleteUtf8(std::string_view s);

// Replaces every byte that does not start a well-formed sequence with U+FFFD, as llama.cpp
// does before running its pre-tokenizer regexes.
std::string SanitizeUtf8(std::string_view s);

void AppendUtf8(uint32_t cpt, std::string* out);

// GPT-2's byte-level alphabet: each byte becomes one printable code point (space -> 'Ġ').
std::string BytesToUnicode(std::string_view bytes);
// The inverse; code points outside the alphabet are copied through unchanged.
std::string UnicodeToBytes(std::string_view text);

// SentencePiece writes spaces as U+2581 ('▁').
std::string EscapeSpaces(std::string_view text);
std::string UnescapeSpaces(std::string_view text);

}  // namespace dormouse::tokenizer_internal
