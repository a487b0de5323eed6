// dormouse: a local LLM runtime. This file only dispatches to the subcommands.
#include <iostream>

#include "base/allocator.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "engine/kernel_target.h"

int main(int argc, char** argv) {
  dormouse::TuneAllocatorForReclaim();
  CLI::App app{"dormouse: a local LLM runtime that gives memory back when idle"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every command");
  dormouse::cli::Action action;
  dormouse::cli::AddRunCommand(app, &action);
  dormouse::cli::AddTokenizeCommand(app, &action);
  dormouse::cli::AddLogitsCommand(app, &action);
  dormouse::cli::AddBenchCommand(app, &action);
  dormouse::cli::AddInfoCommand(app, &action);
  dormouse::cli::AddChatCommand(app, &action);
  dormouse::cli::AddServeCommand(app, &action);
  dormouse::cli::AddBenchResumeCommand(app, &action);
  dormouse::cli::AddMakeGgufCommand(app, &action);
  dormouse::cli::AddLibraryCommands(app, &action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  // Before any command runs a kernel: DORMOUSE_TARGET=avx2 makes every command measure or
  // serve with the AVX2 kernels.
  if (dormouse::Status s = dormouse::RestrictKernelTargetFromEnvironment(); !s.ok()) {
    return dormouse::cli::Fail(s);
  }
  return action ? action() : 1;
}
