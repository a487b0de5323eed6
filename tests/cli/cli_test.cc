// Drives the `dormouse` binary the way users and other tools do.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

#include "base/cpu_budget.h"

namespace {

namespace fs = std::filesystem;
const fs::path kShared = DM_SHARED_DIR;
const std::string kStories = (kShared / "models" / "stories260K.gguf").string();

struct Result {
  int exit_code;
  std::string out;  // stdout and stderr together
};

// `env` ("NAME=value ...") is set for the command only.
Result RunCli(const std::string& args, const std::string& env = "") {
  std::string cmd =
      (env.empty() ? "" : "env " + env + " ") + std::string(DM_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  Result r{-1, ""};
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

TEST(CliTest, RunGreedyStoriesMatchesReferenceText) {
  Result r = RunCli("run " + kStories + " -p 'Once upon a time' -n 32 --temp 0 -t 2");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out,
            "Once upon a time, there was a little girl named Lily. She loved to play outside "
            "in the park. One day, she saw\n");
}

TEST(CliTest, RunSameSeedSameText) {
  std::string args = "run " + kStories + " -p 'Once upon a time' -n 24 --temp 1 --seed 7 -t 2";
  Result a = RunCli(args), b = RunCli(args);
  ASSERT_EQ(a.exit_code, 0) << a.out;
  EXPECT_EQ(a.out, b.out);
}

TEST(CliTest, TokenizeVocabOnlyFile) {
  fs::path vocab = kShared / "vocab" / "ggml-vocab-gpt-2.gguf";
  Result r = RunCli("tokenize " + vocab.string() + " --text 'Hello world' --no-bos");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "15496 995\n");
}

TEST(CliTest, TokenizeAddsBosWhenModelAsks) {
  Result r = RunCli("tokenize " + kStories + " --text 'Once upon a time'");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "1 403 407 261 378\n");
}

TEST(CliTest, LogitsWritesReferenceSchema) {
  fs::path out = fs::temp_directory_path() / "dormouse_cli_logits.json";
  fs::path prompt = kShared / "reference" / "prompts" / "p1-story.txt";
  Result r = RunCli("logits " + kStories + " --prompt-file " + prompt.string() + " -n 8 -o " +
                    out.string() + " -t 2");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  std::ifstream in(out);
  nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_EQ(j["tokens"], nlohmann::json({1, 403, 407, 261, 378}));
  EXPECT_EQ(j["n_vocab"], 512);
  EXPECT_EQ(j["top_logits"].size(), 5u);
  EXPECT_EQ(j["top_logits"][0].size(), 10u);
  EXPECT_EQ(j["last_logits"].size(), 512u);
  EXPECT_EQ(j["greedy_tokens"].size(), 8u);
  EXPECT_EQ(j["greedy_gaps"].size(), 8u);
  EXPECT_EQ(j["greedy_text"], ", there was a little girl");  // the reference's first 8 tokens
  fs::remove(out);
}

