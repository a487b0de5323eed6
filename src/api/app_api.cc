#include "api/app_api.h"

#include <httplib.h>
#include <unistd.h>

#include <filesystem>

#include "api/ollama_api.h"
#include "api/settings.h"
#include "api/web_assets.h"

namespace dormouse::api {

using nlohmann::json;

namespace {

// A local web app's headers: nothing but our own files may run or load, no framing, no
// referrer, no MIME sniffing. Model output is also sanitized in the page; the CSP is the
// second wall (no inline script, no eval).
constexpr const char* kCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'";

void SecurityHeaders(httplib::Response& res) {
  res.set_header("Content-Security-Policy", kCsp);
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Referrer-Policy", "no-referrer");
  res.set_header("X-Frame-Options", "DENY");
  res.set_header("Cross-Origin-Opener-Policy", "same-origin");
  res.set_header("Cross-Origin-Resource-Policy", "same-origin");
  res.set_header("Permissions-Policy",
                 "camera=(), microphone=(), geolocation=(), interest-cohort=()");
  res.set_header("Cache-Control", "no-cache");
}

void ServeAsset(const std::string& path, httplib::Response& res) {
  for (size_t i = 0; i < kWebAssetCount; ++i) {
    const WebAsset& a = kWebAssets[i];
    if (a.path != path) continue;
    SecurityHeaders(res);
    res.set_content(std::string(a.body), std::string(a.content_type));
    return;
  }
  SendError(res, ErrorShape::kOllama, {404, "no file " + path, "", ""});
}

double SecondsFrom(Clock::TimePoint at) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - at).count();
}

json ModelStatusJson(const ModelStatus& m) {
  json j = {{"name", m.name},
            {"state", ModelStateName(m.state)},
            {"bytes", m.state == ModelState::kUnloaded ? 0 : m.bytes},
            {"leases", m.leases},
            {"keep_forever", m.keep_forever},
            {"expires_in", nullptr},
            {"loads", m.loads},
            {"ejects", m.ejects},
            {"last_load_seconds", m.last_load_seconds},
            {"last_transition", nullptr}};
  if (m.expires_at) j["expires_in"] = -SecondsFrom(*m.expires_at);
  if (m.last_transition) {
    j["last_transition"] = TransitionJson(*m.last_transition);
    j["last_transition"]["ago"] = SecondsFrom(m.last_transition->at);
  }
  return j;
}

json SystemJson(const SystemMemory& s) {
  return {{"total", s.total},
          {"available", s.available},
          {"psi_some_avg10", s.psi_some_avg10 ? json(*s.psi_some_avg10) : json(nullptr)}};
}

// Streams events until the client leaves or the server stops.
void HandleEvents(ApiContext& ctx, httplib::Response& res) {
  std::shared_ptr<EventBus::Subscription> sub = ctx.events->Subscribe();
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  ApiContext* c = &ctx;
  auto first = std::make_shared<bool>(true);
  res.set_chunked_content_provider(
      "text/event-stream",
      [c, sub, first](size_t, httplib::DataSink& sink) {
        auto send = [&](const std::string& text) { return sink.write(text.data(), text.size()); };
        auto status = [&] { return StatusJson(*c, c->probe->Process(), c->probe->System()); };
        if (*first) {
          *first = false;
          return send("retry: 2000\n\n") && send(SseMessage("status", status()));
        }
        if (c->stopping.load() || !sink.is_writable()) return false;
        std::optional<Event> e = sub->Next(std::chrono::seconds(1));
        if (!e) return send(": keep-alive\n\n");  // a comment: also notices a gone client
        if (const auto* t = std::get_if<TransitionRecord>(&*e)) {
          return send(SseMessage("transition", TransitionJson(*t))) &&
                 send(SseMessage("status", status()));
        }
        if (const auto* m = std::get_if<MemorySample>(&*e)) {
          return send(SseMessage("status", StatusJson(*c, m->process, m->system)));
        }
        const auto& p = std::get<LoadProgress>(*e);
        return send(SseMessage("progress", {{"model", p.model},
                                            {"bytes_done", p.bytes_done},
                                            {"bytes_total", p.bytes_total},
                                            {"seconds", p.seconds}}));
      },
      [sub](bool) { sub->Close(); });
}

