#include "api/json_params.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

namespace dormouse::api {

using nlohmann::json;

int HttpStatusFor(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kBadRequest:
      return 400;
    case ErrorKind::kNotFound:
      return 404;
    case ErrorKind::kTooLarge:
      return 413;
    case ErrorKind::kOverloaded:
      return 429;
    case ErrorKind::kUnavailable:
      return 503;
    case ErrorKind::kInternal:
      return 500;
  }
  return 500;
}

ApiError FromServiceError(const ServiceError& e) {
  ApiError out{HttpStatusFor(e.kind), e.message, "", ""};
  switch (e.kind) {
    case ErrorKind::kNotFound:
      out.code = "model_not_found";
      out.param = "model";
      break;
    case ErrorKind::kTooLarge:
      out.code = "context_length_exceeded";
      break;
    case ErrorKind::kOverloaded:
      out.code = "rate_limit_exceeded";
      break;
    default:
      break;
  }
  return out;
}

ApiError NotFoundModel(const std::string& model) {
  return {404, fmt::format("model '{}' not found", model), "model", "model_not_found"};
}

std::variant<json, ApiError> ParseJsonObject(std::string_view body) {
  if (body.empty()) return ApiError{400, "the request body is empty; expected a JSON object"};
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for 1e999
    // e.what() is "[json.exception.parse_error.101] parse error at line 1, column 2: ..."
    std::string what = e.what();
    size_t at = what.find("] ");
    return ApiError{400,
                    "malformed JSON: " + (at == std::string::npos ? what : what.substr(at + 2))};
  }
  if (!j.is_object()) {
    return ApiError{400, "the request body must be a JSON object, got " + JsonTypeName(j)};
  }
  return j;
}

std::string JsonTypeName(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a number";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    default:
      return "a " + std::string(v.type_name());
  }
}

std::string Excerpt(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}

ParamReader::ParamReader(const json& object, std::string prefix)
    : object_(object), prefix_(std::move(prefix)) {}

void ParamReader::Fail(std::string_view key, std::string message) {
  if (!error_) error_ = ApiError{400, std::move(message), Name(key), ""};
}

bool ParamReader::Has(std::string_view key) const { return Raw(key) != nullptr; }

