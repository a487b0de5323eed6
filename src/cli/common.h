// Shared plumbing of the CLI commands: loading a model with its tokenizer and context.
#pragma once

#include <memory>
#include <string>

#include "base/cpu_budget.h"
#include "base/status.h"
#include "base/thread_pool.h"
#include "engine/context.h"
#include "engine/model.h"
#include "engine/tokenizer/tokenizer.h"
#include "library/library.h"

namespace dormouse::cli {

struct Engine {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<InferenceContext> ctx;
};

// "2 (2 physical cores available)" for the default (n_threads <= 0, see CpuBudget),
// "3 (--threads)" for an explicit count.
std::string DescribeThreads(int n_threads);

StatusOr<Engine> LoadEngine(const std::string& path, int n_threads, ContextParams params);

// Prints "error: <message>" to stderr and returns the exit code 1.
int Fail(const Status& status);

StatusOr<std::string> ReadFile(const std::string& path);

// The model library over `models_dir` ("" = the default, under the data dir) and, when
// `discover`, the stores of other tools.
StatusOr<std::unique_ptr<Library>> OpenLibrary(const std::string& models_dir,
                                               const std::string& data_dir, bool discover);
// A model argument: an existing file path as is, else a library name.
StatusOr<std::string> ResolveModelPath(const std::string& model, bool discover = true);

}  // namespace dormouse::cli
