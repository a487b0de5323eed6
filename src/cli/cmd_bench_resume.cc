// `dormouse bench-resume MODEL [--tokens 1550]`: the idle scenario of
// ../shared/BENCHMARKS.md in one process, through the server's own code path (Service,
// ModelManager, snapshots): a long conversation, a warm next turn, an idle eject (warm,
// then cold), the next turn after each, and the same next turn with no snapshot (a full
// re-prefill, what other runtimes do). Prints RSS at each stage and each turn's latency.
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "api/runtime.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "lifecycle/gguf_loader.h"
#include "lifecycle/memory_probe.h"
#include "store/snapshot_store.h"
#include "store/transcript_db.h"

namespace dormouse::cli {
namespace {

namespace fs = std::filesystem;

struct Options {
  std::string model;
  int64_t tokens = 1550;
  int threads = 0;
  int64_t ctx = 4096;
  bool json = false;
};

double MiB(uint64_t b) { return static_cast<double>(b) / (1 << 20); }

// One server's worth of objects on a data dir, with one context per model so the
// scenario's single conversation is what every turn continues.
std::unique_ptr<Runtime> MakeRuntime(const Options& o, const fs::path& data) {
  RuntimeOptions ro;
  ro.data_dir = data.string();
  ro.files[ModelNameFromPath(o.model)] = o.model;
  ro.context.n_ctx = o.ctx;
  ro.threads = ResolveThreadCount(o.threads);
  ro.contexts_per_model = 1;
  ro.start_timer = false;  // the scenario ejects by hand, at known moments
  StatusOr<std::unique_ptr<Runtime>> rt = Runtime::CreateOrError(ro);
  if (!rt.ok()) {
    std::cerr << "error: " << rt.status().message() << "\n";
    std::exit(1);
  }
  return std::move(rt).value();
}

// About `n` tokens of varied English words (the scenario's "1,500-word conversation").
StatusOr<std::string> Conversation(const std::string& model, int64_t n) {
  DM_ASSIGN_OR_RETURN(GgufFile g, GgufFile::OpenOrError(model));
  DM_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::FromGguf(g));
  static const char* kWords[] = {"the",    "river",   "morning",  "quiet",    "garden",  "wrote",
                                 "letter", "across",  "window",   "bright",   "follow",  "people",
                                 "small",  "history", "question", "answer",   "yellow",  "travel",
                                 "music",  "simple",  "mountain", "remember", "between", "strange"};
  std::mt19937 rng(7);
  std::string text = "User: ";
  while (static_cast<int64_t>(tok.Encode(text, true, true).size()) < n) {
    for (int i = 0; i < 16; ++i) text += std::string(kWords[rng() % 24]) + " ";
    text += ". ";
  }
  return text;
}

struct Row {
  std::string stage;
  ProcessMemory mem;
  double seconds = -1;
  std::string note;
};

int Bench(const Options& o) {
  StatusOr<std::string> text = Conversation(o.model, o.tokens);
  if (!text.ok()) return Fail(text.status());
  const fs::path data = fs::temp_directory_path() / fmt::format("dm_bench_resume_{}", ::getpid());
  fs::remove_all(data);
  const std::string name = ModelNameFromPath(o.model);
  std::vector<Row> rows;
  ProcMemoryProbe probe;
  TrimAllocator();
  rows.push_back({"start", probe.Process(), -1, ""});
  double snapshot_mib = 0, eject_seconds = 0, write_ms = 0;
  {
    std::unique_ptr<Runtime> rt = MakeRuntime(o, data);
    std::string prompt = *text;
    auto turn = [&](const std::string& stage) -> bool {
      CompletionRequest r;
      r.model = name;
      r.prompt = prompt;
      r.max_tokens = 1;
      r.sampling.temperature = 0;
      auto t0 = std::chrono::steady_clock::now();
      auto v = rt->service().Complete(r, nullptr);
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (auto* e = std::get_if<ServiceError>(&v)) {
        std::cerr << "error: " << e->message << "\n";
        return false;
      }
      const CompletionResult& c = std::get<CompletionResult>(v);
      rows.push_back(
          {stage, probe.Process(), s,
           fmt::format("{} reused, {} prefilled; load {:.1f} ms, restore {:.1f} ms, prefill "
                       "{:.1f} ms, first token {:.1f} ms",
                       c.cached_tokens, c.prefilled_tokens, c.load_seconds * 1e3,
                       c.restore_seconds * 1e3, c.prompt_seconds * 1e3, c.generate_seconds * 1e3)});
      prompt += " and then the story went on";
      return true;
    };
    auto eject = [&](EjectLevel level) {
      const ServiceMetrics m0 = rt->service().Metrics();
      auto r = rt->manager().Eject(name, level, false, Reason::kKeepAlive);
      const ServiceMetrics m1 = rt->service().Metrics();
      if (m1.snapshots_saved > m0.snapshots_saved) {
        snapshot_mib = MiB(m1.snapshot_bytes_written - m0.snapshot_bytes_written);
        write_ms = (m1.snapshot_write_seconds.sum - m0.snapshot_write_seconds.sum) * 1e3;
      }
      eject_seconds = r.ok() ? r->seconds : 0;
      rows.push_back({fmt::format("idle after {} eject", EjectLevelName(level)), probe.Process(),
                      -1, fmt::format("eject took {:.1f} ms", eject_seconds * 1000)});
    };
    if (!turn("turn 1: full prefill") || !turn("turn 2: warm next turn")) return 1;
    eject(EjectLevel::kWarm);
    if (!turn("next turn after warm eject")) return 1;
    eject(EjectLevel::kCold);
    if (!turn("next turn after cold eject")) return 1;
  }
  {  // What other runtimes do: no snapshot, so the whole conversation is prefilled again.
    fs::remove_all(data);
    std::unique_ptr<Runtime> rt = MakeRuntime(o, data);
    CompletionRequest r;
    r.model = name;
    r.prompt = *text + " and then the story went on and then the story went on";
    r.max_tokens = 1;
    r.sampling.temperature = 0;
    auto t0 = std::chrono::steady_clock::now();
    auto v = rt->service().Complete(r, nullptr);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (std::holds_alternative<ServiceError>(v)) return Fail(Status::Error("baseline failed"));
    rows.push_back(
        {"next turn without snapshot (re-prefill)", probe.Process(), s,
         fmt::format("{} tokens prefilled", std::get<CompletionResult>(v).prefilled_tokens)});
  }
  fs::remove_all(data);
  const double warm = rows[4].seconds, reprefill = rows.back().seconds;
  if (o.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const Row& r : rows) {
      j.push_back({{"stage", r.stage},
                   {"rss_mib", MiB(r.mem.rss)},
                   {"anon_mib", MiB(r.mem.anon)},
                   {"file_mib", MiB(r.mem.file)},
                   {"seconds", r.seconds},
                   {"note", r.note}});
    }
    std::cout << nlohmann::json{{"model", name},
                                {"stages", j},
                                {"snapshot_mib", snapshot_mib},
                                {"snapshot_write_ms", write_ms},
                                {"restore_speedup", reprefill / warm}}
                     .dump(2)
              << "\n";
    return 0;
  }
  std::cout << fmt::format("model {}  threads {}  context {}\n", name, DescribeThreads(o.threads),
                           o.ctx);
  std::cout << fmt::format("{:<42} {:>24} {:>10}  {}\n", "stage", "RSS MiB (anon/file)", "latency",
                           "");
  for (const Row& r : rows) {
    std::cout << fmt::format("{:<42} {:>8.1f} ({:6.1f}/{:6.1f}) {:>10} {}\n", r.stage,
                             MiB(r.mem.rss), MiB(r.mem.anon), MiB(r.mem.file),
                             r.seconds < 0 ? "" : fmt::format("{:.3f} s", r.seconds), r.note);
  }
  std::cout << fmt::format(
      "snapshot: {:.1f} MiB written in {:.1f} ms; next turn after warm eject {:.3f} s vs "
      "re-prefill {:.3f} s: {:.1f}x faster\n",
      snapshot_mib, write_ms, warm, reprefill, reprefill / warm);
  return 0;
}

}  // namespace

void AddBenchResumeCommand(CLI::App& app, Action* action) {
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "bench-resume", "Measure RSS and next-turn latency across idle ejects (BENCHMARKS.md)");
  cmd->add_option("model", o->model, "GGUF model file")->required();
  cmd->add_option("--tokens", o->tokens, "Conversation length in tokens")
      ->check(CLI::Range(int64_t{16}, int64_t{1} << 20));
  cmd->add_option("-t,--threads", o->threads, "Threads (default: one per physical core available)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("-c,--ctx-size", o->ctx, "Context size")
      ->check(CLI::Range(int64_t{64}, int64_t{1} << 22));
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([o, action] { *action = [o] { return Bench(*o); }; });
}

}  // namespace dormouse::cli
