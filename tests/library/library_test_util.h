// Helpers shared by the library tests (and the CLI's pull tests).
#pragma once

#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "base/thread_pool.h"
#include "engine/context.h"
#include "engine/gguf_builder.h"
#include "engine/model.h"

namespace dormouse::testing_util {

inline std::string SharedModel(const std::string& name) {
  return std::string(DM_SHARED_DIR) + "/models/" + name + ".gguf";
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "dormouse-lib-XXXXXX").string();
    path_ = mkdtemp(tmpl.data()) ? tmpl : "";
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void Write(const std::filesystem::path& p, const std::string& text) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

inline void CopyModel(const std::string& model, const std::filesystem::path& to) {
  std::filesystem::create_directories(to.parent_path());
  std::filesystem::copy_file(SharedModel(model), to,
                             std::filesystem::copy_options::overwrite_existing);
}

// ~/.ollama/models: manifests/<host>/<namespace>/<model>/<tag> naming blobs/sha256-<hex>.
inline void MakeOllamaStore(const std::filesystem::path& root) {
  const std::string hex(64, 'a');
  CopyModel("stories260K", root / "blobs" / ("sha256-" + hex));
  Write(root / "blobs" / ("sha256-" + std::string(64, 'b')), "{{ .Prompt }}");
  Write(root / "manifests/registry.ollama.ai/library/stories/260k",
        R"({"schemaVersion":2,"layers":[
          {"mediaType":"application/vnd.ollama.image.template","digest":"sha256:)" +
            std::string(64, 'b') + R"(","size":13},
          {"mediaType":"application/vnd.ollama.image.model","digest":"sha256:)" +
            hex + R"(","size":1}]})");
  // A manifest whose blob is missing (a half-finished ollama pull) is skipped.
  Write(root / "manifests/hf.co/someone/missing/latest",
        R"({"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:)" +
            std::string(64, 'c') + R"("}]})");
  Write(root / "manifests/registry.ollama.ai/library/broken/latest", "not json");
}

// A header-valid GGUF of architecture `arch` with one small token embedding.
inline void WriteTinyGguf(const std::filesystem::path& path, const std::string& arch) {
  GgufBuilder b;
  b.Str("general.architecture", arch)
      .U32(arch + ".embedding_length", 8)
      .U32(arch + ".block_count", 1)
      .U32(arch + ".feed_forward_length", 16)
      .U32(arch + ".attention.head_count", 2)
      .F32Tensor("token_embd.weight", {8, 4}, std::vector<float>(32, 0.5f));
  b.WriteTo(path);
}

// Evaluates two tokens and checks the logits are finite: the model runs.
inline bool Generates(const Model& m) {
  ThreadPool pool(1);
  ContextParams p;
  p.n_ctx = 16;
  StatusOr<InferenceContext> ctx = InferenceContext::CreateOrError(m, p, &pool);
  if (!ctx.ok()) return false;
  const int32_t tokens[] = {1, 2};
  if (!ctx->Eval(tokens).ok()) return false;
  for (int64_t i = 0; i < ctx->n_vocab(); ++i) {
    if (!std::isfinite(ctx->logits()[i])) return false;
  }
  return true;
}

}  // namespace dormouse::testing_util
