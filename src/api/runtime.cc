#include "api/runtime.h"

#include <filesystem>

namespace dormouse {

StatusOr<std::unique_ptr<Runtime>> Runtime::CreateOrError(const RuntimeOptions& o) {
  std::unique_ptr<Runtime> rt(new Runtime());
  DM_ASSIGN_OR_RETURN(rt->data_dir_, ResolveDataDir(o.data_dir));
  DM_ASSIGN_OR_RETURN(rt->db_, TranscriptDb::OpenOrError(rt->data_dir_));
  const std::string snapshot_dir = (std::filesystem::path(rt->data_dir_) / "snapshots").string();
  uint64_t budget = 0;
  if (o.snapshot_budget) {
    budget = *o.snapshot_budget;
  } else {
    DM_ASSIGN_OR_RETURN(budget, SnapshotStore::DefaultBudget(snapshot_dir));
  }
  DM_ASSIGN_OR_RETURN(rt->snapshots_, SnapshotStore::OpenOrError(snapshot_dir, budget));
  GgufModelLoader::Options lo;
  lo.models_dir = o.models_dir;
  lo.files = o.files;
  lo.more_models = o.more_models;
  lo.context = o.context;
  lo.contexts_per_model = o.contexts_per_model;
  lo.probe = &rt->probe_;
  lo.memory_budget = o.memory_budget;
  lo.before_load = o.before_load;
  // Sessions evaluate on the service's one compute pool; the loader needs none. Its hash
  // cache gets a connection of its own: loads run on the workers' threads, unsynchronized
  // with the service's use of db_ (one SQLite connection must not be shared that way).
  DM_ASSIGN_OR_RETURN(rt->hash_db_, TranscriptDb::OpenOrError(rt->data_dir_));
  rt->loader_ = std::make_unique<GgufModelLoader>(lo, nullptr, rt->hash_db_.get());
  ModelManager::Options mo;
  mo.default_keep_alive = o.keep_alive;
  mo.memory_budget = o.memory_budget;
  rt->manager_ = std::make_unique<ModelManager>(mo, &rt->clock_, &rt->probe_, rt->loader_.get());
  ServiceOptions so;
  so.threads = o.threads;
  so.contexts_per_model = o.contexts_per_model;
  so.max_queue = o.max_queue;
  so.context = o.context;
  so.snapshots.compress = o.compress_snapshots;
  so.hooks = o.hooks;
  rt->service_ = std::make_unique<Service>(so, rt->loader_.get(), rt->manager_.get(), rt->db_.get(),
                                           rt->snapshots_.get());
  Service* service = rt->service_.get();
  rt->manager_->SetEjectHook([service](const std::string& model, ModelHandle& h, Reason r) {
    service->OnEject(model, h, r);
  });
  rt->manager_->SetEventBus(&rt->events_);
  rt->settings_ =
      std::make_unique<api::SettingsStore>(rt->data_dir_, rt->manager_.get(), &rt->probe_);
  DM_ASSIGN_OR_RETURN(rt->app_db_, TranscriptDb::OpenOrError(rt->data_dir_));
  MemorySampler::Sources src;
  src.probe = &rt->probe_;
  src.manager = rt->manager_.get();
  GgufModelLoader* loader = rt->loader_.get();
  src.file_size_of = [loader](const std::string& name) -> uint64_t {
    StatusOr<std::string> path = loader->PathOf(name);
    std::error_code ec;
    const uint64_t n = path.ok() ? std::filesystem::file_size(*path, ec) : 0;
    return ec ? 0 : n;
  };
  src.resident_of = [loader](const std::string& name) -> uint64_t {
    StatusOr<std::string> path = loader->PathOf(name);
    return path.ok() ? MappedFileRss(*path) : 0;
  };
  rt->sampler_ = std::make_unique<MemorySampler>(&rt->events_, std::move(src));
  if (o.start_timer) rt->manager_->StartTimer(std::chrono::milliseconds(200));
  return rt;
}

Runtime::~Runtime() {
  sampler_.reset();                    // reads the manager
  if (service_) service_->Shutdown();  // finishes or checkpoints, saves, ejects
  manager_.reset();                    // its eject hook still reaches the service; its
                                       // shutdown transitions still reach events_
  service_.reset();
}

}  // namespace dormouse
