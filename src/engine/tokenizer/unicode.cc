#include "engine/tokenizer/unicode.h"

#include <array>

namespace dormouse::tokenizer_internal {
namespace {

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581

bool IsCont(uint8_t b) { return (b & 0xC0) == 0x80; }

// Allowed range of the second byte for each lead byte (Unicode table 3-7); {0, 0} when the
// lead byte can start no sequence.
struct LeadInfo {
  size_t len;
  uint8_t lo, hi;
};

LeadInfo InfoFor(uint8_t lead) {
  if (lead < 0x80) return {1, 0, 0};
  if (lead < 0xC2) return {0, 0, 0};
  if (lead < 0xE0) return {2, 0x80, 0xBF};
  if (lead == 0xE0) return {3, 0xA0, 0xBF};
  if (lead == 0xED) return {3, 0x80, 0x9F};
  if (lead < 0xF0) return {3, 0x80, 0xBF};
  if (lead == 0xF0) return {4, 0x90, 0xBF};
  if (lead < 0xF4) return {4, 0x80, 0xBF};
  if (lead == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

// How many leading bytes of s (up to the announced length) form a valid partial sequence.
size_t ValidPrefix(std::string_view s, const LeadInfo& info) {
  if (info.len <= 1) return info.len;
  size_t n = 1;
  for (; n < info.len && n < s.size(); ++n) {
    const uint8_t b = static_cast<uint8_t>(s[n]);
    const bool ok = n == 1 ? (b >= info.lo && b <= info.hi) : IsCont(b);
    if (!ok) break;
  }
  return n;
}

struct ByteMaps {
  std::array<uint32_t, 256> to_cpt{};
  std::array<int16_t, 512> from_cpt{};  // code points below 512 cover the whole alphabet
};

const ByteMaps& Maps() {
  static const ByteMaps maps = [] {
    ByteMaps m;
    m.from_cpt.fill(-1);
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
      m.to_cpt[b] = printable ? b : next++;
      m.from_cpt[m.to_cpt[b]] = static_cast<int16_t>(b);
    }
    return m;
  }();
  return maps;
}

// Decodes the well-formed sequence at s[0..len).
uint32_t DecodeValid(std::string_view s, size_t len) {
  const auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(s[i])); };
  switch (len) {
    case 1:
      return b(0);
    case 2:
      return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    case 3:
      return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    default:
      return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  }
}

}  // namespace

size_t ValidUtf8Len(std::string_view s) {
  const LeadInfo info = InfoFor(static_cast<uint8_t>(s[0]));
  if (info.len == 0 || info.len > s.size()) return 0;
  return ValidPrefix(s, info) == info.len ? info.len : 0;
}

bool IsIncompleteUtf8(std::string_view s) {
  const LeadInfo info = InfoFor(static_cast<uint8_t>(s[0]));
  if (info.len <= 1 || s.size() >= info.len) return false;
  return ValidPrefix(s, info) == s.size();
}

std::string SanitizeUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const size_t n = ValidUtf8Len(s.substr(i));
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

void AppendUtf8(uint32_t cpt, std::string* out) {
  if (cpt < 0x80) {
    out->push_back(static_cast<char>(cpt));
  } else if (cpt < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cpt >> 6)));
    out->push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else if (cpt < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cpt >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cpt >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cpt >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  }
}

std::string BytesToUnicode(std::string_view bytes) {
  const ByteMaps& m = Maps();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) AppendUtf8(m.to_cpt[static_cast<uint8_t>(c)], &out);
  return out;
}

std::string UnicodeToBytes(std::string_view text) {
  const ByteMaps& m = Maps();
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const size_t n = ValidUtf8Len(text.substr(i));
    if (n == 0) {  // not UTF-8 at all: keep the byte
      out.push_back(text[i++]);
      continue;
    }
    const uint32_t cpt = DecodeValid(text.substr(i), n);
    if (cpt < m.from_cpt.size() && m.from_cpt[cpt] >= 0) {
      out.push_back(static_cast<char>(m.from_cpt[cpt]));
    } else {
      out.append(text.substr(i, n));
    }
    i += n;
  }
  return out;
}

std::string EscapeSpaces(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 4);
  for (char c : text) {
    if (c == ' ') {
      out += kSpmSpace;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string UnescapeSpaces(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (text.substr(i, kSpmSpace.size()) == kSpmSpace) {
      out.push_back(' ');
      i += kSpmSpace.size();
    } else {
      out.push_back(text[i++]);
    }
  }
  return out;
}

}  // namespace dormouse::tokenizer_internal
