// `dormouse chat MODEL [--session NAME] [--system TEXT] [--keep-alive 5m] ...`
#include <iostream>

#include "cli/chat_app.h"
#include "cli/commands.h"
#include "cli/common.h"

namespace dormouse::cli {

void AddChatCommand(CLI::App& app, Action* action) {
  auto o = std::make_shared<ChatOptions>();
  o->sampling.temperature = 0.8f;
  CLI::App* cmd = app.add_subcommand(
      "chat", "Chat interactively; the conversation survives ejects and restarts");
  cmd->add_option("model", o->model, "GGUF model file")->required();
  cmd->add_option("--session", o->session, "Session name to create or resume");
  cmd->add_option("--system", o->system, "System prompt (for a new session)");
  cmd->add_option("--data-dir", o->data_dir,
                  "Transcripts and snapshots (default: $XDG_DATA_HOME/dormouse)");
  cmd->add_option("--keep-alive", o->keep_alive,
                  "Eject the model after this long idle (30s, 5m, 1h; 0 = after each reply; "
                  "negative = never)");
  cmd->add_option("-n,--n-predict", o->max_tokens, "Max tokens per reply (-1: until done)");
  cmd->add_option("-t,--threads", o->threads, "Threads (default: one per physical core available)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("-c,--ctx-size", o->ctx, "Context size (default: model's, max 4096)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 22));
  cmd->add_option("--temp", o->sampling.temperature, "Temperature (0 = greedy)");
  cmd->add_option("--top-k", o->sampling.top_k, "Top-k (0 = off)");
  cmd->add_option("--top-p", o->sampling.top_p, "Top-p (1 = off)");
  cmd->add_option("--min-p", o->sampling.min_p, "Min-p (0 = off)");
  cmd->add_option("--repeat-penalty", o->sampling.repeat_penalty, "Repetition penalty");
  cmd->add_option("--seed", o->seed, "Random seed (default: random)");
  cmd->add_option("--snapshot-budget", o->snapshot_budget_mib,
                  "Disk budget for snapshots in MiB (0 = unlimited; default: min(2 GiB, 5% of "
                  "the disk); least recently used deleted first)");
  cmd->add_flag("--compress", o->compress, "Compress snapshots with zstd");
  cmd->callback([o, action] {
    *action = [o] {
      StatusOr<std::unique_ptr<ChatApp>> app = ChatApp::CreateOrError(*o);
      if (!app.ok()) return Fail(app.status());
      return (*app)->Run(std::cin);
    };
  });
}

}  // namespace dormouse::cli
