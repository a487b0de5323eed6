// The KV snapshot format and store: exact round trips, only used rows stored, every
// corruption refused with a reason (and the context left empty), atomic replacement
// that survives SIGKILL mid-write, and the LRU disk budget.
#include "store/snapshot.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>

#include "engine/model.h"
#include "store/snapshot_store.h"

namespace dormouse {
namespace {

namespace fs = std::filesystem;
const fs::path kShared = DM_SHARED_DIR;

class SnapshotTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    StatusOr<Model> m = Model::LoadOrError((kShared / "models" / "stories260K.gguf").string());
    ASSERT_TRUE(m.ok()) << m.status().message();
    model_ = new Model(std::move(m).value());
    fingerprint_ = new ModelFingerprint(ModelFingerprint::OfModel(*model_));
    fingerprint_->content_hash = HashFileContent(model_->gguf());
  }
  static void TearDownTestSuite() {
    delete fingerprint_;
    delete model_;
  }
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("dm_snap_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<InferenceContext> NewContext(int64_t n_ctx = 256, KvType t = KvType::kF16) {
    ContextParams p;
    p.n_ctx = n_ctx;
    p.kv_type = t;
    StatusOr<InferenceContext> c = InferenceContext::CreateOrError(*model_, p, &pool_);
    EXPECT_TRUE(c.ok()) << c.status().message();
    return std::make_unique<InferenceContext>(std::move(c).value());
  }
  // Fills rows [0, n) with random bytes (as if n tokens had been evaluated).
  std::vector<int32_t> Fill(InferenceContext& ctx, int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    for (int64_t l = 0; l < ctx.kv().n_layer(); ++l) {
      for (const auto& spans : {ctx.kv().KSpans(l, 0, n), ctx.kv().VSpans(l, 0, n)}) {
        for (auto span : spans) {
          for (uint8_t& b : span) b = static_cast<uint8_t>(rng() & 0x3F);  // finite f16s
        }
      }
    }
    EXPECT_TRUE(ctx.AdoptRestoredRows(n).ok());
    std::vector<int32_t> tokens(static_cast<size_t>(n));
    for (int32_t& t : tokens) t = static_cast<int32_t>(rng() % ctx.n_vocab());
    return tokens;
  }
  static bool SameRows(const InferenceContext& a, const InferenceContext& b, int64_t n) {
    for (int64_t l = 0; l < a.kv().n_layer(); ++l) {
      auto ka = a.kv().KSpans(l, 0, n)[0], kb = b.kv().KSpans(l, 0, n)[0];
      auto va = a.kv().VSpans(l, 0, n)[0], vb = b.kv().VSpans(l, 0, n)[0];
      if (!std::equal(ka.begin(), ka.end(), kb.begin()) ||
          !std::equal(va.begin(), va.end(), vb.begin())) {
        return false;
      }
    }
    return true;
  }
  std::vector<uint8_t> Snapshot(const InferenceContext& ctx, const std::vector<int32_t>& tokens,
                                bool compress = false) {
    MemorySink sink;
    SnapshotWriteOptions o;
    o.compress = compress;
    EXPECT_TRUE(WriteSnapshot(*fingerprint_, ctx, tokens, "extra!", o, sink).ok());
    return sink.Take();
  }
  StatusOr<SnapshotHeader> Restore(const std::vector<uint8_t>& bytes, InferenceContext& ctx) {
    MemorySource src(bytes.data(), bytes.size());
    return RestoreSnapshot(src, *fingerprint_, ctx);
  }

  static Model* model_;
  static ModelFingerprint* fingerprint_;
  ThreadPool pool_{1};
  fs::path dir_;
};
Model* SnapshotTest::model_ = nullptr;
ModelFingerprint* SnapshotTest::fingerprint_ = nullptr;

TEST_F(SnapshotTest, RoundTripIsBitExactAndStoresOnlyUsedRows) {
  for (bool compress : {false, true}) {
    auto a = NewContext();
    std::vector<int32_t> tokens = Fill(*a, 100, 1);
    std::vector<uint8_t> bytes = Snapshot(*a, tokens, compress);
    const uint64_t rows = 2ull * a->kv().n_layer() * 100 * a->kv().row_bytes();
    if (!compress) {
      EXPECT_GT(bytes.size(), rows);
      EXPECT_LT(bytes.size(), rows + 1024 + 4 * tokens.size());  // not the 256-row context
      MeasureSink measure;
      ASSERT_TRUE(WriteSnapshot(*fingerprint_, *a, tokens, "extra!", {}, measure).ok());
      EXPECT_EQ(measure.bytes_written(), bytes.size());
    } else {
      EXPECT_LT(bytes.size(), rows);  // 6-bit random bytes compress
    }
    auto b = NewContext();
    StatusOr<SnapshotHeader> h = Restore(bytes, *b);
    ASSERT_TRUE(h.ok()) << h.status().message();
    EXPECT_EQ(h->tokens, tokens);
    EXPECT_EQ(h->extra, "extra!");
    EXPECT_EQ(b->n_past(), 100);
    EXPECT_TRUE(SameRows(*a, *b, 100));
  }
}

