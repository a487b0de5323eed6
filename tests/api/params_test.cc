// Request parsing and validation of the three APIs, without a server.
#include <gtest/gtest.h>

#include "api/json_params.h"
#include "api/ollama_api.h"
#include "api/openai_api.h"

namespace dormouse::api {
namespace {

using nlohmann::json;

template <typename T>
ApiError ErrorOf(const std::variant<T, ApiError>& v) {
  EXPECT_TRUE(std::holds_alternative<ApiError>(v));
  return std::holds_alternative<ApiError>(v) ? std::get<ApiError>(v) : ApiError{};
}

TEST(JsonParams, BodyMustBeOneObject) {
  EXPECT_EQ(ErrorOf(ParseJsonObject("")).status, 400);
  ApiError bad = ErrorOf(ParseJsonObject("{\"model\": "));
  EXPECT_NE(bad.message.find("malformed JSON"), std::string::npos) << bad.message;
  EXPECT_NE(bad.message.find("line 1"), std::string::npos) << bad.message;
  ApiError arr = ErrorOf(ParseJsonObject("[1]"));
  EXPECT_NE(arr.message.find("an array"), std::string::npos) << arr.message;
  EXPECT_TRUE(std::holds_alternative<json>(ParseJsonObject(R"({"a": 1})")));
  // A number too large for a double throws out_of_range, not parse_error (found by
  // ollama_request_fuzz): still a 400 naming the problem.
  ApiError huge = ErrorOf(ParseJsonObject(R"({"temperature": 55E555})"));
  EXPECT_EQ(huge.status, 400);
  EXPECT_NE(huge.message.find("number overflow"), std::string::npos) << huge.message;
}

TEST(JsonParams, TypedGettersKeepTheFirstError) {
  json j = {{"s", "x"}, {"n", 1.5}, {"i", 3}, {"f", 3.0}, {"b", true}, {"z", nullptr}};
  ParamReader r(j);
  EXPECT_EQ(r.String("s"), "x");
  EXPECT_EQ(r.Number("n", 0, 2), 1.5);
  EXPECT_EQ(r.Integer("i", 0, 10), 3);
  EXPECT_EQ(r.Integer("f", 0, 10), 3);  // 3.0 is an integer
  EXPECT_EQ(r.Bool("b"), true);
  EXPECT_FALSE(r.String("z").has_value());  // null is absent
  EXPECT_FALSE(r.String("missing").has_value());
  EXPECT_TRUE(r.ok());
  EXPECT_FALSE(r.Integer("n", 0, 10).has_value());  // 1.5 is not
  EXPECT_FALSE(r.String("i").has_value());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().param, "n");
  EXPECT_EQ(r.error().message, "n must be an integer in [0, 10], got 1.5");
}

TEST(JsonParams, RangesAndPrefixInMessages) {
  json j = {{"temperature", 3}, {"top_p", 0}};
  ParamReader r(j, "options.");
  EXPECT_FALSE(r.Number("temperature", 0, 2).has_value());
  EXPECT_EQ(r.error().param, "options.temperature");
  EXPECT_EQ(r.error().message, "options.temperature must be in [0, 2], got 3");
  ParamReader p(j);
  EXPECT_FALSE(p.Number("top_p", 0, 1, /*lo_open=*/true).has_value());
  EXPECT_EQ(p.error().message, "top_p must be in (0, 1], got 0");
}

TEST(JsonParams, HugeIntegersAreRangeErrorsNotOverflow) {
  json j = json::parse(R"({"a": 18446744073709551615, "b": 1e300, "c": -9223372036854775808})");
  ParamReader r(j);
  EXPECT_FALSE(r.Integer("a", 0, 100).has_value());
  ParamReader r2(j);
  EXPECT_FALSE(r2.Integer("b", 0, 100).has_value());
  ParamReader r3(j);
  EXPECT_FALSE(r3.Integer("c", 0, 100).has_value());
  EXPECT_FALSE(r.ok() || r2.ok() || r3.ok());
}

TEST(JsonParams, StopStrings) {
  json one = {{"stop", "x"}}, many = {{"stop", {"a", "b", "c", "d", "e"}}},
       mixed = {{"stop", {"a", 1}}}, empty = {{"stop", {""}}};
  ParamReader r(one);
  EXPECT_EQ(r.Strings("stop", 4, 8), std::vector<std::string>{"x"});
  ParamReader m(many);
  EXPECT_FALSE(m.Strings("stop", 4, 8).has_value());
  EXPECT_NE(m.error().message.find("at most 4"), std::string::npos);
  ParamReader x(mixed);
  EXPECT_FALSE(x.Strings("stop", 4, 8).has_value());
  EXPECT_FALSE(x.ok());
  ParamReader e(empty);
  EXPECT_FALSE(e.Strings("stop", 4, 8).has_value());
  EXPECT_FALSE(e.ok());
}

TEST(JsonParams, ServiceErrorsMapToStatuses) {
  EXPECT_EQ(HttpStatusFor(ErrorKind::kBadRequest), 400);
  EXPECT_EQ(HttpStatusFor(ErrorKind::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(ErrorKind::kTooLarge), 413);
  EXPECT_EQ(HttpStatusFor(ErrorKind::kOverloaded), 429);
  EXPECT_EQ(HttpStatusFor(ErrorKind::kUnavailable), 503);
  EXPECT_EQ(HttpStatusFor(ErrorKind::kInternal), 500);
  EXPECT_EQ(FromServiceError({ErrorKind::kOverloaded, "full"}).code, "rate_limit_exceeded");
}

const Limits kLimits;

TEST(OpenAiParse, ChatRequestBecomesOneCompletionRequest) {
  json body = json::parse(R"({
    "model": "m", "messages": [
      {"role": "developer", "content": "be brief"},
      {"role": "user", "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]},
      {"role": "assistant", "content": null}],
    "max_tokens": 7, "temperature": 0.5, "top_p": 0.9, "seed": 11, "stop": "END",
    "stream": true, "stream_options": {"include_usage": true}, "presence_penalty": 0, "user": "u"})");
  auto v = ParseOpenAiChat(body, kLimits);
  ASSERT_TRUE(std::holds_alternative<OpenAiRequest>(v)) << ErrorOf(v).message;
  const OpenAiRequest& o = std::get<OpenAiRequest>(v);
  EXPECT_TRUE(o.stream);
  EXPECT_TRUE(o.include_usage);
  const CompletionRequest& q = o.request;
  EXPECT_TRUE(q.chat);
  EXPECT_EQ(q.model, "m");
  ASSERT_EQ(q.messages.size(), 3u);
  EXPECT_EQ(q.messages[0].role, "system");
  EXPECT_EQ(q.messages[1].content, "hi there");
  EXPECT_EQ(q.messages[2].content, "");
  EXPECT_EQ(q.max_tokens, 7);
  EXPECT_FLOAT_EQ(q.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(q.sampling.top_p, 0.9f);
  EXPECT_EQ(q.sampling.top_k, 0);  // OpenAI semantics: no top-k unless asked
  EXPECT_EQ(q.sampling.seed, 11u);
  EXPECT_EQ(q.stop, std::vector<std::string>{"END"});
}

TEST(OpenAiParse, RejectsWhatItCannotHonour) {
  auto err = [](const char* text) { return ErrorOf(ParseOpenAiChat(json::parse(text), kLimits)); };
  EXPECT_EQ(err(R"({"messages": [{"role": "user", "content": "x"}]})").param, "model");
  EXPECT_EQ(err(R"({"model": "m"})").param, "messages");
  EXPECT_EQ(err(R"({"model": "m", "messages": []})").param, "messages");
  EXPECT_EQ(err(R"({"model": "m", "messages": [{"role": "wizard", "content": "x"}]})").param,
            "messages[0].role");
  EXPECT_EQ(
      err(R"({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]})")
          .param,
      "messages[0].content");
  const char* ok_msgs = R"("messages": [{"role": "user", "content": "x"}])";
  auto with = [&](const std::string& extra) {
    return err(("{\"model\": \"m\", " + std::string(ok_msgs) + ", " + extra + "}").c_str());
  };
  EXPECT_EQ(with(R"("temperature": "hot")").param, "temperature");
  EXPECT_EQ(with(R"("temperature": 2.5)").param, "temperature");
  EXPECT_EQ(with(R"("max_tokens": 0)").param, "max_tokens");
  EXPECT_EQ(with(R"("max_tokens": -5)").param, "max_tokens");
  EXPECT_EQ(with(R"("max_tokens": 4097)").param, "max_tokens");
  EXPECT_EQ(with(R"("n": 3)").param, "n");
  EXPECT_EQ(with(R"("logprobs": true)").param, "logprobs");
  EXPECT_EQ(with(R"("frequency_penalty": 0.5)").param, "frequency_penalty");
  EXPECT_EQ(with(R"("seed": "7")").param, "seed");
  EXPECT_EQ(with(R"("stream": "yes")").param, "stream");
  EXPECT_EQ(with(R"("tools": [{"type": "function"}])").param, "tools");
  EXPECT_EQ(with(R"("response_format": {"type": "json_object"})").param, "response_format");
}

TEST(OpenAiParse, CompletionPrompt) {
  auto ok = ParseOpenAiCompletion(json{{"model", "m"}, {"prompt", {"one"}}}, kLimits);
  ASSERT_TRUE(std::holds_alternative<OpenAiRequest>(ok));
  EXPECT_EQ(std::get<OpenAiRequest>(ok).request.prompt, "one");
  EXPECT_FALSE(std::get<OpenAiRequest>(ok).request.chat);
  EXPECT_EQ(ErrorOf(ParseOpenAiCompletion(json{{"model", "m"}}, kLimits)).param, "prompt");
  EXPECT_EQ(ErrorOf(ParseOpenAiCompletion(json{{"model", "m"}, {"prompt", {1, 2}}}, kLimits)).param,
            "prompt");
  EXPECT_EQ(
      ErrorOf(ParseOpenAiCompletion(json{{"model", "m"}, {"prompt", "x"}, {"echo", true}}, kLimits))
          .param,
      "echo");
}

TEST(OpenAiShape, ResponsesAndChunks) {
  CompletionResult r;
  r.text = "hello";
  r.stop = StopReason::kMaxTokens;
  r.prompt_tokens = 10;
  r.cached_tokens = 7;
  r.completion_tokens = 2;
  OpenAiResponseId id = NewOpenAiResponseId("m", true);
  EXPECT_EQ(id.id.rfind("chatcmpl-", 0), 0u);
  json j = OpenAiResponse(id, r);
  EXPECT_EQ(j["choices"][0]["message"]["content"], "hello");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["total_tokens"], 12);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 7);
  json first = OpenAiChunk(id, "he", true, nullptr, false);
  EXPECT_EQ(first["choices"][0]["delta"], (json{{"role", "assistant"}, {"content", "he"}}));
  EXPECT_FALSE(first.contains("usage"));
  json last = OpenAiChunk(id, "", false, "stop", true);
  EXPECT_EQ(last["choices"][0]["delta"], json::object());
  EXPECT_EQ(last["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(last["usage"].is_null());
  EXPECT_EQ(OpenAiUsageChunk(id, r)["choices"], json::array());
  OpenAiResponseId cid = NewOpenAiResponseId("m", false);
  EXPECT_EQ(OpenAiChunk(cid, "x", true, nullptr, false)["choices"][0]["text"], "x");
  EXPECT_STREQ(FinishReason(StopReason::kEndOfGeneration), "stop");
  EXPECT_STREQ(FinishReason(StopReason::kStopString), "stop");
  EXPECT_STREQ(FinishReason(StopReason::kContextFull), "length");
}

TEST(OllamaParse, KeepAliveAsOllamaDocumentsIt) {
  auto ka = [](json v, bool* zero) {
    json body = {{"keep_alive", v}};
    ParamReader r(body);
    auto out = ReadKeepAlive(r, zero);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return out;
  };
  bool zero = false;
  auto five = ka("5m", &zero);
  ASSERT_TRUE(five);
  EXPECT_EQ(five->kind, KeepAlive::Kind::kFor);
  EXPECT_EQ(five->duration, std::chrono::minutes(5));
  EXPECT_FALSE(zero);
  auto secs = ka(30, &zero);
  EXPECT_EQ(secs->duration, std::chrono::seconds(30));
  EXPECT_EQ(ka(0, &zero)->duration, Clock::Duration::zero());
  EXPECT_TRUE(zero);
  EXPECT_TRUE(ka("0", &zero) && zero);
  EXPECT_EQ(ka(-1, &zero)->kind, KeepAlive::Kind::kForever);
  EXPECT_EQ(ka("-1m", &zero)->kind, KeepAlive::Kind::kForever);
  EXPECT_EQ(ka(1e300, &zero)->kind, KeepAlive::Kind::kForever);
  json bad = {{"keep_alive", "soon"}};
  ParamReader r(bad);
  EXPECT_FALSE(ReadKeepAlive(r, &zero).has_value());
  EXPECT_EQ(r.error().param, "keep_alive");
  json wrong = {{"keep_alive", true}};
  ParamReader w(wrong);
  EXPECT_FALSE(ReadKeepAlive(w, &zero).has_value());
  EXPECT_FALSE(w.ok());
}

TEST(OllamaParse, ChatAndGenerate) {
  json chat = json::parse(R"({"model": "m", "messages": [{"role": "user", "content": "hi"}],
    "options": {"num_predict": 5, "temperature": 0, "top_k": 3, "repeat_penalty": 1.1,
                "stop": ["a"], "num_ctx": 8192}, "keep_alive": 0})");
  auto v = ParseOllamaChat(chat, kLimits);
  ASSERT_TRUE(std::holds_alternative<OllamaRequest>(v)) << ErrorOf(v).message;
  const OllamaRequest& o = std::get<OllamaRequest>(v);
  EXPECT_TRUE(o.stream);  // Ollama streams unless told not to
  EXPECT_TRUE(o.unload);
  EXPECT_FALSE(o.load_only);
  EXPECT_EQ(o.request.max_tokens, 5);
  EXPECT_EQ(o.request.sampling.top_k, 3);
  EXPECT_EQ(o.request.stop, std::vector<std::string>{"a"});
  auto load = ParseOllamaChat(json{{"model", "m"}, {"messages", json::array()}}, kLimits);
  EXPECT_TRUE(std::get<OllamaRequest>(load).load_only);
  auto gen = ParseOllamaGenerate(json{{"model", "m"}, {"prompt", "p"}, {"stream", false}}, kLimits);
  EXPECT_FALSE(std::get<OllamaRequest>(gen).stream);
  EXPECT_EQ(std::get<OllamaRequest>(gen).request.prompt, "p");
  auto empty = ParseOllamaGenerate(json{{"model", "m"}}, kLimits);
  EXPECT_TRUE(std::get<OllamaRequest>(empty).load_only);
  auto forever =
      ParseOllamaGenerate(json{{"model", "m"}, {"options", {{"num_predict", -2}}}}, kLimits);
  EXPECT_EQ(std::get<OllamaRequest>(forever).request.max_tokens, -1);
}

TEST(OllamaParse, BadInputNamesTheField) {
  auto err = [](const char* text) {
    return ErrorOf(ParseOllamaGenerate(json::parse(text), kLimits));
  };
  EXPECT_EQ(err(R"({"prompt": "x"})").param, "model");
  EXPECT_EQ(err(R"({"model": "m", "options": {"temperature": "hot"}})").param,
            "options.temperature");
  EXPECT_EQ(err(R"({"model": "m", "options": {"num_predict": 0}})").param, "options.num_predict");
  EXPECT_EQ(err(R"({"model": "m", "options": {"num_predict": 1e9}})").param, "options.num_predict");
  EXPECT_EQ(err(R"({"model": "m", "options": [1]})").param, "options");
  EXPECT_EQ(err(R"({"model": "m", "format": "json"})").param, "format");
  EXPECT_EQ(err(R"({"model": "m", "images": ["aGk="]})").param, "images");
  EXPECT_EQ(err(R"({"model": "m", "prompt": 5})").param, "prompt");
  EXPECT_EQ(ErrorOf(ParseOllamaChat(json::parse(R"({"model": "m", "messages": [{"role": "x"}]})"),
                                    kLimits))
                .param,
            "messages[0].role");
  EXPECT_EQ(
      ErrorOf(ParseOllamaChat(json::parse(R"({"model": "m", "messages": "hi"})"), kLimits)).param,
      "messages");
}

// Every required field, and every known field sent with the wrong type, is a 400 that
// names the field. One row per case: the body and the parameter the error must name.
struct BadBody {
  const char* body;
  const char* param;
};

template <typename Parse>
void ExpectEachNamesItsField(Parse parse, std::initializer_list<BadBody> rows) {
  for (const BadBody& row : rows) {
    SCOPED_TRACE(row.body);
    auto v = parse(json::parse(row.body), kLimits);
    ASSERT_TRUE(std::holds_alternative<ApiError>(v)) << "accepted";
    const ApiError& e = std::get<ApiError>(v);
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.param, row.param) << e.message;
    EXPECT_NE(e.message.find(row.param), std::string::npos) << e.message;
  }
}

#define M R"("model": "m", )"
#define MSG R"("messages": [{"role": "user", "content": "x"}], )"

TEST(OpenAiParse, EveryRequiredOrMistypedFieldIsNamed) {
  ExpectEachNamesItsField(
      ParseOpenAiChat,
      {
          {R"({})", "model"},
          {R"({"model": 5})", "model"},
          {R"({"model": ""})", "model"},
          {R"({)" M R"("messages": {}})", "messages"},
          {R"({)" M R"("messages": [5]})", "messages[0]"},
          {R"({)" M R"("messages": [{"content": "x"}]})", "messages[0].role"},
          {R"({)" M R"("messages": [{"role": 1, "content": "x"}]})", "messages[0].role"},
          {R"({)" M R"("messages": [{"role": "user"}]})", "messages[0].content"},
          {R"({)" M R"("messages": [{"role": "system", "content": null}]})", "messages[0].content"},
          {R"({)" M R"("messages": [{"role": "user", "content": 5}]})", "messages[0].content"},
          {R"({)" M R"("messages": [{"role": "user", "content": "x", "name": 1}]})",
           "messages[0].name"},
          {R"({)" M MSG R"("top_p": "x"})", "top_p"},
          {R"({)" M MSG R"("top_k": 1.5})", "top_k"},
          {R"({)" M MSG R"("min_p": []})", "min_p"},
          {R"({)" M MSG R"("repeat_penalty": "x"})", "repeat_penalty"},
          {R"({)" M MSG R"("max_completion_tokens": "9"})", "max_completion_tokens"},
          {R"({)" M MSG R"("stop": 5})", "stop"},
          {R"({)" M MSG R"("stream_options": true})", "stream_options"},
          {R"({)" M MSG R"("stream_options": {"include_usage": 1}})",
           "stream_options.include_usage"},
          {R"({)" M MSG R"("n": "1"})", "n"},
          {R"({)" M MSG R"("presence_penalty": "0"})", "presence_penalty"},
          {R"({)" M MSG R"("logprobs": 1})", "logprobs"},
          {R"({)" M MSG R"("top_logprobs": 2})", "top_logprobs"},
          {R"({)" M MSG R"("logit_bias": {"50256": -100}})", "logit_bias"},
          {R"({)" M MSG R"("logit_bias": [1]})", "logit_bias"},
          {R"({)" M MSG R"("user": 5})", "user"},
          {R"({)" M MSG R"("store": "yes"})", "store"},
          {R"({)" M MSG R"("metadata": "x"})", "metadata"},
          {R"({)" M MSG R"("tool_choice": 1})", "tool_choice"},
          {R"({)" M MSG R"("tools": {}})", "tools"},
          {R"({)" M MSG R"("response_format": "text"})", "response_format"},
      });
  ExpectEachNamesItsField(ParseOpenAiCompletion,
                          {
                              {R"({"prompt": "x"})", "model"},
                              {R"({"model": "m"})", "prompt"},
                              {R"({)" M R"("prompt": {"a": 1}})", "prompt"},
                              {R"({)" M R"("prompt": ["a", "b"]})", "prompt"},
                              {R"({)" M R"("prompt": "x", "echo": "no"})", "echo"},
                              {R"({)" M R"("prompt": "x", "suffix": "end"})", "suffix"},
                              {R"({)" M R"("prompt": "x", "best_of": 2})", "best_of"},
                              {R"({)" M R"("prompt": "x", "max_tokens": "5"})", "max_tokens"},
                          });
}

TEST(OllamaParse, EveryRequiredOrMistypedFieldIsNamed) {
  ExpectEachNamesItsField(
      ParseOllamaChat,
      {
          {R"({"messages": []})", "model"},
          {R"({"model": ["m"]})", "model"},
          {R"({)" M R"("messages": [5]})", "messages[0]"},
          {R"({)" M R"("messages": [{"content": "x"}]})", "messages[0].role"},
          {R"({)" M R"("messages": [{"role": "user", "content": 1}]})", "messages[0].content"},
          {R"({)" M R"("messages": [{"role": "user", "content": "x", "images": "a"}]})",
           "messages[0].images"},
          {R"({)" M R"("messages": [{"role": "user", "content": "x", "thinking": 1}]})",
           "messages[0].thinking"},
          {R"({)" M R"("stream": "no"})", "stream"},
          {R"({)" M R"("keep_alive": true})", "keep_alive"},
          {R"({)" M R"("keep_alive": "soon"})", "keep_alive"},
          {R"({)" M R"("think": 1})", "think"},
          {R"({)" M R"("tools": [{"type": "function"}]})", "tools"},
          {R"({)" M R"("options": {"top_k": "4"}})", "options.top_k"},
          {R"({)" M R"("options": {"seed": 1.5}})", "options.seed"},
          {R"({)" M R"("options": {"stop": [1]}})", "options.stop"},
          {R"({)" M R"("options": {"num_ctx": "4096"}})", "options.num_ctx"},
          {R"({)" M R"("options": {"num_thread": 1.5}})", "options.num_thread"},
          {R"({)" M R"("options": {"typical_p": "x"}})", "options.typical_p"},
          {R"({)" M R"("options": {"use_mmap": 1}})", "options.use_mmap"},
      });
  ExpectEachNamesItsField(
      ParseOllamaGenerate,
      {
          {R"({"prompt": "x"})", "model"},
          {R"({)" M R"("prompt": ["x"]})", "prompt"},
          {R"({)" M R"("system": 1})", "system"},
          {R"({)" M R"("raw": "yes"})", "raw"},
          {R"({)" M R"("suffix": 1})", "suffix"},
          {R"({)" M R"("template": 1})", "template"},
          {R"({)" M R"("context": [1, 2]})", "context"},
          {R"({)" M R"("context": "x"})", "context"},
          {R"({)" M R"("options": {"repeat_last_n": "64"}})", "options.repeat_last_n"},
      });
}

TEST(OllamaParse, AcceptedUnusedFieldsOfTheRightTypePass) {
  auto v = ParseOllamaChat(json::parse(R"({"model": "m", "think": false, "truncate": true,
      "messages": [{"role": "user", "content": "x", "thinking": ""}],
      "options": {"num_ctx": 4096, "num_thread": 4, "use_mmap": true, "typical_p": 0.9}})"),
                           kLimits);
  EXPECT_TRUE(std::holds_alternative<OllamaRequest>(v)) << ErrorOf(v).message;
  auto o = ParseOpenAiChat(json::parse(R"({"model": "m", "user": "u", "store": false,
      "logit_bias": {}, "tool_choice": "none", "top_logprobs": 0,
      "messages": [{"role": "assistant", "content": null}, {"role": "user", "content": "x"}]})"),
                           kLimits);
  EXPECT_TRUE(std::holds_alternative<OpenAiRequest>(o)) << ErrorOf(o).message;
}