json ModelsJson(ApiContext& ctx, ModelCatalog& catalog) {
  json list = json::array();
  for (const std::string& name : ctx.loader->Names()) {
    StatusOr<ModelDetails> d = catalog.Get(name);
    StatusOr<uint64_t> need = ctx.loader->EstimateBytes(name);
    std::optional<ModelStatus> st = ctx.manager->Find(name);
    json m = {{"name", name},
              {"state", st ? ModelStateName(st->state) : "unloaded"},
              {"memory_estimate", need.ok() ? json(*need) : json(nullptr)},
              {"error", nullptr}};
    if (d.ok()) {
      m["architecture"] = d->family;
      m["parameters"] = d->parameter_size;
      m["quantization"] = d->quantization;
      m["file_size"] = d->file_size;
      m["context_length"] = d->context_length;
      m["chat_template"] = !d->chat_template.empty();
    } else {
      m["error"] = d.status().message();
    }
    list.push_back(std::move(m));
  }
  return {{"models", list}};
}

void RegisterSettingsRoutes(Router& router, ApiContext& ctx) {
  ApiContext* c = &ctx;
  const ErrorShape shape = ErrorShape::kOllama;
  auto reply = [](httplib::Response& res, const StatusOr<AppSettings>& s) {
    if (!s.ok()) return SendError(res, ErrorShape::kOllama, {400, s.status().message(), "", ""});
    SendJson(res, SettingsJson(*s));
  };
  router.Get("/api/settings", shape, [c](const httplib::Request&, httplib::Response& res) {
    SendJson(res, SettingsJson(c->settings->Get()));
  });
  router.Post("/api/settings", shape,
              [c, reply](const httplib::Request&, httplib::Response& res, const json& body) {
                reply(res, c->settings->Update(body));
              });
  router.Delete("/api/settings", shape,
                [c, reply](const httplib::Request&, httplib::Response& res) {
                  reply(res, c->settings->Reset());
                });
}

}  // namespace

std::string SseMessage(const std::string& name, const json& data) {
  return "event: " + name + "\ndata: " + Dump(data) + "\n\n";
}

json TransitionJson(const TransitionRecord& t) {
  return {{"model", t.model},           {"from", ModelStateName(t.from)},
          {"to", ModelStateName(t.to)}, {"reason", ReasonName(t.reason)},
          {"seconds", t.seconds},       {"detail", t.detail}};
}

json StatusJson(ApiContext& ctx, const ProcessMemory& process, const SystemMemory& system) {
  json models = json::array();
  std::map<std::string, ModelStatus> seen;
  for (ModelStatus& m : ctx.manager->List()) seen[m.name] = std::move(m);
  for (const std::string& name : ctx.loader->Names()) {
    ModelStatus m;
    m.name = name;
    auto it = seen.find(name);
    models.push_back(ModelStatusJson(it == seen.end() ? m : it->second));
  }
  return {{"system", SystemJson(system)},
          {"process", {{"rss", process.rss}, {"anon", process.anon}, {"file", process.file}}},
          {"pid", static_cast<int64_t>(getpid())},
          {"models", models}};
}

void RegisterAppRoutes(Router& router, ApiContext& ctx) {
  ApiContext* c = &ctx;
  const ErrorShape shape = ErrorShape::kOllama;
  // The page and its files carry no secret: they load without the key, then ask for it.
  // Browsers get the app; tools that ping "/" (as Ollama's clients do) get a line of text.
  router.Get(
      "/", shape,
      [](const httplib::Request& req, httplib::Response& res) {
        if (req.get_header_value("Accept").find("text/html") == std::string::npos) {
          return res.set_content("dormouse is running", "text/plain");
        }
        ServeAsset("/", res);
      },
      /*open=*/true);
  router.Get(R"(/assets/[A-Za-z0-9._-]+)", shape,
             [](const httplib::Request& req, httplib::Response& res) { ServeAsset(req.path, res); },
             /*open=*/true);
  if (ctx.events == nullptr || ctx.settings == nullptr || ctx.app_db == nullptr) return;
  router.Get("/api/events", shape,
             [c](const httplib::Request&, httplib::Response& res) { HandleEvents(*c, res); });
  router.Get("/api/status", shape, [c](const httplib::Request&, httplib::Response& res) {
    SendJson(res, StatusJson(*c, c->probe->Process(), c->probe->System()));
  });
  auto catalog = std::make_shared<ModelCatalog>(ctx.loader);
  router.Get("/api/models", shape, [c, catalog](const httplib::Request&, httplib::Response& res) {
    SendJson(res, ModelsJson(*c, *catalog));
  });
  RegisterSettingsRoutes(router, ctx);
  RegisterConversationRoutes(router, ctx);
}

}  // namespace dormouse::api
