// POST /api/pull (Ollama's shape): downloads a model into the library's models dir,
// streaming {"status", "digest", "total", "completed"} lines, then {"status":"success"}.
// The model is listed by /api/tags, /api/show and /v1/models at once: they ask the
// library on every request.
#include <httplib.h>

#include "api/http_server.h"
#include "api/json_params.h"

namespace dormouse::api {
namespace {

using nlohmann::json;

json ProgressJson(const PullProgress& p) {
  json j = {{"status", p.status}};
  if (!p.digest.empty()) {
    j["digest"] = p.digest;
    j["total"] = p.total;
    j["completed"] = p.completed;
  }
  return j;
}

PullOptions BaseOptions(ApiContext& ctx) {
  PullOptions o;
  o.models_dir = ctx.library->models_dir();
  o.endpoints = ctx.pull_endpoints;
  MemoryProbe* probe = ctx.probe;
  o.fit_check = [probe](uint64_t bytes) -> std::string {
    if (probe == nullptr) return "";
    const SystemMemory m = probe->System();
    if (m.available == 0 || bytes <= m.available) return "";
    return fmt::format(
        "the model's weights alone ({:.1f} GiB) exceed the memory available now "
        "({:.1f} GiB)",
        bytes / 1073741824.0, m.available / 1073741824.0);
  };
  return o;
}

// Streaming runs the pull on the HTTP thread inside the chunked provider, writing each
// progress line as it comes; a client that leaves cancels the download (its partial file
// stays for a resume).

void HandlePull(ApiContext& ctx, httplib::Response& res, const json& body) {
  ParamReader r(body);
  std::string model = r.String("model").value_or("");
  if (model.empty()) model = r.String("name").value_or("");  // the older field name
  const bool stream = r.Bool("stream").value_or(true);
  (void)r.Bool("insecure");  // accepted for Ollama clients; TLS verification stays on
  if (!r.ok()) return SendError(res, ErrorShape::kOllama, r.error());
  if (model.empty()) return SendError(res, ErrorShape::kOllama, {400, "give a model", "model"});
  if (ctx.library == nullptr || ctx.library->models_dir().empty()) {
    return SendError(res, ErrorShape::kOllama, {501, "this server has no models directory"});
  }
  if (StatusOr<PullSpec> spec = ParsePullSpec(model); !spec.ok()) {
    return SendError(res, ErrorShape::kOllama, {400, spec.status().message(), "model"});
  }
  if (!stream) {
    StatusOr<PullResult> p = Pull(model, BaseOptions(ctx));
    if (!p.ok()) return SendError(res, ErrorShape::kOllama, {500, p.status().message()});
    return SendJson(res, {{"status", "success"}});
  }
  ApiContext* c = &ctx;
  res.set_chunked_content_provider(
      "application/x-ndjson", [c, model](size_t, httplib::DataSink& sink) {
        std::atomic<bool> gone{false};
        auto write = [&](const json& j) {
          std::string line = Dump(j) + "\n";
          if (!gone && !sink.write(line.data(), line.size())) gone = true;
        };
        PullOptions o = BaseOptions(*c);
        o.cancel = &gone;
        o.on_progress = [&](const PullProgress& p) { write(ProgressJson(p)); };
        o.on_warning = [&](const std::string& w) { write({{"status", "warning: " + w}}); };
        StatusOr<PullResult> p = Pull(model, o);
        if (!p.ok()) write({{"error", p.status().message()}});
        if (!gone) sink.done();
        return !gone.load();
      });
}

}  // namespace

void RegisterPullRoutes(Router& router, ApiContext& ctx) {
  ApiContext* c = &ctx;
  router.Post("/api/pull", ErrorShape::kOllama,
              [c](const httplib::Request&, httplib::Response& res, const json& body) {
                HandlePull(*c, res, body);
              });
}

}  // namespace dormouse::api
