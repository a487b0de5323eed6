#include "library/library.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "store/transcript_db.h"

namespace dormouse {
namespace {

namespace fs = std::filesystem;

// Another tool's store changes rarely; a listing per request would rescan it each time.
constexpr auto kRescanEvery = std::chrono::seconds(5);

std::string RecordedName(const fs::path& gguf) {
  std::ifstream in(PullRecordPath(gguf.string()));
  if (!in) return "";
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
  return j.is_object() && j.contains("name") && j["name"].is_string() ? j["name"].get<std::string>()
                                                                      : "";
}

}  // namespace

std::string ModelFileName(const std::string& name) {
  std::string out;
  for (char c : name) out += c == '/' ? std::string("--") : std::string(1, c);
  const bool has_ext = out.size() > 5 && out.compare(out.size() - 5, 5, ".gguf") == 0;
  return has_ext ? out : out + ".gguf";
}

std::string PullRecordPath(const std::string& model_path) { return model_path + ".pull.json"; }

StatusOr<std::string> DefaultModelsDir(const std::string& data_dir) {
  DM_ASSIGN_OR_RETURN(std::string dir, ResolveDataDir(data_dir));
  std::string models = (fs::path(dir) / "models").string();
  std::error_code ec;
  fs::create_directories(models, ec);
  if (ec) return Status::Errorf("cannot create {}: {}", models, ec.message());
  return models;
}

std::vector<DiscoveredModel> Library::Discovered() {
  if (!options_.discover) return {};
  std::lock_guard<std::mutex> lock(mu_);
  auto now = std::chrono::steady_clock::now();
  if (!have_discovered_ || now - discovered_at_ > kRescanEvery) {
    discovered_ = DiscoverAll(options_.stores);
    discovered_at_ = now;
    have_discovered_ = true;
  }
  return discovered_;
}

std::vector<LibraryEntry> Library::List() {
  std::vector<LibraryEntry> out;
  std::set<std::string> names, paths;
  if (!options_.models_dir.empty()) {
    std::error_code ec;
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(options_.models_dir, ec)) {
      if (e.path().extension() == ".gguf" && e.is_regular_file(ec)) files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files) {
      std::string recorded = RecordedName(f);
      LibraryEntry e{recorded.empty() ? f.stem().string() : recorded, f.string(),
                     recorded.empty() ? "models-dir" : "pulled", fs::file_size(f, ec)};
      if (!names.insert(e.name).second) continue;
      paths.insert(fs::weakly_canonical(f, ec).string());
      out.push_back(std::move(e));
    }
  }
  for (DiscoveredModel& d : Discovered()) {
    if (paths.count(d.path)) continue;  // our models dir may itself be a store
    std::string name = names.count(d.name) ? d.source + "/" + d.name : d.name;
    if (!names.insert(name).second) continue;
    out.push_back({name, d.path, d.source, d.size});
  }
  return out;
}

StatusOr<LibraryEntry> Library::Find(const std::string& name) {
  std::vector<LibraryEntry> all = List();
  for (const std::string& n : {name, name + ":latest"}) {
    for (LibraryEntry& e : all) {
      if (e.name == n) return e;
    }
  }
  std::string list;
  for (const LibraryEntry& e : all) list += (list.empty() ? "" : ", ") + e.name;
  return Status::Errorf("model '{}' not found (available: {}; `dormouse pull NAME` downloads one)",
                        name, list.empty() ? "none" : list);
}

std::map<std::string, std::string> Library::Paths() {
  std::map<std::string, std::string> out;
  for (const LibraryEntry& e : List()) out[e.name] = e.path;
  return out;
}

Status Library::Remove(const std::string& name) {
  DM_ASSIGN_OR_RETURN(LibraryEntry e, Find(name));
  if (e.source != "pulled") {
    return Status::Errorf(
        "'{}' was not downloaded by dormouse ({}: {}); remove it with the tool that owns it",
        e.name, e.source, e.path);
  }
  std::error_code ec;
  fs::remove(e.path, ec);
  if (ec) return Status::Errorf("cannot remove {}: {}", e.path, ec.message());
  fs::remove(PullRecordPath(e.path), ec);
  return Status::Ok();
}

}  // namespace dormouse
