// `dormouse make-gguf`: writes a random llama that `info` and `run` accept, and refuses
// bad options with a named error.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>

namespace {

namespace fs = std::filesystem;

struct Result {
  int exit_code;
  std::string out;  // stdout and stderr together
};

Result RunDormouse(const std::string& args) {
  FILE* p = popen((std::string(DM_BINARY) + " " + args + " 2>&1").c_str(), "r");
  Result r{-1, ""};
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

TEST(MakeGgufCliTest, WritesAModelThatInfoAndRunAccept) {
  const std::string out = (fs::temp_directory_path() / "dormouse_make_gguf_q3.gguf").string();
  Result made = RunDormouse("make-gguf -o " + out +
                            " --dim 256 --layers 2 --heads 4 --kv-heads 2 --ffn 512 --vocab 400"
                            " --type Q3_K_M");
  ASSERT_EQ(made.exit_code, 0) << made.out;
  Result info = RunDormouse("info " + out);
  ASSERT_EQ(info.exit_code, 0) << info.out;
  EXPECT_NE(info.out.find("Q3_K"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("Q6_K"), std::string::npos) << info.out;  // the output matrix
  Result run = RunDormouse("run " + out + " -p 'hello' -n 4 --temp 0 -t 2");
  EXPECT_EQ(run.exit_code, 0) << run.out;
  fs::remove(out);
}

TEST(MakeGgufCliTest, RefusesBadOptionsByName) {
  const std::string out = (fs::temp_directory_path() / "dormouse_make_gguf_bad.gguf").string();
  Result r = RunDormouse("make-gguf -o " + out +
                         " --dim 256 --layers 2 --heads 4 --ffn 512 --vocab 400 --type Q9_K");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("unknown or unsupported type 'Q9_K'"), std::string::npos) << r.out;
  r = RunDormouse("make-gguf -o " + out + " --dim 256 --layers 2 --heads 4 --ffn 512");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("vocab = 0"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
