// The lifecycle policies with an injected clock, memory probe and loader: every test
// runs in milliseconds, without models and without real waiting.
#include "lifecycle/model_manager.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace dormouse {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
constexpr uint64_t kMiB = 1 << 20;

// System memory that grows back when a fake model is freed.
class FakeProbe : public MemoryProbe {
 public:
  SystemMemory System() override {
    std::lock_guard<std::mutex> l(mu);
    SystemMemory m;
    m.total = 1 << 30;
    m.available = available;
    m.psi_some_avg10 = psi;
    return m;
  }
  ProcessMemory Process() override {
    std::lock_guard<std::mutex> l(mu);
    ProcessMemory p;
    p.anon = resident;
    p.rss = resident;
    return p;
  }
  void Loaded(uint64_t bytes) {
    std::lock_guard<std::mutex> l(mu);
    resident += bytes;
    available -= std::min(available, bytes);
  }
  void Freed(uint64_t bytes) {
    std::lock_guard<std::mutex> l(mu);
    resident -= bytes;
    available += bytes;
  }
  std::mutex mu;
  uint64_t available = 16ull << 30;
  uint64_t resident = 0;
  std::optional<double> psi;
};

struct FakeHandle : ModelHandle {
  FakeHandle(FakeProbe* p, uint64_t b, std::atomic<int>* freed) : probe(p), bytes(b), freed(freed) {
    probe->Loaded(bytes);
  }
  ~FakeHandle() override {
    probe->Freed(bytes);
    ++*freed;
  }
  uint64_t GrownBytes() const override { return grown; }
  FakeProbe* probe;
  uint64_t bytes;
  std::atomic<int>* freed;
  std::atomic<uint64_t> grown{0};  // what its KV caches took since the load
};

class FakeLoader : public ModelLoader {
 public:
  struct Spec {
    uint64_t bytes = 100 * kMiB;
    Clock::Duration cost = seconds(1);  // advances the fake clock: the measured load time
    bool fail = false;
    milliseconds real_delay{0};  // real sleep, to let racing threads pile up
  };
  FakeLoader(FakeClock* clock, FakeProbe* probe) : clock_(clock), probe_(probe) {}
  StatusOr<uint64_t> EstimateBytes(const std::string& name) override { return specs[name].bytes; }
  StatusOr<std::shared_ptr<ModelHandle>> Load(const std::string& name) override {
    const Spec& s = specs[name];
    ++loads;
    if (s.real_delay.count() > 0) std::this_thread::sleep_for(s.real_delay);
    clock_->Advance(s.cost);
    if (s.fail) return Status::Errorf("{}: cannot open: No such file", name);
    return std::shared_ptr<ModelHandle>(std::make_shared<FakeHandle>(probe_, s.bytes, &freed));
  }
  void AfterUnload(const std::string& name, EjectLevel level) override {
    if (level == EjectLevel::kCold) ++cold;
  }
  std::map<std::string, Spec> specs;
  std::atomic<int> loads{0}, freed{0}, cold{0};

 private:
  FakeClock* clock_;
  FakeProbe* probe_;
};

class ModelManagerTest : public testing::Test {
 protected:
  ModelManager& Make(ModelManager::Options o = {}) {
    manager = std::make_unique<ModelManager>(o, &clock, &probe, &loader);
    return *manager;
  }
  ModelState State(const std::string& name) { return manager->Find(name)->state; }
  Reason LastReason(const std::string& name) {
    return manager->Find(name)->last_transition->reason;
  }
  // Loads `name` and releases it at once, leaving it idle.
  void LoadIdle(const std::string& name, KeepAlive ka = KeepAlive::Default()) {
    auto lease = manager->Acquire(name, ka);
    ASSERT_TRUE(lease.ok()) << lease.status().message();
  }

  FakeClock clock;
  FakeProbe probe;
  FakeLoader loader{&clock, &probe};
  std::unique_ptr<ModelManager> manager;
};

TEST_F(ModelManagerTest, KeepAliveExpiryEjectsIdleModel) {
  Make();
  LoadIdle("a");
  EXPECT_EQ(State("a"), ModelState::kReady);
  clock.Advance(minutes(5) - seconds(1));
  EXPECT_TRUE(manager->Tick().empty());
  EXPECT_EQ(State("a"), ModelState::kReady);
  clock.Advance(seconds(2));
  std::vector<EjectReport> r = manager->Tick();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].reason, Reason::kKeepAlive);
  EXPECT_EQ(r[0].anon_freed(), static_cast<int64_t>(100 * kMiB));
  EXPECT_EQ(State("a"), ModelState::kUnloaded);
  EXPECT_EQ(LastReason("a"), Reason::kKeepAlive);
  EXPECT_EQ(loader.freed, 1);
}

