// What a conversation's snapshot carries besides tokens and KV rows: the sampler's state,
// the exact text the cached tokens spell (so a continuation can tokenize only what is
// new), and the first message of the context window. Shared by `dormouse chat` sessions
// and the server's contexts, so either can pick up the other's snapshots.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "engine/context.h"
#include "engine/tokenizer/tokenizer.h"

namespace dormouse {

struct SessionExtra {
  std::string sampler_state;  // Sampler::SaveState(), or empty
  std::string text;           // the text the snapshot's tokens spell, or empty if unknown
  uint64_t window_start = 0;  // first non-system message in the context window
};

std::string EncodeSessionExtra(const SessionExtra& e);
StatusOr<SessionExtra> DecodeSessionExtra(const std::string& bytes);

// Length of the longest common prefix of a and b.
size_t CommonPrefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b);

// The tokens of `text` when it continues a cached sequence whose exact text is known
// (`held_text`): `held` followed by the tokens of the rest only, so every cached token is
// reused (re-tokenizing generated text can differ from what was generated). When `text`
// continues all of `held_text` but its last few tokens (a chat template that trims the
// reply's trailing whitespace, or spells its end differently), those tokens are dropped:
// their pieces must spell the end of held_text exactly. *kept (if given) is how many
// tokens of `held` the result starts with, *redone how many of the rest's tokens spell
// text that a dropped token already held (computed again). nullopt when `text` does not
// continue it.
std::optional<std::vector<int32_t>> ContinueByText(const std::vector<int32_t>& held,
                                                   const std::string& held_text,
                                                   const Tokenizer& tok, const std::string& text,
                                                   size_t* kept = nullptr,
                                                   size_t* redone = nullptr);

// Forks a cache: copies the KV rows of positions [0, n) of `from` into `to` (same model
// and KV layout) and makes `to` hold exactly those positions. A conversation that shares
// a prefix with a live one starts from a copy, and the other keeps its context.
Status CopyCachedRows(const InferenceContext& from, InferenceContext& to, int64_t n);

struct PrefillCounts {
  size_t reused = 0;     // tokens kept from the cache
  size_t prefilled = 0;  // tokens evaluated now
};

// Makes `ctx` hold `tokens` (non-empty): keeps the common prefix with what it holds
// (`held`, which mirrors the cache), re-evaluating at least the last token so fresh
// logits exist, and evaluates the rest. `held` and `held_text` follow the cache on
// success (`text` being what `tokens` spell) and on failure (the text is then unknown).
StatusOr<PrefillCounts> PrefillFromCommonPrefix(InferenceContext& ctx, std::vector<int32_t>& held,
                                                std::string& held_text,
                                                const std::vector<int32_t>& tokens,
                                                const std::string& text);

}  // namespace dormouse
