// Registration of the CLI's subcommands. Each command file adds its options to `app`
// and sets `*action` to the function that runs it.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace dormouse::cli {

using Action = std::function<int()>;

void AddRunCommand(CLI::App& app, Action* action);
void AddTokenizeCommand(CLI::App& app, Action* action);
void AddLogitsCommand(CLI::App& app, Action* action);
void AddBenchCommand(CLI::App& app, Action* action);
void AddInfoCommand(CLI::App& app, Action* action);
void AddChatCommand(CLI::App& app, Action* action);
void AddServeCommand(CLI::App& app, Action* action);
void AddBenchResumeCommand(CLI::App& app, Action* action);
void AddMakeGgufCommand(CLI::App& app, Action* action);
void AddLibraryCommands(CLI::App& app, Action* action);  // pull, list, rm, ps, stop

}  // namespace dormouse::cli