TEST_F(ModelManagerTest, PerRequestKeepAliveOverridesDefaultAndLastRequestWins) {
  Make();
  LoadIdle("a", KeepAlive::For(seconds(10)));
  clock.Advance(seconds(9));
  manager->Tick();
  EXPECT_EQ(State("a"), ModelState::kReady);
  LoadIdle("a", KeepAlive::For(hours(1)));  // a later request extends it
  clock.Advance(minutes(59));
  manager->Tick();
  EXPECT_EQ(State("a"), ModelState::kReady);
  clock.Advance(minutes(2));
  manager->Tick();
  EXPECT_EQ(State("a"), ModelState::kUnloaded);
}

TEST_F(ModelManagerTest, ZeroKeepAliveEjectsRightAfterTheRequest) {
  Make();
  {
    auto lease = manager->Acquire("a", KeepAlive::For(seconds(0)));
    ASSERT_TRUE(lease.ok());
    EXPECT_EQ(State("a"), ModelState::kBusy);
  }
  EXPECT_EQ(State("a"), ModelState::kUnloaded);
  EXPECT_EQ(LastReason("a"), Reason::kKeepAlive);
}

TEST_F(ModelManagerTest, NegativeKeepAliveKeepsForever) {
  Make();
  LoadIdle("a", KeepAlive::For(seconds(-1)));
  EXPECT_TRUE(manager->Find("a")->keep_forever);
  clock.Advance(hours(24 * 365));
  EXPECT_TRUE(manager->Tick().empty());
  EXPECT_EQ(State("a"), ModelState::kReady);
}

TEST_F(ModelManagerTest, BudgetEvictsIdleModelsCheapestReloadFirstThenLru) {
  Make({.memory_budget = 300 * kMiB});
  loader.specs["a"].cost = seconds(5);
  loader.specs["b"].cost = seconds(1);
  loader.specs["c"].cost = seconds(3);
  loader.specs["e"].cost = seconds(3);
  LoadIdle("a");
  LoadIdle("b");
  LoadIdle("c");
  LoadIdle("d");  // 400 MiB > 300: the cheapest to reload (b, 1 s) goes
  EXPECT_EQ(State("b"), ModelState::kUnloaded);
  EXPECT_EQ(LastReason("b"), Reason::kMemoryBudget);
  EXPECT_EQ(State("a"), ModelState::kReady);
  EXPECT_EQ(State("c"), ModelState::kReady);
  // d cost 1 s (default) and is now the cheapest: loading e evicts it.
  LoadIdle("e");
  EXPECT_EQ(State("d"), ModelState::kUnloaded);
  // c and e both cost 3 s: the least recently used (c) goes first.
  LoadIdle("f");
  EXPECT_EQ(State("f"), ModelState::kReady);
  EXPECT_EQ(State("c"), ModelState::kUnloaded);
  EXPECT_EQ(State("e"), ModelState::kReady);
  EXPECT_EQ(State("a"), ModelState::kReady);
}

TEST_F(ModelManagerTest, BudgetNeverEvictsBusyModelsAndRefusesClearly) {
  Make({.memory_budget = 150 * kMiB});
  auto busy = manager->Acquire("a");
  ASSERT_TRUE(busy.ok());
  auto refused = manager->Acquire("b");
  ASSERT_FALSE(refused.ok());
  const std::string& m = refused.status().message();
  EXPECT_NE(m.find("model 'b' needs 100.0 MiB"), std::string::npos) << m;
  EXPECT_NE(m.find("budget is 150.0 MiB"), std::string::npos) << m;
  EXPECT_NE(m.find("a (100.0 MiB, busy)"), std::string::npos) << m;
  EXPECT_EQ(State("a"), ModelState::kBusy);
  EXPECT_EQ(State("b"), ModelState::kUnloaded);
  EXPECT_EQ(LastReason("b"), Reason::kLoadFailed);
  loader.specs["huge"].bytes = 200 * kMiB;
  auto huge = manager->Acquire("huge");
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.status().message().find("more than the whole memory budget"), std::string::npos);
}

TEST_F(ModelManagerTest, RefusesWhenTheSystemLacksMemory) {
  Make({.min_available = 64 * kMiB});
  probe.available = 120 * kMiB;
  auto r = manager->Acquire("a");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("needs 100.0 MiB (+64.0 MiB kept free), but only 120.0 MiB"),
            std::string::npos)
      << r.status().message();
  EXPECT_EQ(loader.loads, 0);  // refused before loading, not OOM-killed halfway
}

