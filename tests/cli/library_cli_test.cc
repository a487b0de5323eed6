// `dormouse pull`, `list`, `rm`, `run NAME`, `ps` and `stop`, as a user types them.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>

#include "api/server_harness.h"
#include "library/fake_hub.h"
#include "library/library_test_util.h"

namespace dormouse {
namespace {

namespace fs = std::filesystem;

struct Result {
  int exit_code;
  std::string out;  // stdout and stderr together
};

Result Sh(const std::string& cmd) {
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

class LibraryCliTest : public ::testing::Test {
 protected:
  LibraryCliTest() : hub_(dir_.path().string(), testing_util::SharedModel("stories260K")) {
    models_ = (dir_.path() / "models").string();
    fs::create_directories(models_);
  }
  // The binary with the stand-in's endpoints, trusting its certificate via SSL_CERT_FILE.
  Result Dormouse(const std::string& args) {
    return Sh("HOME=" + dir_.path().string() + " SSL_CERT_FILE=" + hub_.cert() +
              " HF_ENDPOINT=" + hub_.url() + " DORMOUSE_REGISTRY=" + hub_.url() +
              " DORMOUSE_MODELS=" + models_ + " " + DM_BINARY + " " + args);
  }
  testing_util::TempDir dir_;
  testing_util::FakeHub hub_;
  std::string models_;
};

TEST_F(LibraryCliTest, PullListRunRemove) {
  Result pull = Dormouse("pull hf.co/org/tiny-GGUF:Q8_0");
  ASSERT_EQ(pull.exit_code, 0) << pull.out;
  EXPECT_NE(pull.out.find("pulling manifest"), std::string::npos) << pull.out;
  EXPECT_NE(pull.out.find("100%"), std::string::npos) << pull.out;  // plain lines: no TTY
  EXPECT_EQ(pull.out.find('\r'), std::string::npos) << pull.out;
  EXPECT_NE(pull.out.find("pulled: hf.co/org/tiny-GGUF:Q8_0"), std::string::npos) << pull.out;

  Result list = Dormouse("list --no-discover");
  ASSERT_EQ(list.exit_code, 0) << list.out;
  EXPECT_NE(list.out.find("hf.co/org/tiny-GGUF:Q8_0"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("pulled"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("llama"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("yes"), std::string::npos) << list.out;

  Result run = Dormouse("run hf.co/org/tiny-GGUF:Q8_0 -p 'Once upon a time' -n 8 --temp 0 -t 2");
  ASSERT_EQ(run.exit_code, 0) << run.out;
  EXPECT_EQ(run.out.rfind("Once upon a time, there was", 0), 0u) << run.out;

  Result rm = Dormouse("rm hf.co/org/tiny-GGUF:Q8_0");
  ASSERT_EQ(rm.exit_code, 0) << rm.out;
  EXPECT_TRUE(fs::is_empty(models_));
  Result gone = Dormouse("run hf.co/org/tiny-GGUF:Q8_0 -p x -n 1");
  EXPECT_NE(gone.exit_code, 0);
  EXPECT_NE(gone.out.find("not found"), std::string::npos) << gone.out;
}

TEST_F(LibraryCliTest, ProgressBarWithSpeedAndEtaOnATerminal) {
  if (Sh("command -v script").exit_code != 0) GTEST_SKIP() << "no script(1)";
  // script(1) gives the pull a pseudo-terminal: the bar is redrawn in place.
  const std::string inner = "env HOME=" + dir_.path().string() + " SSL_CERT_FILE=" + hub_.cert() +
                            " DORMOUSE_REGISTRY=" + hub_.url() + " DORMOUSE_MODELS=" + models_ +
                            " " + DM_BINARY + " pull stories:260k";
  Result r = Sh("script -qec \"" + inner + "\" /dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find('\r'), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ETA"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("/s"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("100%"), std::string::npos) << r.out;
}

TEST_F(LibraryCliTest, DiscoveredModelsAreListedAndNotRemovable) {
  testing_util::MakeOllamaStore(dir_.path() / "ollama");
  Result list =
      Sh("HOME=" + dir_.path().string() + " OLLAMA_MODELS=" + (dir_.path() / "ollama").string() +
         " " + DM_BINARY + " list --models-dir " + models_);
  ASSERT_EQ(list.exit_code, 0) << list.out;
  EXPECT_NE(list.out.find("stories:260k"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("ollama"), std::string::npos) << list.out;
  Result rm =
      Sh("HOME=" + dir_.path().string() + " OLLAMA_MODELS=" + (dir_.path() / "ollama").string() +
         " " + DM_BINARY + " rm stories:260k --models-dir " + models_);
  EXPECT_NE(rm.exit_code, 0);
  EXPECT_NE(rm.out.find("not downloaded by dormouse"), std::string::npos) << rm.out;
}

TEST_F(LibraryCliTest, UntrustedCertificateFailsThePull) {
  Result r = Sh("HOME=" + dir_.path().string() + " DORMOUSE_REGISTRY=" + hub_.url() + " " +
                DM_BINARY + " pull stories:260k --models-dir " + models_);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("not trusted"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::is_empty(models_));
}

TEST(LibraryCli, PsAndStopTalkToTheServer) {
  auto s = testing::ServerProcess::Start({"--no-discover"});
  ASSERT_TRUE(s);
  const std::string port = std::to_string(s->port());
  auto gen = s->Client().Post(
      "/api/generate",
      R"({"model":"stories260K","prompt":"Once","stream":false,"options":{"num_predict":1}})",
      "application/json");
  ASSERT_EQ(gen->status, 200) << gen->body;
  Result ps = Sh(std::string(DM_BINARY) + " ps --port " + port);
  ASSERT_EQ(ps.exit_code, 0) << ps.out;
  EXPECT_NE(ps.out.find("stories260K"), std::string::npos) << ps.out;
  EXPECT_NE(ps.out.find("KEEP-ALIVE LEFT"), std::string::npos) << ps.out;
  // The default keep-alive is 5 minutes: what is left reads like "4m59s".
  EXPECT_TRUE(ps.out.find("4m") != std::string::npos || ps.out.find("5m00s") != std::string::npos)
      << ps.out;
  Result stop = Sh(std::string(DM_BINARY) + " stop stories260K --port " + port);
  ASSERT_EQ(stop.exit_code, 0) << stop.out;
  ps = Sh(std::string(DM_BINARY) + " ps --port " + port);
  EXPECT_EQ(ps.out.find("stories260K"), std::string::npos) << ps.out;
  s->Stop();
  Result none = Sh(std::string(DM_BINARY) + " ps --port " + port);
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.out.find("no dormouse server"), std::string::npos) << none.out;
}

}  // namespace
}  // namespace dormouse
