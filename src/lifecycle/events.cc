#include "lifecycle/events.h"

#include <cassert>
#include <map>

namespace dormouse {

EventBus::Subscription::~Subscription() {
  if (bus_ != nullptr) bus_->Unsubscribe(this);
}

std::optional<Event> EventBus::Subscription::Next(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return closed_ || !queue_.empty(); });
  if (closed_ || queue_.empty()) return std::nullopt;
  Event e = std::move(queue_.front());
  queue_.pop_front();
  return e;
}

uint64_t EventBus::Subscription::TakeDropped() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(dropped_, 0);
}

void EventBus::Subscription::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  closed_ = true;
  cv_.notify_all();
}

EventBus::~EventBus() {
  std::lock_guard<std::mutex> lock(mu_);
  for (Subscription* s : subs_) s->bus_ = nullptr;  // outliving readers see nothing more
}

std::shared_ptr<EventBus::Subscription> EventBus::Subscribe() {
  auto s = std::make_shared<Subscription>();
  s->bus_ = this;
  std::lock_guard<std::mutex> lock(mu_);
  subs_.insert(s.get());
  cv_.notify_all();
  return s;
}

void EventBus::Unsubscribe(Subscription* s) {
  std::lock_guard<std::mutex> lock(mu_);
  subs_.erase(s);
}

void EventBus::Publish(const Event& e) {
  std::lock_guard<std::mutex> lock(mu_);
  for (Subscription* s : subs_) {
    std::lock_guard<std::mutex> sl(s->mu_);
    if (s->closed_) continue;
    if (s->queue_.size() >= kMaxQueued) {
      s->queue_.pop_front();
      s->dropped_++;
    }
    s->queue_.push_back(e);
    s->cv_.notify_all();
  }
}

size_t EventBus::subscribers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return subs_.size();
}

void EventBus::WaitForSubscriber(const std::function<bool()>& stop) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !subs_.empty() || stop(); });
}

void EventBus::Wake() {
  std::lock_guard<std::mutex> lock(mu_);
  cv_.notify_all();
}

MemorySampler::MemorySampler(EventBus* bus, Sources sources, std::chrono::milliseconds period)
    : bus_(bus), src_(std::move(sources)), period_(period) {
  thread_ = std::thread([this] { Loop(); });
}

MemorySampler::~MemorySampler() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  bus_->Wake();
  thread_.join();
}

void MemorySampler::SampleOnce() {
  MemorySample m{src_.probe->System(), src_.probe->Process()};
  bus_->Publish(m);
  if (src_.manager == nullptr) return;
  for (const ModelStatus& s : src_.manager->List()) {
    if (s.state != ModelState::kLoading) continue;
    LoadProgress p;
    p.model = s.name;
    p.bytes_total = src_.file_size_of ? src_.file_size_of(s.name) : 0;
    p.bytes_done = src_.resident_of ? src_.resident_of(s.name) : 0;
    if (p.bytes_total > 0 && p.bytes_done > p.bytes_total) p.bytes_done = p.bytes_total;
    if (s.last_transition) {
      p.seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - s.last_transition->at)
              .count();
    }
    bus_->Publish(p);
  }
}

void MemorySampler::Loop() {
  auto stopped = [&] {
    std::lock_guard<std::mutex> lock(mu_);
    return stop_;
  };
  while (!stopped()) {
    // Sleeps without a timer while nobody listens: no periodic work on an idle server.
    bus_->WaitForSubscriber(stopped);
    if (stopped()) break;
    SampleOnce();
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, period_, [&] { return stop_; });
  }
}

}  // namespace dormouse
