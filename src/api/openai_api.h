// The OpenAI-compatible API: POST /v1/chat/completions, POST /v1/completions (streaming as
// server-sent events ending in "data: [DONE]", or one JSON object), GET /v1/models.
// A thin adapter: requests become one CompletionRequest, results become OpenAI's shapes.
//
// Sampling: OpenAI's defaults (temperature 1, top_p 1, no top-k or min-p), plus llama.cpp's
// extensions top_k, min_p, repeat_penalty and repeat_last_n. presence_penalty and
// frequency_penalty are accepted only as 0: they are additive penalties our sampler does
// not have (use repeat_penalty). n must be 1, logprobs false, echo false.
//
// usage.prompt_tokens_details.cached_tokens tells how many prompt tokens were reused
// from a live context or a saved snapshot: prompt_tokens - cached_tokens were prefilled.
// A "dormouse" object in responses adds the session and timings.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>

#include "api/json_params.h"
#include "lifecycle/service.h"

namespace dormouse::api {

struct OpenAiRequest {
  CompletionRequest request;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

std::variant<OpenAiRequest, ApiError> ParseOpenAiChat(const nlohmann::json& body,
                                                      const Limits& limits);
std::variant<OpenAiRequest, ApiError> ParseOpenAiCompletion(const nlohmann::json& body,
                                                            const Limits& limits);

nlohmann::json OpenAiUsage(const CompletionResult& r);

// Identity of one response: every chunk of a stream repeats it.
struct OpenAiResponseId {
  std::string id;  // "chatcmpl-..." or "cmpl-..."
  std::string model;
  int64_t created = 0;  // unix seconds
  bool chat = true;
};
OpenAiResponseId NewOpenAiResponseId(const std::string& model, bool chat);

nlohmann::json OpenAiResponse(const OpenAiResponseId& id, const CompletionResult& r);
// One streamed chunk: text (the first chat chunk also carries the role), or the final
// one with its finish reason (finish_reason non-null, text empty).
nlohmann::json OpenAiChunk(const OpenAiResponseId& id, const std::string& text, bool first,
                           const char* finish_reason, bool include_usage);
nlohmann::json OpenAiUsageChunk(const OpenAiResponseId& id, const CompletionResult& r);

}  // namespace dormouse::api
