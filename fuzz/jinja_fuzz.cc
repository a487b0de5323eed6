// libFuzzer target for the Jinja chat-template engine: any template source must parse and
// render, or fail with an error, for a fixed conversation. Templates come from model
// files, so they are untrusted input (STYLE principle 3).
// Run: make fuzz FUZZ_TARGETS=jinja_fuzz (seeds: fuzz/corpus/jinja_fuzz).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "engine/chat/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return -1;  // real templates are a few KiB
  std::string_view source(reinterpret_cast<const char*>(data), size);
  dormouse::ChatTemplate t = dormouse::ChatTemplate::FromSource(source);
  dormouse::ChatTemplateInputs in;
  in.messages = {{"system", "You are terse."},
                 {"user", "Hello {{ there }}"},
                 {"assistant", "Hi."},
                 {"user", "Again?"}};
  in.bos_token = "<s>";
  in.eos_token = "</s>";
  in.now = 1700000000;
  (void)t.Render(in);
  in.add_generation_prompt = false;
  in.messages.resize(1);
  (void)t.Render(in);
  return 0;
}
