// The model library from the command line, as Ollama's CLI: `pull` and `list` and `rm`
// work on the disk; `ps` and `stop` ask a running server (--host/--port).
#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "library/pull.h"
#include "lifecycle/memory_probe.h"

namespace dormouse::cli {
namespace {

using nlohmann::json;

struct LibraryCliOptions {
  std::string model;
  std::string models_dir;
  std::string data_dir;
  bool no_discover = false;
  std::string host = "127.0.0.1";
  int port = 11435;
};

std::string Bytes(uint64_t b) {
  if (b >= (1ull << 30)) return fmt::format("{:.1f} GB", b / 1073741824.0);
  if (b >= (1ull << 20)) return fmt::format("{:.1f} MB", b / 1048576.0);
  return fmt::format("{:.1f} KB", b / 1024.0);
}

// A bar with speed and ETA redrawn in place on a terminal; a line per 10% otherwise.
class ProgressPrinter {
 public:
  ProgressPrinter() : tty_(::isatty(2) == 1) {}
  void Show(const PullProgress& p) {
    if (p.total == 0) {
      End();
      std::cerr << p.status << "\n";
      return;
    }
    auto now = std::chrono::steady_clock::now();
    if (digest_ != p.digest) digest_ = p.digest, start_ = now, start_bytes_ = p.completed;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double speed = secs > 0 ? (p.completed - start_bytes_) / secs : 0;
    const double eta = speed > 0 ? (p.total - p.completed) / speed : 0;
    const int pct = static_cast<int>(100.0 * p.completed / p.total);
    if (tty_) {
      const int fill = pct / 4;
      std::cerr << fmt::format("\r{} [{}{}] {:3}% {}/{} {}/s ETA {:.0f}s  ", p.status,
                               std::string(fill, '#'), std::string(25 - fill, '-'), pct,
                               Bytes(p.completed), Bytes(p.total), Bytes(speed), eta);
      open_line_ = true;
    } else if (pct / 10 != last_decile_ || p.completed == p.total) {
      last_decile_ = pct / 10;
      std::cerr << fmt::format("{} {}% {}/{} {}/s\n", p.status, pct, Bytes(p.completed),
                               Bytes(p.total), Bytes(speed));
    }
  }
  void End() {
    if (open_line_) std::cerr << "\n";
    open_line_ = false;
  }

