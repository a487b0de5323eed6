#include "engine/chat/chat_template.h"

#include <algorithm>
#include <exception>
#include <new>

#include "engine/chat/jinja_interp.h"
#include "engine/chat/jinja_parser.h"

namespace dormouse {
namespace {

// Byte for byte the template of OpenHermes-2.5 and of the shared qwen2/qwen3 test models.
constexpr std::string_view kChatMlSource =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}";

bool Has(std::string_view source, std::string_view needle) {
  return source.find(needle) != std::string_view::npos;
}

// Families are told apart by their turn markers, as llama.cpp's llm_chat_detect_template does.
std::string DetectFamily(std::string_view s) {
  if (Has(s, "<|im_start|>")) return "chatml";
  if (Has(s, "<|start_header_id|>")) return "llama3";
  if (Has(s, "<start_of_turn>")) return "gemma";
  if (Has(s, "<|end|>") && Has(s, "<|assistant|>")) return "phi3";
  if (Has(s, "<|user|>")) return "zephyr";
  if (Has(s, "[INST]") && Has(s, "<<SYS>>")) return "llama2";
  if (Has(s, "[INST]")) return "mistral";
  if (Has(s, "<\xef\xbd\x9cUser\xef\xbd\x9c>") || Has(s, "### Instruction:") ||
      (Has(s, "'User: '") && Has(s, "'Assistant: '"))) {
    return "deepseek";
  }
  return "jinja";
}

// Sets `key`, replacing an existing entry (dict keys are unique).
void SetEntry(jinja::ValueDict* dict, const std::string& key, const jinja::Value& value) {
  for (auto& entry : *dict) {
    if (entry.first == key) {
      entry.second = value;
      return;
    }
  }
  dict->emplace_back(key, value);
}

jinja::Value MessageValue(const ChatMessage& m) {
  jinja::ValueDict fields = {{"role", jinja::Value::String(m.role)},
                             {"content", jinja::Value::String(m.content)}};
  for (const auto& [key, value] : m.fields) SetEntry(&fields, key, value);
  return jinja::Value::Dict(std::move(fields));
}

jinja::ValueDict MakeContext(const ChatTemplateInputs& in) {
  jinja::ValueList messages;
  for (const ChatMessage& m : in.messages) messages.push_back(MessageValue(m));
  jinja::ValueDict context = {
      {"messages", jinja::Value::List(std::move(messages))},
      {"add_generation_prompt", jinja::Value::Bool(in.add_generation_prompt)},
      {"bos_token", jinja::Value::String(in.bos_token)},
      {"eos_token", jinja::Value::String(in.eos_token)},
      {"tools", jinja::Value::None()},
      {"documents", jinja::Value::None()},
  };
  for (const auto& [key, value] : in.variables) SetEntry(&context, key, value);
  return context;
}

StatusOr<std::string> RenderProgram(const jinja::Program& program, const ChatTemplateInputs& in) {
  // Values from the caller were built outside the interpreter's nesting checks.
  for (const ChatMessage& m : in.messages) {
    for (const auto& field : m.fields) {
      if (field.second.depth() > jinja::kMaxValueDepth) {
        return Status::Errorf("chat template: message field '{}' nests too deeply", field.first);
      }
    }
  }
  for (const auto& variable : in.variables) {
    if (variable.second.depth() > jinja::kMaxValueDepth) {
      return Status::Errorf("chat template: variable '{}' nests too deeply", variable.first);
    }
  }
  try {
    jinja::Interpreter interpreter(program, jinja::RenderLimits(),
                                   in.now != 0 ? in.now : std::time(nullptr));
    StatusOr<std::string> out = interpreter.Render(MakeContext(in));
    if (!out.ok()) return out.status().WithContext("chat template");
    return out;
  } catch (const std::bad_alloc&) {
    return Status::Error("chat template: out of memory while rendering");
  } catch (const std::exception& e) {
    return Status::Errorf("chat template: {}", e.what());
  }
}

}  // namespace

ChatTemplate ChatTemplate::ChatMl() {
  StatusOr<std::unique_ptr<jinja::Program>> program = jinja::Parse(kChatMlSource);
  assert(program.ok());
  ChatTemplate t;
  t.program_ = std::move(program).value();
  t.name_ = "chatml";
  return t;
}

ChatTemplate ChatTemplate::Fallback(std::string warning) {
  ChatTemplate t = ChatMl();
  t.warning_ = std::move(warning) + "; using ChatML";
  return t;
}

ChatTemplate ChatTemplate::FromSource(std::string_view source) {
  if (source.empty()) return Fallback("the model has no chat template");
  StatusOr<std::unique_ptr<jinja::Program>> program = [&]() -> decltype(jinja::Parse(source)) {
    try {
      return jinja::Parse(source);
    } catch (const std::exception& e) {
      return Status::Errorf("{}", e.what());
    }
  }();
  Status status = program.ok() ? jinja::CheckFiltersAndTests(**program) : program.status();
  if (!status.ok()) return Fallback("unsupported chat template (" + status.message() + ")");
  ChatTemplate t;
  t.program_ = std::move(program).value();
  t.name_ = DetectFamily(source);
  // A template that cannot render one user message uses a feature this interpreter lacks.
  ChatTemplateInputs probe;
  probe.messages.push_back({"user", "Hello", {}});
  StatusOr<std::string> rendered = t.Render(probe);
  if (!rendered.ok())
    return Fallback("chat template failed a test render (" + rendered.status().message() + ")");
  return t;
}

StatusOr<std::string> ChatTemplate::Render(const ChatTemplateInputs& inputs) const {
  return RenderProgram(*program_, inputs);
}

std::vector<std::string> ChatTemplate::EndOfTurnStrings() const {
  if (name_ == "chatml") return {"<|im_end|>"};
  if (name_ == "llama3") return {"<|eot_id|>", "<|eom_id|>"};
  if (name_ == "gemma") return {"<end_of_turn>"};
  if (name_ == "phi3") return {"<|end|>"};
  if (name_ == "deepseek")
    return {
        "<\xef\xbd\x9c"
        "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
        "<|EOT|>"};
  return {};
}

bool ChatTemplate::StartsWithBos(std::string_view prompt, std::string_view bos_token) {
  return !bos_token.empty() && prompt.substr(0, bos_token.size()) == bos_token;
}

}  // namespace dormouse
