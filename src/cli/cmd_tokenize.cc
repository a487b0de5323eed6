// `dormouse tokenize MODEL (--text T | --file F) [--no-bos]`: print token ids.
#include <iostream>

#include "cli/commands.h"
#include "cli/common.h"

namespace dormouse::cli {
namespace {

struct TokenizeOptions {
  std::string model;
  std::string text;
  std::string file;
  bool no_bos = false;
  bool no_special = false;
};

int Tokenize(const TokenizeOptions& o) {
  std::string text = o.text;
  if (!o.file.empty()) {
    StatusOr<std::string> content = ReadFile(o.file);
    if (!content.ok()) return Fail(content.status());
    text = *content;
  }
  // Vocabulary-only files have no tensors, so only the GGUF and tokenizer are loaded.
  StatusOr<GgufFile> gguf = GgufFile::OpenOrError(o.model);
  if (!gguf.ok()) return Fail(gguf.status());
  StatusOr<Tokenizer> tok = Tokenizer::FromGguf(*gguf);
  if (!tok.ok()) return Fail(tok.status().WithContext(o.model));
  std::vector<int32_t> ids = tok->Encode(text, !o.no_bos, !o.no_special);
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
  std::cout << line << "\n";
  return 0;
}

}  // namespace

void AddTokenizeCommand(CLI::App& app, Action* action) {
  auto o = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids of a text");
  cmd->add_option("model", o->model, "GGUF model or vocabulary file")->required();
  auto* text = cmd->add_option("--text", o->text, "Text to tokenize");
  auto* file = cmd->add_option("--file", o->file, "File whose bytes to tokenize");
  text->excludes(file);
  cmd->add_flag("--no-bos", o->no_bos, "Do not add BOS/EOS even when the model asks for it");
  cmd->add_flag("--no-parse-special", o->no_special,
                "Treat special-token text like <|im_start|> as plain text");
  cmd->callback([o, action, text, file] {
    if (text->count() + file->count() == 0) throw CLI::RequiredError("--text or --file");
    *action = [o] { return Tokenize(*o); };
  });
}

}  // namespace dormouse::cli
