// Service internals shared by service.cc (queues, workers, sessions, metrics) and
// service_run.cc (running one request on a model's slots).
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "base/thread_pool.h"
#include "engine/context.h"
#include "lifecycle/conversation.h"
#include "lifecycle/gguf_loader.h"
#include "lifecycle/prefix_index.h"
#include "lifecycle/service.h"
#include "store/snapshot_store.h"
#include "store/transcript_db.h"

namespace dormouse {

// One live context and the conversation whose KV it holds.
struct Slot {
  Conversation conv;         // not open until first used, and after an eject
  std::string session_id;    // empty: free
  std::string owner;         // of the session (SessionRecord::owner)
  int64_t n_messages = 0;    // transcript messages recorded for the session
  size_t prompt_tokens = 0;  // of `tokens`, those of the last request's prompt
  std::chrono::steady_clock::time_point last_used{};
};

// A live session as the worker last published it.
struct LiveSession {
  std::string id, owner;
  int64_t n_tokens = 0;
  int64_t saved_tokens = 0;  // of n_tokens, those on disk (snapshot and journal)
};
using LiveView = std::vector<LiveSession>;

struct Job {
  const CompletionRequest* request = nullptr;
  const PieceSink* sink = nullptr;
  std::chrono::steady_clock::time_point posted;
  std::variant<CompletionResult, ServiceError> result;
  bool done = false;
  std::mutex mu;
  std::condition_variable cv;
};

struct Worker {
  std::string model;
  std::shared_ptr<ThreadPool> pool;  // the service's one compute pool (Service::Impl::pool)
  std::thread thread;
  std::mutex queue_mu;
  std::condition_variable queue_cv;
  std::deque<Job*> queue;
  bool stop = false;
  Job* running = nullptr;  // guarded by queue_mu

  // The worker thread owns the slots: it takes slots_mu only against the eject hook
  // (which runs when no request holds the model). Request threads read `published`.
  std::mutex slots_mu;                 // never held while acquiring or ejecting the model
  const LoadedModel* bound = nullptr;  // the loaded instance the slots' contexts use
  std::vector<Slot> slots;
  int active_slot = -1;  // the slot the running request uses (worker thread only)

  // An immutable copy of the slots' sessions, replaced (never changed) by Publish().
  mutable std::mutex published_mu;  // guards the pointer only, held for a copy of it
  std::shared_ptr<const LiveView> published = std::make_shared<const LiveView>();
  void Publish();  // caller holds slots_mu
  std::shared_ptr<const LiveView> Published() const;
};

struct Service::Impl {
  ServiceOptions options;
  GgufModelLoader* loader;
  ModelManager* manager;
  TranscriptDb* db;
  SnapshotStore* snapshots;

  std::mutex db_mu;  // TranscriptDb is used from one thread at a time

  mutable std::mutex workers_mu;
  std::map<std::string, std::unique_ptr<Worker>> workers;
  bool shutting_down = false;

  mutable std::mutex index_mu;
  std::map<std::string, PrefixEntry> index;  // snapshot key (session id) -> its hashes

  // Sessions deleted by request threads; the worker drops their slots and never saves
  // them again (it owns the slots, so deletion is a message, not a lock).
  // Held by SaveSlot while it writes a session's snapshot and indexes it, and by
  // DeleteSession while it forgets one: a delete never races a checkpoint into bringing
  // the session back.
  std::mutex persist_mu;
  mutable std::mutex forgotten_mu;
  std::set<std::string> forgotten;
  bool Forgotten(const std::string& id) const;
  void DropForgotten(Worker& w);  // worker thread, slots_mu held
  std::vector<std::pair<std::string, std::shared_ptr<const LiveView>>> LiveViews() const;

  mutable std::mutex metrics_mu;
  ServiceMetrics metrics;

  // Every model's compute threads: one pool for the process, so two models generating
  // at once take turns per parallel loop instead of oversubscribing the cores. Created
  // with the first worker (guarded by workers_mu).
  std::shared_ptr<ThreadPool> pool;
  Worker* WorkerFor(const std::string& model);  // nullptr while shutting down
  void WorkerLoop(Worker* w);
  std::variant<CompletionResult, ServiceError> RunCaught(Worker& w, Job& job);
  std::variant<CompletionResult, ServiceError> Run(Worker& w, const CompletionRequest& req,
                                                   const PieceSink& sink);
  // Brings the slot's conversation up to date on disk: after a request, one journal
  // record of what it added (kCheckpoint); before its context is freed, a full snapshot
  // that folds the journal in (kCompact).
  enum class SaveKind { kCheckpoint, kCompact };
  void SaveSlot(Slot& s, const LoadedModel& lm, SaveKind kind);
  // After a reply went out: checkpoints the slot that request used.
  void CheckpointActive(Worker& w);
  int PickSlot(Worker& w, const LoadedModel& lm, int keep);
  void StartSession(Slot& s, const CompletionRequest& req);
  StatusOr<int64_t> Prefill(Slot& s, const std::vector<int32_t>& tokens, const std::string& text,
                            CompletionResult* r);
  std::variant<CompletionResult, ServiceError> Generate(Slot& s, const LoadedModel& lm,
                                                        const CompletionRequest& req,
                                                        const PieceSink& sink,
                                                        const ModelManager::Lease& lease,
                                                        CompletionResult r, size_t prompt_known);
  void Record(Slot& s, const CompletionRequest& req, const std::string& reply, size_t prompt_known);
  bool ReplaceUnseenTail(Slot& s, const CompletionRequest& req, const std::string& reply);
  void Count(const std::function<void(ServiceMetrics&)>& f);
  void LoadIndex();
  // The session's owner from its transcript ("" when unknown). Takes db_mu.
  std::string OwnerOf(const std::string& id);
};

// Reads "<kind>: message" style errors into the adapters' categories.
ServiceError MakeError(ErrorKind kind, std::string message);

}  // namespace dormouse
