// A model ready to serve: weights (mapped), tokenizer, chat template and fingerprint.
// Sessions borrow it; the lifecycle manager decides when it is loaded and ejected.
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "base/thread_pool.h"
#include "engine/chat/chat_template.h"
#include "engine/fingerprint.h"
#include "engine/model.h"
#include "engine/tokenizer/tokenizer.h"

namespace dormouse {

class TranscriptDb;

struct LoadedModel {
  std::string name;  // file name without .gguf
  std::string path;
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<ChatTemplate> chat_template;
  ModelFingerprint fingerprint;
  ThreadPool* pool = nullptr;  // shared, outlives the model
  double load_seconds = 0;
  bool hash_from_cache = false;
};

// "path/to/llama-58m-q8_0.gguf" -> "llama-58m-q8_0".
std::string ModelNameFromPath(const std::string& path);

// Maps the file and prepares everything a session needs. The content hash comes from
// `hash_cache` when the file's size, mtime and inode are unchanged (nullptr: always hash).
StatusOr<std::unique_ptr<LoadedModel>> LoadModel(const std::string& path, ThreadPool* pool,
                                                 TranscriptDb* hash_cache);

}  // namespace dormouse
