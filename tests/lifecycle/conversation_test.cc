// Conversation::Checkpoint: after each request only the new rows go to disk (a journal
// record), and a full snapshot when that is not possible (nothing saved yet, the cache
// was rewound below what is on disk, the journal has grown as large as the base, another
// key). What it wrote always restores to exactly what the live conversation holds.
#include "lifecycle/conversation.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "lifecycle/loaded_model.h"

namespace dormouse {
namespace {

namespace fs = std::filesystem;

std::vector<int32_t> Tokens(int n, int salt) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back(1 + (i * 37 + salt * 11) % 400);
  return t;
}

class ConversationTest : public testing::Test {
 protected:
  void SetUp() override {
    auto m = LoadModel(std::string(DM_SHARED_DIR) + "/models/stories260K.gguf", &pool_, nullptr);
    ASSERT_TRUE(m.ok()) << m.status().message();
    model_ = std::move(m).value();
    dir_ = fs::temp_directory_path() / ("dm_conv_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    store_ = SnapshotStore::OpenOrError(dir_.string(), 0).value();
  }
  void TearDown() override { fs::remove_all(dir_); }
  ContextParams Params() {
    ContextParams p;
    p.n_ctx = 512;
    return p;
  }
  // Checkpoints and returns whether it was incremental.
  bool Checkpoint(Conversation& c, const std::string& key = "k") {
    bool incremental = false;
    StatusOr<SnapshotSaveResult> r =
        c.Checkpoint(*store_, key, model_->fingerprint, "", {}, &incremental);
    EXPECT_TRUE(r.ok()) << r.status().message();
    EXPECT_FALSE(c.unsaved());
    EXPECT_EQ(c.saved_tokens(key), c.tokens().size());
    return incremental;
  }
  // A fresh conversation restored from disk holds the same tokens and continues with
  // bitwise the same logits.
  void ExpectRestoresTo(Conversation& live) {
    Conversation back;
    ASSERT_TRUE(back.Open(*model_->model, Params(), &pool_).ok());
    StatusOr<SnapshotHeader> h = back.Restore(*store_, "k", model_->fingerprint);
    ASSERT_TRUE(h.ok()) << h.status().message();
    ASSERT_EQ(back.tokens(), live.tokens());
    std::vector<int32_t> next = live.tokens();
    next.push_back(42);
    ASSERT_TRUE(live.Prefill(next, "").ok());
    ASSERT_TRUE(back.Prefill(next, "").ok());
    EXPECT_EQ(
        std::memcmp(live.ctx().logits(), back.ctx().logits(), live.ctx().n_vocab() * sizeof(float)),
        0);
  }

  ThreadPool pool_{2};
  std::unique_ptr<LoadedModel> model_;
  fs::path dir_;
  std::unique_ptr<SnapshotStore> store_;
};

TEST_F(ConversationTest, CheckpointAppendsWhatEachRequestAddedAndCompactsWhenItMust) {
  Conversation c;
  ASSERT_TRUE(c.Open(*model_->model, Params(), &pool_).ok());
  std::vector<int32_t> t = Tokens(100, 1);
  ASSERT_TRUE(c.Prefill(t, "").ok());
  EXPECT_FALSE(Checkpoint(c));  // nothing on disk yet: a full snapshot
  EXPECT_FALSE(c.has_journal());
  for (int r = 0; r < 3; ++r) {  // each request appends its rows
    std::vector<int32_t> more = Tokens(8, r + 2);
    t.insert(t.end(), more.begin(), more.end());
    ASSERT_TRUE(c.Prefill(t, "").ok());
    EXPECT_TRUE(Checkpoint(c)) << "request " << r;
    EXPECT_TRUE(c.has_journal());
  }
  EXPECT_TRUE(fs::exists(store_->JournalPathFor("k")));
  ExpectRestoresTo(c);
  // A rewind below what is on disk (an edited message): the journal cannot say that.
  t.resize(60);
  std::vector<int32_t> edit = Tokens(20, 9);
  t.insert(t.end(), edit.begin(), edit.end());
  ASSERT_TRUE(c.Prefill(t, "").ok());
  EXPECT_EQ(c.saved_tokens("k"), 60u);
  EXPECT_FALSE(Checkpoint(c));
  EXPECT_FALSE(fs::exists(store_->JournalPathFor("k")));
  ExpectRestoresTo(c);
  // Once the journal is as large as the base, the next checkpoint compacts.
  int appended = 0;
  for (int r = 0; r < 40; ++r) {
    std::vector<int32_t> more = Tokens(8, r + 20);
    t.insert(t.end(), more.begin(), more.end());
    ASSERT_TRUE(c.Prefill(t, "").ok());
    if (!Checkpoint(c)) break;
    ++appended;
  }
  EXPECT_GT(appended, 2);
  EXPECT_LT(appended, 40);
  EXPECT_FALSE(c.has_journal());
  ExpectRestoresTo(c);
  // Saved under another key, it starts that one with a full snapshot.
  EXPECT_FALSE(Checkpoint(c, "other"));
}

TEST_F(ConversationTest, ForkStartsWithNothingOnDisk) {
  Conversation a, b;
  ASSERT_TRUE(a.Open(*model_->model, Params(), &pool_).ok());
  ASSERT_TRUE(b.Open(*model_->model, Params(), &pool_).ok());
  ASSERT_TRUE(a.Prefill(Tokens(50, 1), "").ok());
  EXPECT_FALSE(Checkpoint(a));
  ASSERT_TRUE(b.ForkFrom(a, 30).ok());
  EXPECT_EQ(b.tokens().size(), 30u);
  EXPECT_EQ(b.saved_tokens("k"), 0u);
}

}  // namespace
}  // namespace dormouse

namespace dormouse {
namespace {

// A chat template that trims the reply's trailing whitespace: the next prompt continues
// all of the conversation but the reply's last tokens, which are dropped, not recomputed.
TEST_F(ConversationTest, ContinueDropsTrailingTokensTheNextPromptNoLongerSpells) {
  const Tokenizer& tok = *model_->tokenizer;
  const std::string prompt = "Once upon a time";
  std::vector<int32_t> held = tok.Encode(prompt, true, true);
  std::string held_text = prompt;
  const size_t n_prompt = held.size();
  for (int32_t t : tok.Encode(" there was a cat.", false, true)) {  // "generated"
    held.push_back(t);
    held_text += tok.DecodeToken(t);
  }
  const size_t n_reply = held.size();
  const std::vector<int32_t> ws = tok.Encode("\n\n", false, true);
  ASSERT_FALSE(ws.empty());
  for (int32_t t : ws) {
    held.push_back(t);
    held_text += tok.DecodeToken(t);
  }
  // The whole text continued: everything is kept.
  size_t kept = 0;
  auto all = ContinueByText(held, held_text, tok, held_text + " The end.", &kept);
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(kept, held.size());
  // The reply trimmed: the whitespace tokens go, the reply stays.
  std::string trimmed = held_text;
  while (std::isspace(static_cast<unsigned char>(trimmed.back()))) trimmed.pop_back();
  trimmed += "</s> The end.";
  auto cont = ContinueByText(held, held_text, tok, trimmed, &kept);
  ASSERT_TRUE(cont.has_value());
  EXPECT_EQ(kept, n_reply);
  EXPECT_TRUE(std::equal(held.begin(), held.begin() + n_reply, cont->begin()));
  // Text that shares nothing continues nothing.
  EXPECT_FALSE(ContinueByText(held, held_text, tok, "Hello", &kept).has_value());
  EXPECT_GT(n_reply, n_prompt);
}

}  // namespace
}  // namespace dormouse
