#include "api/ollama_api.h"

#include <httplib.h>
#include <sys/stat.h>

#include <cmath>
#include <ctime>

#include "api/dormouse_api.h"
#include "api/http_server.h"
#include "base/duration.h"
#include "engine/gguf.h"

namespace dormouse::api {

using nlohmann::json;

namespace {

constexpr size_t kOllamaMaxStop = 16;
constexpr double kMaxKeepAliveSeconds = 1e9;  // ~31 years: longer is "forever"

std::optional<ApiError> ReadOptions(ParamReader& r, const Limits& limits, CompletionRequest* q) {
  const json* opts = r.Object("options");
  if (!r.ok()) return r.error();
  if (opts == nullptr) return std::nullopt;
  ParamReader o(*opts, "options.");
  ReadSampling(o, 100.0, limits.max_tokens_cap, &q->sampling);
  // -1: until the end of generation, -2: until the context is full; both are "no limit".
  if (auto v = o.Integer("num_predict", -2, limits.max_tokens_cap)) {
    if (*v == 0) {
      o.Fail("num_predict", fmt::format("options.num_predict must be -1, -2 or in [1, {}], got 0",
                                        limits.max_tokens_cap));
    }
    q->max_tokens = *v < 0 ? -1 : *v;
  }
  if (auto v = o.Strings("stop", kOllamaMaxStop, limits.max_stop_bytes)) q->stop = *v;
  // Ollama's other options: accepted and unused (the server sets its own context, batch
  // and threads); only their types are checked.
  CheckTypes(o, {{"num_keep", FieldType::kInteger},
                 {"num_ctx", FieldType::kInteger},
                 {"num_batch", FieldType::kInteger},
                 {"num_gpu", FieldType::kInteger},
                 {"main_gpu", FieldType::kInteger},
                 {"num_thread", FieldType::kInteger},
                 {"mirostat", FieldType::kInteger},
                 {"mirostat_tau", FieldType::kNumber},
                 {"mirostat_eta", FieldType::kNumber},
                 {"typical_p", FieldType::kNumber},
                 {"tfs_z", FieldType::kNumber},
                 {"presence_penalty", FieldType::kNumber},
                 {"frequency_penalty", FieldType::kNumber},
                 {"penalize_newline", FieldType::kBool},
                 {"numa", FieldType::kBool},
                 {"use_mmap", FieldType::kBool},
                 {"use_mlock", FieldType::kBool},
                 {"low_vram", FieldType::kBool}});
  if (!o.ok()) return o.error();
  return std::nullopt;
}

// Fields /api/chat and /api/generate share.
std::optional<ApiError> ReadCommon(ParamReader& r, const Limits& limits, OllamaRequest* o) {
  if (auto m = r.String("model")) o->request.model = *m;
  if (r.ok() && o->request.model.empty()) return ApiError{400, "model is required", "model"};
  if (auto v = r.Bool("stream")) o->stream = *v;
  if (auto ka = ReadKeepAlive(r, &o->unload)) o->request.keep_alive = *ka;
  if (const json* f = r.Raw("format"); f != nullptr && !(f->is_string() && f->empty())) {
    r.Fail("format", "format (JSON output) is not supported by this server");
  }
  if (const json* t = r.Raw("think"); t != nullptr && !t->is_boolean() && !t->is_string()) {
    r.Fail("think", "think must be true, false or a level string, got " + JsonTypeName(*t));
  }
  CheckTypes(r, {{"truncate", FieldType::kBool}, {"shift", FieldType::kBool}});
  if (!r.ok()) return r.error();
  return ReadOptions(r, limits, &o->request);
}

std::optional<ApiError> ReadChatMessages(ParamReader& r, const Limits& limits,
                                         std::vector<ChatMessage>* out) {
  const json* arr = r.Array("messages");
  if (!r.ok()) return r.error();
  if (arr == nullptr) return std::nullopt;
  if (arr->size() > limits.max_messages) {
    return ApiError{400,
                    fmt::format("messages has {} entries; at most {} are allowed", arr->size(),
                                limits.max_messages),
                    "messages"};
  }
  for (size_t i = 0; i < arr->size(); ++i) {
    const json& m = (*arr)[i];
    ParamReader mr(m, fmt::format("messages[{}].", i));
    if (!m.is_object()) {
      return ApiError{400,
                      fmt::format("messages[{}] must be an object, got {}", i, JsonTypeName(m)),
                      fmt::format("messages[{}]", i)};
    }
    ChatMessage cm;
    cm.role = mr.String("role").value_or("");
    if (mr.ok() && cm.role.empty()) mr.Fail("role", mr.Name("role") + " is required");
    cm.content = mr.String("content").value_or("");
    if (const json* images = mr.Array("images"); images != nullptr && !images->empty()) {
      mr.Fail("images", "images are not supported by this server");
    }
    CheckTypes(mr, {{"thinking", FieldType::kString},
                    {"tool_name", FieldType::kString},
                    {"tool_calls", FieldType::kArray}});
    if (!mr.ok()) return mr.error();
    if (cm.role != "system" && cm.role != "user" && cm.role != "assistant" && cm.role != "tool") {
      return ApiError{400,
                      fmt::format("messages[{}].role must be system, user, assistant or tool, "
                                  "got '{}'",
                                  i, cm.role),
                      mr.Name("role")};
    }
    out->push_back(std::move(cm));
  }
  return std::nullopt;
}

}  // namespace

std::optional<KeepAlive> ReadKeepAlive(ParamReader& r, bool* zero) {
  const json* v = r.Raw("keep_alive");
  *zero = false;
  if (v == nullptr) return std::nullopt;
  double seconds = 0;
  if (v->is_number()) {
    seconds = v->get<double>();
    if (!std::isfinite(seconds)) {
      r.Fail("keep_alive", "keep_alive must be a finite number of seconds");
      return std::nullopt;
    }
  } else if (v->is_string()) {
    StatusOr<Millis> d = ParseDuration(v->get<std::string>());
    if (!d.ok()) {
      r.Fail("keep_alive", "keep_alive: " + d.status().message());
      return std::nullopt;
    }
    seconds = static_cast<double>(d->count()) / 1000.0;
  } else {
    r.Fail("keep_alive",
           "keep_alive must be a duration string (\"5m\") or a number of seconds, "
           "got " +
               JsonTypeName(*v));
    return std::nullopt;
  }
  if (seconds < 0 || seconds > kMaxKeepAliveSeconds) return KeepAlive::Forever();
  *zero = seconds == 0;
  return KeepAlive::For(
      std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(seconds)));
}

