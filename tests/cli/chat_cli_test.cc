// `dormouse chat` as users drive it: piped stdin, a later run resuming the session from its
// snapshot, the slash commands, idle eject with --keep-alive, and a real TTY.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <regex>
#include <string>

namespace {

namespace fs = std::filesystem;
const fs::path kShared = DM_SHARED_DIR;
const std::string kStories = (kShared / "models" / "stories260K.gguf").string();

struct Result {
  int exit_code;
  std::string out;
};

// Runs a shell pipeline, capturing stdout and stderr together.
Result Shell(const std::string& cmd) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  Result r{-1, ""};
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

class ChatCliTest : public testing::Test {
 protected:
  void SetUp() override {
    data_ = fs::temp_directory_path() / ("dm_chat_cli_" + std::to_string(::getpid()));
    fs::remove_all(data_);
  }
  void TearDown() override { fs::remove_all(data_); }
  std::string Chat(const std::string& input, const std::string& flags) {
    return "printf '" + input + "' | " + DM_BINARY + " chat " + kStories + " --data-dir " +
           data_.string() + " -t 2 -n 12 --temp 0 " + flags;
  }
  fs::path data_;
};

TEST_F(ChatCliTest, PipedConversationResumesFromItsSnapshotInALaterRun) {
  Result first = Shell(Chat("Hello there\\n/save\\n/status\\n/quit\\n", "--session tale"));
  ASSERT_EQ(first.exit_code, 0) << first.out;
  EXPECT_NE(first.out.find("session 'tale' (0 messages); resume it with --session tale"),
            std::string::npos)
      << first.out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(first.out, m, std::regex(R"(\[saved (\d+) tokens to )")))
      << first.out;
  const std::string saved = m[1];
  EXPECT_NE(first.out.find("session:  tale (2 messages), " + saved + " tokens cached"),
            std::string::npos)
      << first.out;

  Result second = Shell(Chat("And then?\\n/sessions\\n", "--session tale"));
  ASSERT_EQ(second.exit_code, 0) << second.out;
  EXPECT_NE(second.out.find("session 'tale' (2 messages)"), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("restored " + saved + " tokens from the snapshot"), std::string::npos)
      << second.out;
  EXPECT_NE(second.out.find("0 recomputed"), std::string::npos);
  EXPECT_TRUE(std::regex_search(second.out, std::regex(R"(\* tale\s+stories260K\s+4 messages)")))
      << second.out;
}

TEST_F(ChatCliTest, EjectFreesTheModelAndTheNextMessageRestores) {
  Result r = Shell(Chat("Hi\\n/eject cold\\n/status\\nAgain\\n/eject sideways\\n", "--session e"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(cold eject freed [0-9.]+ MiB anon)")))
      << r.out;
  EXPECT_NE(r.out.find("model:    stories260K (unloaded)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(saved; model ejected)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tokens from the snapshot"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("usage: /eject [warm|cold]"), std::string::npos) << r.out;
}

TEST_F(ChatCliTest, IdleKeepAliveEjectsWhileWaitingAndReloadsWithANotice) {
  const std::string cmd = "(printf 'Hi\\n'; sleep 1.5; printf '/status\\nAgain\\n') | " +
                          std::string(DM_BINARY) + " chat " + kStories + " --data-dir " +
                          data_.string() + " -t 2 -n 8 --keep-alive 300ms --session idle";
  Result r = Shell(cmd);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("model:    stories260K (unloaded)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(keep_alive)"), std::string::npos) << r.out;
  EXPECT_TRUE(std::regex_search(
      r.out, std::regex(R"(\[stories260K ejected \(keep_alive\); [^\]]*reloaded in \d+ ms; )"
                        R"(restored \d+ tokens from the snapshot)")))
      << r.out;
}

TEST_F(ChatCliTest, WorksOnATerminal) {
  if (Shell("command -v script").exit_code != 0) GTEST_SKIP() << "no script(1)";
  // script(1) gives the chat a pseudo-terminal: it shows the help and a prompt.
  const std::string inner = std::string(DM_BINARY) + " chat " + kStories + " --data-dir " +
                            data_.string() + " -t 2 -n 4 --session tty";
  Result r = Shell("printf 'Hi\\n/quit\\n' | script -qec \"" + inner + "\" /dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("commands: /save"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(">>> "), std::string::npos) << r.out;
}

TEST_F(ChatCliTest, BadInputGetsClearErrors) {
  Result r = Shell(Chat("Hi\\n", "--keep-alive forever"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("'forever' is not a duration"), std::string::npos) << r.out;
  r = Shell(Chat("Hi\\n", "--top-p 3"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("top_p must be in (0, 1]"), std::string::npos) << r.out;
  r = Shell("printf 'Hi\\n' | " + std::string(DM_BINARY) + " chat /nonexistent.gguf --data-dir " +
            data_.string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("error: /nonexistent.gguf: cannot open"), std::string::npos) << r.out;
}

}  // namespace
