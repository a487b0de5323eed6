// Conversations as the app lists them: the Service's sessions (state, tokens, snapshot)
// joined with their transcript rows (title, system prompt, options); rename and search.
// The routes use a TranscriptDb connection of their own (ApiContext::app_db): separate
// connections share the file safely (see transcript_db.h).
#include <httplib.h>

#include <algorithm>
#include <set>

#include "api/app_api.h"
#include "api/dormouse_api.h"

namespace dormouse::api {

using nlohmann::json;

namespace {

constexpr size_t kMaxTitleBytes = 200;
constexpr size_t kMaxQueryBytes = 200;
constexpr size_t kSnippetBytes = 120;

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Cuts at a UTF-8 character boundary at or below n bytes.
std::string Prefix(const std::string& s, size_t n) {
  if (s.size() <= n) return s;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n) + "…";
}

std::string FirstUserMessage(const std::vector<MessageRecord>& msgs) {
  for (const MessageRecord& m : msgs) {
    if (m.role == "user" || m.role == "prompt") return m.content;
  }
  return "";
}

json ConversationJson(const SessionInfo& s, const SessionRecord* rec, const std::string& title) {
  json j = SessionJson(s);
  j["title"] = title;
  j["has_snapshot"] = s.snapshot_bytes > 0;
  j["system_prompt"] = rec ? rec->system_prompt : "";
  json options = json::object();
  if (rec && !rec->sampling_json.empty()) {
    options = json::parse(rec->sampling_json, nullptr, false);
    if (!options.is_object()) options = json::object();
  }
  j["options"] = options;
  j["created_at"] = rec ? rec->created_at : 0;
  return j;
}

void HandleConversations(ApiContext& ctx, const SessionScope& scope, httplib::Response& res) {
  json list = json::array();
  std::vector<SessionInfo> sessions = ctx.service->Sessions(scope);
  std::lock_guard<std::mutex> lock(ctx.app_db_mu);
  for (const SessionInfo& s : sessions) {
    StatusOr<std::optional<SessionRecord>> rec = ctx.app_db->GetSession(s.id);
    const SessionRecord* r = rec.ok() && rec->has_value() ? &**rec : nullptr;
    std::string first;
    if (r != nullptr && r->name.rfind("api-", 0) == 0) {
      StatusOr<std::vector<MessageRecord>> msgs = ctx.app_db->Messages(s.id);
      if (msgs.ok()) first = FirstUserMessage(*msgs);
    }
    list.push_back(ConversationJson(s, r, ConversationTitle(r ? r->name : s.id, first)));
  }
  SendJson(res, {{"conversations", list}});
}

void HandleUpdate(ApiContext& ctx, const SessionScope& scope, const std::string& id,
                  httplib::Response& res, const json& body) {
  auto bad = [&](std::string msg, const char* param) {
    SendError(res, ErrorShape::kOllama, {400, std::move(msg), param, ""});
  };
  // Where API keys are set, a session is only visible to the key that created it.
  if (scope && !ctx.service->Session(id, scope)) {
    return SendError(res, ErrorShape::kOllama, {404, "no session '" + id + "'", "id", ""});
  }
  for (const auto& [key, v] : body.items()) {
    if (key != "title" && key != "options") return bad("unknown field '" + key + "'", "");
  }
  std::lock_guard<std::mutex> lock(ctx.app_db_mu);
  StatusOr<std::optional<SessionRecord>> rec = ctx.app_db->GetSession(id);
  if (!rec.ok()) return SendError(res, ErrorShape::kOllama, {500, rec.status().message(), "", ""});
  if (!rec->has_value()) {
    return SendError(res, ErrorShape::kOllama, {404, "no session '" + id + "'", "id", ""});
  }
  SessionRecord r = **rec;
  if (body.contains("title")) {
    const json& t = body["title"];
    if (!t.is_string() || t.get<std::string>().empty() ||
        t.get<std::string>().size() > kMaxTitleBytes) {
      return bad(fmt::format("title must be a string of 1 to {} bytes", kMaxTitleBytes), "title");
    }
    r.name = t.get<std::string>();
  }
  if (body.contains("options")) {
    if (!body["options"].is_object()) return bad("options must be a JSON object", "options");
    r.sampling_json = Dump(body["options"]);
  }
  if (Status s = ctx.app_db->UpdateSession(r); !s.ok()) {
    return SendError(res, ErrorShape::kOllama, {409, s.message(), "title", ""});
  }
  SendJson(res, {{"id", id}, {"title", r.name}, {"options", json::parse(r.sampling_json)}});
}

void HandleSearch(ApiContext& ctx, const SessionScope& scope, const httplib::Request& req,
                  httplib::Response& res) {
  const std::string q = req.get_param_value("q");
  if (q.empty() || q.size() > kMaxQueryBytes) {
    return SendError(res, ErrorShape::kOllama,
                     {400, fmt::format("q must be 1 to {} bytes", kMaxQueryBytes), "q", ""});
  }
  const std::string needle = Lower(q);
  json hits = json::array();
  std::set<std::string> visible;  // only with API keys: the sessions of this request's key
  if (scope) {
    for (const SessionInfo& s : ctx.service->Sessions(scope)) visible.insert(s.id);
  }
  std::lock_guard<std::mutex> lock(ctx.app_db_mu);
  StatusOr<std::vector<SessionRecord>> all = ctx.app_db->ListSessions();
  if (!all.ok()) return SendError(res, ErrorShape::kOllama, {500, all.status().message(), "", ""});
  for (const SessionRecord& r : *all) {
    if (scope && !visible.contains(r.id)) continue;
    StatusOr<std::vector<MessageRecord>> msgs = ctx.app_db->Messages(r.id);
    if (!msgs.ok()) continue;
    const std::string title = ConversationTitle(r.name, FirstUserMessage(*msgs));
    std::string snippet;
    bool found = Lower(title).find(needle) != std::string::npos;
    for (const MessageRecord& m : *msgs) {
      const size_t at = Lower(m.content).find(needle);
      if (at == std::string::npos) continue;
      size_t from = at > kSnippetBytes / 2 ? at - kSnippetBytes / 2 : 0;
      while (from > 0 && (static_cast<unsigned char>(m.content[from]) & 0xC0) == 0x80) --from;
      snippet = (from > 0 ? "…" : "") + Prefix(m.content.substr(from), kSnippetBytes);
      found = true;
      break;
    }
    if (found)
      hits.push_back({{"id", r.id}, {"title", title}, {"model", r.model}, {"snippet", snippet}});
  }
  SendJson(res, {{"query", q}, {"results", hits}});
}

}  // namespace

std::string ConversationTitle(const std::string& name, const std::string& first_user_message) {
  if (name.rfind("api-", 0) != 0) return name;
  std::string t = first_user_message;
  std::replace(t.begin(), t.end(), '\n', ' ');
  t.erase(0, t.find_first_not_of(' '));
  return t.empty() ? "Untitled conversation" : Prefix(t, 60);
}

void RegisterConversationRoutes(Router& router, ApiContext& ctx) {
  ApiContext* c = &ctx;
  const ErrorShape shape = ErrorShape::kOllama;
  router.Get("/api/conversations", shape, [c](const httplib::Request& req, httplib::Response& res) {
    HandleConversations(*c, ScopeOf(*c, req), res);
  });
  router.Post(R"(/api/sessions/([A-Za-z0-9_-]{1,64}))", shape,
              [c](const httplib::Request& req, httplib::Response& res, const json& body) {
                HandleUpdate(*c, ScopeOf(*c, req), req.matches[1], res, body);
              });
  router.Get("/api/search", shape, [c](const httplib::Request& req, httplib::Response& res) {
    HandleSearch(*c, ScopeOf(*c, req), req, res);
  });
}

}  // namespace dormouse::api
