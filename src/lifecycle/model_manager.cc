#include "lifecycle/model_manager.h"

#include <algorithm>
#include <iostream>

#include "lifecycle/events.h"

namespace dormouse {
namespace {

constexpr size_t kMaxHistory = 1000;

double Seconds(Clock::Duration d) { return std::chrono::duration<double>(d).count(); }
double MiB(uint64_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); }

}  // namespace

const char* ModelStateName(ModelState s) {
  switch (s) {
    case ModelState::kUnloaded:
      return "unloaded";
    case ModelState::kLoading:
      return "loading";
    case ModelState::kReady:
      return "ready";
    case ModelState::kBusy:
      return "busy";
    case ModelState::kEjecting:
      return "ejecting";
  }
  return "?";
}

const char* ReasonName(Reason r) {
  switch (r) {
    case Reason::kRequest:
      return "request";
    case Reason::kKeepAlive:
      return "keep_alive";
    case Reason::kMemoryBudget:
      return "memory_budget";
    case Reason::kMemoryPressure:
      return "memory_pressure";
    case Reason::kManual:
      return "manual";
    case Reason::kShutdown:
      return "shutdown";
    case Reason::kLoadFailed:
      return "load_failed";
  }
  return "?";
}

const char* EjectLevelName(EjectLevel l) { return l == EjectLevel::kCold ? "cold" : "warm"; }

ModelManager::Lease& ModelManager::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Release();
    manager_ = other.manager_;
    name_ = std::move(other.name_);
    handle_ = std::move(other.handle_);
    cancel_ = std::move(other.cancel_);
    other.manager_ = nullptr;
  }
  return *this;
}

void ModelManager::Lease::Release() {
  if (manager_ == nullptr) return;
  handle_.reset();
  cancel_.reset();
  ModelManager* m = manager_;
  manager_ = nullptr;
  m->Release(name_);
}

ModelManager::ModelManager(Options options, Clock* clock, MemoryProbe* probe, ModelLoader* loader)
    : options_(options), clock_(clock), probe_(probe), loader_(loader) {}

ModelManager::~ModelManager() {
  {
    std::lock_guard<std::mutex> lock(timer_mu_);
    timer_stop_ = true;
  }
  timer_cv_.notify_all();
  if (timer_.joinable()) timer_.join();
  EjectAll(Reason::kShutdown);
}

void ModelManager::SetEjectHook(EjectHook hook) {
  std::lock_guard<std::mutex> lock(mu_);
  hook_ = std::move(hook);
}

void ModelManager::SetEventBus(EventBus* bus) {
  std::lock_guard<std::mutex> lock(mu_);
  events_ = bus;
}

void ModelManager::SetPolicy(const Options& options) {
  std::lock_guard<std::mutex> lock(mu_);
  options_ = options;
}

ModelManager::Options ModelManager::options() const {
  std::lock_guard<std::mutex> lock(mu_);
  return options_;
}

void ModelManager::SetState(Entry& e, ModelState to, Reason reason, double seconds,
                            std::string detail) {
  TransitionRecord t{e.status.name, e.status.state,   to, reason, clock_->Now(),
                     seconds,       std::move(detail)};
  e.status.state = to;
  e.status.last_transition = t;
  if (events_ != nullptr) events_->Publish(t);
  if (history_.size() >= kMaxHistory) history_.erase(history_.begin());
  history_.push_back(std::move(t));
}

StatusOr<ModelManager::Lease> ModelManager::Acquire(const std::string& name, KeepAlive ka) {
  Lock lock(mu_);
  Entry& e = entries_[name];
  e.status.name = name;
  for (;;) {
    const ModelState s = e.status.state;
    if (s == ModelState::kLoading || s == ModelState::kEjecting) {
      cv_.wait(lock);
      continue;
    }
    if (s == ModelState::kReady || s == ModelState::kBusy) break;
    // Unloaded: this caller loads; others wait for it.
    DM_RETURN_IF_ERROR(LoadCaught(lock, e, name));
  }
  e.status.leases++;
  e.keep_alive = ka;
  e.status.expires_at.reset();
  if (e.status.state == ModelState::kReady) SetState(e, ModelState::kBusy, Reason::kRequest, 0);
  Lease lease;
  lease.manager_ = this;
  lease.name_ = name;
  lease.handle_ = e.handle;
  lease.cancel_ = e.cancel;
  return lease;
}

