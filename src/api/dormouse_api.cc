#include "api/dormouse_api.h"

#include <httplib.h>

#include <set>

#include "api/http_server.h"

namespace dormouse::api {

using nlohmann::json;

json DormouseTimings(const CompletionResult& r) {
  return {{"session_id", r.session_id},
          // "cancel" when the client left or a forced eject stopped the reply (the
          // session was checkpointed); "eog", "stop", "length" or "context" otherwise.
          {"stop_reason", StopReasonName(r.stop)},
          {"cached_tokens", r.cached_tokens},
          {"prefilled_tokens", r.prefilled_tokens},
          {"restored_from_snapshot", r.restored_from_snapshot},
          {"load_seconds", r.load_seconds},
          {"restore_seconds", r.restore_seconds},
          {"prompt_seconds", r.prompt_seconds},
          {"generate_seconds", r.generate_seconds},
          {"total_seconds", r.total_seconds}};
}

json SessionJson(const SessionInfo& s) {
  return {{"id", s.id},
          {"model", s.model},
          {"state", s.state},
          {"n_tokens", s.n_tokens},
          {"n_tokens_saved", s.n_tokens_saved},
          {"snapshot_bytes", s.snapshot_bytes},
          {"updated_at", s.updated_at},
          {"n_messages", s.n_messages}};
}

json EjectJson(const EjectReport& r) {
  auto mem = [](const ProcessMemory& m) {
    return json{{"rss", m.rss}, {"anon", m.anon}, {"file", m.file}};
  };
  return {{"model", r.model},
          {"was_loaded", r.was_loaded},
          {"level", EjectLevelName(r.level)},
          {"reason", ReasonName(r.reason)},
          {"cancelled_requests", r.cancelled_requests},
          {"seconds", r.seconds},
          {"before", mem(r.before)},
          {"after", mem(r.after)},
          {"anon_freed", r.anon_freed()},
          {"file_freed", r.file_freed()}};
}

std::string LabelValue(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string HistogramText(const std::string& name, const std::string& help,
                          const LatencyHistogram& h) {
  std::string out = fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  for (size_t i = 0; i < std::size(LatencyHistogram::kBounds); ++i) {
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, LatencyHistogram::kBounds[i],
                       h.buckets[i]);
  }
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n", name, h.count);
  out += fmt::format("{}_sum {}\n{}_count {}\n", name, h.sum, name, h.count);
  return out;
}

namespace {

void Metric(std::string* out, const std::string& name, const char* type, const std::string& help) {
  *out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void ModelMetrics(std::string* out, const MetricsInput& in) {
  std::map<std::string, const ModelStatus*> by_name;
  for (const ModelStatus& m : in.models) by_name[m.name] = &m;
  std::set<std::string> names(in.model_names.begin(), in.model_names.end());
  for (const ModelStatus& m : in.models) names.insert(m.name);
  const ModelStatus unloaded;
  auto status = [&](const std::string& n) -> const ModelStatus& {
    auto it = by_name.find(n);
    return it == by_name.end() ? unloaded : *it->second;
  };
  Metric(out, "dormouse_model_state", "gauge", "1 for the state each model is in");
  for (const std::string& n : names) {
    for (ModelState s : {ModelState::kUnloaded, ModelState::kLoading, ModelState::kReady,
                         ModelState::kBusy, ModelState::kEjecting}) {
      *out += fmt::format("dormouse_model_state{{model=\"{}\",state=\"{}\"}} {}\n", LabelValue(n),
                          ModelStateName(s), status(n).state == s ? 1 : 0);
    }
  }
  Metric(out, "dormouse_model_bytes", "gauge", "Memory a loaded model is budgeted for");
  for (const std::string& n : names) {
    *out += fmt::format("dormouse_model_bytes{{model=\"{}\"}} {}\n", LabelValue(n),
                        status(n).state == ModelState::kUnloaded ? 0 : status(n).bytes);
  }
  Metric(out, "dormouse_model_loads_total", "counter", "Model loads");
  for (const std::string& n : names) {
    *out += fmt::format("dormouse_model_loads_total{{model=\"{}\"}} {}\n", LabelValue(n),
                        status(n).loads);
  }
  Metric(out, "dormouse_model_last_load_seconds", "gauge", "Duration of each model's last load");
  for (const std::string& n : names) {
    *out += fmt::format("dormouse_model_last_load_seconds{{model=\"{}\"}} {}\n", LabelValue(n),
                        status(n).last_load_seconds);
  }
  Metric(out, "dormouse_model_ejects_total", "counter", "Model ejects by reason");
  for (const std::string& n : names) {
    for (Reason r : {Reason::kKeepAlive, Reason::kMemoryBudget, Reason::kMemoryPressure,
                     Reason::kManual, Reason::kShutdown, Reason::kRequest}) {
      auto it = status(n).ejects_by_reason.find(r);
      *out += fmt::format("dormouse_model_ejects_total{{model=\"{}\",reason=\"{}\"}} {}\n",
                          LabelValue(n), ReasonName(r),
                          it == status(n).ejects_by_reason.end() ? 0 : it->second);
    }
  }
}

void ServiceCounters(std::string* out, const MetricsInput& in) {
  const ServiceMetrics& s = in.service;
  Metric(out, "dormouse_requests_total", "counter", "Completion requests by outcome");
  *out += fmt::format("dormouse_requests_total{{outcome=\"ok\"}} {}\n", s.requests);
  *out += fmt::format("dormouse_requests_total{{outcome=\"failed\"}} {}\n", s.requests_failed);
  *out += fmt::format("dormouse_requests_total{{outcome=\"rejected\"}} {}\n", s.requests_rejected);
  *out +=
      fmt::format("dormouse_requests_total{{outcome=\"cancelled\"}} {}\n", s.requests_cancelled);
  Metric(out, "dormouse_tokens_total", "counter",
         "Prompt tokens prefilled or reused from a cache, and tokens generated");
  *out += fmt::format("dormouse_tokens_total{{kind=\"prefilled\"}} {}\n", s.tokens_prefilled);
  *out += fmt::format("dormouse_tokens_total{{kind=\"cached\"}} {}\n", s.tokens_cached);
  *out += fmt::format("dormouse_tokens_total{{kind=\"generated\"}} {}\n", s.tokens_generated);
  Metric(out, "dormouse_generate_tokens_per_second", "gauge",
         "Generated tokens per second of generation, since start");
  *out += fmt::format("dormouse_generate_tokens_per_second {}\n",
                      s.generate_seconds > 0 ? s.tokens_generated / s.generate_seconds : 0.0);
  Metric(out, "dormouse_snapshots_total", "counter", "KV snapshots saved and restored");
  *out += fmt::format("dormouse_snapshots_total{{op=\"save\"}} {}\n", s.snapshots_saved);
  *out += fmt::format("dormouse_snapshots_total{{op=\"append\"}} {}\n", s.snapshots_appended);
  *out += fmt::format("dormouse_snapshots_total{{op=\"restore\"}} {}\n", s.snapshots_restored);
  Metric(out, "dormouse_snapshot_written_bytes_total", "counter", "Bytes of snapshots written");
  *out += fmt::format("dormouse_snapshot_written_bytes_total {}\n", s.snapshot_bytes_written);
  Metric(out, "dormouse_snapshot_disk_bytes", "gauge", "Bytes of snapshots on disk");
  *out += fmt::format("dormouse_snapshot_disk_bytes {}\n", in.snapshot_disk_bytes);
  Metric(out, "dormouse_prefix_index_bytes", "gauge",
         "RAM held by the prefix index of saved snapshots");
  *out += fmt::format("dormouse_prefix_index_bytes {}\n", s.prefix_index_bytes);
  Metric(out, "dormouse_prefix_index_entries", "gauge", "Saved snapshots in the prefix index");
  *out += fmt::format("dormouse_prefix_index_entries {}\n", s.prefix_index_entries);
}

}  // namespace

std::string MetricsText(const MetricsInput& in) {
  std::string out;
  Metric(&out, "dormouse_resident_bytes", "gauge",
         "Resident memory of the process: anonymous (heap, KV caches) and file-backed (mapped "
         "weights, code)");
  out += fmt::format("dormouse_resident_bytes{{kind=\"total\"}} {}\n", in.process.rss);
  out += fmt::format("dormouse_resident_bytes{{kind=\"anon\"}} {}\n", in.process.anon);
  out += fmt::format("dormouse_resident_bytes{{kind=\"file\"}} {}\n", in.process.file);
  ModelMetrics(&out, in);
  ServiceCounters(&out, in);
  out += HistogramText("dormouse_reload_seconds", "Model load durations", in.service.load_seconds);
  out += HistogramText("dormouse_restore_seconds", "Snapshot restore durations",
                       in.service.restore_seconds);
  out += HistogramText("dormouse_snapshot_write_seconds",
                       "Snapshot write durations (write, fsync, rename)",
                       in.service.snapshot_write_seconds);
  return out;
}

namespace {

void HandleEject(ApiContext& ctx, httplib::Response& res, const json& body) {
  ParamReader r(body);
  std::string model = r.String("model").value_or("");
  std::string level = r.String("level").value_or("warm");
  bool force = r.Bool("force").value_or(false);
  if (!r.ok()) return SendError(res, ErrorShape::kOllama, r.error());
  if (level != "warm" && level != "cold") {
    return SendError(res, ErrorShape::kOllama,
                     {400, "level must be \"warm\" or \"cold\", got \"" + level + "\"", "level"});
  }
  if (auto e = CheckModel(ctx, model)) return SendError(res, ErrorShape::kOllama, *e);
  auto out =
      ctx.service->Unload(model, level == "cold" ? EjectLevel::kCold : EjectLevel::kWarm, force);
  if (auto* e = std::get_if<ServiceError>(&out)) {
    return SendError(res, ErrorShape::kOllama, FromServiceError(*e));
  }
  SendJson(res, EjectJson(std::get<EjectReport>(out)));
}

void HandleSession(ApiContext& ctx, const httplib::Request& req, httplib::Response& res) {
  const std::string id = req.matches[1];
  const SessionScope scope = ScopeOf(ctx, req);
  std::optional<SessionInfo> s = ctx.service->Session(id, scope);
  if (!s) return SendError(res, ErrorShape::kOllama, {404, "no session '" + id + "'", "id"});
  json j = SessionJson(*s);
  json messages = json::array();
  auto t = ctx.service->Transcript(id, scope);
  if (t.ok()) {
    for (const auto& [role, content] : *t)
      messages.push_back({{"role", role}, {"content", content}});
  }
  j["messages"] = messages;
  SendJson(res, j);
}

}  // namespace

void RegisterDormouseRoutes(Router& router, ApiContext& ctx) {
  ApiContext* c = &ctx;
  const ErrorShape shape = ErrorShape::kOllama;
  router.Get(
      "/health", shape,
      [c](const httplib::Request&, httplib::Response& res) {
        if (c->stopping.load()) return SendJson(res, {{"status", "stopping"}}, 503);
        SendJson(res, {{"status", "ok"}});
      },
      /*open=*/true);
  router.Post("/api/eject", shape,
              [c](const httplib::Request&, httplib::Response& res, const json& body) {
                HandleEject(*c, res, body);
              });
  router.Get("/api/sessions", shape, [c](const httplib::Request& req, httplib::Response& res) {
    json list = json::array();
    for (const SessionInfo& s : c->service->Sessions(ScopeOf(*c, req))) {
      list.push_back(SessionJson(s));
    }
    SendJson(res, {{"sessions", list}});
  });
  router.Get(
      R"(/api/sessions/([A-Za-z0-9_-]{1,64}))", shape,
      [c](const httplib::Request& req, httplib::Response& res) { HandleSession(*c, req, res); });
  router.Delete(R"(/api/sessions/([A-Za-z0-9_-]{1,64}))", shape,
                [c](const httplib::Request& req, httplib::Response& res) {
                  const std::string id = req.matches[1];
                  if (auto e = c->service->DeleteSession(id, ScopeOf(*c, req))) {
                    return SendError(res, ErrorShape::kOllama, FromServiceError(*e));
                  }
                  SendJson(res, {{"deleted", id}});
                });
  router.Get("/metrics", shape, [c](const httplib::Request&, httplib::Response& res) {
    MetricsInput in;
    in.service = c->service->Metrics();
    in.model_names = c->service->ModelNames();
    in.models = c->manager->List();
    in.process = c->probe->Process();
    in.snapshot_disk_bytes = c->snapshots ? c->snapshots->TotalBytes() : 0;
    res.set_content(MetricsText(in), "text/plain; version=0.0.4; charset=utf-8");
  });
}

}  // namespace dormouse::api