const json* ParamReader::Raw(std::string_view key) const {
  if (!object_.is_object()) return nullptr;
  auto it = object_.find(key);
  if (it == object_.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<std::string> ParamReader::String(std::string_view key) {
  const json* v = Raw(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) {
    Fail(key, fmt::format("{} must be a string, got {}", Name(key), JsonTypeName(*v)));
    return std::nullopt;
  }
  return v->get<std::string>();
}

std::optional<bool> ParamReader::Bool(std::string_view key) {
  const json* v = Raw(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_boolean()) {
    Fail(key, fmt::format("{} must be true or false, got {}", Name(key), JsonTypeName(*v)));
    return std::nullopt;
  }
  return v->get<bool>();
}

std::optional<double> ParamReader::Number(std::string_view key, double lo, double hi,
                                          bool lo_open) {
  const json* v = Raw(key);
  if (v == nullptr) return std::nullopt;
  const char* open = lo_open ? "(" : "[";
  if (!v->is_number()) {
    Fail(key, fmt::format("{} must be a number in {}{}, {}], got {}", Name(key), open, lo, hi,
                          JsonTypeName(*v)));
    return std::nullopt;
  }
  double d = v->get<double>();
  if (!std::isfinite(d) || d > hi || d < lo || (lo_open && d == lo)) {
    Fail(key, fmt::format("{} must be in {}{}, {}], got {}", Name(key), open, lo, hi, Excerpt(*v)));
    return std::nullopt;
  }
  return d;
}

std::optional<int64_t> ParamReader::Integer(std::string_view key, int64_t lo, int64_t hi) {
  const json* v = Raw(key);
  if (v == nullptr) return std::nullopt;
  auto range_error = [&] {
    Fail(key, fmt::format("{} must be an integer in [{}, {}], got {}", Name(key), lo, hi,
                          v->is_number() ? Excerpt(*v) : JsonTypeName(*v)));
    return std::nullopt;
  };
  if (v->is_number_unsigned()) {
    uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return range_error();
    int64_t i = static_cast<int64_t>(u);
    if (i < lo || i > hi) return range_error();
    return i;
  }
  if (v->is_number_integer()) {
    int64_t i = v->get<int64_t>();
    if (i < lo || i > hi) return range_error();
    return i;
  }
  if (v->is_number_float()) {
    double d = v->get<double>();
    // 2^63 is the first double past int64's range.
    if (!std::isfinite(d) || d != std::floor(d) || d < -9.2e18 || d > 9.2e18) return range_error();
    int64_t i = static_cast<int64_t>(d);
    if (i < lo || i > hi) return range_error();
    return i;
  }
  return range_error();
}

std::optional<std::vector<std::string>> ParamReader::Strings(std::string_view key, size_t max_n,
                                                             size_t max_bytes) {
  const json* v = Raw(key);
  if (v == nullptr) return std::nullopt;
  std::vector<std::string> out;
  if (v->is_string()) {
    out.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    for (const json& e : *v) {
      if (!e.is_string()) {
        Fail(key, fmt::format("{} must be a string or an array of strings; it holds {}", Name(key),
                              JsonTypeName(e)));
        return std::nullopt;
      }
      out.push_back(e.get<std::string>());
    }
  } else {
    Fail(key, fmt::format("{} must be a string or an array of strings, got {}", Name(key),
                          JsonTypeName(*v)));
    return std::nullopt;
  }
  if (out.size() > max_n) {
    Fail(key,
         fmt::format("{} holds {} strings; at most {} are allowed", Name(key), out.size(), max_n));
    return std::nullopt;
  }
  for (const std::string& s : out) {
    if (s.empty() || s.size() > max_bytes) {
      Fail(key, fmt::format("each of {} must have 1 to {} bytes", Name(key), max_bytes));
      return std::nullopt;
    }
  }
  return out;
}

const json* ParamReader::Object(std::string_view key) {
  const json* v = Raw(key);
  if (v != nullptr && !v->is_object()) {
    Fail(key, fmt::format("{} must be an object, got {}", Name(key), JsonTypeName(*v)));
    return nullptr;
  }
  return v;
}

const json* ParamReader::Array(std::string_view key) {
  const json* v = Raw(key);
  if (v != nullptr && !v->is_array()) {
    Fail(key, fmt::format("{} must be an array, got {}", Name(key), JsonTypeName(*v)));
    return nullptr;
  }
  return v;
}

void CheckTypes(ParamReader& r, std::initializer_list<KnownField> fields) {
  constexpr double kHuge = std::numeric_limits<double>::max();
  for (const KnownField& f : fields) {
    switch (f.type) {
      case FieldType::kString:
        r.String(f.key);
        break;
      case FieldType::kBool:
        r.Bool(f.key);
        break;
      case FieldType::kNumber:
        r.Number(f.key, -kHuge, kHuge);
        break;
      case FieldType::kInteger:
        r.Integer(f.key, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max());
        break;
      case FieldType::kObject:
        r.Object(f.key);
        break;
      case FieldType::kArray:
        r.Array(f.key);
        break;
      case FieldType::kStringOrObject:
        if (const json* v = r.Raw(f.key); v != nullptr && !v->is_string() && !v->is_object()) {
          r.Fail(f.key, fmt::format("{} must be a string or an object, got {}", r.Name(f.key),
                                    JsonTypeName(*v)));
        }
        break;
    }
  }
}

void ReadSampling(ParamReader& r, double max_temperature, int64_t n_ctx, SamplerParams* p) {
  if (auto v = r.Number("temperature", 0, max_temperature)) p->temperature = static_cast<float>(*v);
  if (auto v = r.Number("top_p", 0, 1, /*lo_open=*/true)) p->top_p = static_cast<float>(*v);
  if (auto v = r.Integer("top_k", 0, 1 << 24)) p->top_k = static_cast<int32_t>(*v);
  if (auto v = r.Number("min_p", 0, 1)) p->min_p = static_cast<float>(*v);
  if (auto v = r.Number("repeat_penalty", 0, 100, /*lo_open=*/true)) {
    p->repeat_penalty = static_cast<float>(*v);
  }
  if (auto v = r.Integer("repeat_last_n", -1, Sampler::kMaxRepeatLastN)) {
    p->repeat_last_n =
        static_cast<int32_t>(*v < 0 ? std::min<int64_t>(n_ctx, Sampler::kMaxRepeatLastN) : *v);
  }
  if (auto v = r.Integer("seed", std::numeric_limits<int64_t>::min(),
                         std::numeric_limits<int64_t>::max())) {
    p->seed = *v < 0 ? SamplerParams::kRandomSeed : static_cast<uint64_t>(*v);
  }
}

const char* FinishReason(StopReason r) {
  return r == StopReason::kMaxTokens || r == StopReason::kContextFull ? "length" : "stop";
}

}  // namespace dormouse::api
