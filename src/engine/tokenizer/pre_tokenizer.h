// Pre-tokenization of byte-level BPE vocabularies: the text is cut into words by the list of
// regexes llama.cpp uses for each `tokenizer.ggml.pre`, and BPE merges never cross a word.
// The regexes run on PCRE2 (UTF + UCP), so \p{L}, \p{N}, \s and friends follow Unicode.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

struct pcre2_real_code_8;

namespace dormouse::tokenizer_internal {

struct PreTokenizerSpec {
  std::vector<std::string> regexes;
  bool ignore_merges = false;  // a word that is already a token skips merging (llama3)
  bool add_bos = false;        // default for tokenizer.ggml.add_bos_token
  bool no_bos = false;         // the vocabulary has no BOS token (chatglm)
};

// The regexes of a `tokenizer.ggml.pre` value, nullopt when the value is unknown. An empty
// value means "default", as in llama.cpp.
std::optional<PreTokenizerSpec> FindPreTokenizer(std::string_view pre);

class PreTokenizer {
 public:
  static StatusOr<PreTokenizer> Compile(const std::vector<std::string>& regexes);

  // Cuts well-formed UTF-8 `text` into words the way llama.cpp's unicode_regex_split does:
  // each regex in turn splits every piece so far, and the text between two matches stays a
  // piece of its own. The views point into `text`.
  std::vector<std::string_view> Split(std::string_view text) const;

 private:
  struct CodeDeleter {
    void operator()(pcre2_real_code_8* code) const;
  };
  using Code = std::unique_ptr<pcre2_real_code_8, CodeDeleter>;
  std::vector<Code> codes_;
};

}  // namespace dormouse::tokenizer_internal
