#include "api/openai_api.h"

#include <httplib.h>
#include <sys/stat.h>

#include <ctime>
#include <random>

#include "api/dormouse_api.h"
#include "api/http_server.h"

namespace dormouse::api {
namespace {

using nlohmann::json;

// Text of a message's content: a string, null (an assistant turn that only called
// tools), or an array of {"type": "text", "text": ...} parts.
std::optional<ApiError> ReadContent(const json& m, const std::string& where, std::string* out) {
  auto it = m.find("content");
  if (it == m.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) {
    *out = it->get<std::string>();
    return std::nullopt;
  }
  if (!it->is_array()) {
    return ApiError{
        400,
        where + ".content must be a string or an array of text parts, got " + JsonTypeName(*it),
        where + ".content", ""};
  }
  for (const json& part : *it) {
    auto type = part.is_object() ? part.find("type") : part.end();
    auto text = part.is_object() ? part.find("text") : part.end();
    if (!part.is_object() || type == part.end() || *type != "text" || text == part.end() ||
        !text->is_string()) {
      return ApiError{400,
                      where +
                          ".content: only text parts ({\"type\": \"text\", \"text\": ...}) are "
                          "supported; this server has no image or audio input",
                      where + ".content", ""};
    }
    out->append(text->get<std::string>());
  }
  return std::nullopt;
}

std::optional<ApiError> ReadMessages(ParamReader& r, const Limits& limits,
                                     std::vector<ChatMessage>* out) {
  const json* arr = r.Array("messages");
  if (!r.ok()) return r.error();
  if (arr == nullptr || arr->empty()) {
    return ApiError{400, "messages must be a non-empty array of {role, content} objects",
                    "messages", ""};
  }
  if (arr->size() > limits.max_messages) {
    return ApiError{400,
                    fmt::format("messages has {} entries; at most {} are allowed", arr->size(),
                                limits.max_messages),
                    "messages", ""};
  }
  for (size_t i = 0; i < arr->size(); ++i) {
    const json& m = (*arr)[i];
    const std::string where = fmt::format("messages[{}]", i);
    if (!m.is_object()) {
      return ApiError{400, where + " must be an object, got " + JsonTypeName(m), where, ""};
    }
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) {
      return ApiError{400, where + ".role must be a string", where + ".role", ""};
    }
    ChatMessage cm;
    cm.role = role->get<std::string>();
    if (cm.role == "developer") cm.role = "system";  // the newer name for the same thing
    if (cm.role != "system" && cm.role != "user" && cm.role != "assistant" && cm.role != "tool") {
      return ApiError{400,
                      fmt::format("{}.role must be system, developer, user, assistant or tool, "
                                  "got '{}'",
                                  where, cm.role),
                      where + ".role", ""};
    }
    if (auto e = ReadContent(m, where, &cm.content)) return e;
    // Only an assistant turn may lack content (it then only called tools).
    if (cm.role != "assistant" && (!m.contains("content") || m["content"].is_null())) {
      return ApiError{400, fmt::format("{}.content is required in a {} message", where, cm.role),
                      where + ".content", ""};
    }
    ParamReader mr(m, where + ".");
    CheckTypes(mr, {{"name", FieldType::kString},
                    {"tool_call_id", FieldType::kString},
                    {"tool_calls", FieldType::kArray}});
    if (!mr.ok()) return mr.error();
    out->push_back(std::move(cm));
  }
  return std::nullopt;
}

// Fields that /v1/chat/completions and /v1/completions share.
std::optional<ApiError> ReadCommon(ParamReader& r, const Limits& limits, OpenAiRequest* o) {
  CompletionRequest& q = o->request;
  if (auto m = r.String("model")) q.model = *m;
  if (r.ok() && q.model.empty()) return ApiError{400, "model is required", "model", ""};
  q.sampling.temperature = 1.0f;  // OpenAI's defaults: the model's own distribution
  q.sampling.top_p = 1.0f;
  q.sampling.top_k = 0;
  q.sampling.min_p = 0.0f;
  ReadSampling(r, 2.0, limits.max_tokens_cap, &q.sampling);
  auto cap = limits.max_tokens_cap;
  if (auto v = r.Integer("max_tokens", 1, cap)) q.max_tokens = *v;
  if (auto v = r.Integer("max_completion_tokens", 1, cap)) q.max_tokens = *v;
  if (auto v = r.Strings("stop", limits.max_stop, limits.max_stop_bytes)) q.stop = *v;
  if (auto v = r.Bool("stream")) o->stream = *v;
  if (const json* so = r.Object("stream_options")) {
    ParamReader sr(*so, "stream_options.");
    if (auto v = sr.Bool("include_usage")) o->include_usage = *v;
    if (!sr.ok()) return sr.error();
  }
  if (auto n = r.Integer("n", 1, 1000); n && *n != 1)
    r.Fail("n", "n must be 1: one choice per request");
  for (const char* k : {"presence_penalty", "frequency_penalty"}) {
    if (auto v = r.Number(k, -2, 2); v && *v != 0) {
      r.Fail(k, fmt::format("{} is not supported (only 0); use repeat_penalty (1 = off, > 1 "
                            "discourages repeats)",
                            k));
    }
  }
  if (auto v = r.Bool("logprobs"); v && *v) r.Fail("logprobs", "logprobs are not supported");
  if (auto v = r.Integer("top_logprobs", 0, 20); v && *v > 0) {
    r.Fail("top_logprobs", "top_logprobs: logprobs are not supported");
  }
  if (const json* bias = r.Object("logit_bias"); bias != nullptr && !bias->empty()) {
    r.Fail("logit_bias", "logit_bias is not supported");
  }
  // Accepted and unused; only their types are checked.
  CheckTypes(r, {{"user", FieldType::kString},
                 {"store", FieldType::kBool},
                 {"metadata", FieldType::kObject},
                 {"parallel_tool_calls", FieldType::kBool},
                 {"tool_choice", FieldType::kStringOrObject},
                 {"service_tier", FieldType::kString},
                 {"reasoning_effort", FieldType::kString},
                 {"modalities", FieldType::kArray},
                 {"prediction", FieldType::kObject}});
  if (!r.ok()) return r.error();
  return std::nullopt;
}

std::string RandomId(const char* prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char kAlnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string id = prefix;
  for (int i = 0; i < 24; ++i) id += kAlnum[rng() % (sizeof kAlnum - 1)];
  return id;
}

}  // namespace