TEST(CliTest, BenchPrintsThroughput) {
  Result r = RunCli("bench " + kStories + " -p 16 -n 8 -r 1 -t 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["pp_tps"].get<double>(), 0);
  EXPECT_GT(j["tg_tps"].get<double>(), 0);
}

TEST(CliTest, BenchMeasuresBandwidthAndTheDecodeRoofline) {
  Result r = RunCli("bench --bandwidth -r 1 -t 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_GT(nlohmann::json::parse(r.out)["bandwidth_gbs"].get<double>(), 0);
  r = RunCli("bench " + kStories + " --bandwidth -p 8 -n 4 -r 2 -t 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  nlohmann::json j = nlohmann::json::parse(r.out);
  // Every weight is read per token, of the token embedding (512 x 64 F32) only one row.
  const double bytes = j["decode_bytes_per_token"].get<double>();
  EXPECT_LT(bytes, 1.2e6 - 512 * 64 * 4 + 64 * 4);
  EXPECT_GT(bytes, 0.9e6);
  EXPECT_LT(bytes, static_cast<double>(fs::file_size(kStories)));
  EXPECT_NEAR(j["roofline_tps"].get<double>(), j["bandwidth_gbs"].get<double>() * 1e9 / bytes,
              1e-6 * j["roofline_tps"].get<double>());
  // A pass that only reads the model's weights, as decode does: its tokens/s bound decode's.
  EXPECT_GT(j["weights_bandwidth_gbs"].get<double>(), 0);
  EXPECT_NEAR(j["read_only_decode_tps"].get<double>(),
              j["weights_bandwidth_gbs"].get<double>() * 1e9 / bytes,
              1e-6 * j["read_only_decode_tps"].get<double>());
  // Decode against read-only passes interleaved with it token by token: the best and the
  // median of the two repetitions' ratios, and their decode rate.
  EXPECT_GT(j["tg_of_read_only_paired_median"].get<double>(), 0);
  EXPECT_GT(j["tg_paired_tps"].get<double>(), 0);
  EXPECT_GE(j["tg_of_read_only_paired_best"].get<double>(),
            j["tg_of_read_only_paired_median"].get<double>());
  // Where sysfs gives the last-level cache, bench says whether the weights fit in it, as
  // stories260K's 1 MB do in any L3: then decode's figures measure the cache, and the text
  // report says so.
  if (std::optional<uint64_t> llc = dormouse::LastLevelCacheBytes()) {
    EXPECT_EQ(j["last_level_cache_bytes"].get<uint64_t>(), *llc);
    EXPECT_EQ(j["weights_fit_in_cache"].get<bool>(), bytes <= static_cast<double>(*llc));
    r = RunCli("bench " + kStories + " --bandwidth -p 8 -n 4 -r 1 -t 2");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_EQ(r.out.find("fit in the") != std::string::npos, bytes <= static_cast<double>(*llc))
        << r.out;
  }
  r = RunCli("bench");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "error: bench needs a model file or --bandwidth\n");
}

TEST(CliTest, BenchTargetSwitchCapsTheKernels) {
  Result r = RunCli("bench " + kStories + " -p 8 -n 4 -r 1 -t 2 --json --target avx2");
  if (r.out.find("this CPU lacks AVX2") != std::string::npos) GTEST_SKIP() << r.out;
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["kernels"], "AVX2");
  r = RunCli("bench " + kStories + " -p 8 -n 4 -r 1 -t 2 --target avx3");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out,
            "error: unknown kernel target 'avx3' (accepted: avx512, avx2, sse4, neon, scalar)\n");
  r = RunCli("bench " + kStories + " -p 8 -n 4 -r 1 -t 2 --json", "DORMOUSE_TARGET=scalar");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["kernels"], "SCALAR");
  r = RunCli("info " + kStories, "DORMOUSE_TARGET=avx");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("DORMOUSE_TARGET: unknown kernel target 'avx'"), std::string::npos) << r.out;
}

TEST(CliTest, InfoDescribesModel) {
  Result r = RunCli("info " + kStories);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("architecture:  llama"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("n_embd 64, n_layer 5, n_head 8, n_head_kv 4"), std::string::npos);
  // The default thread count and why: one per physical core this process may use.
  const dormouse::CpuBudget b = dormouse::CurrentCpuBudget();
  EXPECT_NE(r.out.find(fmt::format("threads:       {} ({})\n", b.threads, b.Reason())),
            std::string::npos)
      << r.out;
}

TEST(CliTest, BadInputsFailCleanly) {
  fs::path junk = fs::temp_directory_path() / "dormouse_cli_junk.gguf";
  std::ofstream(junk) << "this is not a model";
  struct Case {
    std::string args, expect;
  } cases[] = {
      {"run /nonexistent.gguf -p hi", "/nonexistent.gguf: cannot open"},
      {"run " + junk.string() + " -p hi", junk.string()},
      {"info " + (kShared / "vocab" / "ggml-vocab-gpt-2.gguf").string(), "no tensors"},
      {"run " + kStories + " -p hi --top-p 7", "top_p"},
      {"logits " + kStories + " --prompt-file /nonexistent.txt", "/nonexistent.txt"},
  };
  for (const Case& c : cases) {
    Result r = RunCli(c.args);
    EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.out;
    // `info` describes any GGUF and says why it cannot run one; the others fail with error:.
    const bool info = c.args.rfind("info ", 0) == 0;
    EXPECT_NE(r.out.find(info ? "supported:     no: " : "error: "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(c.expect), std::string::npos) << c.args << "\n" << r.out;
  }
  fs::remove(junk);
}

}  // namespace

namespace {

// `dormouse info` on every coverage file lists its tensor types and says it is supported.
// (Files of unsupported types are refused by name: tests/engine/model_test.cc.)
TEST(CliTest, InfoListsTypesAndSupportOfEveryCoverageFile) {
  int seen = 0;
  for (const auto& e : fs::directory_iterator(kShared / "coverage" / "models")) {
    if (e.path().extension() != ".gguf") continue;
    ++seen;
    SCOPED_TRACE(e.path().stem().string());
    Result r = RunCli("info " + e.path().string());
    EXPECT_NE(r.out.find("tensors F32:"), std::string::npos) << r.out;
    EXPECT_EQ(r.exit_code, 0) << r.out;
    EXPECT_NE(r.out.find("supported:     yes"), std::string::npos) << r.out;
  }
  EXPECT_EQ(seen, 15);
  Result g = RunCli("info " + (kShared / "coverage" / "models" / "gemma3-tiny-q8_0.gguf").string());
  EXPECT_NE(g.out.find("sliding window 32 on 5 of 6 layers (local rope base 10000)"),
            std::string::npos)
      << g.out;
}

}  // namespace
