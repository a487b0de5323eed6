// The decode loop shared by `run`, `chat` and the server: sample, stop on an
// end-of-generation token, a stop string, the token limit or a cancel; stream complete
// UTF-8 pieces as they come.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "engine/context.h"
#include "engine/sampler.h"
#include "engine/tokenizer/tokenizer.h"

namespace dormouse {

enum class StopReason { kEndOfGeneration, kMaxTokens, kStopString, kContextFull, kCancelled };
const char* StopReasonName(StopReason r);  // "eog", "length", "stop", "context", "cancel"

struct GenerateParams {
  int64_t max_tokens = -1;        // < 0: until another stop
  std::vector<std::string> stop;  // generation ends before the first of these strings
};

struct GenerateResult {
  std::string text;             // the visible text (a stop string and what follows cut off)
  std::vector<int32_t> tokens;  // every token evaluated into the context, in order
  StopReason reason = StopReason::kMaxTokens;
  double seconds = 0;
};

// Receives each new piece of visible text; returning false cancels generation.
using PieceCallback = std::function<bool(std::string_view piece)>;
// Sees the logits each token is sampled from (tests use it to compare runs bitwise).
using LogitsObserver = std::function<void(const float* logits, int64_t n_vocab)>;

// Generates from the logits the context holds (those of its last evaluated token).
// Generated tokens are evaluated into the context as they are accepted; an
// end-of-generation token is not.
StatusOr<GenerateResult> Generate(InferenceContext& ctx, Sampler& sampler, const Tokenizer& tok,
                                  const GenerateParams& params, const PieceCallback& on_piece,
                                  const LogitsObserver& observe = nullptr);

}  // namespace dormouse