 private:
  bool tty_;
  bool open_line_ = false;
  int last_decile_ = -1;
  std::string digest_;
  std::chrono::steady_clock::time_point start_;
  uint64_t start_bytes_ = 0;
};

int PullCommand(const LibraryCliOptions& o) {
  StatusOr<std::unique_ptr<Library>> lib = OpenLibrary(o.models_dir, o.data_dir, false);
  if (!lib.ok()) return Fail(lib.status());
  ProgressPrinter printer;
  PullOptions po;
  po.models_dir = (*lib)->models_dir();
  po.endpoints = PullEndpoints::FromEnvironment();
  po.on_progress = [&](const PullProgress& p) { printer.Show(p); };
  po.on_warning = [&](const std::string& w) {
    printer.End();
    std::cerr << "warning: " << w << "\n";
  };
  po.fit_check = [](uint64_t bytes) -> std::string {
    ProcMemoryProbe probe;
    const SystemMemory m = probe.System();
    if (m.total == 0 || bytes <= m.available) return "";
    return fmt::format("the model's weights ({}) exceed the memory available now ({} of {})",
                       Bytes(bytes), Bytes(m.available), Bytes(m.total));
  };
  StatusOr<PullResult> r = Pull(o.model, po);
  printer.End();
  if (!r.ok()) return Fail(r.status());
  std::cout << fmt::format("{} {} ({})\n", r->already_present ? "up to date:" : "pulled:", r->name,
                           r->path);
  return 0;
}

int ListCommand(const LibraryCliOptions& o) {
  StatusOr<std::unique_ptr<Library>> lib = OpenLibrary(o.models_dir, o.data_dir, !o.no_discover);
  if (!lib.ok()) return Fail(lib.status());
  std::cout << fmt::format("{:<44} {:>9} {:<8} {:<10} {:<11} {}\n", "NAME", "SIZE", "QUANT", "ARCH",
                           "SOURCE", "SUPPORTED");
  for (const LibraryEntry& e : (*lib)->List()) {
    ModelSummary s = (*lib)->Summary(e.path);
    std::cout << fmt::format("{:<44} {:>9} {:<8} {:<10} {:<11} {}\n", e.name, Bytes(e.size),
                             s.quant.empty() ? "?" : s.quant, s.arch.empty() ? "?" : s.arch,
                             e.source, s.supported ? "yes" : "no: " + s.problem);
  }
  return 0;
}

int RemoveCommand(const LibraryCliOptions& o) {
  StatusOr<std::unique_ptr<Library>> lib = OpenLibrary(o.models_dir, o.data_dir, !o.no_discover);
  if (!lib.ok()) return Fail(lib.status());
  if (Status s = (*lib)->Remove(o.model); !s.ok()) return Fail(s);
  std::cout << "deleted '" << o.model << "'\n";
  return 0;
}

StatusOr<json> CallServer(const LibraryCliOptions& o, const std::string& method,
                          const std::string& path, const json& body = nullptr) {
  httplib::Client c(o.host, o.port);
  c.set_connection_timeout(5);
  c.set_read_timeout(120);
  httplib::Headers h;
  if (const char* key = std::getenv("DORMOUSE_API_KEY"); key && *key) {
    h.emplace("Authorization", std::string("Bearer ") + key);
  }
  httplib::Result r = method == "GET" ? c.Get(path.c_str(), h)
                                      : c.Post(path.c_str(), h, body.dump(), "application/json");
  if (!r) {
    return Status::Errorf("no dormouse server at {}:{} ({}); start one with `dormouse serve`",
                          o.host, o.port, httplib::to_string(r.error()));
  }
  json j = json::parse(r->body, nullptr, false);
  if (r->status != 200) {
    std::string msg = j.is_object() && j.contains("error") ? j["error"].dump() : r->body;
    return Status::Errorf("the server answered {}: {}", r->status, msg);
  }
  return j;
}

// Ollama's expires_at (RFC 3339, UTC) as the keep-alive left: "4m59s", "forever".
std::string KeepAliveLeft(const std::string& expires_at) {
  std::tm tm{};
  if (std::sscanf(expires_at.c_str(), "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6) {
    return "?";
  }
  if (tm.tm_year >= 2200) return "forever";  // Ollama's "never expires"
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const int64_t left = static_cast<int64_t>(timegm(&tm)) - static_cast<int64_t>(std::time(nullptr));
  if (left <= 0) return "now";
  return left >= 60 ? fmt::format("{}m{:02}s", left / 60, left % 60) : fmt::format("{}s", left);
}

int PsCommand(const LibraryCliOptions& o) {
  StatusOr<json> j = CallServer(o, "GET", "/api/ps");
  if (!j.ok()) return Fail(j.status());
  std::cout << fmt::format("{:<36} {:>10} {:>10} {:<10} {}\n", "NAME", "MEMORY", "RSS", "STATE",
                           "KEEP-ALIVE LEFT");
  for (const json& m : (*j)["models"]) {
    std::cout << fmt::format("{:<36} {:>10} {:>10} {:<10} {}\n", m.value("name", ""),
                             Bytes(m.value("size", uint64_t{0})),
                             Bytes(m.value("rss_bytes", uint64_t{0})), m.value("state", ""),
                             KeepAliveLeft(m.value("expires_at", "")));
  }
  return 0;
}

int StopCommand(const LibraryCliOptions& o) {
  StatusOr<json> j = CallServer(o, "POST", "/api/eject", {{"model", o.model}});
  if (!j.ok()) return Fail(j.status());
  std::cout << "stopped '" << o.model << "'\n";
  return 0;
}

using Command = int (*)(const LibraryCliOptions&);

CLI::App* Add(CLI::App& app, Action* action, const char* name, const char* help, Command run,
              std::shared_ptr<LibraryCliOptions> o) {
  CLI::App* cmd = app.add_subcommand(name, help);
  cmd->callback([o, action, run] { *action = [o, run] { return run(*o); }; });
  return cmd;
}

void AddDiskOptions(CLI::App* cmd, LibraryCliOptions* o, bool discover) {
  cmd->add_option("--models-dir", o->models_dir,
                  "Models directory (default: $XDG_DATA_HOME/dormouse/models)")
      ->envname("DORMOUSE_MODELS");
  cmd->add_option("--data-dir", o->data_dir, "Data directory (default: $XDG_DATA_HOME/dormouse)");
  if (discover) {
    cmd->add_flag("--no-discover", o->no_discover,
                  "Only our models dir, not Ollama's, LM Studio's, GPT4All's or the HF cache");
  }
}

void AddServerOptions(CLI::App* cmd, LibraryCliOptions* o) {
  cmd->add_option("--host", o->host, "Server address");
  cmd->add_option("--port", o->port, "Server port")->check(CLI::Range(1, 65535));
}

}  // namespace

void AddLibraryCommands(CLI::App& app, Action* action) {
  auto o = std::make_shared<LibraryCliOptions>();
  CLI::App* pull = Add(app, action, "pull",
                       "Download a model: NAME[:TAG] (Ollama registry), hf.co/ORG/REPO[:QUANT], "
                       "hf.co/ORG/REPO/FILE.gguf or an https:// URL",
                       PullCommand, o);
  pull->add_option("model", o->model, "What to pull")->required();
  AddDiskOptions(pull, o.get(), false);
  CLI::App* list = Add(app, action, "list", "List the models on disk", ListCommand, o);
  list->alias("ls");
  AddDiskOptions(list, o.get(), true);
  CLI::App* rm = Add(app, action, "rm", "Delete a model dormouse pulled", RemoveCommand, o);
  rm->add_option("model", o->model, "Model name")->required();
  AddDiskOptions(rm, o.get(), true);
  CLI::App* ps =
      Add(app, action, "ps", "List the models a running server has loaded", PsCommand, o);
  AddServerOptions(ps, o.get());
  CLI::App* stop = Add(app, action, "stop", "Eject a model from a running server", StopCommand, o);
  stop->add_option("model", o->model, "Model name")->required();
  AddServerOptions(stop, o.get());
}

}  // namespace dormouse::cli