// Loads the model while `lock` is released. A failure, or an exception thrown by the
// loader (bad_alloc), leaves it unloaded and wakes the waiters, so a later request
// retries; the exception then goes on to the caller's top level, which reports it.
Status ModelManager::LoadCaught(Lock& lock, Entry& e, const std::string& name) {
  SetState(e, ModelState::kLoading, Reason::kRequest, 0);
  Clock::TimePoint t0 = clock_->Now();
  auto fail = [&](const std::string& why) {
    SetState(e, ModelState::kUnloaded, Reason::kLoadFailed, Seconds(clock_->Now() - t0), why);
    e.status.bytes = 0;
    cv_.notify_all();
  };
  StatusOr<std::shared_ptr<ModelHandle>> handle = std::shared_ptr<ModelHandle>();
  try {
    handle = LoadUnlocked(lock, e, name, &t0);
  } catch (const std::exception& ex) {
    if (!lock.owns_lock()) lock.lock();
    fail(fmt::format("exception during load: {}", ex.what()));
    throw;
  } catch (...) {
    if (!lock.owns_lock()) lock.lock();
    fail("unknown exception during load");
    throw;
  }
  if (!handle.ok()) {
    fail(handle.status().message());
    return handle.status();
  }
  const double took = Seconds(clock_->Now() - t0);
  e.handle = std::move(handle).value();
  e.cancel = std::make_shared<std::atomic<bool>>(false);
  e.status.loads++;
  e.status.last_load_seconds = took;
  SetState(e, ModelState::kReady, Reason::kRequest, took, "loaded");
  cv_.notify_all();
  return Status::Ok();
}

// Estimate, room in the budget, then the load itself (timed from `*t0`, set here).
StatusOr<std::shared_ptr<ModelHandle>> ModelManager::LoadUnlocked(Lock& lock, Entry& e,
                                                                  const std::string& name,
                                                                  Clock::TimePoint* t0) {
  lock.unlock();
  StatusOr<uint64_t> need = loader_->EstimateBytes(name);
  lock.lock();
  DM_RETURN_IF_ERROR(need.status());
  DM_RETURN_IF_ERROR(MakeRoom(lock, name, *need));
  e.status.bytes = e.estimate = *need;
  *t0 = clock_->Now();
  lock.unlock();
  StatusOr<std::shared_ptr<ModelHandle>> handle = loader_->Load(name);
  lock.lock();
  return handle;
}

void ModelManager::Release(const std::string& name) {
  Lock lock(mu_);
  Entry& e = entries_[name];
  e.status.leases--;
  if (e.status.leases == 0 && e.status.state == ModelState::kBusy) {
    SetState(e, ModelState::kReady, Reason::kRequest, 0);
    e.last_used = clock_->Now();
    ArmKeepAlive(e);
    if (e.status.expires_at && *e.status.expires_at <= e.last_used) {
      (void)EjectLocked(lock, name, EjectLevel::kWarm, false, Reason::kKeepAlive);
    }
  }
  cv_.notify_all();
}

void ModelManager::ArmKeepAlive(Entry& e) {
  KeepAlive ka = e.keep_alive;
  if (ka.kind == KeepAlive::Kind::kDefault) ka = KeepAlive::For(options_.default_keep_alive);
  e.status.keep_forever = ka.kind == KeepAlive::Kind::kForever;
  if (e.status.keep_forever) {
    e.status.expires_at.reset();
  } else {
    e.status.expires_at = e.last_used + ka.duration;
  }
}

std::optional<std::string> ModelManager::CheapestIdle(const std::string& except) const {
  const Entry* best = nullptr;
  for (const auto& [name, e] : entries_) {
    if (name == except || e.status.state != ModelState::kReady || e.status.leases != 0) continue;
    if (best == nullptr || e.status.last_load_seconds < best->status.last_load_seconds ||
        (e.status.last_load_seconds == best->status.last_load_seconds &&
         e.last_used < best->last_used)) {
      best = &e;
    }
  }
  return best ? std::optional<std::string>(best->status.name) : std::nullopt;
}