TEST_F(SnapshotTest, RestoresIntoAnotherContextSizeThatHoldsIt) {
  auto a = NewContext(256);
  std::vector<int32_t> tokens = Fill(*a, 60, 2);
  std::vector<uint8_t> bytes = Snapshot(*a, tokens);
  auto bigger = NewContext(512);
  ASSERT_TRUE(Restore(bytes, *bigger).ok());
  EXPECT_TRUE(SameRows(*a, *bigger, 60));
  auto smaller = NewContext(32);
  StatusOr<SnapshotHeader> h = Restore(bytes, *smaller);
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("holds 60 tokens; the context holds only 32"),
            std::string::npos);
  EXPECT_EQ(smaller->n_past(), 0);
}

TEST_F(SnapshotTest, EveryCorruptionIsRefusedAndLeavesTheContextEmpty) {
  auto a = NewContext();
  std::vector<int32_t> tokens = Fill(*a, 40, 3);
  const std::vector<uint8_t> good = Snapshot(*a, tokens);
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {  // one flipped byte anywhere
    std::vector<uint8_t> bad = good;
    bad[rng() % bad.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
    auto b = NewContext();
    Fill(*b, 10, 4);  // whatever was there before must not survive a failed restore
    StatusOr<SnapshotHeader> h = Restore(bad, *b);
    ASSERT_FALSE(h.ok()) << "flip " << i;
    EXPECT_EQ(b->n_past(), 0);
  }
  for (size_t cut = 0; cut < good.size(); cut += 1 + cut / 8) {  // truncated
    std::vector<uint8_t> part(good.begin(), good.begin() + static_cast<int64_t>(cut));
    auto b = NewContext();
    StatusOr<SnapshotHeader> h = Restore(part, *b);
    ASSERT_FALSE(h.ok()) << "cut " << cut;
    EXPECT_EQ(b->n_past(), 0);
  }
  std::vector<uint8_t> extra = good;  // trailing garbage
  extra.push_back(0);
  auto b = NewContext();
  EXPECT_FALSE(Restore(extra, *b).ok());
}

TEST_F(SnapshotTest, NamedReasonsForWrongVersionModelAndKvType) {
  auto a = NewContext();
  std::vector<int32_t> tokens = Fill(*a, 20, 5);
  std::vector<uint8_t> bytes = Snapshot(*a, tokens);
  std::vector<uint8_t> v9 = bytes;
  v9[8] = 9;
  auto b = NewContext();
  EXPECT_NE(Restore(v9, *b).status().message().find("unsupported snapshot version 9"),
            std::string::npos);
  std::vector<uint8_t> junk(100, 'x');
  EXPECT_NE(Restore(junk, *b).status().message().find("not a dormouse KV snapshot"),
            std::string::npos);

  ModelFingerprint other = *fingerprint_;
  other.content_hash.lo ^= 1;  // same shapes, other weights
  MemorySink sink;
  ASSERT_TRUE(WriteSnapshot(other, *a, tokens, "", {}, sink).ok());
  MemorySource src(sink.bytes().data(), sink.bytes().size());
  StatusOr<SnapshotHeader> h = RestoreSnapshot(src, *fingerprint_, *b);
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("other weights of the same shape"), std::string::npos);
  other = *fingerprint_;
  other.n_layer = 9;
  MemorySink sink2;
  ASSERT_TRUE(WriteSnapshot(other, *a, tokens, "", {}, sink2).ok());
  MemorySource src2(sink2.bytes().data(), sink2.bytes().size());
  h = RestoreSnapshot(src2, *fingerprint_, *b);
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("made by another model"), std::string::npos);

  auto f32 = NewContext(256, KvType::kF32);
  h = Restore(bytes, *f32);
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("holds a f16 KV cache; this context uses f32"),
            std::string::npos);
}

