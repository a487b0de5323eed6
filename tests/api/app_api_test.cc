// The endpoints the browser app uses, over HTTP against the real server: the embedded
// page and its security headers, picker metadata, settings (validated, applied,
// persisted), the event stream, and conversations (list, rename, search).
#include "api/app_api.h"

#include "api/server_harness.h"
#include "api/settings.h"

namespace dormouse::testing {
namespace {

const char* kModel = "stories260K";

json ChatOnce(const ServerProcess& s, const std::string& text) {
  json req = {{"model", kModel},
              {"messages", {{{"role", "user"}, {"content", text}}}},
              {"max_tokens", 8},
              {"temperature", 0}};
  auto r = s.Client().Post("/v1/chat/completions", req.dump(), "application/json");
  EXPECT_TRUE(r && r->status == 200) << (r ? r->body : "no reply");
  return BodyJson(r);
}

TEST(AppApiTest, ServesThePageWithStrictHeadersAndNoKey) {
  auto s = ServerProcess::Start({"--api-key", "sekrit"});
  ASSERT_NE(s, nullptr);
  auto ping = s->Client().Get("/");  // no Accept: text/html, as tools that ping
  ASSERT_TRUE(ping);
  EXPECT_EQ(ping->body, "dormouse is running");
  auto page = s->Client().Get("/", {{"Accept", "text/html,application/xhtml+xml"}});
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->body.find(R"(<script type="module" src="/assets/app.js">)"), std::string::npos);
  const std::string csp = page->get_header_value("Content-Security-Policy");
  EXPECT_NE(csp.find("script-src 'self'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << csp;
  EXPECT_EQ(csp.find("unsafe"), std::string::npos) << csp;  // no unsafe-inline, no unsafe-eval
  EXPECT_EQ(page->get_header_value("X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(page->get_header_value("Referrer-Policy"), "no-referrer");
  EXPECT_EQ(page->get_header_value("X-Frame-Options"), "DENY");
  auto js = s->Client().Get("/assets/app.js");
  ASSERT_TRUE(js);
  EXPECT_EQ(js->status, 200);
  EXPECT_EQ(js->get_header_value("Content-Type").rfind("text/javascript", 0), 0u);
  EXPECT_GT(js->body.size(), 1000u);
  auto missing = s->Client().Get("/assets/nothing.js");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  auto models = s->Client().Get("/api/models");  // data needs the key
  ASSERT_TRUE(models);
  EXPECT_EQ(models->status, 401);
}

TEST(AppApiTest, ModelsCarryWhatThePickerShows) {
  auto s = ServerProcess::Start({});
  ASSERT_NE(s, nullptr);
  auto r = s->Client().Get("/api/models");
  ASSERT_TRUE(r && r->status == 200);
  const json body = BodyJson(r);
  const json* m = nullptr;
  for (const json& x : body["models"]) {
    if (x["name"] == kModel) m = &x;
  }
  ASSERT_NE(m, nullptr) << body;
  EXPECT_EQ((*m)["architecture"], "llama");
  EXPECT_FALSE((*m)["parameters"].get<std::string>().empty());
  EXPECT_FALSE((*m)["quantization"].get<std::string>().empty());
  EXPECT_GT((*m)["file_size"].get<uint64_t>(), 1000u);
  EXPECT_GE((*m)["memory_estimate"].get<uint64_t>(), (*m)["file_size"].get<uint64_t>() / 2);
  EXPECT_EQ((*m)["state"], "unloaded");
}

TEST(AppApiTest, SettingsAreValidatedAppliedAndKeptAcrossRestarts) {
  std::string data = MakeTempDir() + "/data";
  {
    auto s = ServerProcess::Start({}, data);
    ASSERT_NE(s, nullptr);
    const json defaults = BodyJson(s->Client().Get("/api/settings"));
    EXPECT_EQ(defaults["keep_alive_seconds"], 300);
    EXPECT_GE(defaults["min_available"].get<uint64_t>(), 512ull << 20);
    EXPECT_LE(defaults["min_available"].get<uint64_t>(), 2048ull << 20);
    auto bad = s->Client().Post("/api/settings", R"({"psi_threshold": 250})", "application/json");
    ASSERT_TRUE(bad);
    EXPECT_EQ(bad->status, 400);
    EXPECT_NE(bad->body.find("psi_threshold"), std::string::npos) << bad->body;
    auto unknown = s->Client().Post("/api/settings", R"({"colour": 1})", "application/json");
    ASSERT_TRUE(unknown);
    EXPECT_EQ(unknown->status, 400);
    EXPECT_NE(unknown->body.find("colour"), std::string::npos) << unknown->body;
    // Keep-alive 0: the model is ejected right after the reply (applied at run time).
    auto ok = s->Client().Post("/api/settings",
                               R"({"keep_alive_seconds": 0, "hidden_tab_eject_minutes": 15})",
                               "application/json");
    ASSERT_TRUE(ok && ok->status == 200) << (ok ? ok->body : "");
    ChatOnce(*s, "Hello");
    const json st = BodyJson(s->Client().Get("/api/status"));
    for (const json& m : st["models"]) {
      if (m["name"] == kModel) {
        EXPECT_EQ(m["state"], "unloaded") << m;
        EXPECT_EQ(m["last_transition"]["reason"], "keep_alive") << m;
      }
    }
  }
  auto s = ServerProcess::Start({}, data);
  ASSERT_NE(s, nullptr);
  json kept = BodyJson(s->Client().Get("/api/settings"));
  EXPECT_EQ(kept["keep_alive_seconds"], 0);
  EXPECT_EQ(kept["hidden_tab_eject_minutes"], 15);
  auto reset = s->Client().Delete("/api/settings");
  ASSERT_TRUE(reset && reset->status == 200);
  EXPECT_EQ(BodyJson(reset)["keep_alive_seconds"], 300);
  EXPECT_FALSE(fs::exists(data + "/settings.json"));
}

TEST(AppApiTest, EventsStreamStatusThenTransitionsOfALoad) {
  auto s = ServerProcess::Start({});
  ASSERT_NE(s, nullptr);
  RawConnection c(s->port());
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c.Send("GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  std::string got = c.ReadUntil("event: status", 20000);
  EXPECT_NE(got.find("text/event-stream"), std::string::npos) << got;
  ASSERT_NE(got.find("event: status"), std::string::npos) << got;
  auto load = s->Client().Post("/api/generate", json{{"model", kModel}, {"prompt", ""}}.dump(),
                               "application/json");
  ASSERT_TRUE(load && load->status == 200) << (load ? load->body : "");
  got += c.ReadUntil(R"("to":"ready")", 20000);
  EXPECT_NE(got.find(R"("to":"loading")"), std::string::npos) << got;
  EXPECT_NE(got.find(R"("to":"ready")"), std::string::npos) << got;
  // About once a second, a memory sample comes as a status with the process's RSS.
  const size_t before = got.size();
  got += c.ReadUntil("\"anon\"", 20000);
  EXPECT_NE(got.find("\"anon\"", before), std::string::npos);
}

TEST(AppApiTest, ConversationsAreListedRenamedAndFound) {
  auto s = ServerProcess::Start({});
  ASSERT_NE(s, nullptr);
  const json reply = ChatOnce(*s, "Tell me about the quiet hazel dormouse");
  const std::string id = reply["dormouse"]["session_id"];
  ASSERT_FALSE(id.empty()) << reply;
  json list = BodyJson(s->Client().Get("/api/conversations"));
  ASSERT_EQ(list["conversations"].size(), 1u) << list;
  EXPECT_EQ(list["conversations"][0]["title"], "Tell me about the quiet hazel dormouse");
  EXPECT_EQ(list["conversations"][0]["model"], kModel);

  auto renamed = s->Client().Post("/api/sessions/" + id,
                                  R"({"title": "Dormice", "options": {"temperature": 0}})",
                                  "application/json");
  ASSERT_TRUE(renamed && renamed->status == 200) << (renamed ? renamed->body : "");
  list = BodyJson(s->Client().Get("/api/conversations"));
  EXPECT_EQ(list["conversations"][0]["title"], "Dormice");
  EXPECT_EQ(list["conversations"][0]["options"]["temperature"], 0);
  auto bad = s->Client().Post("/api/sessions/" + id, R"({"title": ""})", "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  auto none = s->Client().Post("/api/sessions/nosuch", R"({"title": "x"})", "application/json");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 404);

  json found = BodyJson(s->Client().Get("/api/search?q=HAZEL"));
  ASSERT_EQ(found["results"].size(), 1u) << found;
  EXPECT_EQ(found["results"][0]["id"], id);
  EXPECT_NE(found["results"][0]["snippet"].get<std::string>().find("hazel"), std::string::npos);
  EXPECT_EQ(BodyJson(s->Client().Get("/api/search?q=badger"))["results"].size(), 0u);
  auto empty = s->Client().Get("/api/search?q=");
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->status, 400);
}

TEST(AppSettingsTest, DefaultFloorIsATenthOfRamWithinBounds) {
  EXPECT_EQ(api::DefaultMemoryFloor(4ull << 30), 512ull << 20);
  EXPECT_EQ(api::DefaultMemoryFloor(16ull << 30), (16ull << 30) / 10);
  EXPECT_EQ(api::DefaultMemoryFloor(64ull << 30), 2048ull << 20);
}

TEST(AppSettingsTest, ConversationTitleFallsBackToTheFirstMessage) {
  EXPECT_EQ(api::ConversationTitle("My notes", "hello"), "My notes");
  EXPECT_EQ(api::ConversationTitle("api-0123", "  hello\nthere"), "hello there");
  EXPECT_EQ(api::ConversationTitle("api-0123", ""), "Untitled conversation");
}

}  // namespace
}  // namespace dormouse::testing
