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
  lo.context = o.context;
  lo.contexts_per_model = o.contexts_per_model;
  lo.before_load = o.before_load;
  // Sessions evaluate on their worker's own pool; the loader needs none.
  rt->loader_ = std::make_unique<GgufModelLoader>(lo, nullptr, rt->db_.get());
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
  if (o.start_timer) rt->manager_->StartTimer(std::chrono::milliseconds(200));
  return rt;
}

Runtime::~Runtime() {
  if (service_) service_->Shutdown();  // finishes or checkpoints, saves, ejects
  manager_.reset();                    // its eject hook still reaches the service
  service_.reset();
}

}  // namespace dormouse
