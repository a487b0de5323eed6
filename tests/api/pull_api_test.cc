// POST /api/pull against a loopback HTTPS stand-in for Hugging Face and the registry, the
// server trusting its certificate through SSL_CERT_FILE; discovered and pulled models in
// /api/tags, /api/show and /v1/models without a restart.
#include <stdlib.h>

#include "api/server_harness.h"
#include "library/fake_hub.h"
#include "library/library_test_util.h"

namespace dormouse::testing {
namespace {

using testing_util::FakeHub;

// Sets environment variables for the servers this test starts; restores them after.
class ScopedEnv {
 public:
  void Set(const std::string& name, const std::string& value) {
    const char* old = getenv(name.c_str());
    saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
    setenv(name.c_str(), value.c_str(), 1);
  }
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second) {
        setenv(it->first.c_str(), it->second->c_str(), 1);
      } else {
        unsetenv(it->first.c_str());
      }
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

std::vector<std::string> TagNames(ServerProcess& s) {
  std::vector<std::string> names;
  json tags = BodyJson(s.Client().Get("/api/tags"));
  for (const json& m : tags["models"]) names.push_back(m["name"]);
  return names;
}

bool Has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

class PullApiTest : public ::testing::Test {
 protected:
  PullApiTest() : hub_(dir_.path().string(), testing_util::SharedModel("stories260K")) {
    models_ = (dir_.path() / "models").string();
    fs::create_directories(models_);
    testing_util::MakeOllamaStore(dir_.path() / "ollama");
    env_.Set("HOME", dir_.path().string());  // no store of this machine leaks in
    env_.Set("OLLAMA_MODELS", (dir_.path() / "ollama").string());
    env_.Set("SSL_CERT_FILE", hub_.cert());
    env_.Set("HF_ENDPOINT", hub_.url());
    env_.Set("DORMOUSE_REGISTRY", hub_.url());
  }
  testing_util::TempDir dir_;
  FakeHub hub_;
  ScopedEnv env_;
  std::string models_;
};

TEST_F(PullApiTest, PullStreamsProgressAndTheModelIsServedWithoutARestart) {
  auto s = ServerProcess::Start({}, "", models_);
  ASSERT_TRUE(s);
  EXPECT_TRUE(Has(TagNames(*s), "stories:260k"));  // discovered in the Ollama store
  const std::string name = "hf.co/org/tiny-GGUF:Q8_0";
  EXPECT_FALSE(Has(TagNames(*s), name));

  auto r = s->Client().Post("/api/pull", json{{"model", name}}.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/x-ndjson");
  std::vector<json> lines;
  std::istringstream body(r->body);
  for (std::string line; std::getline(body, line);) lines.push_back(json::parse(line));
  ASSERT_GE(lines.size(), 3u) << r->body;
  EXPECT_EQ(lines.front()["status"], "pulling manifest");
  EXPECT_EQ(lines.back()["status"], "success");
  bool complete = false;
  for (const json& l : lines) {
    if (l.contains("digest")) {
      EXPECT_EQ(l["digest"], "sha256:" + hub_.sha());
      EXPECT_EQ(l["total"], hub_.model_size());
      EXPECT_EQ(l["status"], "pulling " + hub_.sha().substr(0, 12));
      complete = complete || l["completed"] == hub_.model_size();
    }
  }
  EXPECT_TRUE(complete) << r->body;

  EXPECT_TRUE(Has(TagNames(*s), name));
  auto show = s->Client().Post("/api/show", json{{"model", name}}.dump(), "application/json");
  ASSERT_EQ(show->status, 200) << show->body;
  EXPECT_EQ(BodyJson(show)["details"]["family"], "llama");
  json models = BodyJson(s->Client().Get("/v1/models"));
  bool listed = false;
  for (const json& m : models["data"]) listed = listed || m["id"] == name;
  EXPECT_TRUE(listed) << models.dump();
  auto gen = s->Client().Post("/api/generate",
                              json{{"model", name},
                                   {"prompt", "Once upon a time"},
                                   {"stream", false},
                                   {"options", {{"num_predict", 4}, {"temperature", 0}}}}
                                  .dump(),
                              "application/json");
  ASSERT_EQ(gen->status, 200) << gen->body;
  EXPECT_FALSE(BodyJson(gen)["response"].get<std::string>().empty());
  // An Ollama client may leave out the default tag.
  testing_util::CopyModel("stories260K",
                          dir_.path() / "ollama/blobs" / ("sha256-" + std::string(64, 'e')));
  testing_util::Write(dir_.path() / "ollama/manifests/registry.ollama.ai/library/tiny/latest",
                      R"({"layers":[{"mediaType":"application/vnd.ollama.image.model",)"
                      R"("digest":"sha256:)" +
                          std::string(64, 'e') + R"("}]})");
  EXPECT_TRUE(Eventually([&] { return Has(TagNames(*s), "tiny:latest"); }, 20000));
  gen = s->Client().Post("/api/generate",
                         json{{"model", "tiny"},
                              {"prompt", "Once"},
                              {"stream", false},
                              {"options", {{"num_predict", 2}}}}
                             .dump(),
                         "application/json");
  EXPECT_EQ(gen->status, 200) << gen->body;
  // The discovered model runs from Ollama's blob store.
  gen = s->Client().Post("/api/generate",
                         json{{"model", "stories:260k"},
                              {"prompt", "Once"},
                              {"stream", false},
                              {"options", {{"num_predict", 2}}}}
                             .dump(),
                         "application/json");
  EXPECT_EQ(gen->status, 200) << gen->body;
}

TEST_F(PullApiTest, ErrorsAreReportedInOllamasShape) {
  auto s = ServerProcess::Start({"--no-discover"}, "", models_);
  ASSERT_TRUE(s);
  EXPECT_FALSE(Has(TagNames(*s), "stories:260k"));  // discovery is off
  auto bad = s->Client().Post("/api/pull", R"({"model":"../x"})", "application/json");
  ASSERT_EQ(bad->status, 400) << bad->body;
  EXPECT_TRUE(BodyJson(bad).contains("error"));
  hub_.publish_wrong_sha = true;
  auto r = s->Client().Post("/api/pull", R"({"model":"stories:260k"})", "application/json");
  ASSERT_EQ(r->status, 200);
  std::string last = r->body.substr(r->body.rfind('\n', r->body.size() - 2) + 1);
  EXPECT_NE(json::parse(last)["error"].get<std::string>().find("sha256 mismatch"),
            std::string::npos)
      << r->body;
  auto whole = s->Client().Post("/api/pull", R"({"model":"stories:260k","stream":false})",
                                "application/json");
  EXPECT_EQ(whole->status, 500);
  EXPECT_TRUE(fs::is_empty(models_));
}

}  // namespace
}  // namespace dormouse::testing
