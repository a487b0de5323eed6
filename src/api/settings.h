// Run-time settings the app (or any client) changes through GET/POST /api/settings:
// the default keep-alive, the memory budget, the pressure policy (MemAvailable floor and
// PSI threshold) and the app's "eject when the tab is hidden" delay. They are applied to
// the ModelManager at once and kept in <data_dir>/settings.json (written atomically), so
// a restart keeps them; they then take precedence over --keep-alive and --memory-budget
// (DELETE /api/settings forgets them and returns to the flags).
//
// The default MemAvailable floor is a tenth of RAM, between 512 MiB and 2 GiB (the old
// fixed 256 MiB was too late on a laptop). MemAvailable counts page cache the kernel can
// drop; once it falls to a few percent, the kernel is already evicting the hot file pages
// of running programs and then swapping anonymous memory, and an interactive desktop
// stalls. Ejecting an idle model at 10% hands back its KV caches and clean weight pages
// before that, and its conversation resumes from a snapshot at no recompute cost. The
// PSI threshold (10% of the last 10 s with some task stalled on memory) catches the case
// the floor misses: memory that is "available" but only by thrashing the page cache.
#pragma once

#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "base/status.h"
#include "lifecycle/memory_probe.h"
#include "lifecycle/model_manager.h"

namespace dormouse::api {

struct AppSettings {
  double keep_alive_seconds = 300;  // negative: keep loaded forever
  uint64_t memory_budget = 0;       // bytes for all loaded models; 0 = no limit
  uint64_t min_available = 0;       // eject idle models when MemAvailable is below
  double psi_threshold = 10;        // % (PSI memory "some" avg10); 0 = off
  double hidden_tab_eject_minutes =
      0;  // the app ejects after the tab is hidden this long; 0 = never
};

uint64_t DefaultMemoryFloor(uint64_t mem_total);
// Defaults from the command-line flags (keep-alive, budget) and the machine's RAM.
AppSettings DefaultSettings(const ModelManager::Options& flags, uint64_t mem_total);

nlohmann::json SettingsJson(const AppSettings& s);
// Applies the fields present in `update` to `base`; an error names a bad field.
StatusOr<AppSettings> MergeSettings(const AppSettings& base, const nlohmann::json& update);

class SettingsStore {
 public:
  // Reads <data_dir>/settings.json if present (a damaged file is reported and ignored)
  // and applies the result to the manager.
  SettingsStore(std::string data_dir, ModelManager* manager, MemoryProbe* probe);

  AppSettings Get() const;
  // Validates, applies and saves; the new settings, or an error naming the problem.
  StatusOr<AppSettings> Update(const nlohmann::json& update);
  // Back to the defaults (flags and RAM); removes the file.
  StatusOr<AppSettings> Reset();
  const std::string& path() const { return path_; }

 private:
  void Apply(const AppSettings& s);
  Status Save(const AppSettings& s) const;
  std::string path_;
  ModelManager* manager_;
  AppSettings defaults_;
  mutable std::mutex mu_;
  AppSettings current_;
};

}  // namespace dormouse::api
