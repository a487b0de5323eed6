#include "engine/tokenizer/pre_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <utility>

#include "engine/tokenizer/unicode.h"

namespace dormouse::tokenizer_internal {
namespace {

// The regex lists of llama.cpp's llm_tokenizer_bpe (llama-vocab.cpp), written for PCRE2.
// Non-ASCII characters are spelled \x{...} so that no editor or tool can normalize them.
constexpr const char* kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
constexpr const char* kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|)"
    R"(\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|)"
    R"(\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Cased letters as listed in DeepSeek's tokenizer.json.
constexpr const char* kDeepseekLlmLetters =
    R"(\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293})"
    R"(\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A})"
    R"(\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556})"
    R"(\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF})"
    R"(\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D})"
    R"(\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D})"
    R"(\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4})"
    R"(\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4})"
    R"(\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124})"
    R"(\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F})"
    R"(\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4})"
    R"(\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F})"
    R"(\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17})"
    R"(\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3})"
    R"(\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF})"
    R"(\x{1E900}-\x{1E943}]+)";
constexpr const char* kDeepseekLlmPunct =
    R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)";
constexpr const char* kCjkHangul = R"([\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";
constexpr const char* kPoro =
    R"( ?[^(\s|.,!?\x{2026}\x{3002}\x{FF0C}\x{3001}\x{0964}\x{06D4}\x{060C})]+)";
// Tekken and GPT-4o: the tokenizer.json originals, which PCRE2 runs as they are (llama.cpp
// has to approximate \p{Lu} and friends with lookaheads).
constexpr const char* kTekken =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|)"
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}|)"
    R"( ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kGpt4o =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+)"
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+)"
    R"([\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}|)"
    R"( ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

enum class Family {
  kDefault,
  kGpt2,
  kLlama3,
  kQwen2,
  kStarcoder,
  kFalcon,
  kDeepseekLlm,
  kDeepseekCoder,
  kDeepseekV3,
  kPoro,
  kViking,
  kTekken,
  kGpt4o,
  kChameleon,
};

std::vector<std::string> RegexesOf(Family f) {
  switch (f) {
    case Family::kGpt2:
      return {kGpt2};
    case Family::kLlama3:
      return {kLlama3};
    case Family::kQwen2:
      return {kQwen2};
    case Family::kStarcoder:
      return {R"(\p{N})", kGpt2};
    case Family::kFalcon:
      return {R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2, "[0-9][0-9][0-9]"};
    case Family::kDeepseekLlm:
      return {R"([\r\n])", kDeepseekLlmLetters, kDeepseekLlmPunct,
              R"(\s+$)",   kCjkHangul,          R"(\p{N}+)"};
    case Family::kDeepseekCoder:
      return {R"([\r\n])", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kCjkHangul, R"(\p{N})"};
    case Family::kDeepseekV3:
      return {R"(\p{N}{1,3})", R"([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)",
              R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?)"
              R"([\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"};
    case Family::kPoro:
      return {kPoro};
    case Family::kViking:
      return {kPoro, R"(\p{N})"};
    case Family::kTekken:
      return {kTekken};
    case Family::kGpt4o:
      return {kGpt4o};
    case Family::kChameleon:
      return {"<sentinel:[0-9]+>",       "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
              R"(([\t\n]|    |  ))",     R"(\p{N})",
              R"([\p{P}!-/:-@\[-`{-~])", kGpt2};
    case Family::kDefault:
      break;
  }
  return {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"};
}

struct NameEntry {
  std::string_view name;
  Family family;
  bool llama3_defaults = false;  // ignore_merges and add_bos
};

