#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/unicode.h"

namespace dormouse {

namespace {
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
}

StreamDecoder::StreamDecoder(const Tokenizer& tok) : tok_(tok) {}

std::string StreamDecoder::Push(int32_t id) {
  pending_ += tok_.DecodeToken(id);
  return Drain(false);
}

std::string StreamDecoder::Flush() { return Drain(true); }

// Emits every complete character; an incomplete one at the end waits for more bytes unless
// this is the final drain. Bytes that can never form a character become U+FFFD.
std::string StreamDecoder::Drain(bool final) {
  using tokenizer_internal::IsIncompleteUtf8;
  using tokenizer_internal::ValidUtf8Len;
  std::string out;
  const std::string_view p = pending_;
  size_t i = 0;
  while (i < p.size()) {
    const std::string_view rest = p.substr(i);
    const size_t n = ValidUtf8Len(rest);
    if (n > 0) {
      out.append(rest.substr(0, n));
      i += n;
    } else if (IsIncompleteUtf8(rest)) {
      if (!final) break;
      out += kReplacement;  // a truncated character counts as one
      i = p.size();
    } else {
      out += kReplacement;
      ++i;
    }
  }
  pending_.erase(0, i);
  return out;
}

}  // namespace dormouse