TEST_F(SnapshotTest, Version1SnapshotsStillRestore) {
  auto a = NewContext();
  std::vector<int32_t> tokens = Fill(*a, 50, 8);
  MemorySink sink;
  SnapshotWriteOptions o;
  o.version = kSnapshotVersionNoWindows;  // as dormouse wrote them before sliding windows
  ASSERT_TRUE(WriteSnapshot(*fingerprint_, *a, tokens, "old", o, sink).ok());
  EXPECT_EQ(sink.bytes()[8], 1);
  auto b = NewContext();
  StatusOr<SnapshotHeader> h = Restore(sink.Take(), *b);
  ASSERT_TRUE(h.ok()) << h.status().message();
  EXPECT_EQ(h->version, 1u);
  EXPECT_EQ(b->n_past(), 50);
  EXPECT_TRUE(SameRows(*a, *b, 50));
}

// gemma3: 5 of 6 layers keep a ring of n_swa (32) + n_ubatch rows; a snapshot holds only
// what the rings hold, and the restored context continues bit for bit, also after
// stepping back as the live one can.
TEST(SnapshotSlidingWindowTest, RingRoundTripContinuesBitExactly) {
  StatusOr<Model> m =
      Model::LoadOrError((kShared / "coverage" / "models" / "gemma3-tiny-q8_0.gguf").string());
  ASSERT_TRUE(m.ok()) << m.status().message();
  ModelFingerprint fp = ModelFingerprint::OfModel(*m);
  ThreadPool pool(2);
  ContextParams p;
  p.n_ctx = 256;
  p.n_ubatch = 16;
  auto a = InferenceContext::CreateOrError(*m, p, &pool).value();
  ASSERT_TRUE(a.kv().is_ring(0));
  EXPECT_EQ(a.kv().rows(0), 32 + 16);
  EXPECT_FALSE(a.kv().is_ring(5));
  EXPECT_LT(a.kv().capacity_bytes(), 2ull * 6 * 256 * a.kv().row_bytes());
  std::vector<int32_t> tokens;
  for (int i = 0; i < 101; ++i) tokens.push_back(1 + (i * 37) % 500);  // wraps the ring twice
  ASSERT_TRUE(a.Eval(tokens).ok());
  MemorySink sink;
  ASSERT_TRUE(WriteSnapshot(fp, a, tokens, "", {}, sink).ok());
  // Local layers store what their ring holds (48 positions), the global one all 101.
  const uint64_t rows = 2ull * (5 * 48 + 101) * a.kv().row_bytes();
  EXPECT_GT(sink.bytes().size(), rows);
  EXPECT_LT(sink.bytes().size(), rows + 2048);
  MemorySink old;
  SnapshotWriteOptions v1;
  v1.version = kSnapshotVersionNoWindows;
  EXPECT_FALSE(WriteSnapshot(fp, a, tokens, "", v1, old).ok());

  auto b = InferenceContext::CreateOrError(*m, p, &pool).value();
  MemorySource src(sink.bytes().data(), sink.bytes().size());
  StatusOr<SnapshotHeader> h = RestoreSnapshot(src, fp, b);
  ASSERT_TRUE(h.ok()) << h.status().message();
  ASSERT_EQ(b.n_past(), 101);
  a.Truncate(90);  // steps back 11 positions: both rings still hold that window
  b.Truncate(90);
  ASSERT_EQ(b.n_past(), 90);
  for (int32_t next : {7, 300, 42}) {
    int32_t one[] = {next};
    ASSERT_TRUE(a.Eval(one).ok());
    ASSERT_TRUE(b.Eval(one).ok());
    EXPECT_EQ(std::memcmp(a.logits(), b.logits(), a.n_vocab() * sizeof(float)), 0);
  }
  // A context cannot step back past what its ring still holds: it starts over instead.
  a.Truncate(86);  // the window of 86 starts at 55; the ring holds 53 on
  EXPECT_EQ(a.n_past(), 86);
  a.Truncate(10);
  EXPECT_EQ(a.n_past(), 0);
}

