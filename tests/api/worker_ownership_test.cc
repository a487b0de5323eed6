// Principle 8: the model's worker owns its slots. While a generation is held mid-way
// (by a test hook, explicitly synchronized), session listing, deletion, metrics and
// status answer; before, listing locked the slots a generation holds to its end.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "in_process_server.h"

namespace dormouse {
namespace {

using nlohmann::json;
using testing::InProcessServer;

std::string ChatBody(const std::string& user) {
  return json{{"model", "qwen2-20m-q8_0"},
              {"messages", {{{"role", "user"}, {"content", user}}}},
              {"max_tokens", 6},
              {"temperature", 0}}
      .dump();
}

// Holds the generation at its first piece once armed, until released.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool armed = false, held = false, released = false;
  void AtPiece() {
    std::unique_lock<std::mutex> lock(mu);
    if (!armed || released) return;
    held = true;
    cv.notify_all();
    cv.wait(lock, [&] { return released; });
  }
  bool WaitHeld() {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(60), [&] { return held; });
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu);
    released = true;
    cv.notify_all();
  }
};

TEST(WorkerOwnershipTest, ListingMetricsStatusAndDeleteAnswerWhileAGenerationRuns) {
  Gate gate;
  RuntimeOptions o;
  o.hooks.on_piece = [&](const CompletionRequest&) { gate.AtPiece(); };
  InProcessServer srv(o);
  // The generous timeout only keeps a regression from hanging the suite.
  httplib::Client c = srv.Client(/*timeout_seconds=*/10);
  auto first = c.Post("/v1/chat/completions", ChatBody("An earlier chat."), "application/json");
  ASSERT_TRUE(first && first->status == 200);
  const std::string earlier = json::parse(first->body)["dormouse"]["session_id"];

  {
    std::lock_guard<std::mutex> lock(gate.mu);
    gate.armed = true;
  }
  int held_status = 0;
  std::thread held([&] {
    httplib::Client hc = srv.Client(120);
    auto r =
        hc.Post("/v1/chat/completions", ChatBody("A long answer, please."), "application/json");
    held_status = r ? r->status : -1;
  });
  struct Join {  // releases and joins however the test ends
    Gate& g;
    std::thread& t;
    ~Join() {
      g.Release();
      t.join();
    }
  } join{gate, held};
  ASSERT_TRUE(gate.WaitHeld());

  auto sessions = c.Get("/api/sessions");
  ASSERT_TRUE(sessions) << "GET /api/sessions waited behind the generation";
  EXPECT_EQ(sessions->status, 200);
  EXPECT_EQ(json::parse(sessions->body)["sessions"].size(), 2u);  // the held one is live
  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics) << "GET /metrics waited behind the generation";
  EXPECT_EQ(metrics->status, 200);
  auto ps = c.Get("/api/ps");
  ASSERT_TRUE(ps) << "GET /api/ps waited behind the generation";
  EXPECT_EQ(ps->status, 200);
  auto del = c.Delete("/api/sessions/" + earlier);
  ASSERT_TRUE(del) << "DELETE /api/sessions waited behind the generation";
  EXPECT_EQ(del->status, 200);

  gate.Release();
  held.join();
  held = std::thread([] {});  // Join's destructor joins this one
  EXPECT_EQ(held_status, 200);
  auto after = c.Get("/api/sessions/" + earlier);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 404);
}

}  // namespace
}  // namespace dormouse
