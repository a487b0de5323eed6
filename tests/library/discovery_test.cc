// Fixture directories laid out like each tool's store, and the library over them.
#include "library/discovery.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "engine/gguf.h"
#include "engine/model.h"
#include "library/library.h"
#include "library_test_util.h"

namespace dormouse {
namespace {

namespace fs = std::filesystem;
using testing_util::SharedModel;
using testing_util::TempDir;

using testing_util::CopyModel;
using testing_util::MakeOllamaStore;
using testing_util::Write;

ino_t Inode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_ino;
}

TEST(Discovery, OllamaManifestsNameTheirBlobs) {
  TempDir dir;
  MakeOllamaStore(dir.path() / "ollama");
  std::vector<DiscoveredModel> found = DiscoverOllama((dir.path() / "ollama").string());
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].name, "stories:260k");
  EXPECT_EQ(found[0].source, "ollama");
  EXPECT_EQ(found[0].path, (dir.path() / "ollama/blobs" / ("sha256-" + std::string(64, 'a'))));
  EXPECT_EQ(found[0].size, fs::file_size(SharedModel("stories260K")));
}

TEST(Discovery, LmStudioGpt4AllAndHfCacheLayouts) {
  TempDir dir;
  const fs::path lm = dir.path() / "lmstudio/models";
  CopyModel("qwen2-20m-q8_0", lm / "pub/qwen2-20m-GGUF/qwen2-20m-q8_0.gguf");
  Write(lm / "pub/qwen2-20m-GGUF/mmproj-qwen2.gguf", "projector");
  const fs::path g4a = dir.path() / "gpt4all";
  CopyModel("stories260K", g4a / "stories-g4a.gguf");
  Write(g4a / "localdocs_v2.db", "");
  const fs::path hub = dir.path() / "hub";
  const fs::path blob = hub / "models--org--tiny-GGUF/blobs" / std::string(64, 'd');
  CopyModel("llama-58m-q4_k_m", blob);
  fs::create_directories(hub / "models--org--tiny-GGUF/snapshots/abc123");
  fs::create_symlink("../../blobs/" + std::string(64, 'd'),
                     hub / "models--org--tiny-GGUF/snapshots/abc123/tiny-q4_k_m.gguf");

  auto lms = DiscoverLmStudio(lm.string());
  ASSERT_EQ(lms.size(), 1u);
  EXPECT_EQ(lms[0].name, "qwen2-20m-q8_0");
  auto g = DiscoverGpt4All(g4a.string());
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0].name, "stories-g4a");
  auto hf = DiscoverHfCache(hub.string());
  ASSERT_EQ(hf.size(), 1u);
  EXPECT_EQ(hf[0].name, "tiny-q4_k_m");
  EXPECT_EQ(hf[0].path, fs::canonical(blob).string());  // the blob itself, not the link
}