std::variant<OllamaRequest, ApiError> ParseOllamaChat(const json& body, const Limits& limits) {
  OllamaRequest o;
  o.request.chat = true;
  ParamReader r(body);
  if (auto e = ReadCommon(r, limits, &o)) return *e;
  if (auto e = ReadChatMessages(r, limits, &o.request.messages)) return *e;
  if (const json* tools = r.Array("tools"); tools != nullptr && !tools->empty()) {
    return ApiError{400, "tools are not supported by this server", "tools"};
  }
  if (!r.ok()) return r.error();
  o.load_only = o.request.messages.empty();
  return o;
}

std::variant<OllamaRequest, ApiError> ParseOllamaGenerate(const json& body, const Limits& limits) {
  OllamaRequest o;
  ParamReader r(body);
  if (auto e = ReadCommon(r, limits, &o)) return *e;
  o.request.prompt = r.String("prompt").value_or("");
  o.system = r.String("system").value_or("");
  o.raw = r.Bool("raw").value_or(false);
  if (auto s = r.String("suffix"); s && !s->empty()) {
    r.Fail("suffix", "suffix (fill-in-the-middle) is not supported by this server");
  }
  if (const json* images = r.Array("images"); images != nullptr && !images->empty()) {
    r.Fail("images", "images are not supported by this server");
  }
  if (const json* c = r.Array("context"); c != nullptr && !c->empty()) {
    r.Fail("context",
           "context (token ids of an earlier reply) is not supported; send the "
           "conversation to /api/chat instead");
  }
  if (auto t = r.String("template"); t && !t->empty()) {
    r.Fail("template", "template overrides are not supported; use raw: true with your own text");
  }
  if (!r.ok()) return r.error();
  o.load_only = o.request.prompt.empty() && o.system.empty();
  return o;
}

