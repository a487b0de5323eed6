#include "api/settings.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace dormouse::api {

using nlohmann::json;

uint64_t DefaultMemoryFloor(uint64_t mem_total) {
  return std::clamp<uint64_t>(mem_total / 10, 512ull << 20, 2048ull << 20);
}

AppSettings DefaultSettings(const ModelManager::Options& flags, uint64_t mem_total) {
  AppSettings s;
  s.keep_alive_seconds = std::chrono::duration<double>(flags.default_keep_alive).count();
  s.memory_budget = flags.memory_budget;
  s.min_available = DefaultMemoryFloor(mem_total);
  return s;
}

json SettingsJson(const AppSettings& s) {
  return {{"keep_alive_seconds", s.keep_alive_seconds},
          {"memory_budget", s.memory_budget},
          {"min_available", s.min_available},
          {"psi_threshold", s.psi_threshold},
          {"hidden_tab_eject_minutes", s.hidden_tab_eject_minutes}};
}

namespace {

// A finite number in [lo, hi] at `key`, if present.
Status ReadNumber(const json& j, const char* key, double lo, double hi, double* out) {
  auto it = j.find(key);
  if (it == j.end()) return Status::Ok();
  if (!it->is_number() || !std::isfinite(it->get<double>())) {
    return Status::Errorf("settings: {} must be a number", key);
  }
  const double v = it->get<double>();
  if (v < lo || v > hi)
    return Status::Errorf("settings: {} must be in [{}, {}], got {}", key, lo, hi, v);
  *out = v;
  return Status::Ok();
}

}  // namespace

StatusOr<AppSettings> MergeSettings(const AppSettings& base, const json& update) {
  if (!update.is_object()) return Status::Error("settings must be a JSON object");
  static const char* kKnown[] = {"keep_alive_seconds", "memory_budget", "min_available",
                                 "psi_threshold", "hidden_tab_eject_minutes"};
  for (const auto& item : update.items()) {
    const std::string& key = item.key();  // not a structured binding: clang 14 can't capture one
    if (std::find_if(std::begin(kKnown), std::end(kKnown),
                     [&](const char* k) { return key == k; }) == std::end(kKnown)) {
      return Status::Errorf("settings: unknown field '{}'", key);
    }
  }
  AppSettings s = base;
  double budget = static_cast<double>(s.memory_budget),
         floor = static_cast<double>(s.min_available);
  constexpr double kYear = 365.0 * 86400, kPiB = 1125899906842624.0;
  if (Status st = ReadNumber(update, "keep_alive_seconds", -1, kYear, &s.keep_alive_seconds);
      !st.ok())
    return st;
  if (Status st = ReadNumber(update, "memory_budget", 0, kPiB, &budget); !st.ok()) return st;
  if (Status st = ReadNumber(update, "min_available", 0, kPiB, &floor); !st.ok()) return st;
  if (Status st = ReadNumber(update, "psi_threshold", 0, 100, &s.psi_threshold); !st.ok())
    return st;
  if (Status st = ReadNumber(update, "hidden_tab_eject_minutes", 0, 7 * 24 * 60,
                             &s.hidden_tab_eject_minutes);
      !st.ok()) {
    return st;
  }
  s.memory_budget = static_cast<uint64_t>(budget);
  s.min_available = static_cast<uint64_t>(floor);
  return s;
}

SettingsStore::SettingsStore(std::string data_dir, ModelManager* manager, MemoryProbe* probe)
    : path_((std::filesystem::path(data_dir) / "settings.json").string()), manager_(manager) {
  defaults_ = DefaultSettings(manager->options(), probe->System().total);
  current_ = defaults_;
  std::ifstream in(path_);
  if (in) {
    std::stringstream text;
    text << in.rdbuf();
    json j = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
    StatusOr<AppSettings> s = MergeSettings(defaults_, j);
    if (s.ok()) {
      current_ = *s;
    } else {
      std::cerr << "warning: " << path_
                << " ignored: " << (j.is_discarded() ? "not JSON" : s.status().message()) << "\n";
    }
  }
  Apply(current_);
}

AppSettings SettingsStore::Get() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

void SettingsStore::Apply(const AppSettings& s) {
  ModelManager::Options o = manager_->options();
  o.default_keep_alive = std::chrono::duration_cast<Clock::Duration>(
      std::chrono::duration<double>(s.keep_alive_seconds));
  o.memory_budget = s.memory_budget;
  o.min_available = s.min_available;
  o.psi_threshold = s.psi_threshold;
  manager_->SetPolicy(o);
}

Status SettingsStore::Save(const AppSettings& s) const {
  const std::string tmp = path_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << SettingsJson(s).dump(2) << "\n";
    out.flush();
    if (!out) return Status::Errorf("cannot write {}", tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path_, ec);
  if (ec) return Status::Errorf("cannot replace {}: {}", path_, ec.message());
  return Status::Ok();
}

StatusOr<AppSettings> SettingsStore::Update(const json& update) {
  std::lock_guard<std::mutex> lock(mu_);
  DM_ASSIGN_OR_RETURN(AppSettings s, MergeSettings(current_, update));
  if (Status st = Save(s); !st.ok()) return st;
  current_ = s;
  Apply(s);
  return s;
}

StatusOr<AppSettings> SettingsStore::Reset() {
  std::lock_guard<std::mutex> lock(mu_);
  std::error_code ec;
  std::filesystem::remove(path_, ec);
  if (ec) return Status::Errorf("cannot remove {}: {}", path_, ec.message());
  current_ = defaults_;
  Apply(current_);
  return current_;
}

}  // namespace dormouse::api
