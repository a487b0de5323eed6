// Every thread's top level catches: an allocation failure injected into a load or into
// a generation fails that request with a 500 naming the cause, and the server goes on
// serving (a failed load leaves the model unloaded, so the next request loads it).
#include <gtest/gtest.h>

#include <atomic>
#include <new>
#include <nlohmann/json.hpp>

#include "in_process_server.h"

namespace dormouse {
namespace {

using nlohmann::json;
using testing::InProcessServer;

const char* kModel = "qwen2-20m-q8_0";

std::string ChatBody(const std::string& user) {
  return json{{"model", kModel},
              {"messages", {{{"role", "user"}, {"content", user}}}},
              {"max_tokens", 4},
              {"temperature", 0}}
      .dump();
}

TEST(FaultTest, AllocationFailureInALoadIs500AndTheModelLoadsOnTheNextRequest) {
  std::atomic<int> loads{0};
  RuntimeOptions o;
  o.before_load = [&](const std::string&) {
    if (loads++ == 0) throw std::bad_alloc();
  };
  InProcessServer srv(o);
  httplib::Client c = srv.Client();
  auto r = c.Post("/v1/chat/completions", ChatBody("hello"), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_NE(r->body.find("bad_alloc"), std::string::npos) << r->body;
  std::optional<ModelStatus> st = srv.runtime().manager().Find(kModel);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->state, ModelState::kUnloaded);
  ASSERT_TRUE(st->last_transition.has_value());
  EXPECT_EQ(st->last_transition->reason, Reason::kLoadFailed);

  auto again = c.Post("/v1/chat/completions", ChatBody("hello"), "application/json");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200) << again->body;
  EXPECT_EQ(loads.load(), 2);
}

TEST(FaultTest, AllocationFailureInAGenerationIs500AndTheServerKeepsServing) {
  std::atomic<int> pieces{0};
  RuntimeOptions o;
  o.hooks.on_piece = [&](const CompletionRequest&) {
    if (pieces++ == 1) throw std::bad_alloc();
  };
  InProcessServer srv(o);
  httplib::Client c = srv.Client();
  auto r = c.Post("/v1/chat/completions", ChatBody("hello"), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_NE(r->body.find("bad_alloc"), std::string::npos) << r->body;
  // The same conversation again (its slot was dropped) and another one: both served.
  for (const char* user : {"hello", "something else"}) {
    auto next = c.Post("/v1/chat/completions", ChatBody(user), "application/json");
    ASSERT_TRUE(next);
    EXPECT_EQ(next->status, 200) << next->body;
  }
  EXPECT_EQ(srv.runtime().service().Metrics().requests_failed, 1);
}

}  // namespace
}  // namespace dormouse