TEST_F(ModelManagerTest, PressureEjectsIdleModelsUntilMemoryRecovers) {
  Make({.min_available = 300 * kMiB});
  probe.available = 1000 * kMiB;
  loader.specs["a"].cost = seconds(2);
  loader.specs["b"].cost = seconds(1);
  LoadIdle("a");
  LoadIdle("b");  // 800 MiB left
  EXPECT_TRUE(manager->Tick().empty());
  {
    std::lock_guard<std::mutex> l(probe.mu);
    probe.available = 250 * kMiB;  // another program took memory
  }
  std::vector<EjectReport> r = manager->Tick();
  ASSERT_EQ(r.size(), 1u);  // b (cheapest) freed 100 MiB: 350 > 300, a stays
  EXPECT_EQ(r[0].model, "b");
  EXPECT_EQ(r[0].reason, Reason::kMemoryPressure);
  EXPECT_EQ(State("a"), ModelState::kReady);
  {
    std::lock_guard<std::mutex> l(probe.mu);
    probe.available = 1000 * kMiB;
    probe.psi = 40.0;
  }
  manager = nullptr;
  Make({.min_available = 300 * kMiB, .psi_threshold = 10.0});
  LoadIdle("a");
  r = manager->Tick();  // PSI above the threshold counts as pressure too
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].reason, Reason::kMemoryPressure);
}

TEST_F(ModelManagerTest, PressureNeverEjectsBusyModels) {
  Make({.min_available = 300 * kMiB});
  auto lease = manager->Acquire("a");
  ASSERT_TRUE(lease.ok());
  {
    std::lock_guard<std::mutex> l(probe.mu);
    probe.available = 10 * kMiB;
  }
  EXPECT_TRUE(manager->Tick().empty());
  EXPECT_EQ(State("a"), ModelState::kBusy);
  clock.Advance(hours(1));  // nor does keep-alive apply while busy
  EXPECT_TRUE(manager->Tick().empty());
}

TEST_F(ModelManagerTest, RacingRequestsShareOneLoad) {
  Make();
  loader.specs["a"].real_delay = milliseconds(50);
  constexpr int kThreads = 8;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      auto lease = manager->Acquire("a");
      if (lease.ok()) ++ok;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok, kThreads);
  EXPECT_EQ(loader.loads, 1);
  EXPECT_EQ(manager->Find("a")->loads, 1);
  EXPECT_EQ(State("a"), ModelState::kReady);
}

TEST_F(ModelManagerTest, EjectDrainsInFlightRequests) {
  Make();
  auto lease = manager->Acquire("a");
  ASSERT_TRUE(lease.ok());
  std::atomic<bool> finished{false};
  std::thread worker([&, l = std::move(lease).value()]() mutable {
    // "Generating" until the eject has begun, so the eject sees a lease in flight.
    while (State("a") != ModelState::kEjecting) std::this_thread::yield();
    EXPECT_FALSE(l.cancel_requested());
    finished = true;
    l.Release();
  });
  auto r = manager->Eject("a", EjectLevel::kWarm, /*force=*/false);
  const bool finished_when_eject_returned = finished;  // read before join() orders it
  worker.join();
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(finished_when_eject_returned);  // the eject waited for the request
  EXPECT_TRUE(r->was_loaded);
  EXPECT_FALSE(r->cancelled_requests);
  EXPECT_EQ(State("a"), ModelState::kUnloaded);
  EXPECT_EQ(LastReason("a"), Reason::kManual);
}

TEST_F(ModelManagerTest, ForcedEjectCancelsInFlightRequests) {
  Make();
  auto lease = manager->Acquire("a");
  ASSERT_TRUE(lease.ok());
  std::atomic<bool> generating{false};
  std::thread worker([&, l = std::move(lease).value()]() mutable {
    generating = true;
    while (!l.cancel_requested()) std::this_thread::yield();  // "generating" until told
    l.Release();                                              // checkpointed and returned
  });
  while (!generating) std::this_thread::yield();
  auto r = manager->Eject("a", EjectLevel::kCold, /*force=*/true);
  worker.join();
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->cancelled_requests);
  EXPECT_EQ(State("a"), ModelState::kUnloaded);
  EXPECT_EQ(loader.cold, 1);
  // The next request loads again with a fresh cancel flag.
  auto again = manager->Acquire("a");
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->cancel_requested());
}

