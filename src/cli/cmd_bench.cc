// `dormouse bench MODEL [-p 512] [-n 128] [-t N] [-r 5] [-d 0] [--target T] [--json]`: prefill and
// decode throughput like llama-bench's pp/tg tests (fresh context each repetition, one warm-up run
// first, token ids drawn from the vocabulary).
#include <chrono>
#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/commands.h"
#include "cli/common.h"
#include "engine/kernel_target.h"
#include "engine/kernels.h"

namespace dormouse::cli {
namespace {

struct BenchOptions {
  std::string model;
  int n_prompt = 512;
  int n_gen = 128;
  int threads = 0;
  int reps = 5;
  int depth = 0;       // tokens already in the context when timing starts (llama-bench -d)
  std::string target;  // kernel target ceiling; "" keeps DORMOUSE_TARGET or the CPU's best
  bool json = false;
};

struct Stats {
  double mean = 0, stddev = 0;
};

Stats Summarize(const std::vector<double>& v) {
  Stats s;
  if (v.empty()) return s;
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  if (v.size() > 1) {
    double acc = 0;
    for (double x : v) acc += (x - s.mean) * (x - s.mean);
    s.stddev = std::sqrt(acc / static_cast<double>(v.size() - 1));
  }
  return s;
}

// Tokens/s of one prefill of `tokens` after the first `depth` positions.
StatusOr<double> TimePrefill(InferenceContext& ctx, const std::vector<int32_t>& tokens,
                             int64_t depth) {
  ctx.Truncate(depth);
  auto t0 = std::chrono::steady_clock::now();
  DM_RETURN_IF_ERROR(ctx.Eval(tokens));
  std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
  return static_cast<double>(tokens.size()) / dt.count();
}

// Tokens/s of decoding `tokens` one at a time after the first `depth` positions.
StatusOr<double> TimeDecode(InferenceContext& ctx, const std::vector<int32_t>& tokens,
                            int64_t depth) {
  ctx.Truncate(depth);
  auto t0 = std::chrono::steady_clock::now();
  for (int32_t t : tokens) {
    int32_t one[] = {t};
    DM_RETURN_IF_ERROR(ctx.Eval(one));
  }
  std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
  return static_cast<double>(tokens.size()) / dt.count();
}

int Bench(const BenchOptions& o) {
  if (!o.target.empty()) {
    if (Status s = RestrictKernelTarget(o.target); !s.ok()) return Fail(s);
  }
  ContextParams cp;
  cp.n_ctx = o.depth + std::max(o.n_prompt, o.n_gen) + 1;
  StatusOr<Engine> loaded = LoadEngine(o.model, o.threads, cp);
  if (!loaded.ok()) return Fail(loaded.status());
  Engine& e = *loaded;
  std::mt19937 rng(42);
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(e.ctx->n_vocab() - 1));
  auto random_tokens = [&](int n) {
    std::vector<int32_t> v(static_cast<size_t>(n));
    for (auto& t : v) t = pick(rng);
    return v;
  };
  std::vector<int32_t> prompt = random_tokens(o.n_prompt), gen = random_tokens(o.n_gen);
  if (o.depth > 0) {  // the context every repetition starts from; not timed
    if (Status s = e.ctx->Eval(random_tokens(o.depth)); !s.ok()) return Fail(s);
  }
  std::vector<double> pp, tg;
  for (int r = 0; r <= o.reps; ++r) {  // r == 0 is the warm-up
    if (o.n_prompt > 0) {
      StatusOr<double> v = TimePrefill(*e.ctx, prompt, o.depth);
      if (!v.ok()) return Fail(v.status());
      if (r > 0) pp.push_back(*v);
    }
    if (o.n_gen > 0) {
      StatusOr<double> v = TimeDecode(*e.ctx, gen, o.depth);
      if (!v.ok()) return Fail(v.status());
      if (r > 0) tg.push_back(*v);
    }
  }
  Stats p = Summarize(pp), g = Summarize(tg);
  const std::string name = o.model.substr(o.model.find_last_of('/') + 1);
  if (o.json) {
    nlohmann::json j = {
        {"model", name},          {"threads", e.pool->size()}, {"kernels", KernelTargetName()},
        {"n_prompt", o.n_prompt}, {"n_gen", o.n_gen},          {"depth", o.depth},
        {"reps", o.reps},         {"pp_tps", p.mean},          {"pp_tps_stddev", p.stddev},
        {"tg_tps", g.mean},       {"tg_tps_stddev", g.stddev}};
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << fmt::format("model: {}  threads: {}  kernels: {}  reps: {}\n", name, e.pool->size(),
                           KernelTargetName(), o.reps);
  if (o.n_prompt > 0) {
    std::cout << fmt::format("pp{:<5} {:10.2f} ± {:.2f} tokens/s\n", o.n_prompt, p.mean, p.stddev);
  }
  if (o.n_gen > 0) {
    std::cout << fmt::format("tg{:<5} {:10.2f} ± {:.2f} tokens/s{}\n", o.n_gen, g.mean, g.stddev,
                             o.depth ? fmt::format(" @ depth {}", o.depth) : "");
  }
  return 0;
}

}  // namespace

void AddBenchCommand(CLI::App& app, Action* action) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure prefill and decode tokens/s");
  cmd->add_option("model", o->model, "GGUF model file")->required();
  cmd->add_option("-p,--n-prompt", o->n_prompt, "Prompt tokens (pp test)")
      ->check(CLI::Range(0, 1 << 16));
  cmd->add_option("-n,--n-gen", o->n_gen, "Generated tokens (tg test)")
      ->check(CLI::Range(0, 1 << 16));
  cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("-r,--repetitions", o->reps, "Repetitions")->check(CLI::Range(1, 1000));
  cmd->add_option("-d,--depth", o->depth, "Tokens already in the context (llama-bench -d)")
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--target", o->target,
                  fmt::format("Kernel target or lower: {} (default: $DORMOUSE_TARGET, else the "
                              "CPU's best)",
                              kKernelTargetNames));
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([o, action] { *action = [o] { return Bench(*o); }; });
}

}  // namespace dormouse::cli
