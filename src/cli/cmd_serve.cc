// `dormouse serve`: the OpenAI- and Ollama-compatible HTTP server (src/api/) over the
// lifecycle manager. SIGTERM or SIGINT stops accepting, lets in-flight requests finish or
// checkpoint, saves every live session and exits 0; a second signal exits at once.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <thread>

#include "api/http_server.h"
#include "api/runtime.h"
#include "base/duration.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "library/library.h"
#include "library/pull.h"
#include "lifecycle/gguf_loader.h"
#include "lifecycle/loaded_model.h"
#include "lifecycle/model_manager.h"
#include "lifecycle/service.h"
#include "store/snapshot_store.h"
#include "store/transcript_db.h"

namespace dormouse::cli {
namespace {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 11435;
  std::string models_dir;
  std::vector<std::string> models;
  int threads = 0;
  std::string keep_alive = "5m";
  std::string memory_budget = "0";
  std::string data_dir;
  std::vector<std::string> api_keys;
  int64_t ctx = 0;
  int64_t parallel = 4;
  int64_t max_queue = 16;
  int http_threads = 32;
  int timeout = 30;
  std::string max_body = "8M";
  std::string snapshot_budget = "auto";
  bool compress = false;
  bool no_discover = false;
};

// "0", "1048576", "512M", "4G", "1.5GiB", "64k": bytes (K, M, G, T are powers of 1024).
StatusOr<uint64_t> ParseSize(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) {
    ++i;
  }
  std::string num = text.substr(0, i), unit = text.substr(i);
  auto bad = [&] { return Status::Errorf("'{}' is not a size (examples: 0, 512M, 4G)", text); };
  if (num.empty() || num.front() == '.') return bad();
  double v = 0;
  try {
    v = std::stod(num);
  } catch (...) {
    return bad();
  }
  static const std::pair<const char*, double> kUnits[] = {
      {"", 1},          {"B", 1},          {"K", 1024.0},      {"KB", 1024.0},     {"KIB", 1024.0},
      {"M", 1 << 20},   {"MB", 1 << 20},   {"MIB", 1 << 20},   {"G", 1 << 30},     {"GB", 1 << 30},
      {"GIB", 1 << 30}, {"T", 1ull << 40}, {"TB", 1ull << 40}, {"TIB", 1ull << 40}};
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const auto& [name, mult] : kUnits) {
    if (unit == name && v * mult < 1.8e19) return static_cast<uint64_t>(std::llround(v * mult));
  }
  return bad();
}

StatusOr<std::unique_ptr<Runtime>> BuildRuntime(const ServeOptions& o, Library* library) {
  RuntimeOptions ro;
  DM_ASSIGN_OR_RETURN(ro.keep_alive, ParseDuration(o.keep_alive));
  DM_ASSIGN_OR_RETURN(ro.memory_budget, ParseSize(o.memory_budget));
  if (o.snapshot_budget != "auto") {
    DM_ASSIGN_OR_RETURN(ro.snapshot_budget, ParseSize(o.snapshot_budget));
  }
  ro.data_dir = o.data_dir;
  ro.more_models = [library] { return library->Paths(); };  // our dir + discovered
  for (const std::string& m : o.models) ro.files[ModelNameFromPath(m)] = m;
  ro.context.n_ctx = o.ctx;
  ro.threads = o.threads;
  ro.contexts_per_model = o.parallel;
  ro.max_queue = o.max_queue;
  ro.compress_snapshots = o.compress;
  return Runtime::CreateOrError(ro);
}

// Waits for SIGINT/SIGTERM (blocked in every thread, so only this one sees them) and
// stops the server; SIGUSR1 only wakes it to exit when the server stopped on its own.
class SignalWatcher {
 public:
  explicit SignalWatcher(std::function<void()> on_stop) : on_stop_(std::move(on_stop)) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~SignalWatcher() {
    done_ = true;
    pthread_kill(thread_.native_handle(), SIGUSR1);
    thread_.join();
  }
  static void BlockSignals() {
    sigset_t set = Set();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    signal(SIGPIPE, SIG_IGN);  // a vanished client must not kill the server
  }

 private:
  static sigset_t Set() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);
    return set;
  }
  void Loop() {
    sigset_t set = Set();
    int stops = 0;
    while (!done_) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0 || sig == SIGUSR1) continue;
      if (++stops > 1) {
        std::cerr << "dormouse: second signal, exiting without saving\n";
        std::_Exit(130);
      }
      std::cerr << "dormouse: " << (sig == SIGINT ? "SIGINT" : "SIGTERM")
                << ", shutting down (finishing or checkpointing requests, saving sessions)\n";
      on_stop_();
    }
  }
  std::function<void()> on_stop_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

