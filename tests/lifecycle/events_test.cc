// The event bus (ordering, bounded queues, unsubscribe), the memory sampler (samples only
// while someone listens) and the manager's hooks for the app: transitions are published,
// and the policy changes at run time.
#include "lifecycle/events.h"

#include <gtest/gtest.h>

#include <atomic>

namespace dormouse {
namespace {

using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

class CountingProbe : public MemoryProbe {
 public:
  SystemMemory System() override {
    ++system_calls;
    SystemMemory m;
    m.total = 8ull << 30;
    m.available = available.load();
    return m;
  }
  ProcessMemory Process() override { return {.rss = 3 << 20, .anon = 2 << 20, .file = 1 << 20}; }
  std::atomic<int> system_calls{0};
  std::atomic<uint64_t> available{4ull << 30};
};

struct Handle : ModelHandle {};

class InstantLoader : public ModelLoader {
 public:
  StatusOr<uint64_t> EstimateBytes(const std::string&) override { return uint64_t{1} << 20; }
  StatusOr<std::shared_ptr<ModelHandle>> Load(const std::string&) override {
    return std::shared_ptr<ModelHandle>(std::make_shared<Handle>());
  }
};

TEST(EventBusTest, DeliversInOrderToEverySubscriber) {
  EventBus bus;
  auto a = bus.Subscribe();
  auto b = bus.Subscribe();
  EXPECT_EQ(bus.subscribers(), 2u);
  bus.Publish(LoadProgress{.model = "one"});
  bus.Publish(LoadProgress{.model = "two"});
  for (auto* s : {a.get(), b.get()}) {
    auto first = s->Next(milliseconds(0));
    auto second = s->Next(milliseconds(0));
    ASSERT_TRUE(first && second);
    EXPECT_EQ(std::get<LoadProgress>(*first).model, "one");
    EXPECT_EQ(std::get<LoadProgress>(*second).model, "two");
    EXPECT_FALSE(s->Next(milliseconds(0)));
  }
  a.reset();
  EXPECT_EQ(bus.subscribers(), 1u);
}

TEST(EventBusTest, ASlowReaderLosesTheOldestAndIsToldHowMany) {
  EventBus bus;
  auto s = bus.Subscribe();
  for (size_t i = 0; i < EventBus::kMaxQueued + 5; ++i) {
    bus.Publish(LoadProgress{.model = std::to_string(i)});
  }
  EXPECT_EQ(s->TakeDropped(), 5u);
  EXPECT_EQ(s->TakeDropped(), 0u);
  EXPECT_EQ(std::get<LoadProgress>(*s->Next(milliseconds(0))).model, "5");
}

TEST(EventBusTest, CloseWakesABlockedReader) {
  EventBus bus;
  auto s = bus.Subscribe();
  std::thread t([&] { EXPECT_FALSE(s->Next(minutes(10))); });
  s->Close();
  t.join();
}

TEST(MemorySamplerTest, SamplesOnlyWhileSomeoneListens) {
  EventBus bus;
  CountingProbe probe;
  MemorySampler sampler(&bus, {.probe = &probe}, milliseconds(20));
  // Nobody listens: several periods pass without a single probe read.
  std::this_thread::sleep_for(milliseconds(150));
  EXPECT_EQ(probe.system_calls.load(), 0);
  {
    auto s = bus.Subscribe();
    auto e = s->Next(seconds(30));
    ASSERT_TRUE(e);
    const auto& m = std::get<MemorySample>(*e);
    EXPECT_EQ(m.system.available, 4ull << 30);
    EXPECT_EQ(m.process.anon, 2u << 20);
  }
}

TEST(MemorySamplerTest, ReportsTheProgressOfALoadInFlight) {
  EventBus bus;
  CountingProbe probe;
  FakeClock clock;
  // A loader that blocks until told, so the model stays in "loading".
  struct BlockingLoader : InstantLoader {
    std::mutex mu;
    std::condition_variable cv;
    bool release = false, started = false;
    StatusOr<std::shared_ptr<ModelHandle>> Load(const std::string& n) override {
      std::unique_lock<std::mutex> l(mu);
      started = true;
      cv.notify_all();
      cv.wait(l, [&] { return release; });
      return InstantLoader::Load(n);
    }
  } loader;
  ModelManager manager({}, &clock, &probe, &loader);
  std::thread t([&] { EXPECT_TRUE(manager.Acquire("m").ok()); });
  {
    std::unique_lock<std::mutex> l(loader.mu);
    loader.cv.wait(l, [&] { return loader.started; });
  }
  MemorySampler sampler(&bus,
                        {.probe = &probe,
                         .manager = &manager,
                         .file_size_of = [](const std::string&) -> uint64_t { return 1000; },
                         .resident_of = [](const std::string&) -> uint64_t { return 400; }},
                        minutes(10));
  auto s = bus.Subscribe();
  sampler.SampleOnce();
  std::optional<LoadProgress> p;
  while (auto e = s->Next(milliseconds(0))) {
    if (auto* lp = std::get_if<LoadProgress>(&*e)) p = *lp;
  }
  ASSERT_TRUE(p);
  EXPECT_EQ(p->model, "m");
  EXPECT_EQ(p->bytes_done, 400u);
  EXPECT_EQ(p->bytes_total, 1000u);
  {
    std::lock_guard<std::mutex> l(loader.mu);
    loader.release = true;
  }
  loader.cv.notify_all();
  t.join();
}

TEST(ModelManagerEventsTest, PublishesEveryTransitionWithItsReason) {
  EventBus bus;
  CountingProbe probe;
  FakeClock clock;
  InstantLoader loader;
  ModelManager manager({}, &clock, &probe, &loader);
  manager.SetEventBus(&bus);
  auto s = bus.Subscribe();
  ASSERT_TRUE(manager.Acquire("m").ok());  // loading, ready, busy, then ready on release
  ASSERT_TRUE(manager.Eject("m", EjectLevel::kWarm, false).ok());
  std::vector<std::string> seen;
  while (auto e = s->Next(milliseconds(0))) {
    const auto& t = std::get<TransitionRecord>(*e);
    seen.push_back(std::string(ModelStateName(t.to)) + "/" + ReasonName(t.reason));
  }
  EXPECT_EQ(seen,
            (std::vector<std::string>{"loading/request", "ready/request", "busy/request",
                                      "ready/request", "ejecting/manual", "unloaded/manual"}));
}

TEST(ModelManagerEventsTest, SetPolicyChangesKeepAliveAndFloorAtRunTime) {
  CountingProbe probe;
  FakeClock clock;
  InstantLoader loader;
  ModelManager manager({}, &clock, &probe, &loader);
  ModelManager::Options o = manager.options();
  o.default_keep_alive = seconds(10);
  manager.SetPolicy(o);
  ASSERT_TRUE(manager.Acquire("m").ok());
  clock.Advance(seconds(11));
  ASSERT_EQ(manager.Tick().size(), 1u);
  EXPECT_EQ(manager.Find("m")->last_transition->reason, Reason::kKeepAlive);

  o.default_keep_alive = minutes(60);
  o.min_available = 5ull << 30;  // above the 4 GiB the probe reports
  manager.SetPolicy(o);
  StatusOr<ModelManager::Lease> refused = manager.Acquire("m");
  EXPECT_FALSE(refused.ok());
  o.min_available = 1ull << 30;
  manager.SetPolicy(o);
  ASSERT_TRUE(manager.Acquire("m").ok());
  o.min_available = 5ull << 30;
  manager.SetPolicy(o);
  std::vector<EjectReport> r = manager.Tick();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].reason, Reason::kMemoryPressure);
}

}  // namespace
}  // namespace dormouse
