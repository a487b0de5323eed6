// Incremental snapshots: a base plus a journal of per-request records restores exactly
// what the live context holds (bitwise, sliding-window rings included); a torn tail (a
// crash mid-append) is cut off and what came before stands; a journal left over from an
// older base never applies; the disk budget counts and evicts both files.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "engine/model.h"
#include "store/snapshot_delta.h"
#include "store/snapshot_store.h"

namespace dormouse {
namespace {

namespace fs = std::filesystem;
const fs::path kShared = DM_SHARED_DIR;

std::vector<int32_t> Tokens(int n, int salt) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back(1 + (i * 37 + salt * 11) % 400);
  return t;
}

class SnapshotJournalTest : public testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    StatusOr<Model> m = Model::LoadOrError((kShared / GetParam()).string());
    ASSERT_TRUE(m.ok()) << m.status().message();
    model_ = std::make_unique<Model>(std::move(m).value());
    fp_ = ModelFingerprint::OfModel(*model_);
    dir_ = fs::temp_directory_path() / ("dm_journal_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    store_ = SnapshotStore::OpenOrError(dir_.string(), 0).value();
  }
  void TearDown() override { fs::remove_all(dir_); }

  InferenceContext NewContext() {
    ContextParams p;
    p.n_ctx = 256;
    p.n_ubatch = 16;  // gemma3's local layers get a ring of 32 + 16 rows
    return InferenceContext::CreateOrError(*model_, p, &pool_).value();
  }
  // Evaluates `more`, appending them to `held`.
  void Eval(InferenceContext& ctx, std::vector<int32_t>& held, const std::vector<int32_t>& more) {
    ASSERT_TRUE(ctx.Eval(more).ok());
    held.insert(held.end(), more.begin(), more.end());
  }
  void Append(InferenceContext& ctx, const std::vector<int32_t>& held, int64_t from,
              const std::string& extra) {
    StatusOr<SnapshotSaveResult> r = store_->Append("s", ctx, held, from, extra, {});
    ASSERT_TRUE(r.ok()) << r.status().message();
  }
  // The next few tokens' logits of both contexts are bitwise equal.
  void ExpectSameContinuation(InferenceContext& a, InferenceContext& b) {
    for (int32_t next : {7, 300, 42}) {
      int32_t one[] = {next};
      ASSERT_TRUE(a.Eval(one).ok());
      ASSERT_TRUE(b.Eval(one).ok());
      ASSERT_EQ(std::memcmp(a.logits(), b.logits(), a.n_vocab() * sizeof(float)), 0);
    }
  }

  ThreadPool pool_{2};
  std::unique_ptr<Model> model_;
  ModelFingerprint fp_;
  fs::path dir_;
  std::unique_ptr<SnapshotStore> store_;
};

TEST_P(SnapshotJournalTest, BasePlusRecordsRestoreBitExactly) {
  InferenceContext a = NewContext();
  std::vector<int32_t> held;
  Eval(a, held, Tokens(40, 1));
  ASSERT_TRUE(store_->Save("s", fp_, a, held, "base", {}).ok());
  // Three requests; together they wrap gemma3's 48-row rings more than once.
  for (int r = 0; r < 3; ++r) {
    const int64_t from = static_cast<int64_t>(held.size());
    Eval(a, held, Tokens(20 + 20 * r, r + 2));  // the last one outgrows the ring
    Append(a, held, from, "after " + std::to_string(r));
  }
  const uint64_t base_bytes = fs::file_size(store_->PathFor("s"));
  EXPECT_GT(fs::file_size(store_->JournalPathFor("s")), 0u);
  EXPECT_EQ(store_->List().at(0).bytes, base_bytes + fs::file_size(store_->JournalPathFor("s")));

  StatusOr<SnapshotHeader> peek = store_->ReadHeader("s");
  ASSERT_TRUE(peek.ok()) << peek.status().message();
  EXPECT_EQ(peek->tokens, held);
  EXPECT_EQ(peek->extra, "after 2");
  EXPECT_EQ(peek->journal_records, 3);

  InferenceContext b = NewContext();
  StatusOr<SnapshotHeader> h = store_->Restore("s", fp_, b);
  ASSERT_TRUE(h.ok()) << h.status().message();
  EXPECT_EQ(h->journal_records, 3);
  EXPECT_EQ(h->journal_note, "");
  EXPECT_EQ(h->tokens, held);
  EXPECT_EQ(h->extra, "after 2");
  ASSERT_EQ(b.n_past(), a.n_past());
  ExpectSameContinuation(a, b);
}

TEST_P(SnapshotJournalTest, TornTailIsCutOffAndEarlierRecordsStand) {
  InferenceContext a = NewContext();
  std::vector<int32_t> held;
  Eval(a, held, Tokens(30, 1));
  ASSERT_TRUE(store_->Save("s", fp_, a, held, "", {}).ok());
  Eval(a, held, Tokens(10, 2));
  Append(a, held, 30, "one");
  const uint64_t one_record = fs::file_size(store_->JournalPathFor("s"));
  Eval(a, held, Tokens(10, 3));
  Append(a, held, 40, "two");
  // A crash in the middle of the second append.
  const uint64_t full = fs::file_size(store_->JournalPathFor("s"));
  fs::resize_file(store_->JournalPathFor("s"), one_record + (full - one_record) / 2);

  InferenceContext b = NewContext();
  StatusOr<SnapshotHeader> h = store_->Restore("s", fp_, b);
  ASSERT_TRUE(h.ok()) << h.status().message();
  EXPECT_EQ(h->journal_records, 1);
  EXPECT_NE(h->journal_note.find("torn"), std::string::npos) << h->journal_note;
  EXPECT_EQ(b.n_past(), 40);
  EXPECT_EQ(h->extra, "one");
  EXPECT_EQ(fs::file_size(store_->JournalPathFor("s")), one_record);  // the tail is cut

  // The conversation goes on from what was restored, and appends chain again.
  std::vector<int32_t> b_held(held.begin(), held.begin() + 40);
  a.Truncate(40);
  Eval(b, b_held, Tokens(5, 4));
  std::vector<int32_t> unused(held.begin(), held.begin() + 40);
  Eval(a, unused, Tokens(5, 4));
  Append(b, b_held, 40, "three");
  InferenceContext c = NewContext();
  h = store_->Restore("s", fp_, c);
  ASSERT_TRUE(h.ok()) << h.status().message();
  EXPECT_EQ(h->journal_records, 2);
  EXPECT_EQ(h->tokens, b_held);
  ExpectSameContinuation(a, c);
}

