// The models dormouse can run, by name: the GGUF files in our models directory (pulled
// ones carry a `<file>.pull.json` record of where they came from) and, unless
// discovery is off, the models other tools keep on disk (discovery.h), used in place.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "base/status.h"
#include "library/discovery.h"
#include "library/model_summary.h"

namespace dormouse {

struct LibraryEntry {
  std::string name;
  std::string path;
  std::string source;  // "pulled", "models-dir", or a discovered store's name
  uint64_t size = 0;
};

struct LibraryOptions {
  std::string models_dir;  // "" = none (only discovered models)
  bool discover = true;
  StoreDirs stores;  // usually StoreDirs::FromEnvironment()
};

class Library {
 public:
  explicit Library(LibraryOptions options) : options_(std::move(options)) {}

  const std::string& models_dir() const { return options_.models_dir; }
  // Our directory first, then discovered models; names are unique (a discovered name
  // that is taken gets its source as a prefix: "lmstudio/NAME").
  std::vector<LibraryEntry> List();
  // By name; "NAME" also finds "NAME:latest", as Ollama does.
  StatusOr<LibraryEntry> Find(const std::string& name);
  // name -> path of every model (the server's model list).
  std::map<std::string, std::string> Paths();
  ModelSummary Summary(const std::string& path) { return summaries_.Get(path); }
  // Deletes a model dormouse pulled (its file and record); refuses any other.
  Status Remove(const std::string& name);

 private:
  std::vector<DiscoveredModel> Discovered();
  LibraryOptions options_;
  SummaryCache summaries_;
  std::mutex mu_;
  std::vector<DiscoveredModel> discovered_;
  std::chrono::steady_clock::time_point discovered_at_{};
  bool have_discovered_ = false;
};

// The file in the models directory for a model name: '/' becomes "--", plus ".gguf"
// unless the name ends with it.
std::string ModelFileName(const std::string& name);
// The record beside a pulled model file: "<file>.pull.json".
std::string PullRecordPath(const std::string& model_path);
// The default models directory: <data dir>/models ($XDG_DATA_HOME/dormouse/models).
StatusOr<std::string> DefaultModelsDir(const std::string& data_dir);

}  // namespace dormouse
