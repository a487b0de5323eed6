// Sessions across an eject: for every model in ../shared/models and ../shared/coverage/models
// (gemma3's conversation is longer than its 32-token window and its ring), one that is
// snapshotted, has its model and KV freed entirely, is loaded and restored again, and
// then continues, must produce bitwise the same logits for every next token as the run
// that never ejected, with 0 tokens recomputed apart from the new turn. Unusable
// snapshots fall back to re-prefilling the transcript, say why, and still answer
// exactly as a session computing the transcript from scratch would.
#include "lifecycle/chat_session.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

namespace dormouse {
namespace {

namespace fs = std::filesystem;
const fs::path kShared = DM_SHARED_DIR;

// Coverage models whose tensor types this build cannot load yet (Q5_0, Q4_1, ... come
// from other branches). Listed, not silently skipped: empty this list as they land
// (CoverageListIsCurrent fails while a listed model loads).
// The coverage models have random weights: their gibberish replies often end in
// whitespace that the templates trim, so the next turn drops those last tokens.
bool IsCoverage(const std::string& path) {
  return fs::path(path).parent_path().parent_path().filename() == "coverage";
}

// Paths of every model to hold to the restore test.
std::vector<std::string> ModelPaths() {
  std::vector<std::string> paths;
  for (const char* dir : {"models", "coverage/models"}) {
    for (const auto& e : fs::directory_iterator(kShared / dir)) {
      if (e.path().extension() != ".gguf") continue;
      paths.push_back(e.path().string());
    }
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

SamplerParams Sampling() {
  SamplerParams p;
  p.temperature = 0.9f;  // sampled, not greedy: the RNG state must survive too
  p.repeat_penalty = 1.1f;
  p.seed = 1234;
  return p;
}

// Every logits vector a turn sampled from, flattened.
struct Recorder {
  std::vector<float> logits;
  TurnOptions Options(int64_t max_tokens) {
    TurnOptions o;
    o.max_tokens = max_tokens;
    o.observe = [this](const float* l, int64_t n) { logits.insert(logits.end(), l, l + n); };
    return o;
  }
};

const char* kTurns[] = {"Hello! Tell me about the sea.", "What lives there?",
                        "And how deep is it?"};

class ChatSessionTest : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("dm_session_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    store_ = SnapshotStore::OpenOrError(dir_.string(), 0).value();
    path_ = GetParam();
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<LoadedModel> Load(const std::string& path) {
    auto m = LoadModel(path, &pool_, nullptr);
    EXPECT_TRUE(m.ok()) << m.status().message();
    return std::move(m).value();
  }
  std::unique_ptr<ChatSession> NewSession(const std::string& id) {
    SessionRecord rec;
    rec.id = id;
    rec.name = id;
    std::vector<MessageRecord> msgs = {{0, "system", "You are a helpful assistant.", 0}};
    return std::make_unique<ChatSession>(rec, msgs, Sampling());
  }
  ContextParams Params() {
    ContextParams p;
    p.n_ctx = 512;
    p.n_ubatch = 32;  // sliding-window layers get a ring of n_swa + 32 rows, which wraps
    return p;
  }
  // Two turns, then a snapshot; returns the session still attached.
  std::unique_ptr<ChatSession> TwoTurnsThenSave(const LoadedModel& m, const std::string& id) {
    auto s = NewSession(id);
    EXPECT_TRUE(s->Attach(m, Params()).ok());
    for (int i = 0; i < 2; ++i)
      EXPECT_TRUE(s->Send(kTurns[i], {.max_tokens = 12}, nullptr, nullptr).ok());
    EXPECT_TRUE(s->Save(*store_, {}).ok());
    return s;
  }

  ThreadPool pool_{2};
  fs::path dir_;
  std::string path_;
  std::unique_ptr<SnapshotStore> store_;
};

TEST_P(ChatSessionTest, RestoredConversationContinuesBitwiseIdentically) {
  // The run that never ejects.
  auto model = Load(path_);
  auto a = TwoTurnsThenSave(*model, "never-ejected");
  Recorder ra;
  StatusOr<TurnReport> ta = a->Send(kTurns[2], ra.Options(16), nullptr, nullptr);
  ASSERT_TRUE(ta.ok()) << ta.status().message();

  // The run that ejects: snapshot, free the model and KV entirely, load, restore.
  auto b = TwoTurnsThenSave(*model, "ejected");
  const std::vector<int32_t> before = b->tokens();
  b->Detach();
  model.reset();
  auto reloaded = Load(path_);
  ASSERT_TRUE(b->Attach(*reloaded, Params()).ok());
  RestoreReport rr = b->Restore(*store_);
  ASSERT_TRUE(rr.restored) << rr.fallback_reason;
  EXPECT_EQ(rr.n_restored, static_cast<int64_t>(before.size()));
  EXPECT_EQ(b->tokens(), before);
  const ModelConfig& c = reloaded->model->config();
  if (c.HasSwa()) {  // the restored window and ring are what the test is about
    EXPECT_GT(static_cast<int64_t>(before.size()), c.n_swa + Params().n_ubatch);
  }
  Recorder rb;
  StatusOr<TurnReport> tb = b->Send(kTurns[2], rb.Options(16), nullptr, nullptr);
  ASSERT_TRUE(tb.ok()) << tb.status().message();

  // The eject costs nothing: the restored session reuses exactly what the live one does.
  EXPECT_EQ(tb->n_reused, ta->n_reused);
  EXPECT_EQ(tb->n_recomputed, ta->n_recomputed);
  EXPECT_EQ(tb->n_recomputed, 0);
  EXPECT_EQ(tb->n_prefilled, tb->n_new);
  if (!IsCoverage(path_)) {
    EXPECT_EQ(tb->n_reused, static_cast<int64_t>(before.size()));
  } else {  // a reply's trailing tokens the template trims are dropped, not recomputed
    EXPECT_LE(tb->n_reused, static_cast<int64_t>(before.size()));
  }
  ASSERT_EQ(ra.logits.size(), rb.logits.size());
  ASSERT_FALSE(ra.logits.empty());
  EXPECT_EQ(std::memcmp(ra.logits.data(), rb.logits.data(), ra.logits.size() * sizeof(float)), 0)
      << "logits differ after restore";
  EXPECT_EQ(ta->reply, tb->reply);
  EXPECT_EQ(a->tokens(), b->tokens());
}

// Corrupts the snapshot file in place.
void Damage(const std::string& path, const std::string& how) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(0, std::ios::end);
  const int64_t size = f.tellg();
  if (how == "flip") {
    f.seekp(size / 2);
    char c = 0x5A;
    f.write(&c, 1);
  } else if (how == "version") {
    f.seekp(8);
    char v = 9;
    f.write(&v, 1);
  }
  f.close();
  if (how == "truncate") fs::resize_file(path, size - 100);
  if (how == "missing") fs::remove(path);
}

TEST_P(ChatSessionTest, UnusableSnapshotFallsBackToTheTranscriptWithAReason) {
  auto model = Load(path_);
  // The answer a session computing the transcript from scratch gives.
  auto fresh = TwoTurnsThenSave(*model, "fresh");
  const std::vector<MessageRecord> transcript = fresh->messages();
  struct Case {
    std::string how, reason;
  } cases[] = {{"flip", "checksum mismatch"},
               {"truncate", "truncated"},
               {"version", "unsupported snapshot version 9"},
               {"missing", "no snapshot saved yet"}};
  SessionRecord rec;
  rec.id = rec.name = "recomputed";
  ChatSession reference(rec, transcript, Sampling());
  ASSERT_TRUE(reference.Attach(*model, Params()).ok());
  StatusOr<TurnReport> want = reference.Send(kTurns[2], {.max_tokens = 8}, nullptr, nullptr);
  ASSERT_TRUE(want.ok());
  for (const Case& c : cases) {
    SCOPED_TRACE(c.how);
    auto s = TwoTurnsThenSave(*model, "victim");
    s->Detach();
    Damage(store_->PathFor("victim"), c.how);
    ASSERT_TRUE(s->Attach(*model, Params()).ok());
    RestoreReport rr = s->Restore(*store_);
    EXPECT_FALSE(rr.restored);
    EXPECT_NE(rr.fallback_reason.find(c.reason), std::string::npos) << rr.fallback_reason;
    EXPECT_TRUE(s->tokens().empty());
    StatusOr<TurnReport> got = s->Send(kTurns[2], {.max_tokens = 8}, nullptr, nullptr);
    ASSERT_TRUE(got.ok()) << got.status().message();
    EXPECT_GT(got->n_recomputed, 0);
    EXPECT_EQ(got->n_reused, 0);
    EXPECT_EQ(got->n_prompt, want->n_prompt);
    // The sampler's RNG restarted from the seed, as the reference's did.
    EXPECT_EQ(got->reply, want->reply);
    EXPECT_EQ(s->tokens(), reference.tokens());
  }
}

TEST_P(ChatSessionTest, AnotherModelsSnapshotIsRefused) {
  const std::string other =
      fs::path(GetParam()).stem() == "stories260K" ? "llama-2-tiny-random" : "stories260K";
  auto theirs = Load((kShared / "models" / (other + ".gguf")).string());
  auto s = TwoTurnsThenSave(*theirs, "shared-id");
  s->Detach();
  theirs.reset();
  auto mine = Load(path_);
  ASSERT_TRUE(s->Attach(*mine, Params()).ok());
  RestoreReport rr = s->Restore(*store_);
  EXPECT_FALSE(rr.restored);
  EXPECT_NE(rr.fallback_reason.find("does not match the loaded model"), std::string::npos)
      << rr.fallback_reason;
  StatusOr<TurnReport> t = s->Send(kTurns[2], {.max_tokens = 4}, nullptr, nullptr);
  ASSERT_TRUE(t.ok()) << t.status().message();
}

INSTANTIATE_TEST_SUITE_P(EveryModel, ChatSessionTest, testing::ValuesIn(ModelPaths()),
                         [](const testing::TestParamInfo<std::string>& info) {
                           const fs::path p(info.param);
                           std::string s =
                               (p.parent_path().filename() == "models" &&
                                        p.parent_path().parent_path().filename() == "coverage"
                                    ? "coverage_"
                                    : "") +
                               p.stem().string();
                           for (char& c : s) {
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return s;
                         });

// Policy tests on the small trained model.
class ChatPolicyTest : public testing::Test {
 protected:
  ThreadPool pool_{2};
};

TEST_F(ChatPolicyTest, OverflowDropsOldestTurnsKeepsSystemAndTellsTheUser) {
  auto m = LoadModel((kShared / "models" / "stories260K.gguf").string(), &pool_, nullptr).value();
  SessionRecord rec;
  rec.id = rec.name = "long";
  ChatSession s(rec, {{0, "system", "Be brief.", 0}}, Sampling());
  ContextParams p;
  p.n_ctx = 160;
  ASSERT_TRUE(s.Attach(*m, p).ok());
  bool noticed = false;
  for (int i = 0; i < 12; ++i) {
    StatusOr<TurnReport> t = s.Send("Once upon a time there was a cat " + std::to_string(i),
                                    {.max_tokens = 16}, nullptr, nullptr);
    ASSERT_TRUE(t.ok()) << "turn " << i << ": " << t.status().message();
    if (!t->notice.empty()) {
      noticed = true;
      EXPECT_NE(t->notice.find("system prompt is kept"), std::string::npos) << t->notice;
    }
    EXPECT_LE(static_cast<int64_t>(s.tokens().size()), 160);
  }
  EXPECT_TRUE(noticed);
  EXPECT_EQ(s.messages().size(), 1u + 2 * 12);  // the transcript keeps everything
  std::string huge;
  for (int i = 0; i < 400; ++i) huge += "word ";
  StatusOr<TurnReport> refused = s.Send(huge, {.max_tokens = 16}, nullptr, nullptr);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("the message is too long"), std::string::npos)
      << refused.status().message();
  EXPECT_EQ(s.messages().size(), 1u + 2 * 12);  // not recorded, not truncated
  EXPECT_TRUE(s.Send("And then?", {.max_tokens = 4}, nullptr, nullptr).ok());  // still works
}

TEST_F(ChatPolicyTest, MultiTurnPrefillsOnlyTheNewTokens) {
  auto m =
      LoadModel((kShared / "models" / "qwen2-20m-q8_0.gguf").string(), &pool_, nullptr).value();
  SessionRecord rec;
  rec.id = rec.name = "multi";
  ChatSession s(rec, {}, Sampling());
  ASSERT_TRUE(s.Attach(*m, {}).ok());
  int64_t cached = 0;
  for (int i = 0; i < 4; ++i) {
    StatusOr<TurnReport> t = s.Send(kTurns[i % 3], {.max_tokens = 10}, nullptr, nullptr);
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(t->n_reused, cached) << "turn " << i;
    EXPECT_EQ(t->n_recomputed, 0) << "turn " << i;
    cached = static_cast<int64_t>(s.tokens().size());
  }
}

}  // namespace
}  // namespace dormouse

namespace dormouse {
namespace {

TEST(LoadedModelTest, ContentHashComesFromTheCacheOnTheSecondLoad) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("dm_hash_cache_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto db = TranscriptDb::OpenOrError(dir.string()).value();
  ThreadPool pool(1);
  const std::string path = (fs::path(DM_SHARED_DIR) / "models" / "qwen2-20m-q4_0.gguf").string();
  auto first = LoadModel(path, &pool, db.get()).value();
  EXPECT_FALSE(first->hash_from_cache);
  auto second = LoadModel(path, &pool, db.get()).value();
  EXPECT_TRUE(second->hash_from_cache);
  EXPECT_EQ(first->fingerprint, second->fingerprint);
  EXPECT_EQ(first->fingerprint.content_hash, HashFileContent(first->model->gguf()));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dormouse
