// The real server against bad input, missing API keys, oversized bodies and slow
// clients: each gets a 4xx in its API's error shape, and the server keeps serving.
#include "api/server_harness.h"

namespace dormouse::testing {
namespace {

const char* kChat = "qwen2-20m-q8_0";
const char* kText = "stories260K";

std::string ChatBody(const std::string& model, const std::string& extra = "") {
  return R"({"model": ")" + model + R"(", "messages": [{"role": "user", "content": "hi"}],
             "max_tokens": 2)" +
         (extra.empty() ? "" : ", " + extra) + "}";
}

void ExpectOpenAiError(const httplib::Result& r, int status, const std::string& param = "") {
  ASSERT_TRUE(r) << "no response";
  EXPECT_EQ(r->status, status) << r->body;
  json j = BodyJson(r);
  ASSERT_TRUE(j.is_object()) << r->body;
  ASSERT_TRUE(j["error"].is_object()) << r->body;
  EXPECT_TRUE(j["error"]["message"].is_string()) << r->body;
  EXPECT_FALSE(j["error"]["message"].get<std::string>().empty());
  EXPECT_TRUE(j["error"]["type"].is_string()) << r->body;
  EXPECT_TRUE(j["error"].contains("param")) << r->body;
  EXPECT_TRUE(j["error"].contains("code")) << r->body;
  if (!param.empty()) {
    EXPECT_EQ(j["error"]["param"], param) << r->body;
  }
}

void ExpectOllamaError(const httplib::Result& r, int status) {
  ASSERT_TRUE(r) << "no response";
  EXPECT_EQ(r->status, status) << r->body;
  json j = BodyJson(r);
  ASSERT_TRUE(j.is_object()) << r->body;
  EXPECT_TRUE(j["error"].is_string()) << r->body;
}

void ExpectHealthy(const ServerProcess& s) {
  auto c = s.Client();
  auto r =
      c.Post("/v1/completions", R"({"model": "stories260K", "prompt": "Once", "max_tokens": 3})",
             "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
}

class ServerInputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = ServerProcess::Start({"-c", "256", "--max-body", "64K"}).release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); }
  static ServerProcess* server_;
};
ServerProcess* ServerInputTest::server_ = nullptr;

TEST_F(ServerInputTest, MalformedJsonInEachShape) {
  auto c = server_->Client();
  ExpectOpenAiError(c.Post("/v1/chat/completions", "{\"model\": ", "application/json"), 400);
  ExpectOpenAiError(c.Post("/v1/completions", "", "application/json"), 400);
  ExpectOpenAiError(c.Post("/v1/completions", "\"a string\"", "application/json"), 400);
  ExpectOllamaError(c.Post("/api/chat", "{nope}", "application/json"), 400);
  ExpectOllamaError(c.Post("/api/generate", "[]", "application/json"), 400);
  ExpectOllamaError(c.Post("/api/eject", "{", "application/json"), 400);
  ExpectOllamaError(c.Post("/api/show", "\xff\xfe", "application/json"), 400);
  ExpectHealthy(*server_);
}

TEST_F(ServerInputTest, WrongTypesNameTheParameter) {
  auto c = server_->Client();
  ExpectOpenAiError(c.Post("/v1/chat/completions", ChatBody(kChat, R"("temperature": "hot")"),
                           "application/json"),
                    400, "temperature");
  ExpectOpenAiError(
      c.Post("/v1/chat/completions", ChatBody(kChat, R"("stop": {"a": 1})"), "application/json"),
      400, "stop");
  ExpectOpenAiError(
      c.Post("/v1/chat/completions", R"({"model": 5, "messages": []})", "application/json"), 400,
      "model");
  ExpectOpenAiError(
      c.Post("/v1/chat/completions",
             R"({"model": "qwen2-20m-q8_0", "messages": [{"role": "user", "content": 7}]})",
             "application/json"),
      400, "messages[0].content");
  auto r = c.Post("/api/generate",
                  R"({"model": "stories260K", "prompt": "x", "options": {"top_k": "many"}})",
                  "application/json");
  ExpectOllamaError(r, 400);
  EXPECT_NE(r->body.find("options.top_k"), std::string::npos) << r->body;
}

TEST_F(ServerInputTest, UnknownModelsAndNamesThatWouldLeaveTheModelsDir) {
  auto c = server_->Client();
  for (const char* name : {"no-such-model", "../models/stories260K", "/etc/passwd", "..",
                           "a/../../b", "stories260K.gguf/..", "%2e%2e"}) {
    json body = {{"model", name}, {"messages", {{{"role", "user"}, {"content", "x"}}}}};
    ExpectOpenAiError(c.Post("/v1/chat/completions", body.dump(), "application/json"), 404,
                      "model");
    json gen = {{"model", name}, {"prompt", "x"}, {"stream", false}};
    ExpectOllamaError(c.Post("/api/generate", gen.dump(), "application/json"), 404);
    ExpectOllamaError(c.Post("/api/show", json{{"model", name}}.dump(), "application/json"), 404);
  }
  ExpectOpenAiError(c.Get("/v1/models/no-such-model"), 404);
  ExpectHealthy(*server_);
}

