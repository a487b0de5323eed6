#include "store/transcript_db.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "transcript_db_fixture.h"

namespace dormouse {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class TranscriptDbTest : public TranscriptDbFixture {
 protected:
  static SessionRecord Session(const std::string& name) {
    SessionRecord s;
    s.name = name;
    s.model = "tiny-llama";
    s.system_prompt = "You are terse.";
    s.sampling_json = R"({"temperature":0.7,"top_k":40,"seed":42})";
    return s;
  }

  // Runs SQL on the file with a plain connection, behind TranscriptDb's back.
  void RawExec(const std::string& sql) {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(DbPath().c_str(), &raw), SQLITE_OK);
    char* err = nullptr;
    int rc = sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, &err);
    EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
    sqlite3_free(err);
    sqlite3_close(raw);
  }
  int64_t RawCount(const std::string& sql) {
    sqlite3* raw = nullptr;
    EXPECT_EQ(sqlite3_open(DbPath().c_str(), &raw), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(raw, sql.c_str(), -1, &st, nullptr), SQLITE_OK);
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(raw);
    return n;
  }
};

MessageRecord Msg(const std::string& role, const std::string& content) {
  return MessageRecord{0, role, content, 0};
}

TEST_F(TranscriptDbTest, CreatesPrivateFileWithIdAndTimestamps) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->path(), DbPath());
  struct stat st;
  ASSERT_EQ(::stat(DbPath().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto a = db->CreateSession(Session("default"));
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(a->id.size(), 16u);
  EXPECT_EQ(a->id.find_first_not_of("0123456789abcdef"), std::string::npos) << a->id;
  EXPECT_GT(a->created_at, 1.6e9);
  EXPECT_EQ(a->updated_at, a->created_at);
  EXPECT_EQ(a->n_messages, 0);

  auto b = db->CreateSession(Session("other"));
  ASSERT_TRUE(b.ok());
  EXPECT_NE(a->id, b->id);

  SessionRecord given = Session("given-id");
  given.id = "my_Session-1";
  auto c = db->CreateSession(given);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->id, "my_Session-1");
}

TEST_F(TranscriptDbTest, FindGetAndListNewestUpdatedFirst) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  SessionRecord old_s = Session("old");
  old_s.created_at = 1000;
  SessionRecord mid_s = Session("mid");
  mid_s.created_at = 2000;
  SessionRecord new_s = Session("new");
  new_s.created_at = 3000;
  ASSERT_TRUE(db->CreateSession(old_s).ok());
  auto mid = db->CreateSession(mid_s);
  ASSERT_TRUE(mid.ok());
  ASSERT_TRUE(db->CreateSession(new_s).ok());

  auto found = db->FindSessionByName("mid");
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->id, mid->id);
  EXPECT_EQ((*found)->model, "tiny-llama");
  EXPECT_EQ((*found)->system_prompt, "You are terse.");
  EXPECT_EQ((*found)->sampling_json, mid_s.sampling_json);
  EXPECT_EQ((*found)->created_at, 2000);

  auto got = db->GetSession(mid->id);
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->name, "mid");

  auto missing = db->FindSessionByName("nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
  auto missing_id = db->GetSession("0000000000000000");
  ASSERT_TRUE(missing_id.ok());
  EXPECT_FALSE(missing_id->has_value());

  auto list = db->ListSessions();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].name, "new");
  EXPECT_EQ((*list)[1].name, "mid");
  EXPECT_EQ((*list)[2].name, "old");

  // A message moves its session to the front, and the count comes with the listing.
  MessageRecord m = Msg("user", "hi");
  ASSERT_TRUE(db->AppendMessage(mid->id, &m).ok());
  list = db->ListSessions();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ((*list)[0].name, "mid");
  EXPECT_EQ((*list)[0].n_messages, 1);
  EXPECT_EQ((*list)[1].n_messages, 0);
}