#undef M
#undef MSG

TEST(OllamaShape, StatsAndFormats) {
  CompletionResult r;
  r.stop = StopReason::kEndOfGeneration;
  r.total_seconds = 1.5;
  r.load_seconds = 0.25;
  r.prefilled_tokens = 4;
  r.completion_tokens = 3;
  json s = OllamaStats(r);
  EXPECT_EQ(s["done_reason"], "stop");
  EXPECT_EQ(s["total_duration"], 1500000000);
  EXPECT_EQ(s["load_duration"], 250000000);
  EXPECT_EQ(s["prompt_eval_count"], 4);
  EXPECT_EQ(s["eval_count"], 3);
  EXPECT_EQ(Rfc3339(std::chrono::system_clock::time_point(std::chrono::seconds(86400 * 365))),
            "1971-01-01T00:00:00.000000000Z");
  EXPECT_EQ(HumanCount(292800), "292.80K");
  EXPECT_EQ(HumanCount(16020000), "16.02M");
  EXPECT_EQ(HumanCount(1100000000), "1.1B");
  EXPECT_EQ(FileTypeName(7), "Q8_0");
  EXPECT_EQ(FileTypeName(15), "Q4_K_M");
  EXPECT_EQ(FileTypeName(999), "type 999");
}

}  // namespace
}  // namespace dormouse::api