TEST_F(ModelManagerTest, EjectHookRunsBeforeTheModelIsFreed) {
  Make();
  int freed_when_hook_ran = -1;
  manager->SetEjectHook([&](const std::string& name, ModelHandle& h, Reason reason) {
    freed_when_hook_ran = loader.freed;
    EXPECT_EQ(name, "a");
    EXPECT_EQ(reason, Reason::kManual);
    EXPECT_EQ(static_cast<FakeHandle&>(h).bytes, 100 * kMiB);
  });
  LoadIdle("a");
  ASSERT_TRUE(manager->Eject("a", EjectLevel::kWarm, false).ok());
  EXPECT_EQ(freed_when_hook_ran, 0);
  EXPECT_EQ(loader.freed, 1);
}

TEST_F(ModelManagerTest, TransitionsRecordReasonsAndDurations) {
  Make();
  loader.specs["a"].cost = seconds(3);
  LoadIdle("a");
  ASSERT_TRUE(manager->Eject("a", EjectLevel::kWarm, false).ok());
  std::vector<TransitionRecord> h = manager->History();
  std::vector<std::pair<ModelState, Reason>> got;
  for (const auto& t : h) got.emplace_back(t.to, t.reason);
  std::vector<std::pair<ModelState, Reason>> want = {
      {ModelState::kLoading, Reason::kRequest}, {ModelState::kReady, Reason::kRequest},
      {ModelState::kBusy, Reason::kRequest},    {ModelState::kReady, Reason::kRequest},
      {ModelState::kEjecting, Reason::kManual}, {ModelState::kUnloaded, Reason::kManual}};
  EXPECT_EQ(got, want);
  EXPECT_DOUBLE_EQ(h[1].seconds, 3.0);  // the load's measured duration
  EXPECT_DOUBLE_EQ(manager->Find("a")->last_load_seconds, 3.0);
  EXPECT_EQ(manager->Find("a")->ejects_by_reason[Reason::kManual], 1);
}

TEST_F(ModelManagerTest, FailedLoadIsReportedAndRetried) {
  Make();
  loader.specs["a"].fail = true;
  auto r = manager->Acquire("a");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("cannot open"), std::string::npos);
  EXPECT_EQ(State("a"), ModelState::kUnloaded);
  EXPECT_EQ(LastReason("a"), Reason::kLoadFailed);
  loader.specs["a"].fail = false;
  EXPECT_TRUE(manager->Acquire("a").ok());
  EXPECT_EQ(loader.loads, 2);
}

TEST_F(ModelManagerTest, EjectOfUnknownOrUnloadedModelIsANoOp) {
  Make();
  auto r = manager->Eject("nothing", EjectLevel::kWarm, false);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->was_loaded);
}

TEST_F(ModelManagerTest, ShutdownEjectsEverything) {
  Make();
  int hooked = 0;
  manager->SetEjectHook([&](const std::string&, ModelHandle&, Reason r) {
    EXPECT_EQ(r, Reason::kShutdown);
    ++hooked;
  });
  LoadIdle("a", KeepAlive::Forever());
  LoadIdle("b");
  manager = nullptr;
  EXPECT_EQ(hooked, 2);
  EXPECT_EQ(loader.freed, 2);
}

}  // namespace
}  // namespace dormouse

namespace dormouse {
namespace {

// KV caches grow with their conversations: what a loaded model holds (status, /api/ps,
// the budget) is its load estimate plus that growth, not a full-length reservation.
TEST_F(ModelManagerTest, BytesFollowTheGrowthOfTheKvCaches) {
  ModelManager::Options o;
  o.memory_budget = 350 * kMiB;
  Make(o);
  loader.specs["a"].bytes = 100 * kMiB;
  loader.specs["b"].bytes = 100 * kMiB;
  {
    auto lease = manager->Acquire("a");
    ASSERT_TRUE(lease.ok());
    EXPECT_EQ(manager->Find("a")->bytes, 100 * kMiB);
    lease->as<FakeHandle>().grown = 200 * kMiB;  // a long conversation
    EXPECT_EQ(manager->Find("a")->bytes, 300 * kMiB);
    EXPECT_EQ(manager->List()[0].bytes, 300 * kMiB);
  }
  // 300 + 100 exceeds the budget: the idle, grown model makes room.
  LoadIdle("b");
  EXPECT_EQ(State("a"), ModelState::kUnloaded);
  EXPECT_EQ(LastReason("a"), Reason::kMemoryBudget);
  EXPECT_EQ(manager->Find("a")->bytes, 0u);
  EXPECT_EQ(manager->Find("b")->bytes, 100 * kMiB);
}

}  // namespace
}  // namespace dormouse
