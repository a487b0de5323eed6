// `dormouse run MODEL -p PROMPT`: stream a completion of the prompt.
#include <cstdio>
#include <random>

#include "cli/commands.h"
#include "cli/common.h"
#include "engine/generate.h"
#include "engine/sampler.h"

namespace dormouse::cli {
namespace {

struct RunOptions {
  std::string model;
  std::string prompt;
  int n_predict = 128;
  float temp = 0.8f;
  int top_k = 40;
  float top_p = 0.95f;
  float min_p = 0.05f;
  float repeat_penalty = 1.0f;
  int64_t seed = -1;
  int threads = 0;
  int64_t ctx = 0;
};

int Run(const RunOptions& o) {
  ContextParams cp;
  cp.n_ctx = o.ctx;
  StatusOr<std::string> path = ResolveModelPath(o.model);
  if (!path.ok()) return Fail(path.status());
  StatusOr<Engine> loaded = LoadEngine(*path, o.threads, cp);
  if (!loaded.ok()) return Fail(loaded.status());
  Engine& e = *loaded;
  SamplerParams sp;
  sp.temperature = o.temp;
  sp.top_k = o.top_k;
  sp.top_p = o.top_p;
  sp.min_p = o.min_p;
  sp.repeat_penalty = o.repeat_penalty;
  sp.seed = o.seed >= 0 ? static_cast<uint64_t>(o.seed) : std::random_device{}();
  if (Status s = Sampler::Validate(sp); !s.ok()) return Fail(s);
  Sampler sampler(sp, e.ctx->n_vocab());

  std::vector<int32_t> tokens = e.tokenizer->Encode(o.prompt, true, true);
  if (tokens.empty()) return Fail(Status::Error("the prompt encodes to no tokens"));
  if (static_cast<int64_t>(tokens.size()) >= e.ctx->n_ctx()) {
    return Fail(Status::Errorf("the prompt has {} tokens; the context holds {}", tokens.size(),
                               e.ctx->n_ctx()));
  }
  for (int32_t t : tokens) sampler.Accept(t);
  std::fputs(o.prompt.c_str(), stdout);
  std::fflush(stdout);
  if (Status s = e.ctx->Eval(tokens); !s.ok()) return Fail(s);
  GenerateParams gp;
  gp.max_tokens = o.n_predict;
  StatusOr<GenerateResult> g = Generate(*e.ctx, sampler, *e.tokenizer, gp, [](std::string_view p) {
    std::fwrite(p.data(), 1, p.size(), stdout);
    std::fflush(stdout);
    return true;
  });
  if (!g.ok()) return Fail(g.status());
  std::fputc('\n', stdout);
  return 0;
}

}  // namespace

void AddRunCommand(CLI::App& app, Action* action) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand("run", "Generate text from a prompt, streaming it");
  cmd->add_option("model", o->model, "GGUF model file, or a name from `dormouse list`")->required();
  cmd->add_option("-p,--prompt", o->prompt, "Prompt text")->required();
  cmd->add_option("-n,--n-predict", o->n_predict, "Tokens to generate")
      ->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--temp", o->temp, "Temperature (0 = greedy)");
  cmd->add_option("--top-k", o->top_k, "Top-k (0 = off)");
  cmd->add_option("--top-p", o->top_p, "Top-p (1 = off)");
  cmd->add_option("--min-p", o->min_p, "Min-p (0 = off)");
  cmd->add_option("--repeat-penalty", o->repeat_penalty, "Repetition penalty (1 = off)");
  cmd->add_option("--seed", o->seed, "Random seed (default: random)");
  cmd->add_option("-t,--threads", o->threads, "Threads (default: one per physical core available)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("-c,--ctx-size", o->ctx, "Context size (default: model's, max 4096)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 22));
  cmd->callback([o, action] { *action = [o] { return Run(*o); }; });
}

}  // namespace dormouse::cli
