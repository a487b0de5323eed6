// `dormouse pull` and POST /api/pull: a model from Hugging Face (`hf.co/ORG/REPO[:QUANT]`,
// `hf.co/ORG/REPO/FILE.gguf`), the Ollama registry (`NAME[:TAG]`) or an https:// URL,
// into the models directory. Each download resumes a partial file (HTTP Range), checks
// the sha256 the source publishes (a mismatch removes the file), lands atomically (a
// `.partial` file renamed into place) and is done once when two pulls of the same model
// run at once (the second waits on the first's lock, then finds the model there).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/status.h"

namespace dormouse {

// Where the sources live. Tests point them at a loopback server; the defaults are the
// real hosts. Overridden by HF_ENDPOINT (huggingface_hub's own variable) and
// DORMOUSE_REGISTRY.
struct PullEndpoints {
  std::string huggingface = "https://huggingface.co";
  std::string registry = "https://registry.ollama.ai";
  static PullEndpoints FromEnvironment();
};

// Ollama's progress shape: {"status", "digest", "total", "completed"}.
struct PullProgress {
  std::string status;  // "pulling manifest", "pulling <digest>", "verifying sha256 digest", ...
  std::string digest;  // "sha256:<hex>" while a file downloads
  uint64_t total = 0;
  uint64_t completed = 0;
};

struct PullOptions {
  std::string models_dir;
  PullEndpoints endpoints;
  std::function<void(const PullProgress&)> on_progress;
  // Before downloading `bytes`: a warning to show when the model will not fit ("" = fits).
  std::function<std::string(uint64_t bytes)> fit_check;
  std::function<void(const std::string&)> on_warning;
  // Set (from any thread) to stop the download; the partial file stays for a resume.
  const std::atomic<bool>* cancel = nullptr;
  // Tests only: trust this CA file as well as the system's.
  std::string extra_ca_file;
  // Tests only: writes fail with ENOSPC after this many bytes (a full disk).
  uint64_t fail_writes_after = UINT64_MAX;
};

struct PullResult {
  std::string name;  // what `dormouse run` and the APIs call it
  std::string path;
  uint64_t downloaded = 0;       // bytes received in this pull
  bool already_present = false;  // nothing to download (or another pull just did it)
};

StatusOr<PullResult> Pull(const std::string& spec, const PullOptions& options);

enum class PullKind { kHuggingFace, kHuggingFaceFile, kRegistry, kUrl };

struct PullSpec {
  PullKind kind = PullKind::kRegistry;
  std::string name;    // the local model name
  std::string repo;    // "ORG/REPO" (Hugging Face) or "NAMESPACE/MODEL" (registry)
  std::string tag;     // quant (Hugging Face) or tag (registry); "" = default
  std::string file;    // FILE.gguf in the repo (kHuggingFaceFile)
  std::string url;     // kUrl, without a "#sha256=" fragment
  std::string sha256;  // from a URL's "#sha256=HEX" fragment
};
StatusOr<PullSpec> ParsePullSpec(const std::string& spec);

// The repo file for a quant tag, as llama.cpp's -hf and Ollama's hf.co/ pulls choose:
// the .gguf whose name carries the tag (case-insensitive; Q4_K_M when no tag is given,
// else Q8_0, else the first); vision projectors and split files are not candidates.
StatusOr<std::string> PickHfFile(const std::vector<std::string>& files, const std::string& tag);

// Lower-case hex sha256 of a whole file.
StatusOr<std::string> Sha256File(const std::string& path);

}  // namespace dormouse
