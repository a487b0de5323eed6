// Events are data: a lifecycle transition, a memory sample or a model's load progress
// is a struct published on one EventBus. Readers (the server's /api/events stream for the
// browser app; /metrics and the CLI's status line could read it the same way) subscribe
// and drain their own bounded queue, so a slow reader never blocks the publisher: its
// oldest events are dropped and it is told how many.
//
// MemorySampler publishes memory samples (and the progress of loads in flight) about
// once a second, but only while at least one reader is subscribed: with no page open
// the server does no periodic work and its idle RSS does not change.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "lifecycle/memory_probe.h"
#include "lifecycle/model_manager.h"

namespace dormouse {

struct MemorySample {
  SystemMemory system;
  ProcessMemory process;
};

struct LoadProgress {
  std::string model;
  uint64_t bytes_done = 0;   // weights resident in this process so far
  uint64_t bytes_total = 0;  // the model file's size
  double seconds = 0;        // since the load started
};

using Event = std::variant<TransitionRecord, MemorySample, LoadProgress>;

class EventBus {
 public:
  static constexpr size_t kMaxQueued = 256;

  class Subscription {
   public:
    ~Subscription();
    // The next event, or nullopt after `timeout` (or once Close() was called).
    std::optional<Event> Next(std::chrono::milliseconds timeout);
    // Events dropped because this reader fell behind, since the last call.
    uint64_t TakeDropped();
    // Wakes a blocked Next(); later calls return nullopt at once.
    void Close();

   private:
    friend class EventBus;
    EventBus* bus_ = nullptr;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Event> queue_;
    uint64_t dropped_ = 0;
    bool closed_ = false;
  };

  EventBus() = default;
  ~EventBus();  // subscriptions must be gone (or outlive it closed)
  EventBus(const EventBus&) = delete;
  EventBus& operator=(const EventBus&) = delete;

  std::shared_ptr<Subscription> Subscribe();
  void Publish(const Event& e);
  size_t subscribers() const;
  // Blocks until there is a subscriber or `stop` returns true after a Wake().
  void WaitForSubscriber(const std::function<bool()>& stop);
  void Wake();

 private:
  void Unsubscribe(Subscription* s);
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::set<Subscription*> subs_;
};

// Samples memory while anyone listens (see the file comment).
class MemorySampler {
 public:
  // `file_size_of` gives a model's file size (0 if unknown) for load progress;
  // `resident_of` the bytes of that file mapped into this process.
  struct Sources {
    MemoryProbe* probe = nullptr;
    ModelManager* manager = nullptr;
    std::function<uint64_t(const std::string&)> file_size_of;
    std::function<uint64_t(const std::string&)> resident_of;
  };
  MemorySampler(EventBus* bus, Sources sources,
                std::chrono::milliseconds period = std::chrono::seconds(1));
  ~MemorySampler();  // stops the thread
  MemorySampler(const MemorySampler&) = delete;
  MemorySampler& operator=(const MemorySampler&) = delete;

  // One sample now (the thread calls it each period).
  void SampleOnce();

 private:
  void Loop();
  EventBus* bus_;
  Sources src_;
  std::chrono::milliseconds period_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace dormouse
