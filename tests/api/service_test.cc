// The server core without HTTP: stateless clients that resend the whole conversation
// get only the new tokens prefilled, also after an idle eject and after a restart;
// bounded queues, cancellation and bad requests.
#include "lifecycle/service.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "api/runtime.h"
#include "lifecycle/prefix_index.h"

namespace dormouse {
namespace {

namespace fs = std::filesystem;
const fs::path kShared = DM_SHARED_DIR;

// One server process's worth of objects, on a data dir that outlives it.
struct Server {
  explicit Server(const fs::path& data, int64_t max_queue = 16) {
    RuntimeOptions ro;
    ro.data_dir = data.string();
    ro.models_dir = (kShared / "models").string();
    ro.context.n_ctx = 1024;
    ro.threads = 2;
    ro.max_queue = max_queue;
    ro.start_timer = false;
    rt = Runtime::CreateOrError(ro).value();
    service = &rt->service();
    manager = &rt->manager();
  }
  std::unique_ptr<Runtime> rt;
  Service* service;
  ModelManager* manager;
};

CompletionRequest Chat(const std::vector<ChatMessage>& msgs, int64_t max_tokens = 12) {
  CompletionRequest r;
  r.model = "qwen2-20m-q8_0";
  r.chat = true;
  r.messages = msgs;
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0;
  return r;
}

CompletionResult Ok(std::variant<CompletionResult, ServiceError> v) {
  if (auto* e = std::get_if<ServiceError>(&v)) ADD_FAILURE() << e->message;
  return std::get_if<CompletionResult>(&v) ? std::get<CompletionResult>(v) : CompletionResult{};
}

class ServiceTest : public testing::Test {
 protected:
  void SetUp() override {
    data_ = fs::temp_directory_path() / ("dm_service_" + std::to_string(::getpid()));
    fs::remove_all(data_);
  }
  void TearDown() override { fs::remove_all(data_); }
  fs::path data_;
};

// Turn k: the client sends everything so far plus a new user message.
struct Conversation {
  std::vector<ChatMessage> msgs = {{"system", "You are terse."}};
  int64_t last_total = 0;  // prompt + completion tokens of the previous turn
  CompletionResult Turn(Service& s, const std::string& user) {
    msgs.push_back({"user", user});
    CompletionResult r = Ok(s.Complete(Chat(msgs), nullptr));
    msgs.push_back({"assistant", r.text});
    return r;
  }
};

TEST_F(ServiceTest, StatelessTurnsPrefillOnlyTheNewTokensEvenAfterEjectAndRestart) {
  Conversation c;
  std::string session;
  {
    Server srv(data_);
    CompletionResult t1 = c.Turn(*srv.service, "Name a colour.");
    EXPECT_EQ(t1.cached_tokens, 0);
    EXPECT_GT(t1.load_seconds, 0);
    int64_t held = t1.prompt_tokens + t1.completion_tokens;
    for (const char* user : {"Another one.", "And a third?"}) {
      CompletionResult t = c.Turn(*srv.service, user);
      EXPECT_EQ(t.cached_tokens, held) << user;  // everything the context held
      EXPECT_EQ(t.session_id, t1.session_id);
      EXPECT_FALSE(t.restored_from_snapshot);
      EXPECT_EQ(t.load_seconds, 0);
      held = t.prompt_tokens + t.completion_tokens;
    }
    // Idle eject (as keep-alive would): the conversation goes to disk...
    ASSERT_TRUE(
        srv.manager->Eject("qwen2-20m-q8_0", EjectLevel::kWarm, false, Reason::kKeepAlive).ok());
    EXPECT_EQ(srv.service->Metrics().prefix_index_entries, 1);  // its size is visible
    EXPECT_GT(srv.service->Metrics().prefix_index_bytes, 0u);   // and small: hashes only
    EXPECT_LE(srv.service->Metrics().prefix_index_bytes,
              512 + held / kPrefixBlock * sizeof(uint64_t));
    CompletionResult t4 = c.Turn(*srv.service, "One more after a rest.");
    EXPECT_TRUE(t4.restored_from_snapshot);  // ...and comes back from it
    EXPECT_GT(t4.load_seconds, 0);
    EXPECT_EQ(t4.cached_tokens, held);
    EXPECT_EQ(t4.session_id, t1.session_id);
    session = t4.session_id;
    c.last_total = t4.prompt_tokens + t4.completion_tokens;
  }  // the server stops: sessions are saved
  Server again(data_);
  CompletionResult t5 = c.Turn(*again.service, "Still there after a restart?");
  EXPECT_TRUE(t5.restored_from_snapshot);
  EXPECT_EQ(t5.cached_tokens, c.last_total);
  EXPECT_EQ(t5.session_id, session);
  auto transcript = again.service->Transcript(session);
  ASSERT_TRUE(transcript.ok());
  EXPECT_EQ(transcript->size(), c.msgs.size());  // system + 5 x (user, assistant)
  std::optional<SessionInfo> info = again.service->Session(session);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->state, "live");
}

TEST_F(ServiceTest, CompletionPromptsThatGrowReuseTheirPrefix) {
  Server srv(data_);
  CompletionRequest r;
  r.model = "stories260K";
  r.prompt = "Once upon a time, there was a little girl named Lily.";
  r.max_tokens = 8;
  r.sampling.temperature = 0;
  CompletionResult a = Ok(srv.service->Complete(r, nullptr));
  r.prompt += a.text + " She went to the park and saw a dog.";
  CompletionResult b = Ok(srv.service->Complete(r, nullptr));
  EXPECT_EQ(b.cached_tokens, a.prompt_tokens + a.completion_tokens);
  EXPECT_EQ(b.session_id, a.session_id);
  std::string streamed;
  CompletionResult c = Ok(srv.service->Complete(r, [&](std::string_view p) {
    streamed += p;
    return true;
  }));
  EXPECT_EQ(streamed, c.text);
}

TEST_F(ServiceTest, BadRequestsGetKindsAndTheServiceKeepsServing) {
  Server srv(data_);
  auto kind = [&](const CompletionRequest& r) {
    auto v = srv.service->Complete(r, nullptr);
    return std::holds_alternative<ServiceError>(v) ? std::get<ServiceError>(v).kind
                                                   : ErrorKind::kInternal;
  };
  CompletionRequest r = Chat({{"user", "hi"}});
  r.model = "no-such-model";
  EXPECT_EQ(kind(r), ErrorKind::kNotFound);
  r.model = "../models/stories260K";
  EXPECT_EQ(kind(r), ErrorKind::kNotFound);
  r = Chat({{"user", "hi"}});
  r.sampling.top_p = 5;
  EXPECT_EQ(kind(r), ErrorKind::kBadRequest);
  std::string huge;
  for (int i = 0; i < 3000; ++i) huge += "hello ";
  EXPECT_EQ(kind(Chat({{"user", huge}})), ErrorKind::kTooLarge);
  CompletionResult after = Ok(srv.service->Complete(Chat({{"user", "still fine?"}}), nullptr));
  EXPECT_GT(after.completion_tokens, 0);  // still serving
}

TEST_F(ServiceTest, CancelStopsGenerationAndQueueOverflowIsRefused) {
  Server srv(data_, /*max_queue=*/1);
  // A request whose client "goes away" after the first piece.
  CompletionRequest r = Chat({{"user", "Talk for a long time."}}, 200);
  int pieces = 0;
  CompletionResult c = Ok(srv.service->Complete(r, [&](std::string_view) {
    ++pieces;
    r.cancelled->store(true);
    return true;
  }));
  EXPECT_EQ(c.stop, StopReason::kCancelled);
  EXPECT_LE(c.completion_tokens, 3);

  // Hold the worker inside a request, fill the queue, and overflow it.
  std::atomic<bool> release{false}, inside{false};
  CompletionRequest slow = Chat({{"user", "slow"}}, 50);
  std::thread first([&] {
    srv.service->Complete(slow, [&](std::string_view) {
      inside = true;
      while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      return false;
    });
  });
  while (!inside) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  // Two more requests race for the one queue place: whichever comes second is refused,
  // and that refusal returns while the other one still waits behind the held worker.
  std::mutex mu;
  std::condition_variable cv;
  std::vector<ErrorKind> refused;
  int succeeded = 0;
  auto submit = [&](const char* text) {
    auto r = srv.service->Complete(Chat({{"user", text}}, 2), nullptr);
    std::lock_guard<std::mutex> lock(mu);
    if (std::holds_alternative<ServiceError>(r)) {
      refused.push_back(std::get<ServiceError>(r).kind);
    } else {
      ++succeeded;
    }
    cv.notify_all();
  };
  std::thread second(submit, "queued");
  std::thread third(submit, "one too many");
  {
    std::unique_lock<std::mutex> lock(mu);
    // A hang guard, not an ordering: the refusal needs no worker time at all.
    EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(120), [&] { return !refused.empty(); }));
    EXPECT_EQ(succeeded, 0);  // the queued one cannot run while the worker is held
  }
  release = true;
  first.join();
  second.join();
  third.join();
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0], ErrorKind::kOverloaded);
  EXPECT_EQ(succeeded, 1);
  EXPECT_EQ(srv.service->Metrics().requests_rejected, 1);
}