Status ModelManager::MakeRoom(Lock& lock, const std::string& name, uint64_t need) {
  if (options_.memory_budget > 0) {
    if (need > options_.memory_budget) {
      return Status::Errorf(
          "model '{}' needs {:.1f} MiB, more than the whole memory budget of "
          "{:.1f} MiB",
          name, MiB(need), MiB(options_.memory_budget));
    }
    for (;;) {
      uint64_t in_use = 0;
      std::string holders;
      for (const auto& [other, e] : entries_) {
        if (other == name || e.status.state == ModelState::kUnloaded) continue;
        const uint64_t bytes = Current(e).bytes;
        in_use += bytes;
        holders += fmt::format("{}{} ({:.1f} MiB, {})", holders.empty() ? "" : ", ", other,
                               MiB(bytes), ModelStateName(e.status.state));
      }
      if (in_use + need <= options_.memory_budget) break;
      std::optional<std::string> victim = CheapestIdle(name);
      if (!victim) {
        return Status::Errorf(
            "model '{}' needs {:.1f} MiB; the memory budget is {:.1f} MiB and {:.1f} MiB are "
            "held by models in use: {}",
            name, MiB(need), MiB(options_.memory_budget), MiB(in_use), holders);
      }
      (void)EjectLocked(lock, *victim, EjectLevel::kWarm, false, Reason::kMemoryBudget);
    }
  }
  for (;;) {
    const SystemMemory m = probe_->System();
    if (need + options_.min_available <= m.available) return Status::Ok();
    std::optional<std::string> victim = CheapestIdle(name);
    if (!victim) {
      return Status::Errorf(
          "model '{}' needs {:.1f} MiB (+{:.1f} MiB kept free), but only {:.1f} MiB of memory "
          "is available",
          name, MiB(need), MiB(options_.min_available), MiB(m.available));
    }
    (void)EjectLocked(lock, *victim, EjectLevel::kWarm, false, Reason::kMemoryPressure);
  }
}

StatusOr<EjectReport> ModelManager::Eject(const std::string& name, EjectLevel level, bool force,
                                          Reason reason) {
  Lock lock(mu_);
  if (entries_.count(name) == 0) {
    EjectReport r;
    r.model = name;
    r.reason = reason;
    r.level = level;
    return r;  // never loaded: nothing to do
  }
  return EjectLocked(lock, name, level, force, reason);
}

StatusOr<EjectReport> ModelManager::EjectLocked(Lock& lock, const std::string& name,
                                                EjectLevel level, bool force, Reason reason) {
  Entry& e = entries_[name];
  EjectReport r;
  r.model = name;
  r.reason = reason;
  r.level = level;
  cv_.wait(lock, [&] { return e.status.state != ModelState::kLoading; });
  if (e.status.state == ModelState::kEjecting) {  // someone else is at it: wait, done
    cv_.wait(lock, [&] { return e.status.state != ModelState::kEjecting; });
    return r;
  }
  if (e.status.state == ModelState::kUnloaded) return r;
  r.was_loaded = true;
  const Clock::TimePoint t0 = clock_->Now();
  SetState(e, ModelState::kEjecting, reason, 0);
  if (e.status.leases > 0) {
    if (force) {
      e.cancel->store(true);
      r.cancelled_requests = true;
    }
    cv_.wait(lock, [&] { return e.status.leases == 0; });
  }
  std::shared_ptr<ModelHandle> handle = std::move(e.handle);
  EjectHook hook = hook_;
  lock.unlock();
  r.before = probe_->Process();
  if (hook) {
    try {  // a hook that throws must not leave the model stuck in "ejecting"
      hook(name, *handle, reason);
    } catch (const std::exception& ex) {
      std::cerr << "error: eject hook of model '" << name << "': " << ex.what() << "\n";
    } catch (...) {
      std::cerr << "error: eject hook of model '" << name << "': unknown exception\n";
    }
  }
  handle.reset();
  TrimAllocator();
  loader_->AfterUnload(name, level);
  r.after = probe_->Process();
  lock.lock();
  r.seconds = Seconds(clock_->Now() - t0);
  e.status.ejects++;
  e.status.ejects_by_reason[reason]++;
  e.status.expires_at.reset();
  e.status.bytes = 0;
  SetState(e, ModelState::kUnloaded, reason, r.seconds,
           fmt::format("{} eject, freed {:.1f} MiB anon, {:.1f} MiB file", EjectLevelName(level),
                       static_cast<double>(r.anon_freed()) / (1 << 20),
                       static_cast<double>(r.file_freed()) / (1 << 20)));
  cv_.notify_all();
  return r;
}

