// libFuzzer target for the OpenAI request parsers (/v1/chat/completions, /v1/completions):
// any body must become a request or an ApiError, never a crash or an exception.
// Run: make fuzz FUZZ_TARGETS=openai_request_fuzz (seeds: fuzz/corpus/openai_request_fuzz).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "api/json_params.h"
#include "api/openai_api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dormouse::api;
  auto body = ParseJsonObject(std::string_view(reinterpret_cast<const char*>(data), size));
  if (const nlohmann::json* j = std::get_if<nlohmann::json>(&body)) {
    const Limits limits;
    (void)ParseOpenAiChat(*j, limits);
    (void)ParseOpenAiCompletion(*j, limits);
  }
  return 0;
}
