#include "cli/chat_app.h"

#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/common.h"

namespace dormouse::cli {
namespace {

double MiB(uint64_t b) { return static_cast<double>(b) / (1 << 20); }
double Ms(double seconds) { return seconds * 1000.0; }

std::string GeneratedSessionName() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "chat-%Y%m%d-%H%M%S", std::localtime(&t));
  return buf;
}

std::string SamplingJson(const SamplerParams& p) {
  nlohmann::json j = {{"temperature", p.temperature},
                      {"top_k", p.top_k},
                      {"top_p", p.top_p},
                      {"min_p", p.min_p},
                      {"repeat_penalty", p.repeat_penalty},
                      {"repeat_last_n", p.repeat_last_n},
                      {"seed", p.seed}};
  return j.dump();
}

const char* kHelp = "commands: /save  /eject [warm|cold]  /sessions  /status  /help  /quit\n";

}  // namespace

StatusOr<std::unique_ptr<ChatApp>> ChatApp::CreateOrError(const ChatOptions& o) {
  std::unique_ptr<ChatApp> app(new ChatApp());
  app->o_ = o;
  DM_ASSIGN_OR_RETURN(Millis ka, ParseDuration(o.keep_alive));
  app->keep_alive_ = KeepAlive::For(ka);
  app->context_.n_ctx = o.ctx;
  app->write_options_.compress = o.compress;
  app->o_.sampling.seed = o.seed >= 0 ? static_cast<uint64_t>(o.seed) : std::random_device{}();
  DM_RETURN_IF_ERROR(Sampler::Validate(app->o_.sampling));
  DM_ASSIGN_OR_RETURN(std::string dir, ResolveDataDir(o.data_dir));
  DM_ASSIGN_OR_RETURN(app->db_, TranscriptDb::OpenOrError(dir));
  const std::string snapshot_dir = (std::filesystem::path(dir) / "snapshots").string();
  uint64_t budget = static_cast<uint64_t>(o.snapshot_budget_mib) << 20;
  if (o.snapshot_budget_mib < 0) {
    DM_ASSIGN_OR_RETURN(budget, SnapshotStore::DefaultBudget(snapshot_dir));
  }
  DM_ASSIGN_OR_RETURN(app->snapshots_, SnapshotStore::OpenOrError(snapshot_dir, budget));
  app->pool_ = std::make_unique<ThreadPool>(ResolveThreadCount(o.threads));
  app->model_name_ = ModelNameFromPath(o.model);
  GgufModelLoader::Options lo;
  lo.files[app->model_name_] = o.model;
  lo.context = app->context_;
  lo.probe = &app->probe_;
  app->loader_ = std::make_unique<GgufModelLoader>(lo, app->pool_.get(), app->db_.get());
  // Refuse a missing or broken model now, not at the first message.
  DM_RETURN_IF_ERROR(app->loader_->EstimateBytes(app->model_name_).status());
  ModelManager::Options mo;
  mo.default_keep_alive = ka;
  app->manager_ =
      std::make_unique<ModelManager>(mo, &app->clock_, &app->probe_, app->loader_.get());
  ChatApp* self = app.get();
  app->manager_->SetEjectHook([self](const std::string& model, ModelHandle&, Reason reason) {
    self->OnEject(model, reason);
  });
  DM_RETURN_IF_ERROR(app->OpenSession());
  app->manager_->StartTimer(std::chrono::milliseconds(200));
  return app;
}

ChatApp::~ChatApp() {
  manager_.reset();  // ejects (saving the session) before the session goes
}

Status ChatApp::OpenSession() {
  const std::string name = o_.session.empty() ? GeneratedSessionName() : o_.session;
  DM_ASSIGN_OR_RETURN(std::optional<SessionRecord> found, db_->FindSessionByName(name));
  SessionRecord rec;
  if (found) {
    rec = *found;
    if (!o_.system.empty() && o_.system != rec.system_prompt) {
      std::cerr << "note: session '" << name << "' keeps its system prompt; --system ignored\n";
    }
  } else {
    rec.name = name;
    rec.model = model_name_;
    rec.system_prompt = o_.system;
    rec.sampling_json = SamplingJson(o_.sampling);
    DM_ASSIGN_OR_RETURN(rec, db_->CreateSession(rec));
    if (!o_.system.empty()) {
      MessageRecord sys{0, "system", o_.system, 0};
      DM_RETURN_IF_ERROR(db_->AppendMessage(rec.id, &sys));
    }
  }
  rec.model = model_name_;
  rec.sampling_json = SamplingJson(o_.sampling);
  DM_RETURN_IF_ERROR(db_->UpdateSession(rec));
  DM_ASSIGN_OR_RETURN(std::vector<MessageRecord> messages, db_->Messages(rec.id));
  std::cerr << fmt::format("session '{}' ({} messages){}\n", rec.name, messages.size(),
                           found ? "" : fmt::format("; resume it with --session {}", rec.name));
  session_ = std::make_unique<ChatSession>(rec, std::move(messages), o_.sampling);
  return Status::Ok();
}