TEST_F(TranscriptDbTest, NamesAndIdsAreUnique) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  auto a = db->CreateSession(Session("default"));
  ASSERT_TRUE(a.ok());
  auto dup = db->CreateSession(Session("default"));
  ASSERT_FALSE(dup.ok());
  EXPECT_THAT(dup.status().message(), HasSubstr("'default' already exists"));

  SessionRecord same_id = Session("another");
  same_id.id = a->id;
  auto dup_id = db->CreateSession(same_id);
  ASSERT_FALSE(dup_id.ok());
  EXPECT_THAT(dup_id.status().message(), HasSubstr("id '" + a->id + "' already exists"));

  auto b = db->CreateSession(Session("second"));
  ASSERT_TRUE(b.ok());
  SessionRecord rename = *b;
  rename.name = "default";
  Status s = db->UpdateSession(rename);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("'default' already exists"));
  auto list = db->ListSessions();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 2u);
}

TEST_F(TranscriptDbTest, RejectsBadInput) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  EXPECT_FALSE(db->CreateSession(Session("")).ok());
  EXPECT_FALSE(db->CreateSession(Session(std::string(300, 'x'))).ok());
  SessionRecord bad_id = Session("x");
  bad_id.id = "../etc";
  EXPECT_THAT(db->CreateSession(bad_id).status().message(), HasSubstr("may hold only"));
  SessionRecord bad_json = Session("y");
  bad_json.sampling_json = "{temperature: 1";
  EXPECT_THAT(db->CreateSession(bad_json).status().message(), HasSubstr("not a JSON object"));
  bad_json.sampling_json = "[1, 2]";
  EXPECT_FALSE(db->CreateSession(bad_json).ok());

  SessionRecord empty_json = Session("z");
  empty_json.sampling_json = "";
  auto z = db->CreateSession(empty_json);
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(z->sampling_json, "{}");

  MessageRecord no_role = Msg("", "text");
  EXPECT_FALSE(db->AppendMessage(z->id, &no_role).ok());
  MessageRecord m = Msg("user", "text");
  Status s = db->AppendMessage("0123456789abcdef", &m);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("no session with id '0123456789abcdef'"));
  EXPECT_EQ(m.created_at, 0);  // untouched on failure
  EXPECT_FALSE(db->Messages("0123456789abcdef").ok());
  EXPECT_FALSE(db->ReplaceMessages("0123456789abcdef", {Msg("user", "a")}).ok());
  EXPECT_EQ(RawCount("SELECT count(*) FROM messages"), 0);
}

TEST_F(TranscriptDbTest, UpdateSessionWritesFieldsAndBumpsUpdatedAt) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  SessionRecord in = Session("s");
  in.created_at = 1000;
  auto s = db->CreateSession(in);
  ASSERT_TRUE(s.ok());
  SessionRecord changed = *s;
  changed.name = "renamed";
  changed.model = "other-model";
  changed.system_prompt = "Be verbose.";
  changed.sampling_json = R"({"temperature":0})";
  ASSERT_TRUE(db->UpdateSession(changed).ok());

  auto got = db->GetSession(s->id);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->name, "renamed");
  EXPECT_EQ((*got)->model, "other-model");
  EXPECT_EQ((*got)->system_prompt, "Be verbose.");
  EXPECT_EQ((*got)->sampling_json, R"({"temperature":0})");
  EXPECT_EQ((*got)->created_at, 1000);
  EXPECT_GT((*got)->updated_at, 1.6e9);

  SessionRecord ghost = changed;
  ghost.id = "ghost";
  EXPECT_THAT(db->UpdateSession(ghost).message(), HasSubstr("no session with id 'ghost'"));
}