std::variant<OpenAiRequest, ApiError> ParseOpenAiChat(const json& body, const Limits& limits) {
  OpenAiRequest o;
  o.request.chat = true;
  ParamReader r(body);
  if (auto e = ReadCommon(r, limits, &o)) return *e;
  if (auto e = ReadMessages(r, limits, &o.request.messages)) return *e;
  if (const json* tools = r.Array("tools"); tools != nullptr && !tools->empty()) {
    return ApiError{400, "tools are not supported by this server", "tools", ""};
  }
  if (const json* rf = r.Object("response_format")) {
    auto type = rf->find("type");
    if (type == rf->end() || *type != "text") {
      return ApiError{400, "response_format: only {\"type\": \"text\"} is supported",
                      "response_format", ""};
    }
  }
  if (!r.ok()) return r.error();
  return o;
}

std::variant<OpenAiRequest, ApiError> ParseOpenAiCompletion(const json& body,
                                                            const Limits& limits) {
  OpenAiRequest o;
  ParamReader r(body);
  if (auto e = ReadCommon(r, limits, &o)) return *e;
  const json* p = r.Raw("prompt");
  if (p == nullptr) return ApiError{400, "prompt is required", "prompt", ""};
  if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
    o.request.prompt = (*p)[0].get<std::string>();
  } else if (p->is_string()) {
    o.request.prompt = p->get<std::string>();
  } else {
    return ApiError{400,
                    "prompt must be a string (or an array of one string), got " + JsonTypeName(*p),
                    "prompt", ""};
  }
  if (auto v = r.Bool("echo"); v && *v) r.Fail("echo", "echo is not supported");
  if (auto v = r.String("suffix"); v && !v->empty()) {
    r.Fail("suffix", "suffix (fill-in-the-middle) is not supported by this server");
  }
  if (auto v = r.Integer("best_of", 1, 1000); v && *v != 1) r.Fail("best_of", "best_of must be 1");
  if (auto v = r.Integer("logprobs", 0, 20); v && *v > 0)
    r.Fail("logprobs", "logprobs are not supported");
  if (!r.ok()) return r.error();
  return o;
}

