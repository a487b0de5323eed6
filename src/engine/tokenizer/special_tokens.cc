// What llama.cpp derives from the vocabulary after reading it: end-of-turn and FIM tokens
// found by their text (and forced to CONTROL), the end-of-generation set, the list of
// special tokens matched in the text before tokenization, per-model strip flags, and the
// byte-fallback tokens of SentencePiece vocabularies.
#include <algorithm>
#include <initializer_list>
#include <string_view>

#include "base/status.h"
#include "engine/gguf.h"
#include "engine/tokenizer/vocab.h"

namespace dormouse::tokenizer_internal {
namespace {

using Texts = std::initializer_list<std::string_view>;

// "<｜end▁of▁sentence｜>" (DeepSeek), spelled in bytes.
constexpr std::string_view kDeepseekEos =
    "<\xEF\xBD\x9C"
    "end\xE2\x96\x81"
    "of\xE2\x96\x81"
    "sentence\xEF\xBD\x9C>";

const Texts kEotTexts = {"<|eot_id|>",    "<|im_end|>",        "<|end|>", "<end_of_turn>",
                         "<|endoftext|>", "<|end_of_text|>",   "<EOT>",   "_<EOT>",
                         kDeepseekEos,    "<end_of_utterance>"};
const Texts kEomTexts = {"<|eom_id|>"};
const Texts kFimPreTexts = {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<PRE>"};
const Texts kFimSufTexts = {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<SUF>"};
const Texts kFimMidTexts = {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<MID>"};
const Texts kFimPadTexts = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>"};
const Texts kFimRepTexts = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>"};
const Texts kFimSepTexts = {"<|file_sep|>"};
const Texts kEogTexts = {"<|eot_id|>", "<|im_end|>",    "<|end|>",         "<|return|>",
                         "<|call|>",   "<end_of_turn>", "<|endoftext|>",   "<|eom_id|>",
                         "<EOT>",      "_<EOT>",        "<|end_of_text|>", "<end_of_utterance>"};

// The lowest id among tokens spelled like one of `texts`, -1 when none is in the vocabulary.
int32_t FirstByText(const TokenizerState& s, Texts texts) {
  int32_t best = -1;
  for (std::string_view t : texts) {
    const int32_t id = s.Find(t);
    if (id >= 0 && (best < 0 || id < best)) best = id;
  }
  return best;
}

void ForceControl(TokenizerState* s, int32_t id) {
  if (id >= 0) s->tokens[id].type = TokenType::kControl;
}

// An id from a key if present and in range, else the token found by text (forced CONTROL).
Status IdByKeyOrText(const GgufFile& g, const char* key, Texts texts, TokenizerState* s,
                     int32_t* id) {
  StatusOr<std::optional<int64_t>> v = g.GetInt(key);
  if (!v.ok()) return v.status();
  if (v->has_value() && **v >= 0 && **v < static_cast<int64_t>(s->tokens.size())) {
    *id = static_cast<int32_t>(**v);
    return Status::Ok();
  }
  *id = FirstByText(*s, texts);
  ForceControl(s, *id);
  return Status::Ok();
}

Status BuildEog(const GgufFile& g, TokenizerState* s) {
  if (s->eot < 0) {
    s->eot = FirstByText(*s, kEotTexts);
    ForceControl(s, s->eot);
  }
  if (s->eom < 0) {
    s->eom = FirstByText(*s, kEomTexts);
    ForceControl(s, s->eom);
  }
  int32_t fim_pre = -1, fim_suf = -1, fim_mid = -1, fim_pad = -1, fim_rep = -1, fim_sep = -1;
  DM_RETURN_IF_ERROR(
      IdByKeyOrText(g, "tokenizer.ggml.fim_pre_token_id", kFimPreTexts, s, &fim_pre));
  DM_RETURN_IF_ERROR(
      IdByKeyOrText(g, "tokenizer.ggml.fim_suf_token_id", kFimSufTexts, s, &fim_suf));
  DM_RETURN_IF_ERROR(
      IdByKeyOrText(g, "tokenizer.ggml.fim_mid_token_id", kFimMidTexts, s, &fim_mid));
  DM_RETURN_IF_ERROR(
      IdByKeyOrText(g, "tokenizer.ggml.fim_pad_token_id", kFimPadTexts, s, &fim_pad));
  DM_RETURN_IF_ERROR(
      IdByKeyOrText(g, "tokenizer.ggml.fim_rep_token_id", kFimRepTexts, s, &fim_rep));
  DM_RETURN_IF_ERROR(
      IdByKeyOrText(g, "tokenizer.ggml.fim_sep_token_id", kFimSepTexts, s, &fim_sep));

  s->eog.assign(s->tokens.size(), 0);
  for (int32_t id : {fim_pad, fim_rep, fim_sep, s->eos, s->eot, s->eom}) {
    if (id >= 0) s->eog[id] = 1;
  }
  for (std::string_view t : kEogTexts) {
    const int32_t id = s->Find(t);
    if (id < 0) continue;
    s->eog[id] = 1;
    ForceControl(s, id);
  }
  return Status::Ok();
}

void BuildSpecialList(TokenizerState* s) {
  for (size_t i = 0; i < s->tokens.size(); ++i) {
    const TokenType t = s->tokens[i].type;
    if (t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown) {
      s->special_tokens.push_back(static_cast<int32_t>(i));
    }
  }
  std::stable_sort(s->special_tokens.begin(), s->special_tokens.end(), [&](int32_t a, int32_t b) {
    return s->tokens[a].text.size() > s->tokens[b].text.size();
  });
}

// llama.cpp hard-codes these per model name: Phi-3's special tokens eat the spaces after them.
void ApplyModelQuirks(const GgufFile& g, TokenizerState* s) {
  StatusOr<std::optional<std::string>> name = g.GetString("general.name");
  std::string lower = name.ok() ? name->value_or("") : "";
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower.find("phi-3") == std::string::npos && lower.find("phi3") == std::string::npos) {
    return;
  }
  for (int32_t id : s->special_tokens) s->tokens[id].rstrip = true;
  auto set = [&](std::string_view text, bool value) {
    const int32_t id = s->Find(text);
    if (id >= 0) s->tokens[id].rstrip = value;
  };
  set("</s>", true);
  for (std::string_view t : {"<unk>", "<s>", "<|endoftext|>"}) set(t, false);
}

// <0xXX>, else the byte itself as a token, else <unk>; -1 when there is nothing to use.
void BuildByteTokens(TokenizerState* s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    const char name[] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>'};
    int32_t id = s->Find(std::string_view(name, sizeof(name)));
    if (id < 0) id = s->Find(std::string(1, static_cast<char>(b)));
    s->byte_tokens[b] = id >= 0 ? id : s->unk;
  }
}

}  // namespace

Status DeriveSpecialTokens(const GgufFile& g, TokenizerState* s) {
  DM_RETURN_IF_ERROR(BuildEog(g, s));
  BuildSpecialList(s);
  ApplyModelQuirks(g, s);
  BuildByteTokens(s);
  return Status::Ok();
}

}  // namespace dormouse::tokenizer_internal
