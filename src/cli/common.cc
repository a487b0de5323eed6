#include "cli/common.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "lifecycle/context_size.h"

namespace dormouse::cli {

std::string DescribeThreads(int n_threads) {
  if (n_threads > 0) return fmt::format("{} (--threads)", n_threads);
  const CpuBudget b = CurrentCpuBudget();
  return fmt::format("{} ({})", b.threads, b.Reason());
}

StatusOr<Engine> LoadEngine(const std::string& path, int n_threads, ContextParams params) {
  Engine e;
  DM_ASSIGN_OR_RETURN(Model model, Model::LoadOrError(path));
  e.model = std::make_unique<Model>(std::move(model));
  if (params.n_ctx <= 0) {
    ProcMemoryProbe probe;
    ApplyDefaultContext(*e.model, params, 1, MemoryForContexts(probe, 0));
  }
  StatusOr<Tokenizer> tok = Tokenizer::FromGguf(e.model->gguf());
  if (!tok.ok()) return tok.status().WithContext(path);
  e.tokenizer = std::make_unique<Tokenizer>(std::move(tok).value());
  if (e.tokenizer->n_vocab() != e.model->config().n_vocab) {
    return Status::Errorf("{}: tokenizer has {} tokens but the embedding has {} rows", path,
                          e.tokenizer->n_vocab(), e.model->config().n_vocab);
  }
  e.pool = std::make_unique<ThreadPool>(ResolveThreadCount(n_threads));
  DM_ASSIGN_OR_RETURN(InferenceContext ctx,
                      InferenceContext::CreateOrError(*e.model, params, e.pool.get()));
  e.ctx = std::make_unique<InferenceContext>(std::move(ctx));
  return e;
}

int Fail(const Status& status) {
  std::cerr << "error: " << status.message() << "\n";
  return 1;
}

StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Errorf("{}: cannot open", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::Errorf("{}: read error", path);
  return ss.str();
}

StatusOr<std::unique_ptr<Library>> OpenLibrary(const std::string& models_dir,
                                               const std::string& data_dir, bool discover) {
  LibraryOptions lo;
  lo.models_dir = models_dir;
  if (lo.models_dir.empty()) {
    DM_ASSIGN_OR_RETURN(lo.models_dir, DefaultModelsDir(data_dir));
  } else if (!std::filesystem::is_directory(lo.models_dir)) {
    return Status::Errorf("--models-dir {}: not a directory", lo.models_dir);
  }
  lo.discover = discover;
  if (discover) lo.stores = StoreDirs::FromEnvironment();
  return std::make_unique<Library>(lo);
}

StatusOr<std::string> ResolveModelPath(const std::string& model, bool discover) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(model, ec)) return model;
  const char* env = std::getenv("DORMOUSE_MODELS");
  DM_ASSIGN_OR_RETURN(std::unique_ptr<Library> lib,
                      OpenLibrary(env != nullptr ? env : "", "", discover));
  StatusOr<LibraryEntry> e = lib->Find(model);
  if (e.ok()) return e->path;
  // A missing file: let the loader name the file problem.
  const bool looks_like_path = model.find("hf.co/") != 0 &&
                               (model.find('/') != std::string::npos ||
                                (model.size() > 5 && model.substr(model.size() - 5) == ".gguf"));
  if (looks_like_path) return model;
  return e.status();
}

}  // namespace dormouse::cli