bool ModelManager::UnderPressure(const SystemMemory& m) const {
  if (m.available < options_.min_available) return true;
  return options_.psi_threshold > 0 && m.psi_some_avg10 &&
         *m.psi_some_avg10 > options_.psi_threshold;
}

std::vector<EjectReport> ModelManager::Tick() {
  std::vector<EjectReport> out;
  Lock lock(mu_);
  const Clock::TimePoint now = clock_->Now();
  std::vector<std::string> expired;
  for (const auto& [name, e] : entries_) {
    if (e.status.state == ModelState::kReady && e.status.leases == 0 && e.status.expires_at &&
        *e.status.expires_at <= now) {
      expired.push_back(name);
    }
  }
  for (const std::string& name : expired) {
    const Entry& e = entries_[name];  // re-check: the lock was released by earlier ejects
    if (e.status.state != ModelState::kReady || e.status.leases != 0 || !e.status.expires_at ||
        *e.status.expires_at > now) {
      continue;
    }
    StatusOr<EjectReport> r = EjectLocked(lock, name, EjectLevel::kWarm, false, Reason::kKeepAlive);
    if (r.ok() && r->was_loaded) out.push_back(*r);
  }
  while (UnderPressure(probe_->System())) {
    std::optional<std::string> victim = CheapestIdle("");
    if (!victim) break;
    StatusOr<EjectReport> r =
        EjectLocked(lock, *victim, EjectLevel::kWarm, false, Reason::kMemoryPressure);
    if (r.ok() && r->was_loaded) out.push_back(*r);
  }
  return out;
}

void ModelManager::StartTimer(std::chrono::milliseconds period) {
  timer_ = std::thread([this, period] {
    std::unique_lock<std::mutex> lock(timer_mu_);
    while (!timer_cv_.wait_for(lock, period, [&] { return timer_stop_; })) {
      lock.unlock();
      try {  // the timer's top level: a failed tick is logged, the next one runs
        Tick();
      } catch (const std::exception& ex) {
        std::cerr << "error: lifecycle timer: " << ex.what() << "\n";
      } catch (...) {
        std::cerr << "error: lifecycle timer: unknown exception\n";
      }
      lock.lock();
    }
  });
}

void ModelManager::EjectAll(Reason reason) {
  Lock lock(mu_);
  std::vector<std::string> names;
  for (const auto& [name, e] : entries_) names.push_back(name);
  for (const std::string& name : names) {
    (void)EjectLocked(lock, name, EjectLevel::kWarm, reason == Reason::kShutdown, reason);
  }
}

std::vector<ModelStatus> ModelManager::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ModelStatus> out;
  for (const auto& [name, e] : entries_) out.push_back(Current(e));
  return out;
}

ModelStatus ModelManager::Current(const Entry& e) const {
  ModelStatus s = e.status;
  if (s.state != ModelState::kUnloaded && e.handle) s.bytes = e.estimate + e.handle->GrownBytes();
  return s;
}

std::optional<ModelStatus> ModelManager::Find(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(name);
  if (it == entries_.end()) return std::nullopt;
  return Current(it->second);
}

std::vector<TransitionRecord> ModelManager::History() const {
  std::lock_guard<std::mutex> lock(mu_);
  return history_;
}

}  // namespace dormouse