TEST_F(TranscriptDbTest, MessagesAppendInOrderAndSurviveReopen) {
  std::string id;
  std::vector<MessageRecord> written;
  {
    auto db = Open();
    ASSERT_NE(db, nullptr);
    auto s = db->CreateSession(Session("default"));
    ASSERT_TRUE(s.ok());
    id = s->id;
    for (const char* text : {"You are terse.", "hello", "hi there"}) {
      MessageRecord m = Msg(written.empty() ? "system" : "user", text);
      ASSERT_TRUE(db->AppendMessage(id, &m).ok());
      EXPECT_EQ(m.seq, static_cast<int64_t>(written.size()));
      EXPECT_GT(m.created_at, 1.6e9);
      written.push_back(m);
    }
    MessageRecord dated = Msg("assistant", "dated");
    dated.created_at = 1234.5;
    ASSERT_TRUE(db->AppendMessage(id, &dated).ok());
    EXPECT_EQ(dated.created_at, 1234.5);
    written.push_back(dated);
  }
  auto db = Open();
  ASSERT_NE(db, nullptr);
  auto got = db->Messages(id);
  ASSERT_TRUE(got.ok()) << got.status().message();
  ASSERT_EQ(got->size(), written.size());
  for (size_t i = 0; i < written.size(); ++i) {
    EXPECT_EQ((*got)[i].seq, static_cast<int64_t>(i));
    EXPECT_EQ((*got)[i].role, written[i].role);
    EXPECT_EQ((*got)[i].content, written[i].content);
    EXPECT_EQ((*got)[i].created_at, written[i].created_at);
  }
  MessageRecord next = Msg("user", "after reopen");
  ASSERT_TRUE(db->AppendMessage(id, &next).ok());
  EXPECT_EQ(next.seq, 4);
  auto s = db->GetSession(id);
  ASSERT_TRUE(s.ok() && s->has_value());
  EXPECT_EQ((*s)->n_messages, 5);
}

TEST_F(TranscriptDbTest, ReplaceMessagesRenumbersAndCounts) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  auto s = db->CreateSession(Session("s"));
  ASSERT_TRUE(s.ok());
  for (int i = 0; i < 5; ++i) {
    MessageRecord m = Msg(i % 2 ? "assistant" : "user", "m" + std::to_string(i));
    ASSERT_TRUE(db->AppendMessage(s->id, &m).ok());
  }
  std::vector<MessageRecord> edited = {Msg("system", "sys"), Msg("user", "edited")};
  edited[0].seq = 17;  // ignored
  edited[1].created_at = 99;
  ASSERT_TRUE(db->ReplaceMessages(s->id, edited).ok());
  auto got = db->Messages(s->id);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].seq, 0);
  EXPECT_EQ((*got)[0].content, "sys");
  EXPECT_GT((*got)[0].created_at, 1.6e9);
  EXPECT_EQ((*got)[1].seq, 1);
  EXPECT_EQ((*got)[1].content, "edited");
  EXPECT_EQ((*got)[1].created_at, 99);
  EXPECT_EQ((*db->GetSession(s->id))->n_messages, 2);

  MessageRecord m = Msg("assistant", "next");
  ASSERT_TRUE(db->AppendMessage(s->id, &m).ok());
  EXPECT_EQ(m.seq, 2);

  ASSERT_TRUE(db->ReplaceMessages(s->id, {}).ok());
  got = db->Messages(s->id);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->empty());
  EXPECT_EQ((*db->GetSession(s->id))->n_messages, 0);

  // A bad message in the batch leaves the transcript as it was.
  ASSERT_TRUE(db->ReplaceMessages(s->id, {Msg("user", "kept")}).ok());
  EXPECT_FALSE(db->ReplaceMessages(s->id, {Msg("user", "x"), Msg("", "y")}).ok());
  got = db->Messages(s->id);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].content, "kept");
}

TEST_F(TranscriptDbTest, DeleteSessionRemovesItsMessagesOnly) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  auto a = db->CreateSession(Session("a"));
  auto b = db->CreateSession(Session("b"));
  ASSERT_TRUE(a.ok() && b.ok());
  for (int i = 0; i < 3; ++i) {
    MessageRecord ma = Msg("user", "a");
    MessageRecord mb = Msg("user", "b");
    ASSERT_TRUE(db->AppendMessage(a->id, &ma).ok());
    ASSERT_TRUE(db->AppendMessage(b->id, &mb).ok());
  }
  bool existed = false;
  ASSERT_TRUE(db->DeleteSession(a->id, &existed).ok());
  EXPECT_TRUE(existed);
  EXPECT_FALSE(db->GetSession(a->id)->has_value());
  EXPECT_FALSE(db->FindSessionByName("a")->has_value());
  EXPECT_FALSE(db->Messages(a->id).ok());
  EXPECT_EQ(db->Messages(b->id)->size(), 3u);
  EXPECT_EQ(db->ListSessions()->size(), 1u);

  ASSERT_TRUE(db->DeleteSession(a->id, &existed).ok());
  EXPECT_FALSE(existed);
  ASSERT_TRUE(db->DeleteSession("never-was").ok());

  // The name is free again, and the new session starts empty.
  auto again = db->CreateSession(Session("a"));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(db->Messages(again->id)->empty());
  db.reset();
  EXPECT_EQ(RawCount("SELECT count(*) FROM messages"), 3);
}

