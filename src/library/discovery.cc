#include "library/discovery.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace dormouse {
namespace {

namespace fs = std::filesystem;

const char* kOllamaModelLayer = "application/vnd.ollama.image.model";

bool IsGgufName(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  // Vision projectors are companions of a model, not models.
  return ext == ".gguf" && p.filename().string().find("mmproj") == std::string::npos;
}

bool IsDir(const std::string& p) {
  std::error_code ec;
  return !p.empty() && fs::is_directory(p, ec);
}

std::string Trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

std::string ReadSmallFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The regular file a path names (symlinks resolved: the HF cache links into blobs/).
bool AddFile(const fs::path& p, const std::string& name, const char* source,
             std::vector<DiscoveredModel>* out) {
  std::error_code ec;
  fs::path real = fs::canonical(p, ec);
  if (ec || !fs::is_regular_file(real, ec)) return false;
  uint64_t size = fs::file_size(real, ec);
  if (ec) return false;
  out->push_back({name, real.string(), source, size});
  return true;
}

// GGUF files under `dir`, at most `depth` levels down, sorted for stable listings.
std::vector<fs::path> FindGguf(const fs::path& dir, int depth) {
  std::vector<fs::path> out;
  std::error_code ec;
  auto it = fs::recursive_directory_iterator(dir,
                                             fs::directory_options::follow_directory_symlink |
                                                 fs::directory_options::skip_permission_denied,
                                             ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it.depth() >= depth) it.disable_recursion_pending();
    if (IsGgufName(it->path())) out.push_back(it->path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// manifests/<host>/<namespace>/<model>/<tag> -> "model:tag" for the default registry's
// library, else "host/namespace/model:tag" (as `ollama list` shows them).
std::string OllamaName(const fs::path& rel) {
  std::vector<std::string> parts;
  for (const fs::path& p : rel) parts.push_back(p.string());
  if (parts.size() != 4) return "";
  if (parts[0] == "registry.ollama.ai" && parts[1] == "library") return parts[2] + ":" + parts[3];
  return parts[0] + "/" + parts[1] + "/" + parts[2] + ":" + parts[3];
}

std::string HomeDir(const StoreDirs::GetEnv& env) {
  const char* h = env("HOME");
  return h && *h ? h : "";
}

std::string EnvOr(const StoreDirs::GetEnv& env, const char* name, const std::string& fallback) {
  const char* v = env(name);
  return v && *v ? std::string(v) : fallback;
}

// GPT4All (Qt settings) keeps a changed download folder as modelPath=... in GPT4All.ini.
std::string Gpt4AllDir(const StoreDirs::GetEnv& env, const std::string& home) {
  std::string config = EnvOr(env, "XDG_CONFIG_HOME", home.empty() ? "" : home + "/.config");
  if (!config.empty()) {
    std::istringstream ini(ReadSmallFile(config + "/nomic.ai/GPT4All.ini"));
    for (std::string line; std::getline(ini, line);) {
      if (line.rfind("modelPath=", 0) == 0) {
        std::string p = Trim(line.substr(10));
        if (!p.empty()) return p;
      }
    }
  }
  std::string data = EnvOr(env, "XDG_DATA_HOME", home.empty() ? "" : home + "/.local/share");
  return data.empty() ? "" : data + "/nomic.ai/GPT4All";
}

}  // namespace

StoreDirs StoreDirs::FromEnvironment(const GetEnv& getenv_fn) {
  GetEnv env = getenv_fn ? getenv_fn : [](const char* n) -> const char* { return std::getenv(n); };
  const std::string home = HomeDir(env);
  StoreDirs d;
  d.ollama = EnvOr(env, "OLLAMA_MODELS", "");
  if (d.ollama.empty() && !home.empty()) {
    d.ollama = home + "/.ollama/models";
    // The Linux install script runs Ollama as its own user with this home.
    if (!IsDir(d.ollama) && IsDir("/usr/share/ollama/.ollama/models")) {
      d.ollama = "/usr/share/ollama/.ollama/models";
    }
  }
  if (!home.empty()) {
    std::string lm_home = Trim(ReadSmallFile(home + "/.lmstudio-home-pointer"));
    if (lm_home.empty()) lm_home = home + "/.lmstudio";
    d.lmstudio = lm_home + "/models";
    d.lmstudio_legacy = home + "/.cache/lm-studio/models";
  }
  d.gpt4all = Gpt4AllDir(env, home);
  std::string cache = EnvOr(env, "XDG_CACHE_HOME", home.empty() ? "" : home + "/.cache");
  std::string hf_home = EnvOr(env, "HF_HOME", cache.empty() ? "" : cache + "/huggingface");
  d.hf_hub = EnvOr(env, "HF_HUB_CACHE", hf_home.empty() ? "" : hf_home + "/hub");
  return d;
}

std::vector<DiscoveredModel> DiscoverOllama(const std::string& models_dir) {
  std::vector<DiscoveredModel> out;
  const fs::path manifests = fs::path(models_dir) / "manifests";
  if (!IsDir(manifests.string())) return out;
  std::error_code ec;
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(manifests, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& f : files) {
    std::string name = OllamaName(fs::relative(f, manifests, ec));
    if (name.empty()) continue;
    nlohmann::json m = nlohmann::json::parse(ReadSmallFile(f), nullptr, /*allow_exceptions=*/false);
    if (!m.is_object() || !m.contains("layers") || !m["layers"].is_array()) continue;
    for (const nlohmann::json& layer : m["layers"]) {
      if (!layer.is_object() || layer.value("mediaType", "") != kOllamaModelLayer) continue;
      std::string digest = layer.value("digest", "");  // "sha256:<hex>" -> blobs/sha256-<hex>
      if (digest.rfind("sha256:", 0) != 0 || digest.find('/') != std::string::npos) continue;
      AddFile(fs::path(models_dir) / "blobs" / ("sha256-" + digest.substr(7)), name, "ollama",
              &out);
      break;
    }
  }
  return out;
}

std::vector<DiscoveredModel> DiscoverLmStudio(const std::string& models_dir) {
  std::vector<DiscoveredModel> out;
  if (!IsDir(models_dir)) return out;
  for (const fs::path& p : FindGguf(models_dir, 3)) {  // publisher/repo/file.gguf
    AddFile(p, p.stem().string(), "lmstudio", &out);
  }
  return out;
}

std::vector<DiscoveredModel> DiscoverGpt4All(const std::string& models_dir) {
  std::vector<DiscoveredModel> out;
  if (!IsDir(models_dir)) return out;
  for (const fs::path& p : FindGguf(models_dir, 1)) AddFile(p, p.stem().string(), "gpt4all", &out);
  return out;
}

std::vector<DiscoveredModel> DiscoverHfCache(const std::string& hub_dir) {
  std::vector<DiscoveredModel> out;
  if (!IsDir(hub_dir)) return out;
  std::error_code ec;
  std::vector<fs::path> repos;
  for (const auto& e : fs::directory_iterator(hub_dir, ec)) {
    if (e.path().filename().string().rfind("models--", 0) == 0) repos.push_back(e.path());
  }
  std::sort(repos.begin(), repos.end());
  for (const fs::path& repo : repos) {
    // models--ORG--REPO/snapshots/<revision>/<file>.gguf, linked into blobs/.
    std::set<std::string> seen;  // one entry per blob across revisions
    for (const fs::path& p : FindGguf(repo / "snapshots", 3)) {
      std::vector<DiscoveredModel> one;
      if (AddFile(p, p.stem().string(), "huggingface", &one) && seen.insert(one[0].path).second) {
        out.push_back(one[0]);
      }
    }
  }
  return out;
}

std::vector<DiscoveredModel> DiscoverAll(const StoreDirs& dirs) {
  std::vector<DiscoveredModel> all;
  auto add = [&](std::vector<DiscoveredModel> v) {
    for (DiscoveredModel& m : v) all.push_back(std::move(m));
  };
  if (!dirs.ollama.empty()) add(DiscoverOllama(dirs.ollama));
  if (!dirs.lmstudio.empty()) add(DiscoverLmStudio(dirs.lmstudio));
  if (!dirs.lmstudio_legacy.empty()) add(DiscoverLmStudio(dirs.lmstudio_legacy));
  if (!dirs.gpt4all.empty()) add(DiscoverGpt4All(dirs.gpt4all));
  if (!dirs.hf_hub.empty()) add(DiscoverHfCache(dirs.hf_hub));
  std::set<std::string> paths;
  std::vector<DiscoveredModel> out;
  for (DiscoveredModel& m : all) {
    if (paths.insert(m.path).second) out.push_back(std::move(m));
  }
  return out;
}

}  // namespace dormouse
