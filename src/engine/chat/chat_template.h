// Chat templates: turn a conversation into the prompt text a model was trained on.
//
// A model's template is the Jinja source in its GGUF metadata (`tokenizer.chat_template`),
// and it is untrusted data. ChatTemplate runs it in a small Jinja interpreter (jinja_*.h)
// that renders the way Hugging Face transformers does (trim_blocks and lstrip_blocks on,
// raise_exception() and strftime_now() available) and never throws or aborts: a template
// that cannot be parsed falls back to ChatML with a warning, and a render that fails
// (including the template's own raise_exception) or exceeds the work, output or nesting
// limits returns an error Status.
//
// BOS: templates usually print bos_token themselves (Llama 3's "{{ bos_token }}"). Callers
// tokenize the rendered prompt with special tokens parsed and add the model's BOS only when
// !StartsWithBos(prompt, bos_token), so the prompt never starts with two BOS tokens.
#pragma once

#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "engine/chat/jinja_value.h"

namespace dormouse {

namespace jinja {
struct Program;
}

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", "tool", ...
  std::string content;
  // Further fields a template may read (e.g. "tool_calls", "reasoning_content"); a field
  // named "content" replaces the string above (e.g. with jinja::Value::None()).
  std::vector<std::pair<std::string, jinja::Value>> fields = {};
};

struct ChatTemplateInputs {
  std::vector<ChatMessage> messages;
  bool add_generation_prompt = true;
  std::string bos_token;  // text of the model's BOS and EOS tokens
  std::string eos_token;
  // Further template variables, e.g. "tools" (a list of dicts) or "enable_thinking".
  // "tools" and "documents" are none unless set here, as in transformers.
  std::vector<std::pair<std::string, jinja::Value>> variables;
  std::time_t now = 0;  // the time strftime_now() formats; 0 = the current time
};

class ChatTemplate {
 public:
  // Parses `source` (tokenizer.chat_template). An empty source, or one that does not parse
  // or fails a one-message test render, gives the ChatML template with warning() set.
  static ChatTemplate FromSource(std::string_view source);
  // The ChatML template (<|im_start|>role\ncontent<|im_end|>\n ...).
  static ChatTemplate ChatMl();

  StatusOr<std::string> Render(const ChatTemplateInputs& inputs) const;

  // Why the model's own template is not used; empty when it is.
  const std::string& warning() const { return warning_; }
  // The template family recognised from the source: "chatml", "llama2", "llama3", "mistral",
  // "zephyr", "phi3", "gemma", "deepseek", or "jinja" for anything else.
  const std::string& Name() const { return name_; }
  // Texts that end an assistant turn in this family besides the model's EOS token
  // (e.g. "<|eot_id|>", "<|im_end|>", "<end_of_turn>"). The session maps them to token ids
  // and stops generating on any of them.
  std::vector<std::string> EndOfTurnStrings() const;
  // True when `prompt` already begins with `bos_token` (and bos_token is not empty).
  static bool StartsWithBos(std::string_view prompt, std::string_view bos_token);

 private:
  ChatTemplate() = default;
  static ChatTemplate Fallback(std::string warning);

  std::shared_ptr<const jinja::Program> program_;  // shared: templates are cheap to copy
  std::string warning_;
  std::string name_;
};

}  // namespace dormouse
