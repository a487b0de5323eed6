#include "lifecycle/gguf_loader.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include "lifecycle/context_size.h"

namespace dormouse {
namespace {

namespace fs = std::filesystem;

bool IsSafeName(const std::string& name) {
  if (name.empty() || name.size() > 255 || name[0] == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
           c == ':' || c == '+';
  });
}

}  // namespace

uint64_t EstimateModelBytes(const ModelConfig& c, uint64_t weight_bytes, const ContextParams& p,
                            int64_t contexts) {
  // The longest context it may get (DefaultContextSize), for the per-position buffers.
  const uint64_t n_ctx = p.n_ctx > 0 ? p.n_ctx : std::max<int64_t>(c.n_ctx_train, 1);
  const uint64_t ub = std::min<uint64_t>(p.n_ubatch, n_ctx);
  const uint64_t wide = std::max({c.n_embd, c.q_dim(), c.n_ff});
  const uint64_t scratch =
      4 * ub * (c.n_embd + wide + 2 * c.q_dim() + 2 * c.kv_dim() + 2 * c.n_ff) +
      4 * ub * c.n_embd * 3 + 4ull * c.n_vocab + 4 * n_ctx * 2;
  return weight_bytes + static_cast<uint64_t>(std::max<int64_t>(contexts, 1)) * scratch;
}

GgufModelLoader::GgufModelLoader(Options options, ThreadPool* pool, TranscriptDb* hash_cache)
    : options_(std::move(options)), pool_(pool), hash_cache_(hash_cache) {}

StatusOr<std::string> GgufModelLoader::PathOf(const std::string& name) const {
  auto it = options_.files.find(name);
  if (it != options_.files.end()) return it->second;
  if (options_.more_models) {
    std::map<std::string, std::string> more = options_.more_models();
    if (auto m = more.find(name); m != more.end()) return m->second;
    // Ollama's clients may leave out the default tag: "NAME" is "NAME:latest".
    if (name.find(':') == std::string::npos) {
      if (auto m = more.find(name + ":latest"); m != more.end()) return m->second;
    }
  }
  if (!IsSafeName(name)) {
    return Status::Errorf("'{}' is not a valid model name (letters, digits, '-', '_', '.')", name);
  }
  if (!options_.models_dir.empty()) {
    fs::path p = fs::path(options_.models_dir) / (name + ".gguf");
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  return Status::Errorf("model '{}' not found (available: {})", name, [&] {
    std::string list;
    for (const std::string& n : Names()) list += (list.empty() ? "" : ", ") + n;
    return list.empty() ? std::string("none") : list;
  }());
}

std::vector<std::string> GgufModelLoader::Names() const {
  std::vector<std::string> out;
  for (const auto& [name, path] : options_.files) out.push_back(name);
  if (options_.more_models) {
    for (const auto& [name, path] : options_.more_models()) out.push_back(name);
  }
  if (!options_.models_dir.empty()) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(options_.models_dir, ec)) {
      if (e.path().extension() == ".gguf" && IsSafeName(e.path().stem().string())) {
        out.push_back(e.path().stem().string());
      }
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

StatusOr<uint64_t> GgufModelLoader::EstimateBytes(const std::string& name) {
  DM_ASSIGN_OR_RETURN(std::string path, PathOf(name));
  struct stat st;
  const bool have_stat = ::stat(path.c_str(), &st) == 0;
  const int64_t mtime_ns =
      have_stat ? int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec : 0;
  if (have_stat) {
    std::lock_guard<std::mutex> lock(estimates_mu_);
    auto it = estimates_.find(path);
    if (it != estimates_.end() && it->second.size == st.st_size &&
        it->second.mtime_ns == mtime_ns) {
      return it->second.bytes;
    }
  }
  DM_ASSIGN_OR_RETURN(uint64_t bytes, EstimateFromHeader(path));
  if (have_stat) {
    std::lock_guard<std::mutex> lock(estimates_mu_);
    estimates_[path] = {st.st_size, mtime_ns, bytes};
  }
  return bytes;
}

StatusOr<uint64_t> GgufModelLoader::EstimateFromHeader(const std::string& path) const {
  DM_ASSIGN_OR_RETURN(GgufFile g, GgufFile::OpenOrError(path));
  const GgufTensorInfo* embd = g.FindTensor("token_embd.weight");
  if (embd == nullptr || embd->dims.size() != 2) {
    return Status::Errorf("{}: missing or malformed token_embd.weight", path);
  }
  StatusOr<ModelConfig> c = ModelConfig::FromGguf(g, embd->dims[1]);
  if (!c.ok()) return c.status().WithContext(path);
  uint64_t weights = 0;
  for (const GgufTensorInfo& t : g.tensors()) weights += t.n_bytes;
  return EstimateModelBytes(*c, weights, options_.context, options_.contexts_per_model);
}

StatusOr<std::shared_ptr<ModelHandle>> GgufModelLoader::Load(const std::string& name) {
  DM_ASSIGN_OR_RETURN(std::string path, PathOf(name));
  if (options_.before_load) options_.before_load(name);
  DM_ASSIGN_OR_RETURN(std::unique_ptr<LoadedModel> m, LoadModel(path, pool_, hash_cache_));
  m->name = name;
  const uint64_t memory =
      options_.probe ? MemoryForContexts(*options_.probe, options_.memory_budget) : 0;
  ApplyDefaultContext(*m->model, options_.context, options_.contexts_per_model, memory);
  return std::shared_ptr<ModelHandle>(std::make_shared<LoadedModelHandle>(std::move(m)));
}

void GgufModelLoader::AfterUnload(const std::string& name, EjectLevel level) {
  if (level != EjectLevel::kCold) return;
  StatusOr<std::string> path = PathOf(name);
  if (path.ok()) (void)DropFromPageCache(*path);
}

}  // namespace dormouse
