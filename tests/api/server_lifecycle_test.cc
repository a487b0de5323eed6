// The real server's concurrency and lifecycle: bounded queues (429), cancellation when a
// client disconnects, independent models, eject and session endpoints, metrics, and
// shutdown that checkpoints in-flight work.
#include <atomic>
#include <future>

#include "api/server_harness.h"

namespace dormouse::testing {
namespace {

// Our slowest shared model: a 4,000-token generation takes seconds even at llama.cpp's
// speed (745 tokens/s), so a request still busy after a second was not cancelled.
const char* kSlow = "llama-58m-q8_0";

std::string LongCompletion(bool stream, int max_tokens = 4000) {
  return json{{"model", kSlow},
              {"prompt", "Hello"},
              {"max_tokens", max_tokens},
              {"temperature", 0},
              {"stream", stream}}
      .dump();
}

// The model's state in /api/ps ("" when not loaded).
std::string StateOf(const ServerProcess& s, const std::string& model) {
  auto r = s.Client().Get("/api/ps");
  if (!r || r->status != 200) return "?";
  const json ps = BodyJson(r);  // named: a range-for over a temporary's member dangles
  for (const json& m : ps["models"]) {
    if (m["name"] == model) return m["state"];
  }
  return "";
}

TEST(ServerConcurrencyTest, FullQueueAnswers429) {
  auto s = ServerProcess::Start({"--max-queue", "1", "--parallel", "1"});
  ASSERT_NE(s, nullptr);
  std::vector<std::future<std::pair<int, json>>> replies;
  for (int i = 0; i < 8; ++i) {
    replies.push_back(std::async(std::launch::async, [&] {
      auto r = s->Client().Post("/v1/completions", LongCompletion(false, 300), "application/json");
      return r ? std::make_pair(r->status, BodyJson(r)) : std::make_pair(-1, json());
    }));
  }
  int ok = 0, rejected = 0;
  for (auto& f : replies) {
    auto [status, body] = f.get();
    if (status == 200) ++ok;
    if (status == 429) {
      ++rejected;
      EXPECT_EQ(body["error"]["code"], "rate_limit_exceeded") << body;
      EXPECT_EQ(body["error"]["type"], "rate_limit_error") << body;
    }
    EXPECT_TRUE(status == 200 || status == 429) << status << " " << body;
  }
  EXPECT_GE(ok, 1);
  EXPECT_GE(rejected, 1);
  auto metrics = s->Client().Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("dormouse_requests_total{outcome=\"rejected\"} " +
                               std::to_string(rejected)),
            std::string::npos)
      << metrics->body;
}

TEST(ServerConcurrencyTest, StreamingClientThatDisconnectsCancelsItsGeneration) {
  auto s = ServerProcess::Start({});
  ASSERT_NE(s, nullptr);
  RawConnection conn(s->port());
  ASSERT_TRUE(conn.Send(HttpPost("/v1/completions", LongCompletion(true))));
  std::string got = conn.ReadUntil("data: {", 20000);
  ASSERT_NE(got.find("data: {"), std::string::npos) << got;
  EXPECT_EQ(StateOf(*s, kSlow), "busy");
  conn.Close();
  EXPECT_TRUE(Eventually([&] { return StateOf(*s, kSlow) == "ready"; }, 3000))
      << "still generating after the client left: " << StateOf(*s, kSlow);
}

TEST(ServerConcurrencyTest, NonStreamingClientThatGivesUpCancelsItsGeneration) {
  auto s = ServerProcess::Start({});
  ASSERT_NE(s, nullptr);
  {
    RawConnection conn(s->port());
    ASSERT_TRUE(conn.Send(HttpPost("/v1/completions", LongCompletion(false))));
    EXPECT_TRUE(Eventually([&] { return StateOf(*s, kSlow) == "busy"; }, 10000));
    EXPECT_EQ(conn.ReadUntil("HTTP/1.1", 500), "") << "a 4000-token answer came at once";
  }  // the client gives up and closes
  EXPECT_TRUE(Eventually([&] { return StateOf(*s, kSlow) == "ready"; }, 3000))
      << "still generating after the client left: " << StateOf(*s, kSlow);
  // The Ollama API too.
  RawConnection conn(s->port());
  json gen = {{"model", kSlow}, {"prompt", "Hi"}, {"options", {{"num_predict", 4000}}}};
  ASSERT_TRUE(conn.Send(HttpPost("/api/generate", gen.dump())));
  std::string got = conn.ReadUntil("\"done\":false", 20000);
  ASSERT_NE(got.find("\"done\":false"), std::string::npos) << got;
  conn.Close();
  EXPECT_TRUE(Eventually([&] { return StateOf(*s, kSlow) == "ready"; }, 3000));
}

TEST(ServerConcurrencyTest, DifferentModelsProceedIndependently) {
  auto s = ServerProcess::Start({});
  ASSERT_NE(s, nullptr);
  RawConnection slow(s->port());
  ASSERT_TRUE(slow.Send(HttpPost("/v1/completions", LongCompletion(true))));
  ASSERT_NE(slow.ReadUntil("data: {", 20000).find("data: {"), std::string::npos);
  auto t0 = std::chrono::steady_clock::now();
  auto r = s->Client().Post("/v1/completions",
                            R"({"model": "stories260K", "prompt": "Once", "max_tokens": 16})",
                            "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  EXPECT_EQ(StateOf(*s, kSlow), "busy");  // the other model is still generating
}

TEST(ServerLifecycleTest, EjectEndpoint) {
  auto s = ServerProcess::Start({});
  ASSERT_NE(s, nullptr);
  auto c = s->Client();
  auto load =
      c.Post("/api/generate", R"({"model": "stories260K", "stream": false})", "application/json");
  ASSERT_TRUE(load);
  EXPECT_EQ(BodyJson(load)["done_reason"], "load") << load->body;
  EXPECT_EQ(StateOf(*s, "stories260K"), "ready");
  auto e = c.Post("/api/eject", R"({"model": "stories260K", "level": "cold"})", "application/json");
  ASSERT_TRUE(e);
  ASSERT_EQ(e->status, 200) << e->body;
  json j = BodyJson(e);
  EXPECT_EQ(j["was_loaded"], true) << j;
  EXPECT_EQ(j["level"], "cold");
  EXPECT_TRUE(j["after"]["rss"].is_number());
  EXPECT_EQ(StateOf(*s, "stories260K"), "");
  auto again = c.Post("/api/eject", R"({"model": "stories260K"})", "application/json");
  EXPECT_EQ(BodyJson(again)["was_loaded"], false);
  auto bad =
      c.Post("/api/eject", R"({"model": "stories260K", "level": "hot"})", "application/json");
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(c.Post("/api/eject", R"({"model": "nope"})", "application/json")->status, 404);
  EXPECT_EQ(c.Post("/api/eject", R"({})", "application/json")->status, 400);
  EXPECT_EQ(c.Post("/api/eject", R"({"model": "stories260K", "force": "yes"})", "application/json")
                ->status,
            400);
}

TEST(ServerLifecycleTest, ForcedEjectStopsTheRunningReplyClearlyAndKeepsItsContext) {
  auto s = ServerProcess::Start({});
  ASSERT_NE(s, nullptr);
  std::optional<httplib::Result> reply;
  std::thread client([&] {
    reply.emplace(s->Client().Post("/v1/completions", LongCompletion(false), "application/json"));
  });
  ASSERT_TRUE(Eventually([&] { return StateOf(*s, kSlow) == "busy"; }, 10000));
  auto e = s->Client().Post("/api/eject", json{{"model", kSlow}, {"force", true}}.dump(),
                            "application/json");
  client.join();
  ASSERT_TRUE(e);
  ASSERT_EQ(e->status, 200) << e->body;
  EXPECT_EQ(BodyJson(e)["cancelled_requests"], true) << e->body;
  ASSERT_TRUE(reply.has_value() && *reply);
  ASSERT_EQ((*reply)->status, 200) << (*reply)->body;
  const json r = BodyJson(*reply);
  EXPECT_EQ(r["dormouse"]["stop_reason"], "cancel") << r;
  const int64_t generated = r["usage"]["completion_tokens"];
  EXPECT_LT(generated, 4000);
  // The checkpointed context comes back for the continuation.
  const std::string prompt = "Hello" + r["choices"][0]["text"].get<std::string>();
  auto next = s->Client().Post(
      "/v1/completions",
      json{{"model", kSlow}, {"prompt", prompt}, {"max_tokens", 2}, {"temperature", 0}}.dump(),
      "application/json");
  ASSERT_TRUE(next);
  ASSERT_EQ(next->status, 200) << next->body;
  EXPECT_EQ(BodyJson(next)["dormouse"]["restored_from_snapshot"], true) << next->body;
  EXPECT_GE(BodyJson(next)["usage"]["prompt_tokens_details"]["cached_tokens"].get<int64_t>(),
            generated);
}

TEST(ServerLifecycleTest, SessionsListShowAndDelete) {
  auto s = ServerProcess::Start({});
  ASSERT_NE(s, nullptr);
  auto c = s->Client();
  auto chat = c.Post("/v1/chat/completions",
                     R"({"model": "qwen2-20m-q8_0", "max_tokens": 3,
                         "messages": [{"role": "user", "content": "remember me"}]})",
                     "application/json");
  ASSERT_TRUE(chat);
  ASSERT_EQ(chat->status, 200) << chat->body;
  const std::string id = BodyJson(chat)["dormouse"]["session_id"];
  auto list = c.Get("/api/sessions");
  ASSERT_TRUE(list);
  bool listed = false;
  const json sessions = BodyJson(list);
  for (const json& one : sessions["sessions"]) listed |= one["id"] == id;
  EXPECT_TRUE(listed) << list->body;
  auto one = c.Get("/api/sessions/" + id);
  ASSERT_TRUE(one);
  ASSERT_EQ(one->status, 200) << one->body;
  json j = BodyJson(one);
  EXPECT_EQ(j["model"], "qwen2-20m-q8_0");
  EXPECT_EQ(j["state"], "live");
  EXPECT_GT(j["n_tokens"].get<int64_t>(), 0);
  ASSERT_GE(j["messages"].size(), 2u) << j;
  EXPECT_EQ(j["messages"][0]["content"], "remember me");
  EXPECT_EQ(c.Delete("/api/sessions/" + id)->status, 200);
  EXPECT_EQ(c.Get("/api/sessions/" + id)->status, 404);
  EXPECT_EQ(c.Delete("/api/sessions/" + id)->status, 404);
  EXPECT_EQ(c.Get("/api/sessions/not%20an%20id")->status, 404);
}

