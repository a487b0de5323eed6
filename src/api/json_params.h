// Strict request parsing shared by the OpenAI, Ollama and dormouse adapters: a body must
// be a JSON object, every known field must have the documented type and range, and the
// first problem becomes an ApiError naming the parameter ("temperature must be a number
// between 0 and 2, got \"hot\""). Unknown fields are ignored, as the real APIs do; null
// counts as absent (OpenAI clients send "stop": null).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "lifecycle/service.h"

namespace dormouse::api {

// An error as the HTTP layer reports it, in whichever API's shape.
struct ApiError {
  ApiError() = default;
  ApiError(int status, std::string message, std::string param = "", std::string code = "")
      : status(status),
        message(std::move(message)),
        param(std::move(param)),
        code(std::move(code)) {}
  int status = 400;
  std::string message;
  std::string param;  // the parameter at fault, "" when none
  std::string code;   // OpenAI's error code ("model_not_found"), "" when none
};

int HttpStatusFor(ErrorKind kind);
ApiError FromServiceError(const ServiceError& e);
ApiError NotFoundModel(const std::string& model);

// What requests may ask for, from the server's configuration.
struct Limits {
  int64_t max_tokens_cap = 4096;  // the largest max_tokens / num_predict accepted
  size_t max_stop = 4;            // stop strings per request (OpenAI's limit)
  size_t max_stop_bytes = 256;    // bytes per stop string
  size_t max_messages = 4096;
};

// Parses a request body that must hold one JSON object.
std::variant<nlohmann::json, ApiError> ParseJsonObject(std::string_view body);

// "a string", "an integer", ... for messages about wrong types.
std::string JsonTypeName(const nlohmann::json& v);
// OpenAI's finish_reason and Ollama's done_reason: "length" when a token limit or the
// context ended the reply, "stop" otherwise.
const char* FinishReason(StopReason r);
// The value as it appears in a message, shortened when long.
std::string Excerpt(const nlohmann::json& v);

// Reads typed, range-checked optional fields of one JSON object. Each getter returns
// nullopt when the field is absent or null, or when it is invalid, in which case the
// first error is kept: check ok() once after reading every field.
class ParamReader {
 public:
  // `prefix` names the object in messages, e.g. "options." for Ollama's options.
  explicit ParamReader(const nlohmann::json& object, std::string prefix = "");
  ParamReader(const nlohmann::json&& object,
              std::string prefix = "") = delete;  // keeps a reference

  bool ok() const { return !error_.has_value(); }
  const ApiError& error() const { return *error_; }
  // Keeps the first error only.
  void Fail(std::string_view key, std::string message);

  bool Has(std::string_view key) const;
  const nlohmann::json* Raw(std::string_view key) const;  // nullptr when absent or null

  std::optional<std::string> String(std::string_view key);
  std::optional<bool> Bool(std::string_view key);
  // Finite number in [lo, hi] (lo excluded when lo_open).
  std::optional<double> Number(std::string_view key, double lo, double hi, bool lo_open = false);
  // Integer in [lo, hi]; 12.0 counts as an integer, 12.5 does not.
  std::optional<int64_t> Integer(std::string_view key, int64_t lo, int64_t hi);
  // A string or an array of at most max_n strings, none empty or over max_bytes.
  std::optional<std::vector<std::string>> Strings(std::string_view key, size_t max_n,
                                                  size_t max_bytes);
  // The field when it is an object (an error when present with another type).
  const nlohmann::json* Object(std::string_view key);
  const nlohmann::json* Array(std::string_view key);

  std::string Name(std::string_view key) const { return prefix_ + std::string(key); }

 private:
  const nlohmann::json& object_;
  std::string prefix_;
  std::optional<ApiError> error_;
};

// The JSON type a known field must have, when the server accepts it but does not use it.
enum class FieldType { kString, kBool, kNumber, kInteger, kObject, kArray, kStringOrObject };
struct KnownField {
  const char* key;
  FieldType type;
};
// Fails `r` on the first present field of the wrong type: a client that sends "user": 5
// has a bug it should hear about, even though the field changes nothing here.
void CheckTypes(ParamReader& r, std::initializer_list<KnownField> fields);

// Sampler fields both APIs share, read into `p`: temperature in [0, max_temperature],
// top_p, top_k, min_p, repeat_penalty, repeat_last_n (-1: the whole context, n_ctx) and
// seed (negative: random).
void ReadSampling(ParamReader& r, double max_temperature, int64_t n_ctx, SamplerParams* p);

}  // namespace dormouse::api
