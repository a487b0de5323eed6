// With API keys, a session belongs to the key that created it: another key neither
// lists, shows, deletes nor continues it, and the database keeps only a hash of the key.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/sha256.h"
#include "in_process_server.h"

namespace dormouse {
namespace {

using nlohmann::json;
using testing::InProcessServer;

const char* kModel = "qwen2-20m-q8_0";
const char* kKeyA = "key-of-alice-0123456789";
const char* kKeyB = "key-of-bob-9876543210";

httplib::Headers Auth(const char* key) { return {{"Authorization", std::string("Bearer ") + key}}; }

json Messages(const std::vector<std::pair<std::string, std::string>>& m) {
  json out = json::array();
  for (const auto& [role, content] : m) out.push_back({{"role", role}, {"content", content}});
  return out;
}

json Chat(httplib::Client& c, const char* key, const json& messages) {
  json body = {{"model", kModel}, {"messages", messages}, {"max_tokens", 4}, {"temperature", 0}};
  auto r = c.Post("/v1/chat/completions", Auth(key), body.dump(), "application/json");
  if (!r || r->status != 200) {
    ADD_FAILURE() << (r ? r->body : "no response");
    return json();
  }
  return json::parse(r->body);
}

std::vector<std::string> ListedIds(httplib::Client& c, const char* key) {
  auto r = c.Get("/api/sessions", Auth(key));
  std::vector<std::string> ids;
  if (!r || r->status != 200) {
    ADD_FAILURE() << (r ? r->body : "no response");
    return ids;
  }
  const json body = json::parse(r->body);
  for (const json& s : body["sessions"]) ids.push_back(s["id"]);
  return ids;
}

TEST(SessionScopeTest, ASessionIsVisibleOnlyWithTheKeyThatCreatedIt) {
  RuntimeOptions o;
  InProcessServer srv(o, {kKeyA, kKeyB});
  httplib::Client c = srv.Client();
  const json first = Messages({{"system", "You are terse."}, {"user", "Hello there."}});
  json a = Chat(c, kKeyA, first);
  json b = Chat(c, kKeyB, first);
  const std::string ida = a["dormouse"]["session_id"], idb = b["dormouse"]["session_id"];
  EXPECT_NE(ida, idb);
  EXPECT_EQ(ListedIds(c, kKeyA), std::vector<std::string>{ida});
  EXPECT_EQ(ListedIds(c, kKeyB), std::vector<std::string>{idb});

  auto show = c.Get("/api/sessions/" + ida, Auth(kKeyB));
  ASSERT_TRUE(show);
  EXPECT_EQ(show->status, 404);
  auto del = c.Delete("/api/sessions/" + ida, Auth(kKeyB));
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 404);
  auto own = c.Get("/api/sessions/" + ida, Auth(kKeyA));
  ASSERT_TRUE(own);
  EXPECT_EQ(own->status, 200);

  // The app's routes are scoped the same way: conversations, rename and search.
  auto convs = c.Get("/api/conversations", Auth(kKeyB));
  ASSERT_TRUE(convs);
  ASSERT_EQ(convs->status, 200) << convs->body;
  const json conv_list = json::parse(convs->body);
  for (const json& s : conv_list["conversations"]) EXPECT_NE(s["id"], ida);
  auto rename =
      c.Post("/api/sessions/" + ida, Auth(kKeyB), R"({"title":"mine now"})", "application/json");
  ASSERT_TRUE(rename);
  EXPECT_EQ(rename->status, 404);
  auto found_b = c.Get("/api/search?q=Hello", Auth(kKeyB));
  ASSERT_TRUE(found_b);
  ASSERT_EQ(found_b->status, 200) << found_b->body;
  const json hits_b = json::parse(found_b->body);
  for (const json& h : hits_b["results"]) EXPECT_NE(h["id"], ida);
  auto found_a = c.Get("/api/search?q=Hello", Auth(kKeyA));
  ASSERT_TRUE(found_a);
  ASSERT_EQ(found_a->status, 200) << found_a->body;
  bool a_finds_own = false;
  const json hits_a = json::parse(found_a->body);
  for (const json& h : hits_a["results"]) a_finds_own |= h["id"] == ida;
  EXPECT_TRUE(a_finds_own);