TEST_P(SnapshotJournalTest, JournalOfAnOlderBaseOrOutOfSequenceNeverApplies) {
  InferenceContext a = NewContext();
  std::vector<int32_t> held;
  Eval(a, held, Tokens(30, 1));
  ASSERT_TRUE(store_->Save("s", fp_, a, held, "", {}).ok());
  Eval(a, held, Tokens(10, 2));
  Append(a, held, 30, "");
  const fs::path aside = dir_ / "old-journal";
  fs::copy_file(store_->JournalPathFor("s"), aside);
  // A full save compacts: the journal goes.
  ASSERT_TRUE(store_->Save("s", fp_, a, held, "", {}).ok());
  EXPECT_FALSE(fs::exists(store_->JournalPathFor("s")));
  // A crash between the new base's rename and the journal's removal leaves the old one.
  fs::copy_file(aside, store_->JournalPathFor("s"));
  InferenceContext b = NewContext();
  StatusOr<SnapshotHeader> h = store_->Restore("s", fp_, b);
  ASSERT_TRUE(h.ok()) << h.status().message();
  EXPECT_EQ(h->journal_records, 0);
  EXPECT_NE(h->journal_note.find("older snapshot"), std::string::npos) << h->journal_note;
  EXPECT_EQ(b.n_past(), 40);

  // A record that does not start where the journal ends is refused at restore.
  Eval(a, held, Tokens(6, 3));
  Append(a, held, 35, "");
  InferenceContext c = NewContext();
  h = store_->Restore("s", fp_, c);
  ASSERT_TRUE(h.ok()) << h.status().message();
  EXPECT_EQ(c.n_past(), 40);
  EXPECT_NE(h->journal_note.find("starts at position 35"), std::string::npos) << h->journal_note;
}

INSTANTIATE_TEST_SUITE_P(Models, SnapshotJournalTest,
                         testing::Values("models/stories260K.gguf",
                                         "coverage/models/gemma3-tiny-q8_0.gguf"),
                         [](const auto& info) {
                           return std::string(info.param).find("gemma3") != std::string::npos
                                      ? std::string("gemma3")
                                      : std::string("stories260K");
                         });

TEST(SnapshotJournalStoreTest, AppendNeedsABaseAndRemoveAndBudgetTakeTheJournal) {
  StatusOr<Model> m = Model::LoadOrError((kShared / "models" / "stories260K.gguf").string());
  ASSERT_TRUE(m.ok());
  ModelFingerprint fp = ModelFingerprint::OfModel(*m);
  ThreadPool pool(1);
  ContextParams p;
  p.n_ctx = 128;
  InferenceContext ctx = InferenceContext::CreateOrError(*m, p, &pool).value();
  std::vector<int32_t> held = Tokens(60, 1);
  ASSERT_TRUE(ctx.Eval(held).ok());
  const fs::path dir =
      fs::temp_directory_path() / ("dm_journal_store_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto store = SnapshotStore::OpenOrError(dir.string(), 0).value();
  EXPECT_FALSE(store->Append("x", ctx, held, 30, "", {}).ok());  // no base
  ASSERT_TRUE(store->Save("x", fp, ctx, std::span(held).first(30), "", {}).ok());
  ASSERT_TRUE(store->Append("x", ctx, held, 30, "", {}).ok());
  ASSERT_TRUE(store->Remove("x").ok());
  EXPECT_FALSE(fs::exists(store->JournalPathFor("x")));
  // A journal without a base (its base was evicted by another process) goes at open.
  ASSERT_TRUE(store->Save("y", fp, ctx, std::span(held).first(30), "", {}).ok());
  ASSERT_TRUE(store->Append("y", ctx, held, 30, "", {}).ok());
  fs::remove(store->PathFor("y"));
  store = SnapshotStore::OpenOrError(dir.string(), 0).value();
  EXPECT_FALSE(fs::exists(store->JournalPathFor("y")));
  // The budget counts journals, and evicting a snapshot takes its journal along.
  ASSERT_TRUE(store->Save("old", fp, ctx, std::span(held).first(30), "", {}).ok());
  ASSERT_TRUE(store->Append("old", ctx, held, 30, "", {}).ok());
  const uint64_t old_bytes = store->TotalBytes();
  auto tight = SnapshotStore::OpenOrError(dir.string(), old_bytes + 1).value();
  ASSERT_TRUE(tight->Save("new", fp, ctx, std::span(held).first(30), "", {}).ok());
  EXPECT_FALSE(fs::exists(tight->PathFor("old")));
  EXPECT_FALSE(fs::exists(tight->JournalPathFor("old")));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dormouse
