// Text <-> token ids for GGUF models, built from the `tokenizer.ggml.*` metadata the way
// llama.cpp reads it: SentencePiece-style vocabularies (`llama`, with byte fallback) and
// byte-level BPE (`gpt2`) with the pre-tokenizer named by `tokenizer.ggml.pre`.
// The vocabulary is untrusted input: FromGguf checks it and returns an error naming the
// problem; no id passed to a lookup can make it read out of bounds.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "engine/gguf.h"

namespace dormouse {

namespace tokenizer_internal {
struct TokenizerState;
}

class Tokenizer {
 public:
  static StatusOr<Tokenizer> FromGguf(const GgufFile& gguf);

  int32_t n_vocab() const;
  // For `dormouse info`, e.g. "llama (SentencePiece)" or "gpt2 (byte-level BPE, pre qwen2)".
  std::string ModelName() const;
  int32_t bos() const;  // -1 when the vocabulary has none
  int32_t eos() const;
  bool add_bos() const;  // tokenizer.ggml.add_bos_token, else llama.cpp's default per type
  bool add_eos() const;
  // End of generation: eos, eot, eom and the end-of-turn tokens llama.cpp finds by their text
  // (<|im_end|>, <|eot_id|>, <|endoftext|>, ...).
  bool IsEog(int32_t id) const;
  bool IsControl(int32_t id) const;

  // add_special: BOS / EOS as the metadata asks. parse_special: the text of control and
  // unknown tokens (e.g. "<|im_start|>", "<s>") becomes that token; user-defined tokens are
  // always matched, as in llama.cpp.
  std::vector<int32_t> Encode(std::string_view text, bool add_special, bool parse_special) const;

  // The bytes a token stands for: byte tokens give their byte, SentencePiece's U+2581 a space,
  // GPT-2's byte alphabet its bytes. Control and unknown tokens, and ids out of range, give "".
  // The bytes may be part of a UTF-8 character; see StreamDecoder.
  std::string DecodeToken(int32_t id) const;
  // The concatenation of DecodeToken, minus the space SentencePiece put in front of the text
  // (so Decode(Encode(s)) == s for text that tokenizes losslessly).
  std::string Decode(std::span<const int32_t> ids) const;

  const std::string& TokenText(int32_t id) const;  // as stored; "" out of range
  std::optional<int32_t> FindToken(std::string_view text) const;

 private:
  explicit Tokenizer(std::shared_ptr<const tokenizer_internal::TokenizerState> state);
  std::shared_ptr<const tokenizer_internal::TokenizerState> state_;
};

// Streams valid UTF-8 even when a character spans several tokens: Push returns the bytes that
// are complete so far, holding back an incomplete trailing sequence; Flush returns what is
// left, with invalid leftovers replaced by U+FFFD. Invalid bytes that no later token could
// complete are replaced as soon as they are seen.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok);
  std::string Push(int32_t id);
  std::string Flush();

 private:
  std::string Drain(bool final);

  const Tokenizer& tok_;
  std::string pending_;
};

}  // namespace dormouse
