#include "engine/generate.h"

#include <chrono>

namespace dormouse {
namespace {

// Length of the longest suffix of `text` that is a proper prefix of some stop string:
// those bytes are held back until we know whether a stop string completes.
size_t PartialStopSuffix(std::string_view text, const std::vector<std::string>& stops) {
  size_t best = 0;
  for (const std::string& s : stops) {
    for (size_t len = std::min(s.size() - 1, text.size()); len > best; --len) {
      if (text.substr(text.size() - len) == std::string_view(s).substr(0, len)) {
        best = len;
        break;
      }
    }
  }
  return best;
}

size_t FindStop(std::string_view text, const std::vector<std::string>& stops, size_t from) {
  size_t first = std::string_view::npos;
  for (const std::string& s : stops) {
    if (s.empty()) continue;
    size_t start = from > s.size() ? from - s.size() : 0;
    size_t at = text.find(s, start);
    if (at < first) first = at;
  }
  return first;
}

}  // namespace

const char* StopReasonName(StopReason r) {
  switch (r) {
    case StopReason::kEndOfGeneration:
      return "eog";
    case StopReason::kMaxTokens:
      return "length";
    case StopReason::kStopString:
      return "stop";
    case StopReason::kContextFull:
      return "context";
    case StopReason::kCancelled:
      return "cancel";
  }
  return "unknown";
}

StatusOr<GenerateResult> Generate(InferenceContext& ctx, Sampler& sampler, const Tokenizer& tok,
                                  const GenerateParams& params, const PieceCallback& on_piece,
                                  const LogitsObserver& observe) {
  const auto t0 = std::chrono::steady_clock::now();
  GenerateResult r;
  StreamDecoder decoder(tok);
  std::string all;     // every decoded byte so far
  size_t emitted = 0;  // how much of `all` the caller has seen
  r.reason = StopReason::kMaxTokens;
  for (int64_t i = 0; params.max_tokens < 0 || i < params.max_tokens; ++i) {
    if (ctx.n_past() >= ctx.n_ctx()) {
      r.reason = StopReason::kContextFull;
      break;
    }
    if (observe) observe(ctx.logits(), ctx.n_vocab());
    const int32_t next = sampler.Sample(ctx.logits());
    if (tok.IsEog(next)) {
      r.reason = StopReason::kEndOfGeneration;
      break;
    }
    sampler.Accept(next);
    int32_t one[] = {next};
    DM_RETURN_IF_ERROR(ctx.Eval(one));
    r.tokens.push_back(next);
    const size_t before = all.size();
    all += decoder.Push(next);
    if (size_t at = FindStop(all, params.stop, before); at != std::string::npos) {
      all.resize(at);
      r.reason = StopReason::kStopString;
      break;
    }
    const size_t safe = all.size() - PartialStopSuffix(all, params.stop);
    if (safe > emitted) {
      bool go_on = !on_piece || on_piece(std::string_view(all).substr(emitted, safe - emitted));
      emitted = safe;
      if (!go_on) {
        r.reason = StopReason::kCancelled;
        break;
      }
    }
  }
  if (r.reason != StopReason::kStopString && r.reason != StopReason::kCancelled) {
    all += decoder.Flush();
  }
  if (all.size() > emitted && on_piece && r.reason != StopReason::kCancelled) {
    on_piece(std::string_view(all).substr(emitted));
  }
  r.text = std::move(all);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace dormouse
