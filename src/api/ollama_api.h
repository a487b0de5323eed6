// The Ollama-compatible API: POST /api/chat and /api/generate (NDJSON streaming by default,
// one object with "stream": false), GET /api/ps, GET /api/tags, POST /api/show,
// GET /api/version. A thin adapter over the same CompletionRequest as the OpenAI API.
//
// keep_alive as Ollama documents it: a number is seconds, a string a duration ("5m",
// "1h", "0", "-1m"); 0 unloads after the request, negative keeps the model loaded;
// missing means the server's --keep-alive. A request with no prompt (generate) or no
// messages (chat) only loads the model, or with keep_alive 0 unloads it and answers
// done_reason "unload". Durations in responses are nanoseconds; prompt_eval_count counts
// the prompt tokens actually evaluated (a prefix reused from a cache is not).
//
// /api/generate renders the prompt (and system) with the model's chat template when it
// has one and "raw" is not set, as Ollama does; otherwise the prompt is used as is.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <variant>

#include "api/json_params.h"
#include "lifecycle/gguf_loader.h"
#include "lifecycle/service.h"

namespace dormouse::api {

struct OllamaRequest {
  CompletionRequest request;
  bool stream = true;
  bool unload = false;     // keep_alive was 0
  bool load_only = false;  // no prompt / no messages: load (or unload) and answer
  bool raw = false;        // generate: no template
  std::string system;      // generate: the system prompt
};

std::variant<OllamaRequest, ApiError> ParseOllamaChat(const nlohmann::json& body,
                                                      const Limits& limits);
std::variant<OllamaRequest, ApiError> ParseOllamaGenerate(const nlohmann::json& body,
                                                          const Limits& limits);
// Ollama's keep_alive into `out`; false (with the error in r) when invalid.
std::optional<KeepAlive> ReadKeepAlive(ParamReader& r, bool* zero);

// "2024-05-01T12:00:00.123456789Z".
std::string Rfc3339(std::chrono::system_clock::time_point t);
// The final line's statistics: done, done_reason, durations (ns) and counts.
nlohmann::json OllamaStats(const CompletionResult& r);

// What /api/tags, /api/show and /api/generate need to know about a model file, read from
// its GGUF header and cached while the file's size and mtime stay the same.
struct ModelDetails {
  std::string path;
  uint64_t file_size = 0;
  int64_t mtime = 0;           // unix seconds
  std::string family;          // general.architecture
  std::string parameter_size;  // "20.3M"
  std::string quantization;    // "Q8_0"
  std::string chat_template;   // tokenizer.chat_template, "" when the model has none
  int64_t context_length = 0;  // <arch>.context_length
  nlohmann::json model_info;   // metadata; arrays longer than 16 as null unless verbose
  nlohmann::json model_info_verbose;
};

class ModelCatalog {
 public:
  explicit ModelCatalog(GgufModelLoader* loader) : loader_(loader) {}
  StatusOr<ModelDetails> Get(const std::string& name);

 private:
  GgufModelLoader* loader_;
  std::mutex mu_;
  std::map<std::string, ModelDetails> cache_;
};

nlohmann::json DetailsJson(const ModelDetails& d);
// "292.90K", "20.31M", "1.1B".
std::string HumanCount(uint64_t n);
// llama.cpp's general.file_type values: 7 -> "Q8_0".
std::string FileTypeName(int64_t file_type);

}  // namespace dormouse::api
