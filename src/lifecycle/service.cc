#include "lifecycle/service.h"

#include <iostream>

#include "base/cpu_budget.h"
#include "lifecycle/service_impl.h"
#include "lifecycle/session_state.h"

namespace dormouse {

ServiceError MakeError(ErrorKind kind, std::string message) { return {kind, std::move(message)}; }

Service::Service(ServiceOptions options, GgufModelLoader* loader, ModelManager* manager,
                 TranscriptDb* db, SnapshotStore* snapshots)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
  impl_->loader = loader;
  impl_->manager = manager;
  impl_->db = db;
  impl_->snapshots = snapshots;
  impl_->LoadIndex();
}

Service::~Service() { Shutdown(); }

// Every saved snapshot's tokens and text, so requests can continue them after a restart.
void Service::Impl::LoadIndex() {
  std::lock_guard<std::mutex> lock(index_mu);
  for (const SnapshotInfo& info : snapshots->List()) {
    StatusOr<SnapshotHeader> h = snapshots->ReadHeader(info.key);
    if (!h.ok()) {
      std::cerr << "warning: skipping snapshot: " << h.status().message() << "\n";
      continue;
    }
    StatusOr<SessionExtra> e = DecodeSessionExtra(h->extra);
    index[info.key] =
        MakePrefixEntry(h->fingerprint, OwnerOf(info.key), h->tokens, e.ok() ? e->text : "");
  }
}

std::string Service::Impl::OwnerOf(const std::string& id) {
  std::lock_guard<std::mutex> lock(db_mu);
  StatusOr<std::optional<SessionRecord>> rec = db->GetSession(id);
  return rec.ok() && rec->has_value() ? (*rec)->owner : "";
}

void Service::Impl::Count(const std::function<void(ServiceMetrics&)>& f) {
  std::lock_guard<std::mutex> lock(metrics_mu);
  f(metrics);
}

void Worker::Publish() {
  auto view = std::make_shared<LiveView>();
  for (const Slot& s : slots) {
    if (!s.session_id.empty()) {
      view->push_back({s.session_id, s.owner, static_cast<int64_t>(s.conv.tokens().size()),
                       static_cast<int64_t>(s.conv.saved_tokens(s.session_id))});
    }
  }
  std::lock_guard<std::mutex> lock(published_mu);
  published = std::move(view);
}

std::shared_ptr<const LiveView> Worker::Published() const {
  std::lock_guard<std::mutex> lock(published_mu);
  return published;
}

bool Service::Impl::Forgotten(const std::string& id) const {
  std::lock_guard<std::mutex> lock(forgotten_mu);
  return forgotten.count(id) > 0;
}

void Service::Impl::DropForgotten(Worker& w) {
  for (Slot& s : w.slots) {
    if (!s.session_id.empty() && Forgotten(s.session_id)) {
      s.session_id.clear();
      s.conv.Clear();  // a deleted conversation's rows serve no later prompt
    }
  }
}

void Service::Impl::SaveSlot(Slot& s, const LoadedModel& lm, SaveKind kind) {
  Conversation& c = s.conv;
  if (!c.open() || s.session_id.empty() || c.tokens().empty()) return;
  if (!c.unsaved() && (kind == SaveKind::kCheckpoint || !c.has_journal())) return;
  std::lock_guard<std::mutex> persist(persist_mu);
  if (Forgotten(s.session_id)) return;  // deleted meanwhile: nothing to keep
  std::string extra = EncodeSessionExtra({"", c.text(), 0});
  bool appended = false;
  StatusOr<SnapshotSaveResult> r =
      kind == SaveKind::kCheckpoint
          ? c.Checkpoint(*snapshots, s.session_id, lm.fingerprint, extra, options.snapshots,
                         &appended)
          : c.Save(*snapshots, s.session_id, lm.fingerprint, extra, options.snapshots);
  if (!r.ok()) {
    std::cerr << "warning: snapshot of session " << s.session_id
              << " not saved: " << r.status().message() << "\n";
    return;
  }
  {
    std::lock_guard<std::mutex> lock(index_mu);
    index[s.session_id] = MakePrefixEntry(lm.fingerprint, s.owner, c.tokens(), c.text());
    for (const std::string& gone : r->evicted) index.erase(gone);
  }
  Count([&](ServiceMetrics& m) {
    (appended ? m.snapshots_appended : m.snapshots_saved)++;
    m.snapshot_bytes_written += r->info.bytes;
    m.snapshot_write_seconds.Observe(r->seconds);
  });
}