TEST(ServerLifecycleTest, MetricsAndHealth) {
  auto s = ServerProcess::Start({});
  ASSERT_NE(s, nullptr);
  auto c = s->Client();
  ASSERT_EQ(
      c.Post("/v1/completions", R"({"model": "stories260K", "prompt": "Once", "max_tokens": 4})",
             "application/json")
          ->status,
      200);
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  EXPECT_EQ(m->get_header_value("Content-Type").rfind("text/plain", 0), 0u);
  for (const char* line :
       {"# TYPE dormouse_resident_bytes gauge", "dormouse_resident_bytes{kind=\"anon\"} ",
        "dormouse_model_state{model=\"stories260K\",state=\"ready\"} 1",
        "dormouse_model_loads_total{model=\"stories260K\"} 1",
        "dormouse_model_ejects_total{model=\"stories260K\",reason=\"keep_alive\"} 0",
        "# TYPE dormouse_reload_seconds histogram", "dormouse_reload_seconds_bucket{le=\"+Inf\"} 1",
        "# TYPE dormouse_restore_seconds histogram", "dormouse_generate_tokens_per_second ",
        "dormouse_tokens_total{kind=\"generated\"} 4", "dormouse_snapshot_disk_bytes "}) {
    EXPECT_NE(m->body.find(line), std::string::npos) << line << "\n" << m->body;
  }
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(BodyJson(h)["status"], "ok");
}