TEST_F(SnapshotTest, StoreSavesAtomicallyListsAndEvictsLeastRecentlyUsed) {
  auto a = NewContext();
  std::vector<int32_t> tokens = Fill(*a, 50, 6);
  auto size_of = [&] { return Snapshot(*a, tokens).size(); };
  const uint64_t one = size_of();
  auto store = SnapshotStore::OpenOrError(dir_.string(), 3 * one + one / 2).value();
  EXPECT_FALSE(SnapshotStore::CheckKey("../evil").ok());
  EXPECT_FALSE(store->Save("../evil", *fingerprint_, *a, tokens, "", {}).ok());
  // Use times set explicitly (a, b, c: 30, 20, 10 s ago), not sleeps: a file's mtime
  // has the kernel's coarse clock, and two saves 5 ms apart can share one.
  int age = 30;
  for (const char* key : {"a", "b", "c"}) {
    auto r = store->Save(key, *fingerprint_, *a, tokens, "", {});
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_TRUE(r->evicted.empty());
    fs::last_write_time(dir_ / (std::string(key) + ".dmkv"),
                        fs::file_time_type::clock::now() - std::chrono::seconds(age));
    age -= 10;
  }
  auto b = NewContext();
  ASSERT_TRUE(store->Restore("a", *fingerprint_, *b).ok());  // a is now the most recent
  auto keys = [&] {
    std::vector<std::string> k;
    for (const SnapshotInfo& i : store->List()) k.push_back(i.key);
    return k;
  };
  EXPECT_EQ(keys(), (std::vector<std::string>{"a", "c", "b"}));
  auto r = store->Save("d", *fingerprint_, *a, tokens, "", {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->evicted, std::vector<std::string>{"b"});
  std::vector<std::string> left = keys();
  std::sort(left.begin(), left.end());  // a and d were both used just now, in either order
  EXPECT_EQ(left, (std::vector<std::string>{"a", "c", "d"}));
  for (const auto& e : fs::directory_iterator(dir_)) {
    EXPECT_EQ(e.path().extension(), ".dmkv") << "stray file " << e.path();
  }
  ASSERT_TRUE(store->Remove("d").ok());
  EXPECT_FALSE(store->Exists("d"));
  auto missing = store->Restore("d", *fingerprint_, *b);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("cannot open"), std::string::npos);
}

// A child process rewrites the snapshot in a loop, alternating two contents; we kill it
// with SIGKILL at random moments. Afterwards the snapshot must restore to one of the two
// contents exactly, every time, and the dead writer's temporary must be cleaned up.
TEST_F(SnapshotTest, SigkillMidWriteLeavesOldOrNewSnapshot) {
  auto a = NewContext(1024);
  std::vector<int32_t> tokens_a = Fill(*a, 900, 8);
  auto b = NewContext(1024);
  std::vector<int32_t> tokens_b = Fill(*b, 700, 9);
  {
    auto store = SnapshotStore::OpenOrError(dir_.string(), 0).value();
    ASSERT_TRUE(store->Save("k", *fingerprint_, *a, tokens_a, "A", {}).ok());
  }
  std::mt19937 rng(10);
  int saw_a = 0, saw_b = 0;
  for (int round = 0; round < 40; ++round) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto store = SnapshotStore::OpenOrError(dir_.string(), 0);
      for (int i = 0;; ++i) {
        bool use_a = (i + round) % 2 == 0;
        (void)(*store)->Save("k", *fingerprint_, use_a ? *a : *b, use_a ? tokens_a : tokens_b,
                             use_a ? "A" : "B", {});
      }
    }
    std::this_thread::sleep_for(std::chrono::microseconds(2000 + rng() % 20000));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    auto store = SnapshotStore::OpenOrError(dir_.string(), 0).value();  // cleans temporaries
    for (const auto& e : fs::directory_iterator(dir_)) {
      EXPECT_EQ(e.path().filename(), "k.dmkv") << "round " << round;
    }
    auto c = NewContext(1024);
    StatusOr<SnapshotHeader> h = store->Restore("k", *fingerprint_, *c);
    ASSERT_TRUE(h.ok()) << "round " << round << ": " << h.status().message();
    if (h->extra == "A") {
      ++saw_a;
      EXPECT_EQ(h->tokens, tokens_a);
      EXPECT_TRUE(SameRows(*a, *c, 900));
    } else {
      ++saw_b;
      EXPECT_EQ(h->extra, "B");
      EXPECT_EQ(h->tokens, tokens_b);
      EXPECT_TRUE(SameRows(*b, *c, 700));
    }
  }
  EXPECT_GT(saw_a + saw_b, 0);
}

// Bounded by default: min(2 GiB, 5% of the filesystem).
TEST(SnapshotBudget, DefaultIsTwoGibOrFivePercentOfTheDiskWhicheverIsSmaller) {
  EXPECT_EQ(SnapshotStore::DefaultBudgetFor(10ull << 30), 512ull << 20);
  EXPECT_EQ(SnapshotStore::DefaultBudgetFor(1ull << 40), 2ull << 30);
  const std::string missing =
      (std::filesystem::temp_directory_path() / "dm-no-such-dir" / "snapshots").string();
  StatusOr<uint64_t> b = SnapshotStore::DefaultBudget(missing);  // measured at a parent
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_GT(*b, 0u);
  EXPECT_LE(*b, 2ull << 30);
}

}  // namespace
}  // namespace dormouse
