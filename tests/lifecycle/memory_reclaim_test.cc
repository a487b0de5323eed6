// Real memory with a real model: what an eject gives back, measured the way the issue
// states it. The model is copied to a private temporary file first, so no other test
// process mapping the shared file can keep its pages resident or cached.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "disk_scratch.h"
#include "lifecycle/chat_session.h"
#include "lifecycle/gguf_loader.h"
#include "lifecycle/memory_probe.h"
#include "lifecycle/model_manager.h"
#include "store/snapshot_store.h"

namespace dormouse {
namespace {

namespace fs = std::filesystem;
const fs::path kShared = DM_SHARED_DIR;
constexpr double kMiB = 1024.0 * 1024.0;

class MemoryReclaimTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = DiskScratchDir("dm_reclaim_" + std::to_string(::getpid()));
    if (dir_.empty()) GTEST_SKIP() << "no disk-backed scratch dir (all tmpfs): set DM_DISK_TMPDIR";
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    model_ = (dir_ / "llama-58m-q8_0.gguf").string();
    fs::copy_file(kShared / "models" / "llama-58m-q8_0.gguf", model_);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  fs::path dir_;
  std::string model_;
};

TEST_F(MemoryReclaimTest, EjectReturnsAnonymousMemoryAndUnmapsTheModel) {
  ProcMemoryProbe probe;
  SystemClock clock;
  ThreadPool pool(2);
  auto snaps = SnapshotStore::OpenOrError((dir_ / "snapshots").string(), 0).value();
  GgufModelLoader::Options lo;
  lo.files["m"] = model_;
  lo.context.n_ctx = 2048;
  GgufModelLoader loader(lo, &pool, nullptr);
  ModelManager manager({}, &clock, &probe, &loader);
  SessionRecord rec;
  rec.id = rec.name = "reclaim";
  ChatSession session(rec, {}, SamplerParams{});
  manager.SetEjectHook([&](const std::string&, ModelHandle&, Reason) {
    ASSERT_TRUE(session.Save(*snaps, {}).ok());
    session.Detach();
  });

  TrimAllocator();
  const ProcessMemory before = probe.Process();
  for (EjectLevel level : {EjectLevel::kWarm, EjectLevel::kCold}) {
    {
      auto lease = manager.Acquire("m");
      ASSERT_TRUE(lease.ok()) << lease.status().message();
      const LoadedModel& lm = *lease->as<LoadedModelHandle>().model;
      ASSERT_TRUE(session.Attach(lm, lo.context).ok());
      (void)session.Restore(*snaps);
      std::string text;
      for (int i = 0; i < 120; ++i) text += "The quick brown fox jumps over the lazy dog. ";
      auto turn = session.Send(text, {.max_tokens = 8}, nullptr, nullptr);
      ASSERT_TRUE(turn.ok()) << turn.status().message();
      const ProcessMemory loaded = probe.Process();
      EXPECT_GT(MappedFileRss(model_), 40u << 20);  // the weights were read in place
      EXPECT_GT(loaded.anon, before.anon);          // the KV cache and buffers
    }
    StatusOr<EjectReport> r = manager.Eject("m", level, false);
    ASSERT_TRUE(r.ok());
    const ProcessMemory after = probe.Process();
    const double anon_growth = (static_cast<double>(after.anon) - before.anon) / kMiB;
    RecordProperty(std::string(EjectLevelName(level)) + "_anon_growth_mib",
                   std::to_string(anon_growth));
    EXPECT_LT(anon_growth, 16.0) << EjectLevelName(level) << ": anon " << before.anon / kMiB
                                 << " -> " << after.anon / kMiB << " MiB";
    EXPECT_EQ(MappedFileRss(model_), 0u);  // no page of the model is mapped any more
    EXPECT_GT(r->file_freed(), 40 << 20);
    if (level == EjectLevel::kCold) {
      StatusOr<double> cached = PageCacheResidency(model_);
      ASSERT_TRUE(cached.ok());
      EXPECT_LT(*cached, 0.02) << "of the model's pages are still in the page cache";
    }
  }
}

}  // namespace
}  // namespace dormouse