  // B resends A's whole conversation: it is B's own new session, not a turn of A's.
  json next = first;
  next.push_back({{"role", "assistant"}, {"content", a["choices"][0]["message"]["content"]}});
  next.push_back({{"role", "user"}, {"content", "And then?"}});
  json b2 = Chat(c, kKeyB, next);
  EXPECT_NE(b2["dormouse"]["session_id"], ida);
  json a2 = Chat(c, kKeyA, next);
  EXPECT_EQ(a2["dormouse"]["session_id"], ida);

  // The database holds the key's hash, never the key (in the file or its WAL).
  auto rec = srv.runtime().db().GetSession(ida);
  ASSERT_TRUE(rec.ok() && rec->has_value());
  EXPECT_EQ((*rec)->owner, Sha256Hex(kKeyA));
  for (const char* suffix : {"", "-wal"}) {
    std::ifstream f(srv.runtime().data_dir() + "/" + TranscriptDb::kFileName + suffix,
                    std::ios::binary);
    std::stringstream bytes;
    bytes << f.rdbuf();
    EXPECT_EQ(bytes.str().find(kKeyA), std::string::npos) << suffix;
  }
}

// A context that held another key's conversation serves a new one from scratch: reusing
// its rows would tell, through cached_tokens, how much of the prompt the other key sent.
// The same holds for a conversation its own key deleted.
TEST(SessionScopeTest, RowsOfAnotherKeysOrADeletedConversationAreNeverReused) {
  RuntimeOptions o;
  o.contexts_per_model = 1;  // every request lands in the same context
  InProcessServer srv(o, {kKeyA, kKeyB});
  httplib::Client c = srv.Client();
  const json first = Messages({{"system", "You are terse."}, {"user", "Hello there, friend."}});
  const json a = Chat(c, kKeyA, first);
  const json b = Chat(c, kKeyB, first);
  EXPECT_EQ(b["usage"]["prompt_tokens_details"]["cached_tokens"], 0) << b.dump();
  EXPECT_EQ(b["usage"]["prompt_tokens"], a["usage"]["prompt_tokens"]);

  // B's own next request with the same start reuses B's rows (the context is B's now).
  const json b_again = Chat(c, kKeyB, first);
  EXPECT_GT(b_again["usage"]["prompt_tokens_details"]["cached_tokens"], 0) << b_again.dump();

  // Deleted, its rows are gone for B too.
  for (const json& r : {b, b_again}) {
    auto del =
        c.Delete("/api/sessions/" + r["dormouse"]["session_id"].get<std::string>(), Auth(kKeyB));
    ASSERT_TRUE(del);
  }
  const json b_after = Chat(c, kKeyB, first);
  EXPECT_EQ(b_after["usage"]["prompt_tokens_details"]["cached_tokens"], 0) << b_after.dump();
}

// A page on another site cannot drive a keyless server: browsers send Origin with a POST or
// DELETE, and one naming another host is refused; the app's own origin and clients that send
// no Origin pass.
TEST(SessionScopeTest, RefusesCrossOriginWrites) {
  RuntimeOptions o;
  InProcessServer srv(o);
  httplib::Client c = srv.Client();
  const std::string body = R"({"model":"qwen2-20m-q8_0"})";
  auto evil = c.Post("/api/eject", {{"Origin", "http://evil.example"}}, body, "text/plain");
  ASSERT_TRUE(evil);
  EXPECT_EQ(evil->status, 403);
  EXPECT_NE(evil->body.find("cross-origin"), std::string::npos) << evil->body;
  auto del = c.Delete("/api/sessions/anything", {{"Origin", "https://evil.example"}});
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 403);
  const std::string self = "http://127.0.0.1:" + std::to_string(srv.port());
  auto own = c.Post("/api/eject", {{"Origin", self}}, body, "application/json");
  ASSERT_TRUE(own);
  EXPECT_NE(own->status, 403) << own->body;
  auto plain = c.Post("/api/eject", body, "application/json");
  ASSERT_TRUE(plain);
  EXPECT_NE(plain->status, 403) << plain->body;
}

}  // namespace
}  // namespace dormouse
