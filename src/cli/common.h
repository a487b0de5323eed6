// Shared plumbing of the CLI commands: loading a model with its tokenizer and context.
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "base/thread_pool.h"
#include "engine/context.h"
#include "engine/model.h"
#include "engine/tokenizer/tokenizer.h"

namespace dormouse::cli {

struct Engine {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<InferenceContext> ctx;
};

// n_threads <= 0 means every core.
int ResolveThreads(int n_threads);

StatusOr<Engine> LoadEngine(const std::string& path, int n_threads, ContextParams params);

// Prints "error: <message>" to stderr and returns the exit code 1.
int Fail(const Status& status);

StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace dormouse::cli