int Serve(const ServeOptions& o) {
  SignalWatcher::BlockSignals();  // before any thread starts, so all inherit the mask
  StatusOr<uint64_t> max_body = ParseSize(o.max_body);
  if (!max_body.ok()) return Fail(max_body.status());
  StatusOr<std::unique_ptr<Library>> library =
      OpenLibrary(o.models_dir, o.data_dir, !o.no_discover);
  if (!library.ok()) return Fail(library.status());
  StatusOr<std::unique_ptr<Runtime>> rt = BuildRuntime(o, library->get());
  if (!rt.ok()) return Fail(rt.status());
  Runtime& core = **rt;
  api::ApiContext ctx;
  ctx.service = &core.service();
  ctx.manager = &core.manager();
  ctx.loader = &core.loader();
  ctx.snapshots = &core.snapshots();
  ctx.probe = &core.probe();
  ctx.library = library->get();
  ctx.pull_endpoints = PullEndpoints::FromEnvironment();
  ctx.events = &core.events();
  ctx.settings = &core.settings();
  ctx.app_db = &core.app_db();
  ctx.limits.max_tokens_cap = o.ctx > 0 ? o.ctx : 4096;
  api::HttpOptions ho;
  ho.host = o.host;
  ho.port = o.port;
  ho.api_keys = o.api_keys;
  ho.max_body_bytes = static_cast<size_t>(*max_body);
  ho.timeout_seconds = o.timeout;
  ho.threads = o.http_threads;
  api::HttpServer server(ho, &ctx);
  StatusOr<int> port = server.Bind();
  if (!port.ok()) return Fail(port.status());
  {
    SignalWatcher watcher([&] {
      ctx.stopping = true;
      server.Stop();
      core.service().Shutdown();
    });
    std::cerr << fmt::format("dormouse: compute threads {}\n", DescribeThreads(o.threads));
    std::cerr << fmt::format(
        "dormouse: listening on http://{}:{} ({} models; data in {}){}; "
        "open that address in a browser for the app\n",
        o.host.find(':') != std::string::npos ? "[" + o.host + "]" : o.host, *port,
        core.loader().Names().size(), core.data_dir(),
        o.api_keys.empty() ? "" : "; API key required");
    server.Serve();  // returns once stopped and every in-flight request is answered
  }
  rt->reset();  // saves sessions, ejects models
  std::cerr << "dormouse: stopped\n";
  return 0;
}

}  // namespace

void AddServeCommand(CLI::App& app, Action* action) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* cmd =
      app.add_subcommand("serve", "Serve models over OpenAI- and Ollama-compatible HTTP APIs");
  cmd->add_option("--host", o->host, "Address to listen on (default: loopback only)");
  cmd->add_option("--port", o->port, "Port (0: any free port)")->check(CLI::Range(0, 65535));
  cmd->add_option("--models-dir", o->models_dir,
                  "Models directory: every *.gguf in it, and where pulls go "
                  "(default: $XDG_DATA_HOME/dormouse/models)")
      ->envname("DORMOUSE_MODELS");
  cmd->add_flag("--no-discover", o->no_discover,
                "Do not list the models of Ollama, LM Studio, GPT4All and the HF cache");
  cmd->add_option("-m,--model", o->models, "Serve this GGUF file (repeatable)");
  cmd->add_option(
         "-t,--threads", o->threads,
         "Compute threads, shared by all models (default: one per physical core available)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--keep-alive", o->keep_alive,
                  "Eject a model after this long idle (30s, 5m, 1h; 0 = after each request; "
                  "negative = never)");
  cmd->add_option("--memory-budget", o->memory_budget,
                  "Memory for all loaded models (e.g. 4G; 0 = no limit)");
  cmd->add_option("--data-dir", o->data_dir,
                  "Transcripts and snapshots (default: $XDG_DATA_HOME/dormouse)");
  cmd->add_option("--api-key", o->api_keys,
                  "Require 'Authorization: Bearer KEY' on every endpoint but /health "
                  "(repeatable, or comma-separated; each key sees only its own sessions)")
      ->envname("DORMOUSE_API_KEY")
      ->delimiter(',');
  cmd->add_option("-c,--ctx-size", o->ctx, "Context size (default: model's, max 4096)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 22));
  cmd->add_option("--parallel", o->parallel, "Live contexts (conversations) per model")
      ->check(CLI::Range(int64_t{1}, int64_t{256}));
  cmd->add_option("--max-queue", o->max_queue, "Requests waiting per model before 429")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  cmd->add_option("--http-threads", o->http_threads, "Connections served at once")
      ->check(CLI::Range(2, 4096));
  cmd->add_option("--timeout", o->timeout, "Seconds a client may stall a read or a write")
      ->check(CLI::Range(1, 3600));
  cmd->add_option("--max-body", o->max_body, "Largest request body (default 8M)");
  cmd->add_option("--snapshot-budget", o->snapshot_budget,
                  "Disk budget for snapshots (e.g. 2G; 0 = unlimited; default auto: min(2 GiB, "
                  "5% of the disk); least recently used deleted first, transcripts kept)");
  cmd->add_flag("--compress", o->compress, "Compress snapshots with zstd");
  cmd->callback([o, action] { *action = [o] { return Serve(*o); }; });
}

}  // namespace dormouse::cli