TEST_F(ServiceTest, DifferentModelsRunSideBySideAndSessionsCanBeDeleted) {
  Server srv(data_);
  CompletionRequest story;
  story.model = "stories260K";
  story.prompt = "Once upon a time";
  story.max_tokens = 16;
  CompletionResult a, b;
  std::thread t1([&] { a = Ok(srv.service->Complete(story, nullptr)); });
  std::thread t2([&] { b = Ok(srv.service->Complete(Chat({{"user", "hello"}}), nullptr)); });
  t1.join();
  t2.join();
  EXPECT_FALSE(a.session_id.empty());
  EXPECT_FALSE(b.session_id.empty());
  EXPECT_NE(a.session_id, b.session_id);
  EXPECT_GE(srv.service->Sessions().size(), 2u);
  EXPECT_FALSE(srv.service->DeleteSession(a.session_id).has_value());
  EXPECT_FALSE(srv.service->Session(a.session_id).has_value());
  auto again = srv.service->DeleteSession(a.session_id);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->kind, ErrorKind::kNotFound);
}

// Two clients whose first turns are identical are two conversations: separate session
// ids and transcripts. The second still reuses the first's cached rows (a fork into
// another slot), and each later turn continues its own session.
TEST_F(ServiceTest, IdenticalFirstTurnsOfTwoClientsAreSeparateSessionsThatShareRows) {
  Server srv(data_);
  const std::vector<ChatMessage> first = {{"system", "You are terse."}, {"user", "Hello there."}};
  // Different reply lengths, so each client's second turn continues only its own reply.
  CompletionResult a1 = Ok(srv.service->Complete(Chat(first, 8), nullptr));
  CompletionResult b1 = Ok(srv.service->Complete(Chat(first, 4), nullptr));
  EXPECT_NE(a1.session_id, b1.session_id);
  EXPECT_GE(b1.cached_tokens, b1.prompt_tokens - 1);  // all but the token re-evaluated
  EXPECT_EQ(b1.prefilled_tokens, b1.prompt_tokens - b1.cached_tokens);

  auto next = [](std::vector<ChatMessage> m, const CompletionResult& r, const std::string& u) {
    m.push_back({"assistant", r.text});
    m.push_back({"user", u});
    return m;
  };
  CompletionResult a2 = Ok(srv.service->Complete(Chat(next(first, a1, "From A."), 4), nullptr));
  CompletionResult b2 = Ok(srv.service->Complete(Chat(next(first, b1, "From B."), 4), nullptr));
  EXPECT_EQ(a2.session_id, a1.session_id);
  EXPECT_EQ(b2.session_id, b1.session_id);
  EXPECT_GE(a2.cached_tokens, a1.prompt_tokens + a1.completion_tokens - 1);  // its own live rows
  EXPECT_FALSE(a2.restored_from_snapshot);

  auto users = [&](const std::string& id) {
    std::vector<std::string> out;
    for (const auto& [role, content] : srv.service->Transcript(id).value()) {
      if (role == "user") out.push_back(content);
    }
    return out;
  };
  EXPECT_EQ(users(a1.session_id), (std::vector<std::string>{"Hello there.", "From A."}));
  EXPECT_EQ(users(b1.session_id), (std::vector<std::string>{"Hello there.", "From B."}));
}

TEST_F(ServiceTest, SnapshotDiskIsBoundedByDefault) {
  Server srv(data_);  // no snapshot_budget given
  const uint64_t budget = srv.rt->snapshots().budget_bytes();
  EXPECT_GT(budget, 0u);
  EXPECT_EQ(budget, SnapshotStore::DefaultBudget(srv.rt->snapshots().dir()).value());
}

}  // namespace
}  // namespace dormouse