// Runs on whichever thread ejects (the keep-alive timer, /eject, shutdown), when no turn
// is running: the lease protocol guarantees that.
void ChatApp::OnEject(const std::string& model, Reason reason) {
  std::lock_guard<std::mutex> lock(session_mu_);
  if (!session_ || !session_->attached()) return;
  std::string saved = "nothing new to save";
  if (session_->unsaved() || session_->has_journal() ||
      !snapshots_->Exists(session_->record().id)) {  // a full snapshot folds the journal in
    StatusOr<SnapshotSaveResult> r = session_->Save(*snapshots_, write_options_);
    saved = r.ok() ? fmt::format("saved {} tokens ({:.1f} MiB) in {:.0f} ms",
                                 session_->tokens().size(), MiB(r->info.bytes), Ms(r->seconds))
                   : "could not save: " + r.status().message();
  }
  session_->Detach();
  last_eject_ = fmt::format("{} ejected ({}); {}", model, ReasonName(reason), saved);
}

StatusOr<ModelManager::Lease> ChatApp::EnsureReady() {
  DM_ASSIGN_OR_RETURN(ModelManager::Lease lease, manager_->Acquire(model_name_, keep_alive_));
  const LoadedModel& lm = *lease.as<LoadedModelHandle>().model;
  std::lock_guard<std::mutex> lock(session_mu_);
  if (session_->attached() && session_->model() == &lm) return lease;
  DM_RETURN_IF_ERROR(session_->Attach(lm, context_));
  RestoreReport rr = session_->Restore(*snapshots_);
  std::string restored =
      rr.restored ? fmt::format("restored {} tokens from the snapshot in {:.1f} ms, 0 recomputed",
                                rr.n_restored, Ms(rr.seconds))
                  : (session_->messages().empty()
                         ? std::string("new conversation")
                         : fmt::format("snapshot not used ({}); the transcript's {} messages will "
                                       "be re-read",
                                       rr.fallback_reason, session_->messages().size()));
  if (last_eject_.empty()) {
    std::cerr << fmt::format("[{} loaded in {:.0f} ms; {}]\n", lm.name, Ms(lm.load_seconds),
                             restored);
  } else {
    std::cerr << fmt::format("[{}; reloaded in {:.0f} ms; {}]\n", last_eject_, Ms(lm.load_seconds),
                             restored);
  }
  last_eject_.clear();
  return lease;
}

void ChatApp::Turn(const std::string& text) {
  StatusOr<ModelManager::Lease> lease = EnsureReady();
  if (!lease.ok()) {
    std::cerr << "error: " << lease.status().message() << "\n";
    return;
  }
  std::lock_guard<std::mutex> lock(session_mu_);
  TurnOptions to;
  to.max_tokens = o_.max_tokens;
  const ModelManager::Lease& l = *lease;
  StatusOr<TurnReport> r = session_->Send(
      text, to,
      [&](std::string_view piece) {
        std::cout << piece << std::flush;
        return !l.cancel_requested();
      },
      db_.get());
  std::cout << "\n" << std::flush;
  if (!r.ok()) {
    std::cerr << "error: " << r.status().message() << "\n";
    return;
  }
  if (!r->notice.empty()) std::cerr << "[" << r->notice << "]\n";
  // Only what the turn added goes to disk (the snapshot's journal): a crash loses no turn.
  StatusOr<SnapshotSaveResult> saved = session_->Checkpoint(*snapshots_, write_options_);
  if (!saved.ok()) std::cerr << "warning: snapshot not saved: " << saved.status().message() << "\n";
}

