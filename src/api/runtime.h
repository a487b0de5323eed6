// Everything below HTTP that a server process runs, built in dependency order and torn
// down in reverse: transcripts and snapshots in the data directory, the model loader,
// the lifecycle manager (with its keep-alive timer) and the Service, whose eject hook
// saves sessions before a model is freed. `dormouse serve`, `dormouse bench-resume` and
// the tests use the same wiring.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "api/settings.h"
#include "base/duration.h"
#include "lifecycle/events.h"
#include "lifecycle/gguf_loader.h"
#include "lifecycle/memory_probe.h"
#include "lifecycle/model_manager.h"
#include "lifecycle/service.h"
#include "store/snapshot_store.h"
#include "store/transcript_db.h"

namespace dormouse {

struct RuntimeOptions {
  std::string data_dir;                      // "" = the default ($XDG_DATA_HOME/dormouse)
  std::string models_dir;                    // every *.gguf in it is a model
  std::map<std::string, std::string> files;  // name -> path, given one by one
  // The library's models (pulled and discovered), asked on every lookup.
  std::function<std::map<std::string, std::string>()> more_models;
  ContextParams context;
  int threads = 0;  // compute threads shared by all models; 0 = one per physical core
  int64_t contexts_per_model = 4;
  int64_t max_queue = 16;
  Millis keep_alive = std::chrono::minutes(5);
  uint64_t memory_budget = 0;  // bytes; 0 = none
  // Bytes of snapshots on disk; 0 = unlimited; nullopt = SnapshotStore::DefaultBudget.
  std::optional<uint64_t> snapshot_budget;
  bool compress_snapshots = false;
  bool start_timer = true;  // keep-alive and pressure checks every 200 ms
  // Tests: fault injection and holding points (see ServiceHooks, GgufModelLoader::Options).
  ServiceHooks hooks;
  std::function<void(const std::string& model)> before_load;
};

class Runtime {
 public:
  static StatusOr<std::unique_ptr<Runtime>> CreateOrError(const RuntimeOptions& options);
  ~Runtime();  // Service::Shutdown (finish or checkpoint, save sessions), then eject all

  const std::string& data_dir() const { return data_dir_; }
  TranscriptDb& db() { return *db_; }
  SnapshotStore& snapshots() { return *snapshots_; }
  GgufModelLoader& loader() { return *loader_; }
  ModelManager& manager() { return *manager_; }
  Service& service() { return *service_; }
  ProcMemoryProbe& probe() { return probe_; }
  // For the browser app's routes: lifecycle events, run-time settings, and a transcript
  // connection of their own.
  EventBus& events() { return events_; }
  api::SettingsStore& settings() { return *settings_; }
  TranscriptDb& app_db() { return *app_db_; }

 private:
  Runtime() = default;
  std::string data_dir_;
  std::unique_ptr<TranscriptDb> db_;
  std::unique_ptr<TranscriptDb> hash_db_;  // the loader's model-hash cache (same file)
  std::unique_ptr<SnapshotStore> snapshots_;
  std::unique_ptr<GgufModelLoader> loader_;
  SystemClock clock_;
  ProcMemoryProbe probe_;
  std::unique_ptr<ModelManager> manager_;
  std::unique_ptr<Service> service_;
  EventBus events_;  // ~Runtime resets the manager (which publishes here) first
  std::unique_ptr<MemorySampler> sampler_;
  std::unique_ptr<api::SettingsStore> settings_;
  std::unique_ptr<TranscriptDb> app_db_;
};

}  // namespace dormouse
