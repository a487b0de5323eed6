// `dormouse logits MODEL --prompt-file F [-n 32] [-o OUT.json]`: dump logits in the
// schema of ../shared/reference/README.md so a run compares mechanically with llama.cpp.
#include <algorithm>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "cli/commands.h"
#include "cli/common.h"

namespace dormouse::cli {
namespace {

struct LogitsOptions {
  std::string model;
  std::string prompt_file;
  std::string out;
  int n_greedy = 32;
  int threads = 0;
  std::string kv_type = "f16";
};

nlohmann::json TopK(const float* logits, int64_t n_vocab, int k) {
  std::vector<int32_t> ids(static_cast<size_t>(n_vocab));
  std::iota(ids.begin(), ids.end(), 0);
  k = static_cast<int>(std::min<int64_t>(k, n_vocab));
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  nlohmann::json out = nlohmann::json::array();
  for (int i = 0; i < k; ++i) out.push_back({ids[i], logits[ids[i]]});
  return out;
}

// Replaces invalid UTF-8 by U+FFFD, as the reference's greedy_text does.
std::string Utf8Sanitize(const std::string& bytes) {
  std::string out;
  size_t i = 0;
  while (i < bytes.size()) {
    unsigned char c = static_cast<unsigned char>(bytes[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + len <= bytes.size();
    for (size_t j = 1; ok && j < len; ++j) {
      ok = (static_cast<unsigned char>(bytes[i + j]) & 0xC0) == 0x80;
    }
    if (ok && len > 1) {
      uint32_t cp = c & (0x7F >> len);
      for (size_t j = 1; j < len; ++j) cp = (cp << 6) | (bytes[i + j] & 0x3F);
      static const uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= kMin[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    }
    if (ok) {
      out.append(bytes, i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

std::string Hex(const std::string& bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

StatusOr<nlohmann::json> Dump(const LogitsOptions& o) {
  DM_ASSIGN_OR_RETURN(std::string prompt, ReadFile(o.prompt_file));
  ContextParams cp;
  cp.kv_type = o.kv_type == "f32" ? KvType::kF32 : KvType::kF16;
  DM_ASSIGN_OR_RETURN(Engine e, LoadEngine(o.model, o.threads, cp));
  const int64_t n_vocab = e.ctx->n_vocab();
  std::vector<int32_t> tokens = e.tokenizer->Encode(prompt, true, true);
  if (tokens.empty()) return Status::Error("the prompt encodes to no tokens");
  if (static_cast<int64_t>(tokens.size()) + o.n_greedy > e.ctx->n_ctx()) {
    return Status::Errorf("prompt ({} tokens) plus {} greedy tokens exceed the context {}",
                          tokens.size(), o.n_greedy, e.ctx->n_ctx());
  }
  DM_RETURN_IF_ERROR(e.ctx->Eval(tokens, /*all_logits=*/true));
  nlohmann::json j;
  j["prompt"] = Utf8Sanitize(prompt);
  j["n_vocab"] = n_vocab;
  j["tokens"] = tokens;
  nlohmann::json top = nlohmann::json::array();
  for (size_t i = 0; i < tokens.size(); ++i) top.push_back(TopK(e.ctx->logits(i), n_vocab, 10));
  j["top_logits"] = std::move(top);
  const float* last = e.ctx->logits(static_cast<int64_t>(tokens.size()) - 1);
  j["last_logits"] = std::vector<float>(last, last + n_vocab);

  std::vector<float> current(last, last + n_vocab);
  std::vector<int32_t> greedy;
  std::vector<float> gaps;
  std::string text;
  for (int i = 0; i < o.n_greedy; ++i) {
    nlohmann::json best = TopK(current.data(), n_vocab, 2);
    int32_t next = best[0][0];
    if (e.tokenizer->IsEog(next)) break;
    greedy.push_back(next);
    gaps.push_back(best.size() > 1 ? best[0][1].get<float>() - best[1][1].get<float>() : 0.0f);
    text += e.tokenizer->DecodeToken(next);
    int32_t one[] = {next};
    DM_RETURN_IF_ERROR(e.ctx->Eval(one));
    current.assign(e.ctx->logits(), e.ctx->logits() + n_vocab);
  }
  j["greedy_tokens"] = greedy;
  j["greedy_gaps"] = gaps;
  j["greedy_text"] = Utf8Sanitize(text);
  j["greedy_hex"] = Hex(text);
  return j;
}

int Logits(const LogitsOptions& o) {
  StatusOr<nlohmann::json> j = Dump(o);
  if (!j.ok()) return Fail(j.status());
  std::string text = j->dump();
  if (o.out.empty()) {
    std::cout << text << "\n";
    return 0;
  }
  std::ofstream out(o.out, std::ios::binary);
  out << text << "\n";
  if (!out) return Fail(Status::Errorf("{}: cannot write", o.out));
  return 0;
}

}  // namespace

void AddLogitsCommand(CLI::App& app, Action* action) {
  auto o = std::make_shared<LogitsOptions>();
  CLI::App* cmd = app.add_subcommand("logits", "Dump logits as JSON (reference schema)");
  cmd->add_option("model", o->model, "GGUF model file")->required();
  cmd->add_option("--prompt-file", o->prompt_file, "File holding the prompt bytes")->required();
  cmd->add_option("-n", o->n_greedy, "Greedy continuation length")->check(CLI::Range(0, 4096));
  cmd->add_option("-o,--output", o->out, "Output JSON file (default: stdout)");
  cmd->add_option("-t,--threads", o->threads, "Threads (default: one per physical core available)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--kv-type", o->kv_type, "KV cache type")->check(CLI::IsMember({"f16", "f32"}));
  cmd->callback([o, action] { *action = [o] { return Logits(*o); }; });
}

}  // namespace dormouse::cli
