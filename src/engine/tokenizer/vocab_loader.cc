// Tokenizer::FromGguf: reads and checks the `tokenizer.ggml.*` metadata, then derives what
// llama.cpp derives at load time (special-token ids by text, the end-of-generation set, the
// special tokens matched in the text, per-model quirks).
#include <algorithm>
#include <cstdio>
#include <memory>

#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/vocab.h"

namespace dormouse {
namespace {

using tokenizer_internal::FindPreTokenizer;
using tokenizer_internal::PreTokenizer;
using tokenizer_internal::PreTokenizerSpec;
using tokenizer_internal::TokenizerState;
using tokenizer_internal::TokenType;
using tokenizer_internal::VocabKind;

constexpr size_t kMaxTokens = size_t{1} << 24;
constexpr size_t kMaxTokenBytes = size_t{1} << 16;
constexpr size_t kMaxMerges = size_t{1} << 24;

std::string Clip(std::string_view s) {
  return s.size() <= 40 ? std::string(s) : std::string(s.substr(0, 40)) + "...";
}

TokenType TypeFromGguf(int64_t v) {
  return v >= 1 && v <= 6 ? static_cast<TokenType>(v) : TokenType::kUndefined;
}

Status LoadScoresAndTypes(const GgufFile& g, TokenizerState* s) {
  const size_t n = s->tokens.size();
  if (g.Find("tokenizer.ggml.scores") != nullptr) {
    const GgufArray* scores = g.GetArray("tokenizer.ggml.scores");
    if (scores == nullptr || (scores->elem_type != GgufValueType::kFloat32 &&
                              scores->elem_type != GgufValueType::kFloat64)) {
      return Status::Error("tokenizer.ggml.scores is not an array of floats");
    }
    if (scores->floats.size() != n) {
      return Status::Errorf("tokenizer.ggml.scores has {} entries for {} tokens",
                            scores->floats.size(), n);
    }
    for (size_t i = 0; i < n; ++i) {
      const double v = scores->floats[i];
      s->tokens[i].score = v == v ? static_cast<float>(v) : -1e30f;  // NaN would break ordering
    }
  }
  if (g.Find("tokenizer.ggml.token_type") != nullptr) {
    const GgufArray* types = g.GetArray("tokenizer.ggml.token_type");
    if (types == nullptr || types->ints.size() != types->size()) {
      return Status::Error("tokenizer.ggml.token_type is not an array of integers");
    }
    if (types->ints.size() != n) {
      return Status::Errorf("tokenizer.ggml.token_type has {} entries for {} tokens",
                            types->ints.size(), n);
    }
    for (size_t i = 0; i < n; ++i) s->tokens[i].type = TypeFromGguf(types->ints[i]);
  }
  return Status::Ok();
}

Status LoadTokens(const GgufFile& g, TokenizerState* s) {
  if (g.Find("tokenizer.ggml.tokens") == nullptr) {
    return Status::Error("missing tokenizer.ggml.tokens (the file has no vocabulary)");
  }
  const GgufArray* tokens = g.GetArray("tokenizer.ggml.tokens");
  if (tokens == nullptr || tokens->elem_type != GgufValueType::kString) {
    return Status::Error("tokenizer.ggml.tokens is not an array of strings");
  }
  const size_t n = tokens->strings.size();
  if (n == 0 || n > kMaxTokens) {
    return Status::Errorf("tokenizer.ggml.tokens has {} tokens (expected 1 to {})", n, kMaxTokens);
  }
  s->tokens.resize(n);
  s->token_to_id.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    std::string text = tokens->strings[i];
    if (text.size() > kMaxTokenBytes) {
      return Status::Errorf("token {} is {} bytes long (at most {})", i, text.size(),
                            kMaxTokenBytes);
    }
    if (text.empty()) text = "[EMPTY_" + std::to_string(i) + "]";  // as llama.cpp
    if (!s->token_to_id.emplace(text, static_cast<int32_t>(i)).second) {
      return Status::Errorf("token {} '{}' duplicates token {}", i, Clip(text),
                            s->token_to_id[text]);
    }
    s->tokens[i].text = std::move(text);
  }
  return LoadScoresAndTypes(g, s);
}

Status LoadMerges(const GgufFile& g, TokenizerState* s) {
  if (g.Find("tokenizer.ggml.merges") == nullptr) {
    return Status::Error("missing tokenizer.ggml.merges (required by the gpt2 tokenizer)");
  }
  const GgufArray* merges = g.GetArray("tokenizer.ggml.merges");
  if (merges == nullptr || merges->elem_type != GgufValueType::kString) {
    return Status::Error("tokenizer.ggml.merges is not an array of strings");
  }
  if (merges->strings.size() > kMaxMerges) {
    return Status::Errorf("tokenizer.ggml.merges has {} entries (at most {})",
                          merges->strings.size(), kMaxMerges);
  }
  s->merge_ranks.reserve(merges->strings.size());
  for (size_t i = 0; i < merges->strings.size(); ++i) {
    const std::string& m = merges->strings[i];
    // As llama.cpp: the parts are split at the first space after the first byte.
    const size_t pos = m.empty() ? std::string::npos : m.find(' ', 1);
    if (pos == std::string::npos || pos + 1 == m.size()) {
      return Status::Errorf(
          "tokenizer.ggml.merges[{}] = '{}' is not two parts separated by a "
          "space",
          i, Clip(m));
    }
    std::string key = m.substr(0, pos);
    key.push_back('\xFF');
    key.append(m, pos + 1);
    s->merge_ranks.emplace(std::move(key), static_cast<int32_t>(i));  // first rank wins
  }
  return Status::Ok();
}

// Reads a token id key. Absent: *id unchanged. -1 (or its uint32 spelling) means "none".
// Out of range: an error when `strict`, else ignored as llama.cpp does.
Status ReadId(const GgufFile& g, const char* key, bool strict, TokenizerState* s, int32_t* id) {
  StatusOr<std::optional<int64_t>> v = g.GetInt(key);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return Status::Ok();
  const int64_t x = **v;
  if (x == -1 || x == 0xFFFFFFFFll) {
    if (strict) *id = -1;
    return Status::Ok();
  }
  if (x < 0 || x >= static_cast<int64_t>(s->tokens.size())) {
    if (!strict) return Status::Ok();
    return Status::Errorf("{} = {} is out of range (the vocabulary has {} tokens)", key, x,
                          s->tokens.size());
  }
  *id = static_cast<int32_t>(x);
  return Status::Ok();
}

Status ReadBool(const GgufFile& g, const char* key, bool* out) {
  StatusOr<std::optional<bool>> v = g.GetBool(key);
  if (!v.ok()) return v.status();
  if (v->has_value()) *out = **v;
  return Status::Ok();
}

// Model type, pre-tokenizer and the defaults llama.cpp gives each.
Status ChooseModel(const GgufFile& g, TokenizerState* s) {
  StatusOr<std::optional<std::string>> model = g.GetString("tokenizer.ggml.model");
  if (!model.ok()) return model.status();
  if (!model->has_value()) return Status::Error("missing tokenizer.ggml.model");
  if (**model == "llama") {
    s->kind = VocabKind::kSpm;
    s->add_space_prefix = true;
    s->add_bos = true;
    const int32_t n = static_cast<int32_t>(s->tokens.size());
    s->bos = n > 1 ? 1 : -1;
    s->eos = n > 2 ? 2 : -1;
    s->unk = 0;
    return Status::Ok();
  }
  if (**model != "gpt2") {
    return Status::Errorf("unsupported tokenizer.ggml.model '{}' (supported: llama, gpt2)",
                          Clip(**model));
  }
  s->kind = VocabKind::kBpe;
  StatusOr<std::optional<std::string>> pre = g.GetString("tokenizer.ggml.pre");
  if (!pre.ok()) return pre.status();
  s->pre_name = pre->value_or("");
  std::optional<PreTokenizerSpec> spec = FindPreTokenizer(s->pre_name);
  if (!spec.has_value()) {
    std::fprintf(stderr, "warning: unknown tokenizer.ggml.pre '%s', using gpt-2's pre-tokenizer\n",
                 Clip(s->pre_name).c_str());
    s->pre_known = false;
    spec = FindPreTokenizer("gpt-2");
  }
  if (s->pre_name.empty()) s->pre_name = "default";
  s->ignore_merges = spec->ignore_merges;
  s->add_bos = spec->add_bos;
  StatusOr<PreTokenizer> compiled = PreTokenizer::Compile(spec->regexes);
  if (!compiled.ok()) return compiled.status();
  s->pre = std::move(compiled).value();
  return LoadMerges(g, s);
}

Status LoadSpecialIds(const GgufFile& g, TokenizerState* s) {
  DM_RETURN_IF_ERROR(ReadId(g, "tokenizer.ggml.bos_token_id", true, s, &s->bos));
  DM_RETURN_IF_ERROR(ReadId(g, "tokenizer.ggml.eos_token_id", true, s, &s->eos));
  DM_RETURN_IF_ERROR(ReadId(g, "tokenizer.ggml.unknown_token_id", false, s, &s->unk));
  DM_RETURN_IF_ERROR(ReadId(g, "tokenizer.ggml.eot_token_id", false, s, &s->eot));
  DM_RETURN_IF_ERROR(ReadId(g, "tokenizer.ggml.eom_token_id", false, s, &s->eom));
  DM_RETURN_IF_ERROR(ReadBool(g, "tokenizer.ggml.add_bos_token", &s->add_bos));
  DM_RETURN_IF_ERROR(ReadBool(g, "tokenizer.ggml.add_eos_token", &s->add_eos));
  DM_RETURN_IF_ERROR(ReadBool(g, "tokenizer.ggml.add_space_prefix", &s->add_space_prefix));
  if (s->unk >= static_cast<int32_t>(s->tokens.size())) s->unk = -1;
  // llama.cpp asserts here; a file asking for a token it does not have just gets none.
  if (s->add_bos && s->bos < 0) s->add_bos = false;
  if (s->add_eos && s->eos < 0) s->add_eos = false;
  return Status::Ok();
}

}  // namespace

// Defined in special_tokens.cc.
namespace tokenizer_internal {
Status DeriveSpecialTokens(const GgufFile& g, TokenizerState* s);
}

StatusOr<Tokenizer> Tokenizer::FromGguf(const GgufFile& gguf) {
  auto s = std::make_shared<TokenizerState>();
  DM_RETURN_IF_ERROR(LoadTokens(gguf, s.get()));
  DM_RETURN_IF_ERROR(ChooseModel(gguf, s.get()));
  // chatglm has no BOS unless the metadata names one.
  if (s->kind == VocabKind::kBpe) {
    std::optional<PreTokenizerSpec> spec = FindPreTokenizer(s->pre_name);
    if (spec.has_value() && spec->no_bos) s->bos = -1;
  }
  DM_RETURN_IF_ERROR(LoadSpecialIds(gguf, s.get()));
  DM_RETURN_IF_ERROR(tokenizer_internal::DeriveSpecialTokens(gguf, s.get()));
  return Tokenizer(std::move(s));
}

}  // namespace dormouse