TEST(ServerLifecycleTest, SigtermCheckpointsInFlightWorkAndExitsZero) {
  auto s = ServerProcess::Start({});
  ASSERT_NE(s, nullptr);
  const std::string data = s->data_dir();
  RawConnection conn(s->port());
  ASSERT_TRUE(conn.Send(HttpPost("/v1/completions", LongCompletion(true))));
  ASSERT_NE(conn.ReadUntil("data: {", 20000).find("data: {"), std::string::npos);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(s->Stop(SIGTERM), 0) << s->log();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  std::string rest = conn.ReadUntil("[DONE]", 2000);
  EXPECT_NE(rest.find("data: [DONE]"), std::string::npos) << "the stream was ended properly:\n"
                                                          << rest;
  // The same data dir after a restart: the interrupted conversation was saved.
  auto again = ServerProcess::Start({}, data);
  ASSERT_NE(again, nullptr);
  auto list = again->Client().Get("/api/sessions");
  ASSERT_TRUE(list);
  bool saved = false;
  const json sessions = BodyJson(list);
  for (const json& one : sessions["sessions"]) {
    saved |= one["state"] == "saved" && one["n_tokens"].get<int64_t>() > 1;
  }
  EXPECT_TRUE(saved) << list->body;
  EXPECT_EQ(again->Stop(SIGINT), 0) << again->log();
}

