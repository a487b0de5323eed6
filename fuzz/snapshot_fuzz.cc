// libFuzzer target for the KV snapshot reader: any byte string must restore into a real
// context (stories260K's) or fail with an error, leaving the context empty. Snapshots
// are files on disk that another version, a crash or a user may have left behind. The
// same bytes are also read as a journal of incremental records (store/snapshot_delta.h)
// following a 3-position base: a record applies whole, or leaves the context as it was
// unless it said that rows were written.
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
#include "store/snapshot_delta.h"

namespace {

using namespace dormouse;

struct Fixture {
  std::unique_ptr<Model> model;
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<InferenceContext> ctx;
  ModelFingerprint fingerprint;
};

Fixture* fixture = nullptr;
constexpr uint64_t kBaseChecksum = 0x5eedba5e5eedba5eull;
constexpr int64_t kBaseTokens = 3;

// Fills positions [0, n) with finite rows and declares them valid.
void FillRows(InferenceContext& ctx, int64_t n) {
  for (int64_t l = 0; l < ctx.kv().n_layer(); ++l) {
    for (const KvCache::Spans& spans : {ctx.kv().KSpans(l, 0, n), ctx.kv().VSpans(l, 0, n)}) {
      for (std::span<uint8_t> span : spans) {
        for (size_t i = 0; i < span.size(); ++i) span[i] = static_cast<uint8_t>(i % 61);
      }
    }
  }
  if (!ctx.AdoptRestoredRows(n).ok()) std::abort();
}

void WriteJournalSeed(const std::string& dir) {
  InferenceContext& ctx = *fixture->ctx;
  FillRows(ctx, 7);
  std::vector<int32_t> tokens = {1, 2, 3, 4, 5, 6, 7};
  std::vector<uint8_t> journal;
  for (auto [from, n] : {std::pair<int64_t, int>{kBaseTokens, 5}, std::pair<int64_t, int>{5, 7}}) {
    auto rec = EncodeSnapshotDelta(kBaseChecksum, ctx, std::span(tokens).first(n), from, "{}",
                                   {.compress = from == 5});
    if (!rec.ok()) std::abort();
    journal.insert(journal.end(), rec->begin(), rec->end());
  }
  std::ofstream(dir + "/journal.dmkj", std::ios::binary)
      .write(reinterpret_cast<const char*>(journal.data()),
             static_cast<std::streamsize>(journal.size()));
}

void WriteSeeds(const std::string& dir) {
  // A few positions of random-ish (finite) rows, raw and zstd, as the store writes them.
  for (int n : {1, 5}) {
    for (bool zstd : {false, true}) {
      InferenceContext& ctx = *fixture->ctx;
      std::vector<int32_t> tokens;
      FillRows(ctx, n);
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
    WriteJournalSeed(dir);
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

  InferenceContext& ctx = *fixture->ctx;
  ctx.Truncate(0);
  if (!ctx.AdoptRestoredRows(kBaseTokens).ok()) std::abort();
  MemorySource journal(data, size);
  while (journal.remaining() > 0) {
    StatusOr<std::vector<uint8_t>> body = ReadDeltaRecord(journal);
    if (!body.ok()) break;
    (void)ParseSnapshotDelta(*body);
    const int64_t before = ctx.n_past();
    bool touched = false;
    StatusOr<SnapshotDelta> d = ApplySnapshotDelta(*body, kBaseChecksum, ctx, &touched);
    if (!d.ok()) {
      if (!touched && ctx.n_past() != before) std::abort();
      break;
    }
    if (ctx.n_past() != d->n || d->from != before) std::abort();
  }
  ctx.Truncate(0);
  return 0;
}