TEST_F(TranscriptDbTest, TwoInstancesOnOneFileInterleaveWrites) {
  auto a = Open();
  auto b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  auto s = a->CreateSession(Session("shared"));
  ASSERT_TRUE(s.ok());
  auto seen = b->FindSessionByName("shared");
  ASSERT_TRUE(seen.ok() && seen->has_value());
  EXPECT_EQ((*seen)->id, s->id);
  // Each name can be taken once, whichever connection tries.
  EXPECT_FALSE(b->CreateSession(Session("shared")).ok());

  for (int i = 0; i < 20; ++i) {
    TranscriptDb* db = i % 2 ? b.get() : a.get();
    MessageRecord m = Msg("user", "message " + std::to_string(i));
    ASSERT_TRUE(db->AppendMessage(s->id, &m).ok());
    EXPECT_EQ(m.seq, i);
  }
  for (TranscriptDb* db : {a.get(), b.get()}) {
    auto got = db->Messages(s->id);
    ASSERT_TRUE(got.ok());
    ASSERT_EQ(got->size(), 20u);
    for (int i = 0; i < 20; ++i) EXPECT_EQ((*got)[i].content, "message " + std::to_string(i));
  }
  ASSERT_TRUE(b->DeleteSession(s->id).ok());
  EXPECT_FALSE(a->GetSession(s->id)->has_value());
}

// Real processes writing at the same time: the busy timeout and BEGIN IMMEDIATE must make
// every append succeed, with dense sequence numbers.
TEST_F(TranscriptDbTest, ConcurrentProcessesAllSucceed) {
  std::string id;
  {
    auto db = Open();
    ASSERT_NE(db, nullptr);
    auto s = db->CreateSession(Session("busy"));
    ASSERT_TRUE(s.ok());
    id = s->id;
  }
  constexpr int kProcesses = 4, kAppends = 25;
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // Each child opens its own connection (never share one across fork).
      auto db = TranscriptDb::OpenOrError(dir_);
      if (!db.ok()) ::_exit(2);
      for (int i = 0; i < kAppends; ++i) {
        MessageRecord m = Msg("user", "p" + std::to_string(p) + " m" + std::to_string(i));
        if (!(*db)->AppendMessage(id, &m).ok()) ::_exit(3);
        if (!(*db)->ListSessions().ok()) ::_exit(4);
      }
      ::_exit(0);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  }
  auto db = Open();
  ASSERT_NE(db, nullptr);
  auto got = db->Messages(id);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), static_cast<size_t>(kProcesses * kAppends));
  for (size_t i = 0; i < got->size(); ++i) EXPECT_EQ((*got)[i].seq, static_cast<int64_t>(i));
  EXPECT_EQ((*db->GetSession(id))->n_messages, kProcesses * kAppends);
}

// Another process mid-write: opening and reading go ahead (WAL), and a write waits for
// the lock (busy timeout) instead of failing with SQLITE_BUSY.
TEST_F(TranscriptDbTest, WritesWaitForAnotherWritersLock) {
  std::string id;
  {
    auto db = Open();
    ASSERT_NE(db, nullptr);
    auto s = db->CreateSession(Session("locked"));
    ASSERT_TRUE(s.ok());
    id = s->id;
  }
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(DbPath().c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE; UPDATE sessions SET model = 'x'", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  auto db = Open();
  ASSERT_NE(db, nullptr);
  auto list = db->ListSessions();
  ASSERT_TRUE(list.ok()) << list.status().message();
  EXPECT_EQ((*list)[0].model, "tiny-llama");  // the uncommitted write is invisible

  std::thread release([other] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr);
  });
  const auto t0 = std::chrono::steady_clock::now();
  MessageRecord m = Msg("user", "waited");
  Status s = db->AppendMessage(id, &m);
  const auto waited = std::chrono::steady_clock::now() - t0;
  release.join();
  sqlite3_close(other);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_GE(waited, std::chrono::milliseconds(200));
  EXPECT_EQ((*db->GetSession(id))->model, "x");
}