// A crash costs at most the request in flight: each reply's rows are appended to the
// session's snapshot journal after the reply goes out. Once the listing says they are on
// disk, a SIGKILL and a restart continue the conversation from disk with only the new
// text computed, and answer as a server that never crashed does.
TEST(ServerLifecycleTest, SigkillRightAfterAReplyLosesNoComputedToken) {
  const char* model = "stories260K";
  auto complete = [&](const ServerProcess& server, const std::string& prompt) {
    auto r = server.Client().Post(
        "/v1/completions",
        json{{"model", model}, {"prompt", prompt}, {"max_tokens", 24}, {"temperature", 0}}.dump(),
        "application/json");
    EXPECT_TRUE(r && r->status == 200) << (r ? r->body : "no response");
    return r ? BodyJson(r) : json::object();
  };
  auto s = ServerProcess::Start({});
  ASSERT_NE(s, nullptr);
  const std::string data = s->data_dir();
  // Two turns: the first writes the full snapshot, the second a journal record.
  std::string prompt = "Once upon a time, there was a little cat";
  json r1 = complete(*s, prompt);
  prompt += r1["choices"][0]["text"].get<std::string>() + " The next day";
  json r2 = complete(*s, prompt);
  const std::string id = r2["dormouse"]["session_id"];
  EXPECT_EQ(r1["dormouse"]["session_id"], id);
  prompt += r2["choices"][0]["text"].get<std::string>() + " Then";
  // Wait (on the server's own state, not on time) until the second reply is on disk.
  int64_t n_tokens = 0;
  for (int i = 0; i < 2000 && n_tokens == 0; ++i) {
    auto list = s->Client().Get("/api/sessions");
    ASSERT_TRUE(list);
    const json sessions = BodyJson(list);
    for (const json& one : sessions["sessions"]) {
      if (one["id"] == id && one["n_tokens_saved"] == one["n_tokens"]) n_tokens = one["n_tokens"];
    }
    if (n_tokens == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_GT(n_tokens, 0) << "the session never reached the disk";
  auto metrics = s->Client().Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("dormouse_snapshots_total{op=\"append\"} 1"), std::string::npos)
      << metrics->body;
  EXPECT_EQ(s->Stop(SIGKILL), 128 + SIGKILL);

  auto again = ServerProcess::Start({}, data);
  ASSERT_NE(again, nullptr);
  json r3 = complete(*again, prompt);
  EXPECT_EQ(r3["dormouse"]["session_id"], id);
  EXPECT_TRUE(r3["dormouse"]["restored_from_snapshot"].get<bool>());
  EXPECT_EQ(r3["dormouse"]["cached_tokens"].get<int64_t>(), n_tokens) << r3.dump();
  const int64_t new_tokens =
      r3["usage"]["prompt_tokens"].get<int64_t>() - r3["dormouse"]["cached_tokens"].get<int64_t>();
  EXPECT_EQ(r3["dormouse"]["prefilled_tokens"].get<int64_t>(), new_tokens);
  EXPECT_LE(new_tokens, 3) << "only \" Then\" is new";

  // The same three turns on a server that never crashed answer the same.
  auto steady = ServerProcess::Start({});
  ASSERT_NE(steady, nullptr);
  std::string p = "Once upon a time, there was a little cat";
  p += complete(*steady, p)["choices"][0]["text"].get<std::string>() + " The next day";
  p += complete(*steady, p)["choices"][0]["text"].get<std::string>() + " Then";
  ASSERT_EQ(p, prompt);
  EXPECT_EQ(r3["choices"][0]["text"], complete(*steady, p)["choices"][0]["text"]);
}

}  // namespace
}  // namespace dormouse::testing