std::string Rfc3339(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  auto ns = duration_cast<nanoseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ns / 1000000000);
  long frac = static_cast<long>(ns % 1000000000);
  if (frac < 0) {
    frac += 1000000000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:09}Z", buf, frac);
}

json OllamaStats(const CompletionResult& r) {
  auto ns = [](double s) { return static_cast<int64_t>(std::llround(s * 1e9)); };
  return {{"done", true},
          {"done_reason", FinishReason(r.stop)},
          {"total_duration", ns(r.total_seconds)},
          {"load_duration", ns(r.load_seconds)},
          {"prompt_eval_count", r.prefilled_tokens},
          {"prompt_eval_duration", ns(r.restore_seconds + r.prompt_seconds)},
          {"eval_count", r.completion_tokens},
          {"eval_duration", ns(r.generate_seconds)},
          {"dormouse", DormouseTimings(r)}};
}

// ---- model catalog ----

std::string HumanCount(uint64_t n) {
  if (n >= 1000000000ull) return fmt::format("{:.1f}B", n / 1e9);
  if (n >= 1000000ull) return fmt::format("{:.2f}M", n / 1e6);
  if (n >= 1000ull) return fmt::format("{:.2f}K", n / 1e3);
  return fmt::format("{}", n);
}

std::string FileTypeName(int64_t t) {
  static const std::map<int64_t, const char*> kNames = {
      {0, "F32"},      {1, "F16"},      {2, "Q4_0"},    {3, "Q4_1"},    {7, "Q8_0"},
      {8, "Q5_0"},     {9, "Q5_1"},     {10, "Q2_K"},   {11, "Q3_K_S"}, {12, "Q3_K_M"},
      {13, "Q3_K_L"},  {14, "Q4_K_S"},  {15, "Q4_K_M"}, {16, "Q5_K_S"}, {17, "Q5_K_M"},
      {18, "Q6_K"},    {19, "IQ2_XXS"}, {20, "IQ2_XS"}, {21, "Q2_K_S"}, {22, "IQ3_XS"},
      {23, "IQ3_XXS"}, {24, "IQ1_S"},   {25, "IQ4_NL"}, {26, "IQ3_S"},  {27, "IQ3_M"},
      {28, "IQ2_S"},   {29, "IQ2_M"},   {30, "IQ4_XS"}, {31, "IQ1_M"},  {32, "BF16"}};
  auto it = kNames.find(t);
  return it == kNames.end() ? fmt::format("type {}", t) : it->second;
}

