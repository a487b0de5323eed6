// The lifecycle of loaded models: an explicit state machine per model
//
//   unloaded --Acquire--> loading --> busy <--> ready --Eject/keep-alive/budget/pressure-->
//   ejecting --> unloaded
//
// with leases (a request holds one while it uses the model; busy while any is held),
// one load at a time per model (racing requests wait for the same load), and a reason
// and duration recorded for every transition. An eject first lets the eject hook save
// every session of the model (snapshots), then frees the model, returns heap memory to
// the OS, and, for a cold eject, drops the file from the page cache; it reports the
// process memory measured before and after.
//
// Clock, memory probe and loader are injected: tests drive the policies in
// milliseconds with fakes.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "lifecycle/clock.h"
#include "lifecycle/memory_probe.h"

namespace dormouse {

enum class ModelState { kUnloaded, kLoading, kReady, kBusy, kEjecting };
enum class Reason {
  kRequest,
  kKeepAlive,
  kMemoryBudget,
  kMemoryPressure,
  kManual,
  kShutdown,
  kLoadFailed
};
enum class EjectLevel { kWarm, kCold };
const char* ModelStateName(ModelState s);
const char* ReasonName(Reason r);
const char* EjectLevelName(EjectLevel l);

// Whatever the loader produces; the manager only owns and frees it.
class ModelHandle {
 public:
  virtual ~ModelHandle() = default;
  // Memory taken since the load on top of the loader's estimate: the KV caches, which
  // grow with their conversations instead of being reserved at full length.
  virtual uint64_t GrownBytes() const { return 0; }
};

class ModelLoader {
 public:
  virtual ~ModelLoader() = default;
  // Bytes the model needs once loaded (weights + buffers; KV caches count as they grow).
  virtual StatusOr<uint64_t> EstimateBytes(const std::string& name) = 0;
  virtual StatusOr<std::shared_ptr<ModelHandle>> Load(const std::string& name) = 0;
  // After the handle is freed: a cold eject drops the file's pages here.
  virtual void AfterUnload(const std::string& name, EjectLevel level) {}
};

// Ollama's keep_alive: how long a model stays loaded after its last request.
struct KeepAlive {
  enum class Kind { kDefault, kForever, kFor };
  Kind kind = Kind::kDefault;
  Clock::Duration duration{};
  static KeepAlive Default() { return {}; }
  static KeepAlive Forever() { return {Kind::kForever, {}}; }
  // Zero unloads right after the request; negative durations mean forever.
  static KeepAlive For(Clock::Duration d) {
    return d < Clock::Duration::zero() ? Forever() : KeepAlive{Kind::kFor, d};
  }
};

struct TransitionRecord {
  std::string model;
  ModelState from = ModelState::kUnloaded, to = ModelState::kUnloaded;
  Reason reason = Reason::kRequest;
  Clock::TimePoint at;
  double seconds = 0;  // how long the transition took (a load, an eject)
  std::string detail;
};

struct EjectReport {
  std::string model;
  Reason reason = Reason::kManual;
  EjectLevel level = EjectLevel::kWarm;
  bool was_loaded = false;
  bool cancelled_requests = false;  // force: in-flight requests were told to stop
  double seconds = 0;
  ProcessMemory before, after;
  int64_t anon_freed() const { return static_cast<int64_t>(before.anon) - after.anon; }
  int64_t file_freed() const { return static_cast<int64_t>(before.file) - after.file; }
};

struct ModelStatus {
  std::string name;
  ModelState state = ModelState::kUnloaded;
  int leases = 0;
  uint64_t bytes = 0;  // used for the budget: the load estimate + ModelHandle::GrownBytes()
  bool keep_forever = false;
  std::optional<Clock::TimePoint> expires_at;  // when idle with a finite keep-alive
  std::optional<TransitionRecord> last_transition;
  double last_load_seconds = 0;  // the measured reload cost
  int64_t loads = 0, ejects = 0;
  std::map<Reason, int64_t> ejects_by_reason;
};

class ModelManager {
 public:
  struct Options {
    Clock::Duration default_keep_alive = std::chrono::minutes(5);
    uint64_t memory_budget = 0;             // bytes for all loaded models; 0 = no limit
    uint64_t min_available = 256ull << 20;  // pressure: eject idle models below this
    double psi_threshold = 0;               // pressure: PSI some avg10 (%) above this; 0 = off
  };
  // Called with the model about to be freed (no lease is held): sessions save
  // themselves and let go of it.
  using EjectHook = std::function<void(const std::string& model, ModelHandle& handle, Reason)>;

