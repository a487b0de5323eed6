// libFuzzer target for the vocabulary loader and the tokenizers it builds. The input is
// a small text description of a GGUF's tokenizer metadata, so that mutations land on the
// vocabulary itself rather than on GGUF framing (gguf_fuzz covers that):
//
//   model llama            (tokenizer.ggml.model; "pre <name>" sets tokenizer.ggml.pre)
//   bos 1 | eos 2 | unk 0 | eot 5   (token ids, any integer)
//   add_bos 1 | add_space_prefix 0
//   scores 0 -1 -2.5 ...   (tokenizer.ggml.scores)
//   types 2 3 1 ...        (tokenizer.ggml.token_type)
//   merge a b              (one tokenizer.ggml.merges entry)
//   text <line>            (text to encode with the result; may repeat)
//   token <bytes>          (one vocabulary entry; \n, \t, \\ and \xNN escapes)
//
// Run: make fuzz FUZZ_TARGETS=vocab_fuzz (seeds: fuzz/corpus/vocab_fuzz).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/gguf.h"
#include "engine/gguf_builder.h"
#include "engine/tokenizer/tokenizer.h"

namespace {

using dormouse::testing_util::GgufBuilder;

std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 >= s.size()) {
      out += s[i];
      continue;
    }
    char c = s[++i];
    if (c == 'n') {
      out += '\n';
    } else if (c == 't') {
      out += '\t';
    } else if (c == 'x' && i + 2 < s.size()) {
      out += static_cast<char>(std::strtol(s.substr(i + 1, 2).c_str(), nullptr, 16));
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

template <typename T>
std::vector<T> Numbers(std::istringstream& in) {
  std::vector<T> v;
  double d;
  while (v.size() < 4096 && in >> d) {
    if constexpr (std::is_integral_v<T>) {  // out of range is UB for the cast itself
      d = std::isnan(d) ? 0 : std::clamp(d, -2147483648.0, 2147483647.0);
    }
    v.push_back(static_cast<T>(d));
  }
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 32 * 1024) return -1;
  std::istringstream lines(std::string(reinterpret_cast<const char*>(data), size));
  GgufBuilder b;
  std::vector<std::string> tokens, merges, texts;
  std::string line;
  while (std::getline(lines, line)) {
    const size_t sp = line.find(' ');
    const std::string key = line.substr(0, sp);
    const std::string rest = sp == std::string::npos ? "" : line.substr(sp + 1);
    std::istringstream in(rest);
    if (key == "token") {
      tokens.push_back(Unescape(rest));
    } else if (key == "merge") {
      merges.push_back(Unescape(rest));
    } else if (key == "text") {
      texts.push_back(Unescape(rest));
    } else if (key == "model") {
      b.Str("tokenizer.ggml.model", rest);
    } else if (key == "pre") {
      b.Str("tokenizer.ggml.pre", rest);
    } else if (key == "scores") {
      b.F32Array("tokenizer.ggml.scores", Numbers<float>(in));
    } else if (key == "types") {
      b.I32Array("tokenizer.ggml.token_type", Numbers<int32_t>(in));
    } else if (key == "add_bos" || key == "add_eos" || key == "add_space_prefix") {
      b.Bool("tokenizer.ggml." + key + (key == "add_space_prefix" ? "" : "_token"), rest == "1");
    } else if (key == "bos" || key == "eos" || key == "unk" || key == "eot") {
      const char* name = key == "unk" ? "unknown" : key.c_str();
      b.I32("tokenizer.ggml." + std::string(name) + "_token_id",
            static_cast<int32_t>(std::strtoll(rest.c_str(), nullptr, 10)));
    }
  }
  b.StrArray("tokenizer.ggml.tokens", tokens);
  if (!merges.empty()) b.StrArray("tokenizer.ggml.merges", merges);
  const std::vector<uint8_t> bytes = b.Bytes();
  auto g = dormouse::GgufFile::ParseBytesOrError(bytes.data(), bytes.size(), "fuzz.gguf");
  if (!g.ok()) return 0;
  auto t = dormouse::Tokenizer::FromGguf(*g);
  if (!t.ok()) return 0;
  for (const std::string& text : texts) {
    for (bool special : {false, true}) {
      std::vector<int32_t> ids = t->Encode(text, special, special);
      (void)t->Decode(ids);
      for (int32_t id : ids) (void)t->DecodeToken(id);
    }
  }
  return 0;
}