void Service::Impl::CheckpointActive(Worker& w) {
  std::lock_guard<std::mutex> lock(w.slots_mu);
  // An eject since the request ended has saved (and freed) every slot already.
  if (w.bound == nullptr || w.active_slot < 0 || w.active_slot >= static_cast<int>(w.slots.size()))
    return;
  Slot& slot = w.slots[w.active_slot];
  SaveSlot(slot, *w.bound, SaveKind::kCheckpoint);
  slot.conv.ReleaseUnusedMemory();  // a request that cut its conversation short
  w.Publish();
}

Worker* Service::Impl::WorkerFor(const std::string& model) {
  std::lock_guard<std::mutex> lock(workers_mu);
  if (shutting_down) return nullptr;
  std::unique_ptr<Worker>& w = workers[model];
  if (!w) {
    w = std::make_unique<Worker>();
    w->model = model;
    if (!pool) pool = std::make_shared<ThreadPool>(ResolveThreadCount(options.threads));
    w->pool = pool;
    Worker* raw = w.get();
    w->thread = std::thread([this, raw] { WorkerLoop(raw); });
  }
  return w.get();
}

void Service::Impl::WorkerLoop(Worker* w) {
  for (;;) {
    Job* job = nullptr;
    {
      std::unique_lock<std::mutex> lock(w->queue_mu);
      w->queue_cv.wait(lock, [&] { return w->stop || !w->queue.empty(); });
      if (w->queue.empty()) return;  // stopping, nothing left
      job = w->queue.front();
      w->queue.pop_front();
      w->running = job;
    }
    auto result = RunCaught(*w, *job);
    if (job->request->cancelled->load()) Count([](ServiceMetrics& m) { m.requests_cancelled++; });
    if (auto* r = std::get_if<CompletionResult>(&result)) {
      r->total_seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - job->posted).count();
    } else {
      Count([](ServiceMetrics& m) { m.requests_failed++; });
    }
    {
      std::lock_guard<std::mutex> lock(w->queue_mu);
      w->running = nullptr;
    }
    {
      std::lock_guard<std::mutex> lock(job->mu);
      job->result = std::move(result);
      job->done = true;
      job->cv.notify_all();
    }
    // The reply is out; the disk catches up before the next request changes the context.
    CheckpointActive(*w);
  }
}

// The worker's top level: whatever a request throws (bad_alloc in a load or a
// generation) fails that request with a 500 naming the cause, and the worker goes on.
// The slot it ran on may no longer mirror its cache, so it is dropped; the session's
// transcript and last snapshot stay.
std::variant<CompletionResult, ServiceError> Service::Impl::RunCaught(Worker& w, Job& job) {
  w.active_slot = -1;
  std::string what;
  try {
    // A client that left while its request waited gets nothing computed for it.
    if (job.request->cancelled->load()) {
      return MakeError(ErrorKind::kBadRequest, "the client went away");
    }
    return Run(w, *job.request, *job.sink);
  } catch (const std::exception& ex) {
    what = ex.what();
  } catch (...) {
    what = "unknown exception";
  }
  std::cerr << "error: request to model '" << w.model << "' failed: " << what << "\n";
  {
    std::lock_guard<std::mutex> lock(w.slots_mu);
    if (w.active_slot >= 0 && w.active_slot < static_cast<int>(w.slots.size())) {
      w.slots[w.active_slot] = Slot{};
    }
    w.Publish();
  }
  return MakeError(ErrorKind::kInternal, fmt::format("internal error: {}", what));
}