void ChatApp::PrintStatus() {
  std::optional<ModelStatus> ms = manager_->Find(model_name_);
  ProcessMemory pm = probe_.Process();
  std::cout << fmt::format("model:    {} ({})\n", model_name_,
                           ms ? ModelStateName(ms->state) : "unloaded");
  std::cout << fmt::format("memory:   RSS {:.1f} MiB (anon {:.1f}, file {:.1f})\n", MiB(pm.rss),
                           MiB(pm.anon), MiB(pm.file));
  if (ms && ms->expires_at) {
    auto left = std::chrono::duration_cast<Millis>(*ms->expires_at - clock_.Now());
    std::cout << "keep-alive: " << FormatDuration(std::max(left, Millis(0))) << " left\n";
  } else if (ms && ms->keep_forever) {
    std::cout << "keep-alive: forever\n";
  }
  if (ms && ms->last_transition) {
    const TransitionRecord& t = *ms->last_transition;
    auto ago = std::chrono::duration_cast<Millis>(clock_.Now() - t.at);
    std::cout << fmt::format("last:     {} -> {} ({}), {} ago{}\n", ModelStateName(t.from),
                             ModelStateName(t.to), ReasonName(t.reason), FormatDuration(ago),
                             t.detail.empty() ? "" : "; " + t.detail);
  }
  std::lock_guard<std::mutex> lock(session_mu_);
  std::cout << fmt::format(
      "session:  {} ({} messages), {} tokens cached{}\n", session_->record().name,
      session_->messages().size(), session_->tokens().size(),
      session_->attached() ? fmt::format(" of {}", session_->n_ctx()) : " (saved; model ejected)");
}

void ChatApp::PrintSessions() {
  StatusOr<std::vector<SessionRecord>> all = db_->ListSessions();
  if (!all.ok()) {
    std::cerr << "error: " << all.status().message() << "\n";
    return;
  }
  for (const SessionRecord& s : *all) {
    std::string snap = "no snapshot";
    std::error_code ec;
    uint64_t bytes = std::filesystem::file_size(snapshots_->PathFor(s.id), ec);
    if (!ec) snap = fmt::format("snapshot {:.1f} MiB", MiB(bytes));
    std::cout << fmt::format("{} {:<24} {:<20} {:4} messages  {}\n",
                             s.id == session_->record().id ? "*" : " ", s.name, s.model,
                             s.n_messages, snap);
  }
}

void ChatApp::Eject(const std::string& arg) {
  EjectLevel level = arg == "cold" ? EjectLevel::kCold : EjectLevel::kWarm;
  if (!arg.empty() && arg != "cold" && arg != "warm") {
    std::cerr << "usage: /eject [warm|cold]\n";
    return;
  }
  StatusOr<EjectReport> r = manager_->Eject(model_name_, level, false, Reason::kManual);
  if (!r.ok()) {
    std::cerr << "error: " << r.status().message() << "\n";
    return;
  }
  if (!r->was_loaded) {
    std::cout << "the model is not loaded\n";
    return;
  }
  std::cout << fmt::format(
      "[{}; {} eject freed {:.1f} MiB anon, {:.1f} MiB file; RSS now {:.1f} MiB (anon {:.1f}, "
      "file {:.1f})]\n",
      last_eject_, EjectLevelName(level), r->anon_freed() / double(1 << 20),
      r->file_freed() / double(1 << 20), MiB(r->after.rss), MiB(r->after.anon), MiB(r->after.file));
  std::lock_guard<std::mutex> lock(session_mu_);
  last_eject_.clear();  // reported here; the reload line need not repeat it
}

void ChatApp::Save() {
  std::lock_guard<std::mutex> lock(session_mu_);
  if (!session_->attached()) {
    std::cout << "[the snapshot was saved when the model was ejected]\n";
    return;
  }
  StatusOr<SnapshotSaveResult> r = session_->Save(*snapshots_, write_options_);
  if (!r.ok()) {
    std::cerr << "error: " << r.status().message() << "\n";
    return;
  }
  std::cout << fmt::format("[saved {} tokens to {} ({:.1f} MiB) in {:.1f} ms]\n",
                           session_->tokens().size(), r->info.path, MiB(r->info.bytes),
                           Ms(r->seconds));
}

bool ChatApp::Command(const std::string& line) {
  std::string cmd = line.substr(0, line.find(' '));
  std::string arg = line.size() > cmd.size() ? line.substr(cmd.size() + 1) : "";
  if (cmd == "/quit" || cmd == "/exit" || cmd == "/bye") return false;
  if (cmd == "/save") {
    Save();
  } else if (cmd == "/eject") {
    Eject(arg);
  } else if (cmd == "/sessions") {
    PrintSessions();
  } else if (cmd == "/status") {
    PrintStatus();
  } else {
    std::cout << kHelp;
  }
  return true;
}

int ChatApp::Run(std::istream& in) {
  const bool tty = ::isatty(STDIN_FILENO) != 0;
  if (tty) std::cerr << kHelp;
  std::string line;
  for (;;) {
    if (tty) std::cout << ">>> " << std::flush;
    if (!std::getline(in, line)) break;
    if (line.empty()) continue;
    if (line[0] == '/') {
      if (!Command(line)) break;
      continue;
    }
    Turn(line);
  }
  // Leaving: the manager's shutdown eject saves the session if it changed.
  manager_->EjectAll(Reason::kShutdown);
  return 0;
}

}  // namespace dormouse::cli