constexpr NameEntry kNames[] = {
    {"default", Family::kDefault},
    {"llama3", Family::kLlama3, true},
    {"llama-v3", Family::kLlama3, true},
    {"llama-bpe", Family::kLlama3, true},
    {"falcon3", Family::kLlama3, true},
    {"falcon-h1", Family::kLlama3, true},
    {"pixtral", Family::kLlama3, true},
    {"midm-2.0", Family::kLlama3, true},
    {"lfm2", Family::kLlama3, true},
    {"dbrx", Family::kLlama3},
    {"smaug-bpe", Family::kLlama3},
    {"chatglm-bpe", Family::kLlama3},
    {"glm4", Family::kLlama3},
    {"deepseek-llm", Family::kDeepseekLlm},
    {"deepseek-coder", Family::kDeepseekCoder},
    {"deepseek-v3", Family::kDeepseekV3},
    {"falcon", Family::kFalcon},
    {"gpt-2", Family::kGpt2},
    {"mpt", Family::kGpt2},
    {"olmo", Family::kGpt2},
    {"jais", Family::kGpt2},
    {"phi-2", Family::kGpt2},
    {"jina-es", Family::kGpt2},
    {"jina-de", Family::kGpt2},
    {"gigachat", Family::kGpt2},
    {"jina-v1-en", Family::kGpt2},
    {"jina-v2-es", Family::kGpt2},
    {"jina-v2-de", Family::kGpt2},
    {"jina-v2-code", Family::kGpt2},
    {"roberta-bpe", Family::kGpt2},
    {"trillion", Family::kGpt2},
    {"exaone4", Family::kGpt2},
    {"starcoder", Family::kStarcoder},
    {"refact", Family::kStarcoder},
    {"command-r", Family::kStarcoder},
    {"smollm", Family::kStarcoder},
    {"codeshell", Family::kStarcoder},
    {"exaone", Family::kStarcoder},
    {"minerva-7b", Family::kStarcoder},
    {"qwen2", Family::kQwen2},
    {"deepseek-r1-qwen", Family::kQwen2},
    {"megrez", Family::kQwen2},
    {"stablelm2", Family::kQwen2},
    {"poro-chat", Family::kPoro},
    {"bloom", Family::kPoro},
    {"gpt3-finnish", Family::kPoro},
    {"viking", Family::kViking},
    {"tekken", Family::kTekken, true},
    {"gpt-4o", Family::kGpt4o},
    {"llama4", Family::kGpt4o},
    {"chameleon", Family::kChameleon},
};

// Byte length of the UTF-8 character at s[i] (s is well-formed).
size_t CharLen(std::string_view s, size_t i) {
  return std::min(Utf8SeqLen(static_cast<uint8_t>(s[i])), s.size() - i);
}

struct Piece {
  size_t offset, length;
};

// Splits one piece with one regex; matches and the gaps between them are both kept.
void SplitPiece(const pcre2_code* code, pcre2_match_data* md, std::string_view text, Piece p,
                std::vector<Piece>* out) {
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data() + p.offset);
  size_t pos = 0, kept = 0;
  while (pos < p.length) {
    const int rc = pcre2_match(code, subject, p.length, pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc < 0) break;  // no further match, or a PCRE2 limit: the rest stays one piece
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t start = ov[0], end = ov[1];
    if (end <= start) {  // an empty match adds no piece; step over one character
      pos = start + CharLen(text, p.offset + start);
      continue;
    }
    if (start > kept) out->push_back({p.offset + kept, start - kept});
    out->push_back({p.offset + start, end - start});
    kept = pos = end;
  }
  if (kept < p.length) out->push_back({p.offset + kept, p.length - kept});
}

}  // namespace

std::optional<PreTokenizerSpec> FindPreTokenizer(std::string_view pre) {
  if (pre.empty()) pre = "default";
  for (const NameEntry& e : kNames) {
    if (e.name != pre) continue;
    PreTokenizerSpec spec;
    spec.regexes = RegexesOf(e.family);
    spec.ignore_merges = e.llama3_defaults;
    spec.add_bos = e.llama3_defaults || e.family == Family::kChameleon;
    spec.no_bos = pre == "chatglm-bpe" || pre == "glm4";
    return spec;
  }
  return std::nullopt;
}

void PreTokenizer::CodeDeleter::operator()(pcre2_code* code) const { pcre2_code_free(code); }

StatusOr<PreTokenizer> PreTokenizer::Compile(const std::vector<std::string>& regexes) {
  PreTokenizer p;
  for (const std::string& re : regexes) {
    int err = 0;
    PCRE2_SIZE err_offset = 0;
    pcre2_code* code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(re.data()), re.size(),
                      PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &err_offset, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      return Status::Errorf("pre-tokenizer regex '{}' does not compile at offset {}: {}", re,
                            err_offset, reinterpret_cast<const char*>(msg));
    }
    p.codes_.emplace_back(code);
  }
  return p;
}

std::vector<std::string_view> PreTokenizer::Split(std::string_view text) const {
  std::vector<Piece> pieces;
  if (!text.empty()) pieces.push_back({0, text.size()});
  std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> md(
      pcre2_match_data_create(1, nullptr), pcre2_match_data_free);
  std::vector<Piece> next;
  for (const Code& code : codes_) {
    if (md == nullptr) break;  // out of memory: words stay as they are
    next.clear();
    for (const Piece& p : pieces) SplitPiece(code.get(), md.get(), text, p, &next);
    pieces.swap(next);
  }
  std::vector<std::string_view> words;
  words.reserve(pieces.size());
  for (const Piece& p : pieces) words.push_back(text.substr(p.offset, p.length));
  return words;
}

}  // namespace dormouse::tokenizer_internal