  ModelManager(Options options, Clock* clock, MemoryProbe* probe, ModelLoader* loader);
  ~ModelManager();  // stops the timer and ejects everything (reason shutdown)
  ModelManager(const ModelManager&) = delete;
  ModelManager& operator=(const ModelManager&) = delete;

  void SetEjectHook(EjectHook hook);
  // Every transition is also published here (under the manager's lock: Publish only
  // queues). Set before the first Acquire.
  void SetEventBus(class EventBus* bus);
  // Replaces the policy (keep-alive default, budget, pressure) at run time; models already
  // idle keep the expiry they were given.
  void SetPolicy(const Options& options);

  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept { *this = std::move(other); }
    Lease& operator=(Lease&& other) noexcept;
    ~Lease() { Release(); }
    ModelHandle& handle() const { return *handle_; }
    template <typename T>
    T& as() const {
      return static_cast<T&>(*handle_);
    }
    // True once a forced eject asked in-flight work to stop (checkpoint and return).
    bool cancel_requested() const { return cancel_ && cancel_->load(); }
    const std::string& model() const { return name_; }
    bool valid() const { return manager_ != nullptr; }
    void Release();

   private:
    friend class ModelManager;
    ModelManager* manager_ = nullptr;
    std::string name_;
    std::shared_ptr<ModelHandle> handle_;
    std::shared_ptr<std::atomic<bool>> cancel_;
  };

  // Leases the model, loading it first if needed (racing callers share one load; a
  // load past the budget evicts idle models or fails saying how much is needed and
  // available). The lease's release starts the keep-alive countdown.
  StatusOr<Lease> Acquire(const std::string& name, KeepAlive keep_alive = KeepAlive::Default());

  // Ejects now: drains in-flight leases, or with `force` asks them to stop first.
  // Must not be called while holding a lease on the same model (it would wait forever).
  StatusOr<EjectReport> Eject(const std::string& name, EjectLevel level, bool force,
                              Reason reason = Reason::kManual);
  // Idle models whose keep-alive ran out, then idle models while memory runs short.
  std::vector<EjectReport> Tick();
  // Calls Tick() every `period` on a background thread until destruction.
  void StartTimer(std::chrono::milliseconds period);
  void EjectAll(Reason reason);

  std::vector<ModelStatus> List() const;
  std::optional<ModelStatus> Find(const std::string& name) const;
  std::vector<TransitionRecord> History() const;
  Options options() const;
  MemoryProbe& probe() const { return *probe_; }

 private:
  struct Entry {
    ModelStatus status;
    std::shared_ptr<ModelHandle> handle;
    std::shared_ptr<std::atomic<bool>> cancel;
    uint64_t estimate = 0;  // the loader's, at load
    KeepAlive keep_alive;   // of the latest request (the last one wins, as in Ollama)
    Clock::TimePoint last_used;
  };
  using Lock = std::unique_lock<std::mutex>;

  void Release(const std::string& name);
  Status LoadCaught(Lock& lock, Entry& e, const std::string& name);
  StatusOr<std::shared_ptr<ModelHandle>> LoadUnlocked(Lock& lock, Entry& e, const std::string& name,
                                                      Clock::TimePoint* t0);
  Status MakeRoom(Lock& lock, const std::string& name, uint64_t need);
  std::optional<std::string> CheapestIdle(const std::string& except) const;
  // e.status with bytes brought up to date.
  ModelStatus Current(const Entry& e) const;
  StatusOr<EjectReport> EjectLocked(Lock& lock, const std::string& name, EjectLevel level,
                                    bool force, Reason reason);
  void SetState(Entry& e, ModelState to, Reason reason, double seconds, std::string detail = "");
  void ArmKeepAlive(Entry& e);
  bool UnderPressure(const SystemMemory& m) const;

  Options options_;
  Clock* clock_;
  MemoryProbe* probe_;
  ModelLoader* loader_;
  EjectHook hook_;
  class EventBus* events_ = nullptr;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Entry> entries_;
  std::vector<TransitionRecord> history_;

  std::mutex timer_mu_;
  std::condition_variable timer_cv_;
  bool timer_stop_ = false;
  std::thread timer_;
};

}  // namespace dormouse
