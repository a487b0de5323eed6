// libFuzzer target for the KV snapshot reader: any byte string must restore into a real
// context (stories260K's) or fail with an error, leaving the context empty. Snapshots
// are files on disk that another version, a crash or a user may have left behind.
// Run: make fuzz FUZZ_TARGETS=snapshot_fuzz (seeds: fuzz/corpus/snapshot_fuzz).
// The model is $DM_FUZZ_MODEL, else ../shared/models/stories260K.gguf (run from the
// repo root). With $DM_FUZZ_WRITE_SEEDS=dir it writes valid seed snapshots and exits.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "base/thread_pool.h"
#include "engine/context.h"
#include "engine/fingerprint.h"
#include "engine/model.h"
#include "store/snapshot.h"

namespace {

using namespace dormouse;

struct Fixture {
  std::unique_ptr<Model> model;
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<InferenceContext> ctx;
  ModelFingerprint fingerprint;
};

Fixture* fixture = nullptr;

void WriteSeeds(const std::string& dir) {
  // A few positions of random-ish (finite) rows, raw and zstd, as the store writes them.
  for (int n : {1, 5}) {
    for (bool zstd : {false, true}) {
      InferenceContext& ctx = *fixture->ctx;
      std::vector<int32_t> tokens;
      for (int64_t l = 0; l < ctx.kv().n_layer(); ++l) {
        for (auto span : {ctx.kv().MutableKRows(l, n), ctx.kv().MutableVRows(l, n)}) {
          for (size_t i = 0; i < span.size(); ++i) span[i] = static_cast<uint8_t>(i % 61);
        }
      }
      if (!ctx.AdoptRestoredRows(n).ok()) std::abort();
      for (int i = 0; i < n; ++i) tokens.push_back(1 + i);
      MemorySink sink;
      if (!WriteSnapshot(fixture->fingerprint, ctx, tokens, "{\"seed\":1}", {.compress = zstd},
                         sink)
               .ok()) {
        std::abort();
      }
      std::ofstream(dir + "/n" + std::to_string(n) + (zstd ? "_zstd" : "_raw") + ".dmkv",
                    std::ios::binary)
          .write(reinterpret_cast<const char*>(sink.bytes().data()),
                 static_cast<std::streamsize>(sink.bytes().size()));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* env = std::getenv("DM_FUZZ_MODEL");
  const std::string path = env ? env : "../shared/models/stories260K.gguf";
  StatusOr<Model> m = Model::LoadOrError(path);
  if (!m.ok()) {
    std::fprintf(stderr, "snapshot_fuzz: %s (set DM_FUZZ_MODEL)\n", m.status().message().c_str());
    std::exit(2);
  }
  fixture = new Fixture;
  fixture->model = std::make_unique<Model>(std::move(m).value());
  fixture->pool = std::make_unique<ThreadPool>(1);
  fixture->fingerprint = ModelFingerprint::OfModel(*fixture->model);
  ContextParams p;
  p.n_ctx = 64;
  auto c = InferenceContext::CreateOrError(*fixture->model, p, fixture->pool.get());
  if (!c.ok()) std::exit(2);
  fixture->ctx = std::make_unique<InferenceContext>(std::move(c).value());
  if (const char* dir = std::getenv("DM_FUZZ_WRITE_SEEDS")) {
    WriteSeeds(dir);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    MemorySource src(data, size);
    (void)ReadSnapshotHeader(src);
  }
  MemorySource src(data, size);
  StatusOr<SnapshotHeader> h = RestoreSnapshot(src, fixture->fingerprint, *fixture->ctx);
  // The reader's promise: on failure nothing of the context is declared valid.
  if (!h.ok() && fixture->ctx->n_past() != 0) std::abort();
  if (h.ok() && fixture->ctx->n_past() != static_cast<int64_t>(h->tokens.size())) std::abort();
  return 0;
}