namespace {

json GgufValueJson(const GgufValue& v, bool verbose) {
  if (const auto* i = std::get_if<int64_t>(&v.data)) {
    if (v.type == GgufValueType::kBool) return *i != 0;
    if (v.type == GgufValueType::kUint64) return static_cast<uint64_t>(*i);
    return *i;
  }
  if (const auto* d = std::get_if<double>(&v.data)) return *d;
  if (const auto* s = std::get_if<std::string>(&v.data)) return *s;
  const GgufArray& a = std::get<GgufArray>(v.data);
  if (!verbose && a.size() > 16) return nullptr;  // vocabularies: as Ollama, unless verbose
  if (!a.strings.empty()) return a.strings;
  if (!a.floats.empty()) return a.floats;
  if (!a.ints.empty()) return a.ints;
  return json::array();
}

StatusOr<ModelDetails> ReadDetails(const std::string& path, const struct stat& sb) {
  DM_ASSIGN_OR_RETURN(GgufFile g, GgufFile::OpenOrError(path));
  ModelDetails d;
  d.path = path;
  d.file_size = static_cast<uint64_t>(sb.st_size);
  d.mtime = static_cast<int64_t>(sb.st_mtime);
  d.family = g.GetString("general.architecture").ok()
                 ? g.GetString("general.architecture")->value_or("")
                 : "";
  auto tmpl = g.GetString("tokenizer.chat_template");
  if (tmpl.ok()) d.chat_template = tmpl->value_or("");
  auto ctx = g.GetInt(d.family + ".context_length");
  if (ctx.ok()) d.context_length = ctx->value_or(0);
  uint64_t params = 0;
  std::map<std::string, uint64_t> bytes_by_type;
  for (const GgufTensorInfo& t : g.tensors()) {
    params += t.n_elements;
    bytes_by_type[TypeName(t.type)] += t.n_bytes;
  }
  d.parameter_size = HumanCount(params);
  auto ft = g.GetInt("general.file_type");
  if (ft.ok() && ft->has_value()) {
    d.quantization = FileTypeName(**ft);
  } else if (!bytes_by_type.empty()) {  // the type holding most of the weights
    d.quantization =
        std::max_element(bytes_by_type.begin(), bytes_by_type.end(), [](auto& a, auto& b) {
          return a.second < b.second;
        })->first;
  }
  d.model_info = json::object();
  d.model_info_verbose = json::object();
  for (const auto& [key, value] : g.metadata()) {
    if (key == "tokenizer.chat_template") continue;  // shown as "template"
    d.model_info[key] = GgufValueJson(value, false);
    d.model_info_verbose[key] = GgufValueJson(value, true);
  }
  d.model_info["general.parameter_count"] = params;
  d.model_info_verbose["general.parameter_count"] = params;
  return d;
}

}  // namespace

StatusOr<ModelDetails> ModelCatalog::Get(const std::string& name) {
  DM_ASSIGN_OR_RETURN(std::string path, loader_->PathOf(name));
  struct stat sb {};
  if (stat(path.c_str(), &sb) != 0) return Status::Errorf("{}: cannot stat", path);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(name);
    if (it != cache_.end() && it->second.path == path &&
        it->second.file_size == static_cast<uint64_t>(sb.st_size) &&
        it->second.mtime == static_cast<int64_t>(sb.st_mtime)) {
      return it->second;
    }
  }
  DM_ASSIGN_OR_RETURN(ModelDetails d, ReadDetails(path, sb));
  std::lock_guard<std::mutex> lock(mu_);
  cache_[name] = d;
  return d;
}

json DetailsJson(const ModelDetails& d) {
  return {{"parent_model", ""},
          {"format", "gguf"},
          {"family", d.family},
          {"families", d.family.empty() ? json(nullptr) : json::array({d.family})},
          {"parameter_size", d.parameter_size},
          {"quantization_level", d.quantization}};
}

// ---- handlers ----

