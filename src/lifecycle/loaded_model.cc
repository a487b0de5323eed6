#include "lifecycle/loaded_model.h"

#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <iostream>

#include "store/transcript_db.h"

namespace dormouse {
namespace {

// The content hash, from the cache when the file is unchanged.
Hash128 ContentHash(const Model& model, const std::string& given_path, TranscriptDb* cache,
                    bool* from_cache) {
  *from_cache = false;
  // One cache entry per file, however the path was spelled.
  std::error_code ec;
  std::string path = std::filesystem::weakly_canonical(given_path, ec).string();
  if (ec) path = given_path;
  struct stat st;
  const bool have_stat = ::stat(path.c_str(), &st) == 0;
  const int64_t mtime_ns =
      have_stat ? int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec : 0;
  if (cache != nullptr && have_stat) {
    auto cached =
        cache->CachedModelHash(path, st.st_size, mtime_ns, static_cast<int64_t>(st.st_ino));
    Hash128 h;
    if (cached.ok() && cached->has_value() && Hash128::FromHex(**cached, &h)) {
      *from_cache = true;
      return h;
    }
  }
  Hash128 h = HashFileContent(model.gguf());
  if (cache != nullptr && have_stat) {
    Status s =
        cache->StoreModelHash(path, st.st_size, mtime_ns, static_cast<int64_t>(st.st_ino), h.Hex());
    if (!s.ok()) std::cerr << "warning: cannot cache the model hash: " << s.message() << "\n";
  }
  return h;
}

}  // namespace

std::string ModelNameFromPath(const std::string& path) {
  std::filesystem::path p(path);
  return p.extension() == ".gguf" ? p.stem().string() : p.filename().string();
}

StatusOr<std::unique_ptr<LoadedModel>> LoadModel(const std::string& path, ThreadPool* pool,
                                                 TranscriptDb* hash_cache) {
  const auto t0 = std::chrono::steady_clock::now();
  auto m = std::make_unique<LoadedModel>();
  m->name = ModelNameFromPath(path);
  m->path = path;
  m->pool = pool;
  DM_ASSIGN_OR_RETURN(Model model, Model::LoadOrError(path));
  m->model = std::make_unique<Model>(std::move(model));
  StatusOr<Tokenizer> tok = Tokenizer::FromGguf(m->model->gguf());
  if (!tok.ok()) return tok.status().WithContext(path);
  m->tokenizer = std::make_unique<Tokenizer>(std::move(tok).value());
  if (m->tokenizer->n_vocab() != m->model->config().n_vocab) {
    return Status::Errorf("{}: tokenizer has {} tokens but the embedding has {} rows", path,
                          m->tokenizer->n_vocab(), m->model->config().n_vocab);
  }
  StatusOr<std::optional<std::string>> source =
      m->model->gguf().GetString("tokenizer.chat_template");
  m->chat_template = std::make_unique<ChatTemplate>(
      ChatTemplate::FromSource(source.ok() && source->has_value() ? **source : ""));
  m->fingerprint = ModelFingerprint::OfModel(*m->model);
  m->fingerprint.content_hash = ContentHash(*m->model, path, hash_cache, &m->hash_from_cache);
  m->load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return m;
}

}  // namespace dormouse
