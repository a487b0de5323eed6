// Chat templates render exactly as Hugging Face transformers (Python Jinja2) does.
//
// tests/engine/data/chat_templates/ holds real model templates (*.jinja) and their
// renderings (*.golden), produced offline by generate_goldens.py with Jinja2 configured
// like transformers' apply_chat_template. The conversations below mirror CASES there.
#include "engine/chat/chat_template.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "engine/chat/jinja_interp.h"
#include "engine/chat/jinja_parser.h"

namespace dormouse {
namespace {

using jinja::Value;

const std::filesystem::path kDataDir =
    std::filesystem::path(__FILE__).parent_path() / "data" / "chat_templates";

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Records "@@ <key> <bytes>\n<bytes>\n", in file order.
std::vector<std::pair<std::string, std::string>> ReadGolden(const std::filesystem::path& path) {
  const std::string data = ReadFile(path);
  std::vector<std::pair<std::string, std::string>> records;
  size_t pos = 0;
  while (pos < data.size()) {
    const size_t eol = data.find('\n', pos);
    std::istringstream header(data.substr(pos, eol - pos));
    std::string marker, key;
    size_t len = 0;
    header >> marker >> key >> len;
    if (marker != "@@" || eol == std::string::npos || eol + 1 + len > data.size()) {
      ADD_FAILURE() << "malformed golden file " << path;
      break;
    }
    records.emplace_back(key, data.substr(eol + 1, len));
    pos = eol + 1 + len + 1;
  }
  return records;
}

// 2024-07-26, the date generate_goldens.py pins strftime_now() to.
std::time_t TestDate() {
  std::tm tm{};
  tm.tm_year = 2024 - 1900;
  tm.tm_mon = 6;
  tm.tm_mday = 26;
  tm.tm_hour = 12;
  tm.tm_isdst = -1;
  return std::mktime(&tm);
}

Value WeatherTool() {
  jinja::ValueDict city = {{"type", Value::String("string")},
                           {"description", Value::String("City name")}};
  jinja::ValueDict days = {{"type", Value::String("integer")}};
  jinja::ValueDict properties = {{"city", Value::Dict(city)}, {"days", Value::Dict(days)}};
  jinja::ValueDict parameters = {{"type", Value::String("object")},
                                 {"properties", Value::Dict(properties)},
                                 {"required", Value::List({Value::String("city")})}};
  jinja::ValueDict function = {
      {"name", Value::String("get_weather")},
      {"description", Value::String("M\xc3\xa9t\xc3\xa9o: get the weather in a city")},
      {"parameters", Value::Dict(parameters)}};
  return Value::Dict({{"type", Value::String("function")}, {"function", Value::Dict(function)}});
}

ChatTemplateInputs Case(const std::string& name, const std::string& bos, const std::string& eos) {
  const ChatMessage system{"system", "You are a helpful assistant", {}};
  const ChatMessage user1{"user", "Hello", {}};
  const ChatMessage assistant1{"assistant", "Hi there", {}};
  const ChatMessage user2{"user", "Who are you", {}};
  ChatTemplateInputs in;
  in.bos_token = bos;
  in.eos_token = eos;
  in.now = TestDate();
  in.messages = {user1, assistant1, user2};
  if (name == "sys") in.messages = {system, user1, assistant1, user2};
  if (name == "nosys_nogen") in.add_generation_prompt = false;
  if (name == "long") {
    in.messages = {system,
                   user1,
                   assistant1,
                   user2,
                   {"assistant", "   I am an assistant   ", {}},
                   {"user", "Another question", {}}};
  }
  if (name == "tools") in.variables = {{"tools", Value::List({WeatherTool()})}};
  return in;
}

struct ModelTemplate {
  const char* file;
  const char* family;
};

class ChatTemplateGoldenTest : public testing::TestWithParam<ModelTemplate> {};

TEST_P(ChatTemplateGoldenTest, RendersLikeTransformers) {
  const ModelTemplate& model = GetParam();
  const std::string source = ReadFile(kDataDir / (std::string(model.file) + ".jinja"));
  ASSERT_FALSE(source.empty()) << "missing template " << model.file;
  const ChatTemplate tmpl = ChatTemplate::FromSource(source);
  EXPECT_EQ(tmpl.warning(), "");
  EXPECT_EQ(tmpl.Name(), model.family);

  std::map<std::string, std::string> golden;
  for (auto& [key, text] : ReadGolden(kDataDir / (std::string(model.file) + ".golden"))) {
    golden[key] = text;
  }
  ASSERT_EQ(golden.size(), 7u);
  for (const char* name : {"sys", "nosys", "nosys_nogen", "long", "tools"}) {
    SCOPED_TRACE(name);
    const std::string& expected = golden.at(name);
    StatusOr<std::string> out = tmpl.Render(Case(name, golden.at("bos"), golden.at("eos")));
    if (expected.rfind("ERROR: ", 0) == 0) {
      ASSERT_FALSE(out.ok()) << *out;
      EXPECT_NE(out.status().message().find(expected.substr(7)), std::string::npos)
          << out.status().message();
    } else {
      ASSERT_TRUE(out.ok()) << out.status().message();
      EXPECT_EQ(*out, expected);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    ChatTemplates, ChatTemplateGoldenTest,
    testing::Values(ModelTemplate{"chatml", "chatml"}, ModelTemplate{"qwen2_gguf", "chatml"},
                    ModelTemplate{"qwen2_5", "chatml"}, ModelTemplate{"qwen3", "chatml"},
                    ModelTemplate{"llama2", "llama2"}, ModelTemplate{"llama3", "llama3"},
                    ModelTemplate{"llama3_2", "llama3"}, ModelTemplate{"mistral_v1", "mistral"},
                    ModelTemplate{"mistral_v1_sys", "mistral"},
                    ModelTemplate{"mistral_v7", "mistral"},
                    ModelTemplate{"mistral_nemo", "mistral"}, ModelTemplate{"zephyr", "zephyr"},
                    ModelTemplate{"phi3_mini", "phi3"}, ModelTemplate{"phi3_small", "phi3"},
                    ModelTemplate{"phi3_5", "phi3"}, ModelTemplate{"gemma", "gemma"},
                    ModelTemplate{"gemma2", "gemma"}, ModelTemplate{"gemma3", "gemma"},
                    ModelTemplate{"deepseek_coder", "deepseek"},
                    ModelTemplate{"deepseek_v2", "deepseek"},
                    ModelTemplate{"deepseek_r1", "deepseek"}),
    [](const testing::TestParamInfo<ModelTemplate>& info) { return info.param.file; });

// Each snippet isolates one Jinja feature; the expected text is Jinja2's own output.
TEST(ChatTemplateJinjaTest, SnippetsMatchJinja2) {
  const auto records = ReadGolden(kDataDir / "snippets.golden");
  ASSERT_GT(records.size(), 40u);
  jinja::ValueDict vars = {{"d", Value::Dict({{"a", Value::Int(1)},
                                              {"b", Value::List({Value::Int(1), Value::Int(2)})}})},
                           {"s", Value::String("Hello World")},
                           {"n", Value::Int(7)}};
  ChatTemplateInputs conversation = Case("sys", "", "");
  jinja::ValueList messages;
  for (const ChatMessage& m : conversation.messages) {
    messages.push_back(
        Value::Dict({{"role", Value::String(m.role)}, {"content", Value::String(m.content)}}));
  }
  vars.emplace_back("messages", Value::List(messages));
  for (size_t i = 0; i + 1 < records.size(); i += 2) {
    const std::string& source = records[i].second;
    const std::string& expected = records[i + 1].second;
    SCOPED_TRACE(source);
    StatusOr<std::unique_ptr<jinja::Program>> program = jinja::Parse(source);
    ASSERT_TRUE(program.ok()) << program.status().message();
    jinja::Interpreter interpreter(**program, jinja::RenderLimits(), TestDate());
    StatusOr<std::string> out = interpreter.Render(vars);
    if (expected.rfind("ERROR: ", 0) == 0) {
      EXPECT_FALSE(out.ok()) << *out;
    } else {
      ASSERT_TRUE(out.ok()) << out.status().message();
      EXPECT_EQ(*out, expected);
    }
  }
}

TEST(ChatTemplateTest, SharedQwenModelCarriesTheChatMlTemplate) {
#ifdef DM_SHARED_DIR
  const std::string gguf = ReadFile(std::string(DM_SHARED_DIR) + "/models/qwen2-20m-q8_0.gguf");
  if (gguf.empty()) GTEST_SKIP() << "shared models not present";
  const std::string expected = ReadFile(kDataDir / "qwen2_gguf.jinja");
  EXPECT_NE(gguf.find(expected), std::string::npos);
  const ChatTemplate tmpl = ChatTemplate::FromSource(expected);
  EXPECT_EQ(tmpl.Name(), "chatml");
  EXPECT_EQ(tmpl.EndOfTurnStrings(), std::vector<std::string>{"<|im_end|>"});
#else
  GTEST_SKIP() << "DM_SHARED_DIR not defined";
#endif
}

TEST(ChatTemplateTest, MissingTemplateFallsBackToChatMl) {
  const ChatTemplate tmpl = ChatTemplate::FromSource("");
  EXPECT_NE(tmpl.warning().find("no chat template"), std::string::npos);
  EXPECT_EQ(tmpl.Name(), "chatml");
  StatusOr<std::string> out = tmpl.Render(Case("sys", "<s>", "</s>"));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out,
            "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello"
            "<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are "
            "you<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateTest, BrokenOrUnsupportedTemplatesFallBackWithAWarning) {
  for (const char* source :
       {"{% if %}", "{{ 'unterminated }}", "{% for x in %}{% endfor %}", "{{ x | nosuchfilter }}",
        "{% if x is nosuchtest %}{% endif %}", "{% include 'other.jinja' %}", "{% if true %}",
        "{% endif %}", "{{ 1 +  }}", "{# open comment", "{{ [1, 2 }}", "{% raw %}x{% endraw %}",
        "{{ messages[0].content.nosuchmethod() }}", "{{ 99999999999999999999 }}", "{{ a ! b }}"}) {
    SCOPED_TRACE(source);
    const ChatTemplate tmpl = ChatTemplate::FromSource(source);
    EXPECT_NE(tmpl.warning(), "");
    EXPECT_NE(tmpl.warning().find("using ChatML"), std::string::npos);
    EXPECT_EQ(tmpl.Name(), "chatml");
    EXPECT_TRUE(tmpl.Render(Case("sys", "", "")).ok());
  }
}

TEST(ChatTemplateTest, RaiseExceptionBecomesAnErrorStatus) {
  const ChatTemplate gemma = ChatTemplate::FromSource(ReadFile(kDataDir / "gemma2.jinja"));
  ASSERT_EQ(gemma.warning(), "");
  StatusOr<std::string> out = gemma.Render(Case("sys", "<bos>", "<eos>"));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().message(), "chat template: System role not supported");

  const ChatTemplate llama2 = ChatTemplate::FromSource(ReadFile(kDataDir / "llama2.jinja"));
  ChatTemplateInputs bad = Case("nosys", "<s>", "</s>");
  bad.messages.push_back({"user", "twice", {}});
  out = llama2.Render(bad);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("Conversation roles must alternate"), std::string::npos);
}

TEST(ChatTemplateTest, BosHandling) {
  const ChatTemplate llama3 = ChatTemplate::FromSource(ReadFile(kDataDir / "llama3_2.jinja"));
  StatusOr<std::string> out = llama3.Render(Case("nosys", "<|begin_of_text|>", "<|eot_id|>"));
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(ChatTemplate::StartsWithBos(*out, "<|begin_of_text|>"));
  out = ChatTemplate::ChatMl().Render(Case("nosys", "<s>", "</s>"));
  ASSERT_TRUE(out.ok());
  EXPECT_FALSE(ChatTemplate::StartsWithBos(*out, "<s>"));
  EXPECT_FALSE(ChatTemplate::StartsWithBos("anything", ""));
}

TEST(ChatTemplateTest, EndOfTurnStrings) {
  auto eot = [](const char* file) {
    return ChatTemplate::FromSource(ReadFile(kDataDir / (std::string(file) + ".jinja")))
        .EndOfTurnStrings();
  };
  EXPECT_EQ(eot("llama3"), (std::vector<std::string>{"<|eot_id|>", "<|eom_id|>"}));
  EXPECT_EQ(eot("gemma3"), std::vector<std::string>{"<end_of_turn>"});
  EXPECT_EQ(eot("phi3_5"), std::vector<std::string>{"<|end|>"});
  EXPECT_EQ(eot("qwen2_5"), std::vector<std::string>{"<|im_end|>"});
  EXPECT_TRUE(eot("llama2").empty());  // ends turns with the model's EOS token
}

TEST(ChatTemplateTest, MessageFieldsAndVariablesReachTheTemplate) {
  const ChatTemplate tmpl = ChatTemplate::FromSource(
      "{% for m in messages %}{{ m.role }}:{{ m.content }}:{{ m.name | default('-') }}|"
      "{% endfor %}{{ enable_thinking }}{{ tools is none }}{{ '{% generation %}' }}"
      "{% generation %}G{% endgeneration %}");
  ASSERT_EQ(tmpl.warning(), "");
  ChatTemplateInputs in;
  in.messages = {{"tool", "42", {{"name", Value::String("calc")}}},
                 {"assistant", "", {{"content", Value::None()}}}};
  in.variables = {{"enable_thinking", Value::Bool(false)}};
  StatusOr<std::string> out = tmpl.Render(in);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(*out, "tool:42:calc|assistant:None:-|FalseTrue{% generation %}G");
}

// --- hostile templates: every one ends in an error or a warning, never a crash -------------

StatusOr<std::string> RenderRaw(const std::string& source) {
  StatusOr<std::unique_ptr<jinja::Program>> program = jinja::Parse(source);
  if (!program.ok()) return program.status();
  jinja::Interpreter interpreter(**program, jinja::RenderLimits(), TestDate());
  return interpreter.Render({});
}

void ExpectRenderError(const std::string& source, const std::string& message) {
  SCOPED_TRACE(source.substr(0, 120));
  StatusOr<std::string> out = RenderRaw(source);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find(message), std::string::npos) << out.status().message();
  // Through the public API the same template is replaced by ChatML, or fails to render.
  const ChatTemplate tmpl = ChatTemplate::FromSource(source);
  EXPECT_TRUE(!tmpl.warning().empty() || !tmpl.Render(Case("sys", "", "")).ok());
}

TEST(ChatTemplateHostileTest, WorkIsBounded) {
  ExpectRenderError("{% for i in range(1000000000) %}x{% endfor %}", "exceeds the limit");
  ExpectRenderError(
      "{% for i in range(-9223372036854775807, 9223372036854775807, 2) %}{% endfor %}",
      "exceeds the limit");
  ExpectRenderError(
      "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}", "steps");
  ExpectRenderError("{{ 'x' * 1000000000 }}", "exceeds the limit");
  ExpectRenderError("{{ [1, 2] * 1000000000 }}", "exceeds the limit");
  ExpectRenderError(
      "{% set ns = namespace(s='xx') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}"
      "{% endfor %}",
      "exceeds the limit");
  ExpectRenderError("{% for i in range(100000) %}{{ 'y' * 100000 }}{% endfor %}", "output");
  ExpectRenderError("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "nest too deeply");
  ExpectRenderError(
      "{% set ns = namespace(x=[]) %}{% for i in range(1000) %}{% set ns.x = [ns.x] %}"
      "{% endfor %}{{ ns.x|tojson }}",
      "nests too deeply");
  ExpectRenderError("{% set ns = namespace() %}{% set ns.me = ns %}", "namespace");
  ExpectRenderError("{% set ns = namespace() %}{% set ns.me = [ns] %}", "namespace");
  // Work hidden inside one operation (comparisons, serialisation, copies) is charged too.
  const std::string big = "{% set big = range(100000)|list %}";
  ExpectRenderError(big + "{% for i in range(100000) %}{% if i in big %}{% endif %}{% endfor %}",
                    "steps");
  ExpectRenderError(big + "{% set l = [big] * 100000 %}{{ l == l }}", "steps");
  ExpectRenderError(big + "{{ ([big] * 100000)|tojson }}", "too large");
  ExpectRenderError(big + "{{ [big] * 100000 }}", "exceeds the limit");
  ExpectRenderError("{{ ['x' * 8000000] * 100000 }}", "exceeds the limit");
  ExpectRenderError(
      "{% set ns = namespace(s='') %}{% for i in range(1000) %}{% for j in range(1000) %}"
      "{% set ns.s = ns.s + 'xxxxxxxx' %}{% endfor %}{% endfor %}",
      "steps");
  std::string deep_macro = "{% macro f(n) %}";
  for (int i = 0; i < 50; ++i) deep_macro += "{% if true %}";
  deep_macro += "{{ " + std::string(10, '(') + "f(n)" + std::string(10, ')') + " }}";
  for (int i = 0; i < 50; ++i) deep_macro += "{% endif %}";
  ExpectRenderError(deep_macro + "{% endmacro %}{{ f(1) }}", "nests too deeply");
  ExpectRenderError("{{ 9223372036854775807 + 1 }}", "overflow");
  ExpectRenderError("{{ 2 ** 64 }}", "overflow");
  ExpectRenderError("{{ (-9223372036854775807 - 1) // -1 }}", "overflow");
  ExpectRenderError("{{ 1 % 0 }}", "zero");
  ExpectRenderError("{{ [1][::0] }}", "zero");
}

TEST(ChatTemplateHostileTest, NestingIsBounded) {
  auto repeat = [](const std::string& s, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out += s;
    return out;
  };
  for (const std::string& source :
       {"{{ " + repeat("(", 5000) + "1" + repeat(")", 5000) + " }}",
        "{{ " + repeat("[", 5000) + repeat("]", 5000) + " }}",
        "{{ 1" + repeat(" + 1", 100000) + " }}", "{{ " + repeat("not ", 5000) + "1 }}",
        "{{ " + repeat("-", 5000) + "1 }}", repeat("{% if true %}", 5000),
        "{{ x" + repeat(".a", 5000) + " }}", "{{ x" + repeat("|trim", 5000) + " }}",
        "{{ x" + repeat("[0]", 5000) + " }}"}) {
    SCOPED_TRACE(source.substr(0, 40));
    StatusOr<std::unique_ptr<jinja::Program>> program = jinja::Parse(source);
    EXPECT_FALSE(program.ok());
    EXPECT_NE(ChatTemplate::FromSource(source).warning(), "");
  }
  EXPECT_FALSE(jinja::Parse(std::string(jinja::kMaxTemplateBytes + 1, 'x')).ok());
}

// Random edits of real templates must never crash (run under ASan/UBSan in CI).
TEST(ChatTemplateHostileTest, MutatedTemplatesNeverCrash) {
  std::vector<std::string> seeds;
  for (const auto& entry : std::filesystem::directory_iterator(kDataDir)) {
    if (entry.path().extension() == ".jinja") seeds.push_back(ReadFile(entry.path()));
  }
  ASSERT_FALSE(seeds.empty());
  const std::string alphabet = "{}%#-+()[]'\".|,:=~*/ \nabcdefloopnsifforset0123456789";
  std::mt19937 rng(1234);
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      const size_t pos = rng() % s.size();
      switch (rng() % 3) {
        case 0:
          s.erase(pos, 1 + rng() % 8);
          break;
        case 1:
          s.insert(pos, 1, alphabet[rng() % alphabet.size()]);
          break;
        default:
          s[pos] = alphabet[rng() % alphabet.size()];
      }
    }
    const ChatTemplate tmpl = ChatTemplate::FromSource(s);
    (void)tmpl.Render(Case(iter % 2 ? "sys" : "tools", "<s>", "</s>"));
  }
}

}  // namespace
}  // namespace dormouse