namespace {

using Catalog = std::shared_ptr<ModelCatalog>;

json Line(const std::string& model, bool chat, const std::string& text, bool done) {
  json j = {{"model", model}, {"created_at", Rfc3339(std::chrono::system_clock::now())}};
  if (chat) {
    j["message"] = {{"role", "assistant"}, {"content", text}};
  } else {
    j["response"] = text;
  }
  j["done"] = done;
  return j;
}

void SendLine(httplib::Response& res, const json& j, bool stream) {
  if (stream) {
    res.set_content(Dump(j) + "\n", "application/x-ndjson");
  } else {
    SendJson(res, j);
  }
}

// No prompt: load the model, or with keep_alive 0 unload it.
void LoadOrUnload(ApiContext& ctx, const OllamaRequest& o, bool chat, httplib::Response& res) {
  const std::string& model = o.request.model;
  json j = Line(model, chat, "", true);
  if (o.unload) {
    auto out = ctx.service->Unload(model, EjectLevel::kWarm, /*force=*/false);
    if (auto* e = std::get_if<ServiceError>(&out)) {
      return SendError(res, ErrorShape::kOllama, FromServiceError(*e));
    }
    j["done_reason"] = "unload";
  } else {
    auto t0 = std::chrono::steady_clock::now();
    StatusOr<ModelManager::Lease> lease = ctx.manager->Acquire(model, o.request.keep_alive);
    if (!lease.ok()) return SendError(res, ErrorShape::kOllama, {503, lease.status().message()});
    j["done_reason"] = "load";
    j["load_duration"] =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
            .count();
  }
  SendLine(res, j, o.stream);
}

struct NdjsonStream {
  std::shared_ptr<CompletionRun> run;
  std::string model;
  bool chat = false;
  std::string first_text;
};

bool WriteLine(httplib::DataSink& sink, const json& j) {
  std::string s = Dump(j) + "\n";
  return sink.write(s.data(), s.size());
}

bool StreamNdjson(NdjsonStream& st, httplib::DataSink& sink) {
  if (!st.run->Pump(std::move(st.first_text), [&](const std::string& text) {
        return WriteLine(sink, Line(st.model, st.chat, text, false));
      })) {
    return false;
  }
  const auto& out = st.run->outcome();
  if (const auto* e = std::get_if<ServiceError>(&out)) {
    WriteLine(sink, {{"error", e->message}});
  } else {
    json last = Line(st.model, st.chat, "", true);
    last.update(OllamaStats(std::get<CompletionResult>(out)));
    WriteLine(sink, last);
  }
  sink.done();
  return true;
}

// /api/generate renders with the model's template unless raw, as Ollama does.
void ApplyTemplate(ModelCatalog& catalog, OllamaRequest* o) {
  CompletionRequest& q = o->request;
  StatusOr<ModelDetails> d = catalog.Get(q.model);
  if (!o->raw && d.ok() && !d->chat_template.empty()) {
    q.chat = true;
    if (!o->system.empty()) q.messages.push_back({"system", o->system});
    q.messages.push_back({"user", q.prompt});
    q.prompt.clear();
  } else if (!o->raw && !o->system.empty()) {
    q.prompt = o->system + "\n\n" + q.prompt;
  }
}

void HandleCompletion(ApiContext& ctx, ModelCatalog& catalog, const httplib::Request& req,
                      httplib::Response& res, const json& body, bool chat) {
  auto parsed = chat ? ParseOllamaChat(body, ctx.limits) : ParseOllamaGenerate(body, ctx.limits);
  if (auto* e = std::get_if<ApiError>(&parsed)) return SendError(res, ErrorShape::kOllama, *e);
  OllamaRequest o = std::move(std::get<OllamaRequest>(parsed));
  if (auto e = CheckModel(ctx, o.request.model)) return SendError(res, ErrorShape::kOllama, *e);
  if (o.load_only) return LoadOrUnload(ctx, o, chat, res);
  if (!chat) ApplyTemplate(catalog, &o);
  auto st = std::make_shared<NdjsonStream>();
  st->model = o.request.model;
  st->chat = chat;
  o.request.owner = ScopeOf(ctx, req);
  st->run =
      std::make_shared<CompletionRun>(ctx.service, std::move(o.request), FindConnectionFd(req));
  auto ev = o.stream ? st->run->Wait(&st->first_text) : st->run->Finish();
  if (ev == CompletionRun::Event::kClientGone) return;
  if (ev == CompletionRun::Event::kDone) {
    const auto& out = st->run->outcome();
    if (auto* e = std::get_if<ServiceError>(&out)) {
      return SendError(res, ErrorShape::kOllama, FromServiceError(*e));
    }
    if (!o.stream) {
      const CompletionResult& r = std::get<CompletionResult>(out);
      json j = Line(st->model, chat, r.text, true);
      j.update(OllamaStats(r));
      return SendJson(res, j);
    }
  }
  res.set_chunked_content_provider("application/x-ndjson", [st](size_t, httplib::DataSink& sink) {
    return StreamNdjson(*st, sink);
  });
}

std::string ExpiresAt(const ModelStatus& m) {
  if (m.keep_forever) return "2262-04-11T23:47:16.854775807Z";  // Go's latest time, as Ollama
  if (!m.expires_at) return Rfc3339(std::chrono::system_clock::now());  // in use
  auto left = *m.expires_at - std::chrono::steady_clock::now();
  return Rfc3339(std::chrono::system_clock::now() +
                 std::chrono::duration_cast<std::chrono::system_clock::duration>(left));
}

json PsJson(ApiContext& ctx, ModelCatalog& catalog) {
  json models = json::array();
  const ProcessMemory pm = ctx.probe->Process();
  for (const ModelStatus& m : ctx.manager->List()) {
    if (m.state == ModelState::kUnloaded) continue;
    StatusOr<ModelDetails> d = catalog.Get(m.name);
    models.push_back({{"name", m.name},
                      {"model", m.name},
                      {"size", m.bytes},
                      {"size_vram", 0},
                      {"digest", ""},
                      {"details", d.ok() ? DetailsJson(*d) : json::object()},
                      {"expires_at", ExpiresAt(m)},
                      {"context_length", d.ok() ? d->context_length : 0},
                      {"state", ModelStateName(m.state)},
                      {"rss_bytes", pm.rss},
                      {"rss_anon_bytes", pm.anon},
                      {"rss_file_bytes", pm.file},
                      {"loads", m.loads},
                      {"last_load_seconds", m.last_load_seconds}});
  }
  return {{"models", models}};
}

json TagsJson(ApiContext& ctx, ModelCatalog& catalog) {
  json models = json::array();
  for (const std::string& name : ctx.service->ModelNames()) {
    StatusOr<ModelDetails> d = catalog.Get(name);
    if (!d.ok()) continue;  // unreadable files are not models
    models.push_back({{"name", name},
                      {"model", name},
                      {"modified_at", Rfc3339(std::chrono::system_clock::from_time_t(d->mtime))},
                      {"size", d->file_size},
                      {"digest", ""},
                      {"details", DetailsJson(*d)}});
  }
  return {{"models", models}};
}

void HandleShow(ApiContext& ctx, ModelCatalog& catalog, httplib::Response& res, const json& body) {
  ParamReader r(body);
  std::string model = r.String("model").value_or("");
  if (model.empty()) model = r.String("name").value_or("");  // the older field name
  bool verbose = r.Bool("verbose").value_or(false);
  if (!r.ok()) return SendError(res, ErrorShape::kOllama, r.error());
  if (auto e = CheckModel(ctx, model)) return SendError(res, ErrorShape::kOllama, *e);
  StatusOr<ModelDetails> d = catalog.Get(model);
  if (!d.ok()) return SendError(res, ErrorShape::kOllama, {500, d.status().message()});
  SendJson(res, {{"modelfile", "# Modelfile of dormouse\nFROM " + d->path + "\n"},
                 {"parameters", ""},
                 {"template", d->chat_template.empty() ? "{{ .Prompt }}" : d->chat_template},
                 {"details", DetailsJson(*d)},
                 {"model_info", verbose ? d->model_info_verbose : d->model_info},
                 {"modified_at", Rfc3339(std::chrono::system_clock::from_time_t(d->mtime))},
                 {"capabilities", json::array({"completion"})}});
}

}  // namespace