std::variant<CompletionResult, ServiceError> Service::Complete(const CompletionRequest& request,
                                                               const PieceSink& sink) {
  Impl& d = *impl_;
  StatusOr<std::string> path = d.loader->PathOf(request.model);
  if (!path.ok()) return MakeError(ErrorKind::kNotFound, path.status().message());
  Worker* w = d.WorkerFor(request.model);
  if (w == nullptr) return MakeError(ErrorKind::kUnavailable, "the server is shutting down");
  Job job;
  job.request = &request;
  job.sink = &sink;
  job.posted = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lock(w->queue_mu);
    if (w->stop) return MakeError(ErrorKind::kUnavailable, "the server is shutting down");
    if (static_cast<int64_t>(w->queue.size()) >= d.options.max_queue) {
      d.Count([](ServiceMetrics& m) { m.requests_rejected++; });
      return MakeError(ErrorKind::kOverloaded,
                       fmt::format("model '{}' has {} requests waiting; try again later",
                                   request.model, w->queue.size()));
    }
    w->queue.push_back(&job);
  }
  w->queue_cv.notify_one();
  std::unique_lock<std::mutex> lock(job.mu);
  job.cv.wait(lock, [&] { return job.done; });
  return std::move(job.result);
}

void Service::OnEject(const std::string& model, ModelHandle& handle, Reason reason) {
  Impl& d = *impl_;
  Worker* w = nullptr;
  {
    std::lock_guard<std::mutex> lock(d.workers_mu);
    auto it = d.workers.find(model);
    if (it != d.workers.end()) w = it->second.get();
  }
  if (w == nullptr) return;
  const LoadedModel& lm = *static_cast<LoadedModelHandle&>(handle).model;
  std::lock_guard<std::mutex> lock(w->slots_mu);
  d.DropForgotten(*w);
  for (Slot& s : w->slots) {
    d.SaveSlot(s, lm, Impl::SaveKind::kCompact);
    s = Slot{};  // frees the context and its KV cache
  }
  w->slots.clear();
  w->bound = nullptr;
  w->Publish();
}

std::variant<EjectReport, ServiceError> Service::Unload(const std::string& model, EjectLevel level,
                                                        bool force) {
  StatusOr<std::string> path = impl_->loader->PathOf(model);
  if (!path.ok()) return MakeError(ErrorKind::kNotFound, path.status().message());
  StatusOr<EjectReport> r = impl_->manager->Eject(model, level, force, Reason::kManual);
  if (!r.ok()) return MakeError(ErrorKind::kInternal, r.status().message());
  return *r;
}

std::vector<std::string> Service::ModelNames() const { return impl_->loader->Names(); }

ServiceMetrics Service::Metrics() const {
  ServiceMetrics m;
  {
    std::lock_guard<std::mutex> lock(impl_->metrics_mu);
    m = impl_->metrics;
  }
  std::lock_guard<std::mutex> lock(impl_->index_mu);
  for (const auto& [key, entry] : impl_->index) m.prefix_index_bytes += key.size() + entry.bytes();
  m.prefix_index_entries = static_cast<int64_t>(impl_->index.size());
  return m;
}

void Service::Shutdown() {
  Impl& d = *impl_;
  std::vector<Worker*> all;
  {
    std::lock_guard<std::mutex> lock(d.workers_mu);
    if (d.shutting_down) return;
    d.shutting_down = true;
    for (auto& [name, w] : d.workers) all.push_back(w.get());
  }
  for (Worker* w : all) {  // refuse what waits; stop what runs (its state is checkpointed)
    std::lock_guard<std::mutex> lock(w->queue_mu);
    w->stop = true;
    for (Job* job : w->queue) {
      std::lock_guard<std::mutex> jl(job->mu);
      job->result = MakeError(ErrorKind::kUnavailable, "the server is shutting down");
      job->done = true;
      job->cv.notify_all();
    }
    w->queue.clear();
    if (w->running != nullptr) w->running->request->cancelled->store(true);
    w->queue_cv.notify_all();
  }
  for (Worker* w : all) {
    if (w->thread.joinable()) w->thread.join();
  }
  d.manager->EjectAll(Reason::kShutdown);  // the eject hook saves every live session
}

}  // namespace dormouse