TEST_F(ServerInputTest, NegativeAndHugeMaxTokens) {
  auto c = server_->Client();
  for (const char* v : {"-1", "0", "1e12", "99999999999999999999", "1.5", "\"10\""}) {
    ExpectOpenAiError(
        c.Post("/v1/completions",
               std::string(R"({"model": "stories260K", "prompt": "x", "max_tokens": )") + v + "}",
               "application/json"),
        400, "max_tokens");
  }
  ExpectOllamaError(
      c.Post("/api/generate",
             R"({"model": "stories260K", "prompt": "x", "options": {"num_predict": 100000}})",
             "application/json"),
      400);
}

TEST_F(ServerInputTest, PromptLongerThanTheContextIs413) {
  auto c = server_->Client();
  std::string prompt;
  for (int i = 0; i < 200; ++i) prompt += "Once upon a time ";
  json body = {{"model", kText}, {"prompt", prompt}, {"max_tokens", 1}};
  ExpectOpenAiError(c.Post("/v1/completions", body.dump(), "application/json"), 413);
  json stream = body;
  stream["stream"] = true;  // the status comes before any event
  ExpectOpenAiError(c.Post("/v1/completions", stream.dump(), "application/json"), 413);
  json gen = {{"model", kText}, {"prompt", prompt}};
  ExpectOllamaError(c.Post("/api/generate", gen.dump(), "application/json"), 413);
  ExpectHealthy(*server_);
}

TEST_F(ServerInputTest, BodyOverTheLimitIs413) {
  auto c = server_->Client();
  std::string big = R"({"model": "stories260K", "prompt": ")" + std::string(100 << 10, 'a') + "\"}";
  ExpectOpenAiError(c.Post("/v1/completions", big, "application/json"), 413);
  ExpectOllamaError(c.Post("/api/generate", big, "application/json"), 413);
  ExpectHealthy(*server_);
}

TEST_F(ServerInputTest, UnknownEndpointIs404InTheShapeOfItsApi) {
  auto c = server_->Client();
  ExpectOpenAiError(c.Get("/v1/nothing"), 404);
  ExpectOllamaError(c.Get("/api/nothing"), 404);
  ExpectOpenAiError(c.Get("/v1/chat/completions"), 404);  // GET where POST belongs
}

TEST_F(ServerInputTest, ClientsThatStallAreDroppedAndOthersStillServed) {
  // This server gives clients one second per read.
  auto s = ServerProcess::Start({"--timeout", "1"});
  ASSERT_NE(s, nullptr);
  auto t0 = std::chrono::steady_clock::now();
  RawConnection half_body(s->port());
  ASSERT_TRUE(
      half_body.Send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                     "Content-Type: application/json\r\n\r\n{\"model\""));
  RawConnection half_headers(s->port());
  ASSERT_TRUE(half_headers.Send("POST /api/generate HTTP/1.1\r\nHost: x\r\n"));
  RawConnection silent(s->port());
  ExpectHealthy(*s);                               // served while three connections stall
  std::string a = half_body.ReadUntil("}", 8000);  // through the JSON body, not just headers
  EXPECT_EQ(a.rfind("HTTP/1.1 400", 0), 0u) << a;
  EXPECT_NE(a.find("did not arrive within 1 s"), std::string::npos) << a;
  std::string b = half_headers.ReadUntil("\r\n\r\n", 8000);
  EXPECT_EQ(b.rfind("HTTP/1.1 400", 0), 0u) << b;
  std::string c = silent.ReadUntil("never", 8000);  // closed without a word
  EXPECT_EQ(c, "");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(8));
  ExpectHealthy(*s);
  EXPECT_EQ(s->Stop(), 0) << s->log();
}

TEST(ServerAuthTest, ApiKeyGuardsEverythingButHealth) {
  auto s = ServerProcess::Start({"--api-key", "s3cret"});
  ASSERT_NE(s, nullptr);
  auto c = s->Client();
  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto r = c.Get("/v1/models");
  ExpectOpenAiError(r, 401);
  EXPECT_EQ(BodyJson(r)["error"]["code"], "invalid_api_key");
  EXPECT_EQ(r->get_header_value("WWW-Authenticate"), "Bearer");
  ExpectOllamaError(c.Get("/api/tags"), 401);
  ExpectOllamaError(c.Get("/api/ps"), 401);
  ExpectOllamaError(c.Get("/metrics"), 401);
  ExpectOllamaError(c.Get("/api/sessions"), 401);
  ExpectOllamaError(
      c.Post("/api/generate", R"({"model": "stories260K", "prompt": "x"})", "application/json"),
      401);
  ExpectOpenAiError(c.Post("/v1/completions", "{}", "application/json"), 401);
  httplib::Headers wrong = {{"Authorization", "Bearer s3cre"}};
  ExpectOpenAiError(c.Get("/v1/models", wrong), 401);
  httplib::Headers basic = {{"Authorization", "Basic czNjcmV0"}};
  ExpectOpenAiError(c.Get("/v1/models", basic), 401);
  c.set_bearer_token_auth("s3cret");
  auto ok = c.Get("/v1/models");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  auto gen =
      c.Post("/v1/completions", R"({"model": "stories260K", "prompt": "x", "max_tokens": 2})",
             "application/json");
  ASSERT_TRUE(gen);
  EXPECT_EQ(gen->status, 200) << gen->body;
  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
}

TEST(ServerBindTest, LoopbackByDefault) {
  auto s = ServerProcess::Start({});
  ASSERT_NE(s, nullptr);
  EXPECT_NE(s->log().find("listening on http://127.0.0.1:"), std::string::npos) << s->log();
}

}  // namespace
}  // namespace dormouse::testing