void RegisterOllamaRoutes(Router& router, ApiContext& ctx) {
  ApiContext* c = &ctx;
  Catalog catalog = std::make_shared<ModelCatalog>(ctx.loader);
  const ErrorShape shape = ErrorShape::kOllama;
  using Req = const httplib::Request&;
  using Res = httplib::Response&;
  router.Post("/api/chat", shape, [c, catalog](Req req, Res res, const json& body) {
    HandleCompletion(*c, *catalog, req, res, body, /*chat=*/true);
  });
  router.Post("/api/generate", shape, [c, catalog](Req req, Res res, const json& body) {
    HandleCompletion(*c, *catalog, req, res, body, /*chat=*/false);
  });
  router.Post("/api/show", shape, [c, catalog](Req, Res res, const json& body) {
    HandleShow(*c, *catalog, res, body);
  });
  router.Get("/api/ps", shape, [c, catalog](Req, Res res) { SendJson(res, PsJson(*c, *catalog)); });
  router.Get("/api/tags", shape,
             [c, catalog](Req, Res res) { SendJson(res, TagsJson(*c, *catalog)); });
  router.Get("/api/version", shape, [](Req, Res res) {
    SendJson(res, {{"version", kDormouseVersion}});
  });
  // "/" ("dormouse is running" for tools that ping it, as Ollama's) is in app_api.cc.
}

}  // namespace dormouse::api