TEST_F(TranscriptDbTest, NonSqliteFileIsAClearError) {
  {
    std::ofstream f(DbPath(), std::ios::binary);
    for (int i = 0; i < 1000; ++i) f << "this is not a database, it is a grocery list\n";
  }
  auto db = TranscriptDb::OpenOrError(dir_);
  ASSERT_FALSE(db.ok());
  EXPECT_THAT(db.status().message(), HasSubstr(DbPath()));
  EXPECT_THAT(db.status().message(), HasSubstr("not a database"));
}

TEST_F(TranscriptDbTest, EmptyFileIsAFreshDatabase) {
  { std::ofstream f(DbPath(), std::ios::binary); }
  auto db = Open();
  ASSERT_NE(db, nullptr);
  EXPECT_TRUE(db->CreateSession(Session("x")).ok());
}

TEST_F(TranscriptDbTest, DamagedPagesGiveErrorsNotCrashes) {
  {
    auto db = Open();
    ASSERT_NE(db, nullptr);
    for (int i = 0; i < 20; ++i) {
      auto s = db->CreateSession(Session("s" + std::to_string(i)));
      ASSERT_TRUE(s.ok());
      MessageRecord m = Msg("user", std::string(3000, 'a' + i % 26));
      ASSERT_TRUE(db->AppendMessage(s->id, &m).ok());
    }
  }
  ASSERT_FALSE(fs::exists(DbPath() + "-wal") && fs::file_size(DbPath() + "-wal") > 0);
  {
    // Keep page 1 (header and schema); scribble over every table and index page.
    std::fstream f(DbPath(), std::ios::in | std::ios::out | std::ios::binary);
    const auto size = fs::file_size(DbPath());
    f.seekp(4096);
    std::string junk(size - 4096, '\xA5');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  auto db = TranscriptDb::OpenOrError(dir_);
  if (!db.ok()) {
    EXPECT_THAT(db.status().message(), HasSubstr(DbPath()));
    return;
  }
  auto list = (*db)->ListSessions();
  ASSERT_FALSE(list.ok());
  EXPECT_THAT(list.status().message(), HasSubstr(DbPath()));
  EXPECT_THAT(list.status().message(), HasSubstr("malformed"));
  MessageRecord m = Msg("user", "x");
  EXPECT_FALSE((*db)->AppendMessage("anything", &m).ok());
}

TEST_F(TranscriptDbTest, ForeignSqliteDatabaseIsRefused) {
  RawExec("CREATE TABLE recipes (name TEXT)");
  auto db = TranscriptDb::OpenOrError(dir_);
  ASSERT_FALSE(db.ok());
  EXPECT_THAT(db.status().message(), HasSubstr(DbPath()));
  EXPECT_THAT(db.status().message(), HasSubstr("not a dormouse transcript store"));
}

TEST_F(TranscriptDbTest, NewerSchemaIsRefusedAndLeftAlone) {
  ASSERT_NE(Open(), nullptr);
  RawExec("PRAGMA user_version = 99");
  auto db = TranscriptDb::OpenOrError(dir_);
  ASSERT_FALSE(db.ok());
  EXPECT_THAT(db.status().message(), HasSubstr(DbPath()));
  EXPECT_THAT(db.status().message(), HasSubstr("schema version 99"));
  EXPECT_THAT(db.status().message(), HasSubstr("newer dormouse"));
  EXPECT_EQ(RawCount("PRAGMA user_version"), 99);
}

TEST_F(TranscriptDbTest, UnicodeAndMegabyteContentRoundTrip) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  const std::string name = "日本語のセッション 🐭";
  auto s = db->CreateSession(Session(name));
  ASSERT_TRUE(s.ok());
  const std::string unicode =
      "Grüße, мир, 世界, مرحبا, 👩‍👩‍👧‍👦 and \u00e9 vs "
      "e\u0301\n\ttabs";
  std::string big;
  big.reserve(1 << 20);
  const std::string piece = "λx. x — ";  // multi-byte characters throughout
  while (big.size() + piece.size() <= (1u << 20)) big += piece;
  while (big.size() < (1u << 20)) big += 'z';
  ASSERT_EQ(big.size(), 1u << 20);

  MessageRecord m1 = Msg("user", unicode);
  MessageRecord m2 = Msg("assistant", big);
  ASSERT_TRUE(db->AppendMessage(s->id, &m1).ok());
  ASSERT_TRUE(db->AppendMessage(s->id, &m2).ok());
  db.reset();

  db = Open();
  ASSERT_NE(db, nullptr);
  auto found = db->FindSessionByName(name);
  ASSERT_TRUE(found.ok() && found->has_value());
  auto got = db->Messages((*found)->id);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].content, unicode);
  EXPECT_TRUE((*got)[1].content == big) << "1 MB message changed in the round trip";
}

