// Pulls against a loopback HTTPS stand-in for Hugging Face and the Ollama registry.
#include "library/pull.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "engine/model.h"
#include "fake_hub.h"
#include "library/library.h"
#include "library_test_util.h"

namespace dormouse {
namespace {

namespace fs = std::filesystem;
using testing_util::FakeHub;
using testing_util::SharedModel;
using testing_util::TempDir;

class PullTest : public ::testing::Test {
 protected:
  PullTest() : hub_(dir_.path().string(), SharedModel("stories260K")) {
    models_ = (dir_.path() / "models").string();
  }
  PullOptions Options() {
    PullOptions o;
    o.models_dir = models_;
    o.endpoints = hub_.endpoints();
    o.extra_ca_file = hub_.cert();
    return o;
  }
  // The directory holds exactly these files.
  std::vector<std::string> Files() {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(models_, ec)) {
      out.push_back(e.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  void ExpectRuns(const std::string& name) {
    Library lib({models_, false, {}});
    StatusOr<LibraryEntry> e = lib.Find(name);
    ASSERT_TRUE(e.ok()) << e.status().message();
    EXPECT_EQ(e->source, "pulled");
    EXPECT_EQ(Sha256File(e->path).value(), hub_.sha());
    StatusOr<Model> m = Model::LoadOrError(e->path);
    ASSERT_TRUE(m.ok()) << m.status().message();
    EXPECT_TRUE(testing_util::Generates(*m));
  }

  TempDir dir_;
  FakeHub hub_;
  std::string models_;
};

TEST(PullSpec, ParsesEachKindOfName) {
  auto hf = ParsePullSpec("hf.co/org/tiny-GGUF:Q8_0").value();
  EXPECT_EQ(hf.kind, PullKind::kHuggingFace);
  EXPECT_EQ(hf.repo, "org/tiny-GGUF");
  EXPECT_EQ(hf.tag, "Q8_0");
  EXPECT_EQ(ParsePullSpec("hf.co/org/tiny-GGUF").value().name, "hf.co/org/tiny-GGUF:latest");
  auto file = ParsePullSpec("hf.co/org/tiny-GGUF/sub/tiny-Q8_0.gguf").value();
  EXPECT_EQ(file.kind, PullKind::kHuggingFaceFile);
  EXPECT_EQ(file.file, "sub/tiny-Q8_0.gguf");
  auto reg = ParsePullSpec("stories").value();
  EXPECT_EQ(reg.repo, "library/stories");
  EXPECT_EQ(reg.name, "stories:latest");
  EXPECT_EQ(ParsePullSpec("someone/m:7b").value().repo, "someone/m");
  auto url = ParsePullSpec("https://example.org/x/My-Model.Q4.gguf?download=1").value();
  EXPECT_EQ(url.name, "My-Model.Q4");
  for (const char* bad : {"", "../etc:passwd", "hf.co/org", "hf.co/../x:Q4", "a b", "ftp://x/y",
                          "https://example.org/m.gguf#sha256=zz", "hf.co/o/r/../../x.gguf"}) {
    EXPECT_FALSE(ParsePullSpec(bad).ok()) << bad;
  }
}

TEST(PullSpec, PicksTheFileForAQuantLikeLlamaCpp) {
  std::vector<std::string> files = {"README.md",     "mmproj-m-f16.gguf", "m-Q4_K_S.gguf",
                                    "m-Q4_K_M.gguf", "m-Q8_0.gguf",       "m-IQ4_XS.gguf"};
  EXPECT_EQ(PickHfFile(files, "").value(), "m-Q4_K_M.gguf");
  EXPECT_EQ(PickHfFile(files, "q8_0").value(), "m-Q8_0.gguf");
  EXPECT_EQ(PickHfFile(files, "Q4_K_S").value(), "m-Q4_K_S.gguf");
  EXPECT_FALSE(PickHfFile(files, "Q4_K").ok());  // a prefix of two quants is no quant
  EXPECT_FALSE(PickHfFile({"README.md"}, "").ok());
  EXPECT_FALSE(PickHfFile({"m-Q8_0-00001-of-00002.gguf"}, "Q8_0").ok());
}

TEST_F(PullTest, EachKindOfNameSucceedsAndTheModelRuns) {
  std::vector<PullProgress> progress;
  PullOptions o = Options();
  o.on_progress = [&](const PullProgress& p) { progress.push_back(p); };
  for (const std::string& spec :
       std::vector<std::string>{"hf.co/org/tiny-GGUF:Q8_0", "hf.co/org/tiny-GGUF/tiny-Q4_K_M.gguf",
                                "stories:260k", hub_.url() + "/files/stories.gguf"}) {
    SCOPED_TRACE(spec);
    StatusOr<PullResult> r = Pull(spec, o);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->downloaded, hub_.model_size());
    ExpectRuns(r->name);
  }
  EXPECT_EQ(progress.front().status, "pulling manifest");
  EXPECT_EQ(progress.back().status, "success");
  bool saw_bytes = false;
  for (const PullProgress& p : progress) {
    if (p.total == hub_.model_size() && p.completed == p.total) saw_bytes = true;
  }
  EXPECT_TRUE(saw_bytes);
  EXPECT_EQ(
      Files(),
      (std::vector<std::string>{
          "hf.co--org--tiny-GGUF--tiny-Q4_K_M.gguf",
          "hf.co--org--tiny-GGUF--tiny-Q4_K_M.gguf.pull.json", "hf.co--org--tiny-GGUF:Q8_0.gguf",
          "hf.co--org--tiny-GGUF:Q8_0.gguf.pull.json", "stories.gguf", "stories.gguf.pull.json",
          "stories:260k.gguf", "stories:260k.gguf.pull.json"}));
  // The registry's template and params are kept in the record.
  std::string record = testing_util::ReadAll(models_ + "/stories:260k.gguf.pull.json");
  EXPECT_NE(record.find("{{ .Prompt }}"), std::string::npos) << record;
  // Pulling again downloads nothing.
  const uint64_t served = hub_.bytes_served;
  StatusOr<PullResult> again = Pull("stories:260k", o);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->already_present);
  EXPECT_EQ(hub_.bytes_served, served);
}

TEST_F(PullTest, InterruptedTransferResumesWhereItStopped) {
  const uint64_t cut = 300000;
  ASSERT_LT(cut, hub_.model_size());
  hub_.cut_after = cut;
  StatusOr<PullResult> first = Pull("stories:260k", Options());
  ASSERT_FALSE(first.ok());
  EXPECT_NE(first.status().message().find("pull again to resume"), std::string::npos)
      << first.status().message();
  const std::string partial = models_ + "/stories:260k.gguf.partial";
  ASSERT_TRUE(fs::exists(partial));
  const uint64_t kept = fs::file_size(partial);
  EXPECT_EQ(kept, cut);
  StatusOr<PullResult> second = Pull("stories:260k", Options());
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_EQ(second->downloaded, hub_.model_size() - kept);
  EXPECT_EQ(hub_.bytes_served, hub_.model_size());  // every byte was sent exactly once
  EXPECT_EQ(hub_.ranges(), (std::vector<std::string>{"", "bytes=" + std::to_string(kept) + "-"}));
  ExpectRuns("stories:260k");
  EXPECT_FALSE(fs::exists(partial));
}

TEST_F(PullTest, WrongChecksumIsRefusedAndLeavesNoFile) {
  hub_.publish_wrong_sha = true;
  for (const std::string spec : {"hf.co/org/tiny-GGUF:Q8_0", "stories:260k"}) {
    StatusOr<PullResult> r = Pull(spec, Options());
    ASSERT_FALSE(r.ok()) << spec;
    EXPECT_NE(r.status().message().find("sha256 mismatch"), std::string::npos)
        << r.status().message();
  }
  EXPECT_TRUE(Files().empty()) << Files().front();
}

TEST_F(PullTest, UntrustedCertificateIsRefused) {
  PullOptions o = Options();
  o.extra_ca_file = "";  // only the system's CAs, which never signed the test certificate
  StatusOr<PullResult> r = Pull("stories:260k", o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not trusted"), std::string::npos) << r.status().message();
  EXPECT_EQ(hub_.bytes_served, 0u);
  EXPECT_TRUE(Files().empty());
}

TEST_F(PullTest, FullDiskGivesAClearErrorAndNoPartialModel) {
  PullOptions o = Options();
  o.fail_writes_after = 100000;
  StatusOr<PullResult> r = Pull("hf.co/org/tiny-GGUF:Q8_0", o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("No space left on device"), std::string::npos)
      << r.status().message();
  EXPECT_TRUE(Files().empty());
}

TEST_F(PullTest, TwoPullsAtOnceDownloadOnce) {
  hub_.HoldUntilResolves(2);  // the first download waits until the second pull started
  StatusOr<PullResult> a = Status::Error("not run"), b = Status::Error("not run");
  std::thread ta([&] { a = Pull("stories:260k", Options()); });
  std::thread tb([&] { b = Pull("stories:260k", Options()); });
  ta.join();
  tb.join();
  ASSERT_TRUE(a.ok()) << a.status().message();
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(hub_.model_gets, 1);
  EXPECT_EQ(hub_.bytes_served, hub_.model_size());
  EXPECT_NE(a->already_present, b->already_present);
  ExpectRuns("stories:260k");
}

TEST_F(PullTest, MemoryCheckWarnsBeforeDownloading) {
  PullOptions o = Options();
  uint64_t checked = 0;
  std::vector<std::string> warnings;
  o.fit_check = [&](uint64_t bytes) {
    checked = bytes;
    EXPECT_EQ(hub_.bytes_served, 0u);  // before any byte arrives
    return std::string("the model needs more memory than this machine has");
  };
  o.on_warning = [&](const std::string& w) { warnings.push_back(w); };
  ASSERT_TRUE(Pull("stories:260k", o).ok());
  EXPECT_EQ(checked, hub_.model_size());
  ASSERT_EQ(warnings.size(), 1u);
}

}  // namespace
}  // namespace dormouse