TEST(Discovery, PathsFollowEachToolsEnvironment) {
  std::map<std::string, std::string> env = {{"HOME", "/home/u"}};
  auto get = [&](const char* n) -> const char* {
    auto it = env.find(n);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  StoreDirs d = StoreDirs::FromEnvironment(get);
  EXPECT_EQ(d.lmstudio, "/home/u/.lmstudio/models");
  EXPECT_EQ(d.lmstudio_legacy, "/home/u/.cache/lm-studio/models");
  EXPECT_EQ(d.gpt4all, "/home/u/.local/share/nomic.ai/GPT4All");
  EXPECT_EQ(d.hf_hub, "/home/u/.cache/huggingface/hub");
  env["OLLAMA_MODELS"] = "/srv/ollama";
  env["HF_HOME"] = "/srv/hf";
  env["XDG_DATA_HOME"] = "/xdg/data";
  d = StoreDirs::FromEnvironment(get);
  EXPECT_EQ(d.ollama, "/srv/ollama");
  EXPECT_EQ(d.hf_hub, "/srv/hf/hub");
  EXPECT_EQ(d.gpt4all, "/xdg/data/nomic.ai/GPT4All");
  env["HF_HUB_CACHE"] = "/srv/hub";
  EXPECT_EQ(StoreDirs::FromEnvironment(get).hf_hub, "/srv/hub");

  // LM Studio records a moved home in ~/.lmstudio-home-pointer; GPT4All a moved download
  // folder as modelPath in its settings file.
  TempDir home;
  Write(home.path() / ".lmstudio-home-pointer", "/data/lms\n");
  Write(home.path() / ".config/nomic.ai/GPT4All.ini", "[General]\nmodelPath=/data/g4a\n");
  env = {{"HOME", home.path().string()}};
  d = StoreDirs::FromEnvironment(get);
  EXPECT_EQ(d.lmstudio, "/data/lms/models");
  EXPECT_EQ(d.gpt4all, "/data/g4a");
}

TEST(Library, ListsOwnAndDiscoveredModelsWithTheirSummary) {
  TempDir dir;
  const fs::path own = dir.path() / "models";
  CopyModel("qwen3-15m-q8_0", own / "qwen3-15m-q8_0.gguf");
  Write(own / "notes.txt", "");
  LibraryOptions o;
  o.models_dir = own.string();
  o.stores.ollama = (dir.path() / "ollama").string();
  o.stores.gpt4all = (dir.path() / "gpt4all").string();
  MakeOllamaStore(o.stores.ollama);
  CopyModel("qwen3-15m-q8_0", fs::path(o.stores.gpt4all) / "qwen3-15m-q8_0.gguf");
  Write(fs::path(o.stores.gpt4all) / "garbage.gguf", "not a gguf at all");
  Library lib(o);
  std::map<std::string, LibraryEntry> by_name;
  for (const LibraryEntry& e : lib.List()) by_name[e.name] = e;
  ASSERT_EQ(by_name.size(), 4u);
  EXPECT_EQ(by_name["qwen3-15m-q8_0"].source, "models-dir");
  EXPECT_EQ(by_name["gpt4all/qwen3-15m-q8_0"].source, "gpt4all");  // the name was taken
  EXPECT_EQ(by_name["stories:260k"].source, "ollama");

  ModelSummary q = lib.Summary(by_name["qwen3-15m-q8_0"].path);
  EXPECT_TRUE(q.supported) << q.problem;
  EXPECT_EQ(q.arch, "qwen3");
  EXPECT_EQ(q.quant, "Q8_0");
  EXPECT_GT(q.parameters, 1000000u);
  ModelSummary bad = lib.Summary(by_name["garbage"].path);
  EXPECT_FALSE(bad.supported);
  EXPECT_NE(bad.problem.find("not a GGUF"), std::string::npos) << bad.problem;

  o.discover = false;  // the flag: only our own directory
  Library own_only(o);
  ASSERT_EQ(own_only.List().size(), 1u);
  EXPECT_FALSE(own_only.Find("stories:260k").ok());
}

TEST(Library, UnsupportedArchitectureIsListedAsSuch) {
  TempDir dir;
  testing_util::WriteTinyGguf(dir.path() / "m.gguf", "mamba");
  SummaryCache cache;
  ModelSummary s = cache.Get((dir.path() / "m.gguf").string());
  EXPECT_EQ(s.arch, "mamba");
  EXPECT_FALSE(s.supported);
  EXPECT_NE(s.problem.find("unsupported architecture"), std::string::npos) << s.problem;
}

TEST(Library, OllamaBlobRunsInPlace) {
  TempDir dir;
  MakeOllamaStore(dir.path() / "ollama");
  LibraryOptions o;
  o.models_dir = (dir.path() / "models").string();
  fs::create_directories(o.models_dir);
  o.stores.ollama = (dir.path() / "ollama").string();
  Library lib(o);
  StatusOr<LibraryEntry> e = lib.Find("stories:260k");
  ASSERT_TRUE(e.ok()) << e.status().message();
  const std::string blob = (dir.path() / "ollama/blobs" / ("sha256-" + std::string(64, 'a')));
  EXPECT_EQ(Inode(e->path), Inode(blob));  // the same file: nothing was copied
  StatusOr<Model> m = Model::LoadOrError(e->path);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(Inode(m->gguf().path()), Inode(blob));
  EXPECT_TRUE(testing_util::Generates(*m));
  EXPECT_TRUE(fs::is_empty(o.models_dir));
}

TEST(Library, RemoveRefusesModelsItDidNotPull) {
  TempDir dir;
  LibraryOptions o;
  o.models_dir = (dir.path() / "models").string();
  o.discover = false;
  CopyModel("stories260K", fs::path(o.models_dir) / "mine.gguf");
  CopyModel("stories260K", fs::path(o.models_dir) / "hf.co--org--repo:Q8_0.gguf");
  Write(PullRecordPath(o.models_dir + "/hf.co--org--repo:Q8_0.gguf"),
        R"({"name":"hf.co/org/repo:Q8_0"})");
  Library lib(o);
  Status s = lib.Remove("mine");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("not downloaded by dormouse"), std::string::npos) << s.message();
  EXPECT_TRUE(fs::exists(o.models_dir + "/mine.gguf"));
  ASSERT_TRUE(lib.Find("hf.co/org/repo:Q8_0").ok());
  EXPECT_TRUE(lib.Remove("hf.co/org/repo:Q8_0").ok());
  EXPECT_FALSE(fs::exists(o.models_dir + "/hf.co--org--repo:Q8_0.gguf"));
  EXPECT_FALSE(fs::exists(PullRecordPath(o.models_dir + "/hf.co--org--repo:Q8_0.gguf")));
}

}  // namespace
}  // namespace dormouse

namespace dormouse {
namespace {

TEST(ModelSummary, HeaderParsesFromAPrefixOfTheFile) {
  const std::string path = testing_util::SharedModel("qwen3-15m-q8_0");
  StatusOr<MappedFile> f = MappedFile::OpenOrError(path);
  ASSERT_TRUE(f.ok());
  StatusOr<GgufFile> full = GgufFile::OpenOrError(path);
  ASSERT_TRUE(full.ok());
  const uint64_t header = full->data_offset();
  ASSERT_LT(header, f->size());
  StatusOr<GgufFile> g = GgufFile::ParseHeaderOrError(f->data(), header, f->size(), path);
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ(g->tensors().size(), full->tensors().size());
  EXPECT_EQ(g->tensors()[0].data, nullptr);
  StatusOr<GgufFile> cut = GgufFile::ParseHeaderOrError(f->data(), header / 2, f->size(), path);
  ASSERT_FALSE(cut.ok());
  EXPECT_NE(cut.status().message().find("past the end"), std::string::npos)
      << cut.status().message();
  // A tensor past the end of the whole file is still an error.
  StatusOr<GgufFile> shrunk = GgufFile::ParseHeaderOrError(f->data(), header, header + 64, path);
  EXPECT_FALSE(shrunk.ok());
}

}  // namespace
}  // namespace dormouse