class ResolveDataDirTest : public TranscriptDbTest {
 protected:
  void SetUp() override {
    TranscriptDbTest::SetUp();
    Save("XDG_DATA_HOME", &xdg_);
    Save("HOME", &home_);
  }
  void TearDown() override {
    Restore("XDG_DATA_HOME", xdg_);
    Restore("HOME", home_);
    TranscriptDbTest::TearDown();
  }
  static void Save(const char* name, std::optional<std::string>* out) {
    const char* v = std::getenv(name);
    if (v != nullptr) *out = v;
  }
  static void Restore(const char* name, const std::optional<std::string>& v) {
    if (v) {
      ::setenv(name, v->c_str(), 1);
    } else {
      ::unsetenv(name);
    }
  }
  static unsigned Mode(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 ? (st.st_mode & 0777) : 0;
  }
  std::optional<std::string> xdg_, home_;
};

TEST_F(ResolveDataDirTest, UsesXdgDataHomeWhenSet) {
  const std::string xdg = dir_ + "/xdg";
  ::setenv("XDG_DATA_HOME", xdg.c_str(), 1);
  ::setenv("HOME", (dir_ + "/home").c_str(), 1);
  auto d = ResolveDataDir("");
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(*d, xdg + "/dormouse");
  EXPECT_TRUE(fs::is_directory(*d));
  EXPECT_EQ(Mode(*d), 0700u);
  auto again = ResolveDataDir("");  // existing directory: fine
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *d);
}

TEST_F(ResolveDataDirTest, FallsBackToHomeWhenXdgUnsetOrRelative) {
  ::unsetenv("XDG_DATA_HOME");
  ::setenv("HOME", (dir_ + "/home").c_str(), 1);
  auto d = ResolveDataDir("");
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(*d, dir_ + "/home/.local/share/dormouse");
  EXPECT_EQ(Mode(*d), 0700u);

  ::setenv("XDG_DATA_HOME", "relative/path", 1);  // the XDG spec says to ignore it
  auto r = ResolveDataDir("");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, *d);

  ::unsetenv("HOME");
  ::unsetenv("XDG_DATA_HOME");
  EXPECT_THAT(ResolveDataDir("").status().message(), HasSubstr("--data-dir"));
}

TEST_F(ResolveDataDirTest, FlagWinsAndMustBeADirectory) {
  ::setenv("XDG_DATA_HOME", (dir_ + "/xdg").c_str(), 1);
  const std::string flag = dir_ + "/a/b/data";
  auto d = ResolveDataDir(flag);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(*d, flag);
  EXPECT_TRUE(fs::is_directory(flag));
  EXPECT_FALSE(fs::exists(dir_ + "/xdg"));

  const std::string file = dir_ + "/plain-file";
  { std::ofstream f(file); }
  auto bad = ResolveDataDir(file);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("not a directory"));
  EXPECT_FALSE(TranscriptDb::OpenOrError(file).ok());
}

}  // namespace
}  // namespace dormouse