json OpenAiUsage(const CompletionResult& r) {
  return {{"prompt_tokens", r.prompt_tokens},
          {"completion_tokens", r.completion_tokens},
          {"total_tokens", r.prompt_tokens + r.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", r.cached_tokens}}}};
}

OpenAiResponseId NewOpenAiResponseId(const std::string& model, bool chat) {
  return {RandomId(chat ? "chatcmpl-" : "cmpl-"), model, static_cast<int64_t>(std::time(nullptr)),
          chat};
}

json OpenAiResponse(const OpenAiResponseId& id, const CompletionResult& r) {
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", FinishReason(r.stop)}};
  if (id.chat) {
    choice["message"] = {{"role", "assistant"}, {"content", r.text}};
  } else {
    choice["text"] = r.text;
  }
  return {{"id", id.id},
          {"object", id.chat ? "chat.completion" : "text_completion"},
          {"created", id.created},
          {"model", id.model},
          {"system_fingerprint", "dormouse"},
          {"choices", json::array({choice})},
          {"usage", OpenAiUsage(r)},
          {"dormouse", DormouseTimings(r)}};
}

json OpenAiChunk(const OpenAiResponseId& id, const std::string& text, bool first,
                 const char* finish_reason, bool include_usage) {
  json choice = {{"index", 0},
                 {"logprobs", nullptr},
                 {"finish_reason", finish_reason ? json(finish_reason) : json(nullptr)}};
  if (id.chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!text.empty() || (first && !finish_reason)) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  json chunk = {{"id", id.id},
                {"object", id.chat ? "chat.completion.chunk" : "text_completion"},
                {"created", id.created},
                {"model", id.model},
                {"system_fingerprint", "dormouse"},
                {"choices", json::array({choice})}};
  if (include_usage) chunk["usage"] = nullptr;
  return chunk;
}

json OpenAiUsageChunk(const OpenAiResponseId& id, const CompletionResult& r) {
  return {{"id", id.id},
          {"object", id.chat ? "chat.completion.chunk" : "text_completion"},
          {"created", id.created},
          {"model", id.model},
          {"system_fingerprint", "dormouse"},
          {"choices", json::array()},
          {"usage", OpenAiUsage(r)},
          {"dormouse", DormouseTimings(r)}};
}

namespace {

struct SseStream {
  std::shared_ptr<CompletionRun> run;
  OpenAiResponseId id;
  bool include_usage = false;
  std::string first_text;
};

bool WriteEvent(httplib::DataSink& sink, const std::string& data) {
  std::string s = "data: " + data + "\n\n";
  return sink.write(s.data(), s.size());
}

// Drains the run into server-sent events; false when the client went away.
bool StreamSse(SseStream& st, httplib::DataSink& sink) {
  bool first = true;
  if (!st.run->Pump(std::move(st.first_text), [&](const std::string& text) {
        const bool ok =
            WriteEvent(sink, Dump(OpenAiChunk(st.id, text, first, nullptr, st.include_usage)));
        first = false;
        return ok;
      })) {
    return false;
  }
  const auto& out = st.run->outcome();
  if (const auto* e = std::get_if<ServiceError>(&out)) {
    WriteEvent(sink, Dump(ErrorBody(ErrorShape::kOpenAi, FromServiceError(*e))));
  } else {
    const CompletionResult& r = std::get<CompletionResult>(out);
    WriteEvent(sink, Dump(OpenAiChunk(st.id, "", first, FinishReason(r.stop), st.include_usage)));
    if (st.include_usage) WriteEvent(sink, Dump(OpenAiUsageChunk(st.id, r)));
  }
  WriteEvent(sink, "[DONE]");
  sink.done();
  return true;
}

void HandleCompletion(ApiContext& ctx, const httplib::Request& req, httplib::Response& res,
                      const json& body, bool chat) {
  auto parsed = chat ? ParseOpenAiChat(body, ctx.limits) : ParseOpenAiCompletion(body, ctx.limits);
  if (auto* e = std::get_if<ApiError>(&parsed)) return SendError(res, ErrorShape::kOpenAi, *e);
  OpenAiRequest o = std::move(std::get<OpenAiRequest>(parsed));
  if (auto e = CheckModel(ctx, o.request.model)) return SendError(res, ErrorShape::kOpenAi, *e);
  auto st = std::make_shared<SseStream>();
  st->id = NewOpenAiResponseId(o.request.model, chat);
  st->include_usage = o.include_usage;
  o.request.owner = ScopeOf(ctx, req);
  st->run =
      std::make_shared<CompletionRun>(ctx.service, std::move(o.request), FindConnectionFd(req));
  // Wait for the first text (streaming) or the end, so errors get their status code.
  auto ev = o.stream ? st->run->Wait(&st->first_text) : st->run->Finish();
  if (ev == CompletionRun::Event::kClientGone) return;
  if (ev == CompletionRun::Event::kDone) {
    const auto& out = st->run->outcome();
    if (auto* e = std::get_if<ServiceError>(&out)) {
      return SendError(res, ErrorShape::kOpenAi, FromServiceError(*e));
    }
    if (!o.stream) return SendJson(res, OpenAiResponse(st->id, std::get<CompletionResult>(out)));
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream", [st](size_t, httplib::DataSink& sink) { return StreamSse(*st, sink); });
}

json ModelObject(const ApiContext& ctx, const std::string& name) {
  int64_t created = 0;
  StatusOr<std::string> path = ctx.loader->PathOf(name);
  struct stat sb {};
  if (path.ok() && stat(path->c_str(), &sb) == 0) created = static_cast<int64_t>(sb.st_mtime);
  return {{"id", name}, {"object", "model"}, {"created", created}, {"owned_by", "dormouse"}};
}

}  // namespace

void RegisterOpenAiRoutes(Router& router, ApiContext& ctx) {
  ApiContext* c = &ctx;
  router.Post("/v1/chat/completions", ErrorShape::kOpenAi,
              [c](const httplib::Request& req, httplib::Response& res, const json& body) {
                HandleCompletion(*c, req, res, body, /*chat=*/true);
              });
  router.Post("/v1/completions", ErrorShape::kOpenAi,
              [c](const httplib::Request& req, httplib::Response& res, const json& body) {
                HandleCompletion(*c, req, res, body, /*chat=*/false);
              });
  router.Get("/v1/models", ErrorShape::kOpenAi,
             [c](const httplib::Request&, httplib::Response& res) {
               json data = json::array();
               for (const std::string& name : c->service->ModelNames()) {
                 data.push_back(ModelObject(*c, name));
               }
               SendJson(res, {{"object", "list"}, {"data", data}});
             });
  router.Get(R"(/v1/models/([^/]+))", ErrorShape::kOpenAi,
             [c](const httplib::Request& req, httplib::Response& res) {
               const std::string name = req.matches[1];
               if (auto e = CheckModel(*c, name)) return SendError(res, ErrorShape::kOpenAi, *e);
               SendJson(res, ModelObject(*c, name));
             });
}

}  // namespace dormouse::api
