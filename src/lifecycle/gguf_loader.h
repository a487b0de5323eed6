// The production ModelLoader: model names are GGUF file names (without .gguf) in a
// models directory or given one by one; estimates come from the GGUF header alone.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/context.h"
#include "lifecycle/loaded_model.h"
#include "lifecycle/memory_probe.h"
#include "lifecycle/model_manager.h"

namespace dormouse {

class TranscriptDb;

class LoadedModelHandle : public ModelHandle {
 public:
  explicit LoadedModelHandle(std::unique_ptr<LoadedModel> m) : model(std::move(m)) {}
  uint64_t GrownBytes() const override { return model->model->kv_bytes_in_use(); }
  std::unique_ptr<LoadedModel> model;
};

class GgufModelLoader : public ModelLoader {
 public:
  struct Options {
    std::string models_dir;                    // every *.gguf in it is a model
    std::map<std::string, std::string> files;  // name -> path, from -m flags
    // More models (name -> path), asked on every lookup so that models pulled or found
    // on disk while the server runs appear without a restart: the library's.
    std::function<std::map<std::string, std::string>()> more_models;
    ContextParams context;           // what each session context will use
    int64_t contexts_per_model = 1;  // live session contexts to budget for
    // Without a context size in `context`, a model gets DefaultContextSize within the
    // memory this probe reports available (and the budget, when set); no probe: no cap.
    MemoryProbe* probe = nullptr;
    uint64_t memory_budget = 0;
    // Test hook, called before each load; may throw to inject a failure. Empty normally.
    std::function<void(const std::string& name)> before_load;
  };
  GgufModelLoader(Options options, ThreadPool* pool, TranscriptDb* hash_cache);

  // The file for a model name; refuses names that could leave the models directory.
  StatusOr<std::string> PathOf(const std::string& name) const;
  // Every model name available, sorted.
  std::vector<std::string> Names() const;

  StatusOr<uint64_t> EstimateBytes(const std::string& name) override;
  StatusOr<std::shared_ptr<ModelHandle>> Load(const std::string& name) override;
  void AfterUnload(const std::string& name, EjectLevel level) override;

 private:
  StatusOr<uint64_t> EstimateFromHeader(const std::string& path) const;
  // Estimates per file, valid while its size and mtime are unchanged: a load would
  // otherwise parse the GGUF header twice (estimate, then load), every time.
  struct Estimate {
    int64_t size = 0, mtime_ns = 0;
    uint64_t bytes = 0;
  };
  Options options_;
  ThreadPool* pool_;
  TranscriptDb* hash_cache_;
  std::mutex estimates_mu_;
  std::map<std::string, Estimate> estimates_;
};

// Weights + forward-pass buffers of `model` with the given context. Not the KV caches: they
// grow with their conversations, and the manager adds what they hold (GrownBytes).
uint64_t EstimateModelBytes(const ModelConfig& c, uint64_t weight_bytes, const ContextParams& p,
                            int64_t contexts);

}  // namespace dormouse
