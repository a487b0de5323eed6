// Holds the engine to llama.cpp's outputs by the rules A-D of ../shared/reference/README.md,
// for every model x prompt in ../shared/reference/llama.cpp (models in ../shared/models) and
// in ../shared/coverage/reference (models in ../shared/coverage/models).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/context.h"
#include "engine/model.h"
#include "engine/tokenizer/tokenizer.h"

namespace dormouse {
namespace {

namespace fs = std::filesystem;
const fs::path kShared = DM_SHARED_DIR;

// One reference: llama.cpp's output for one model x prompt.
struct ReferenceCase {
  std::string name;  // MODEL--PROMPT, prefixed "coverage_" for ../shared/coverage
  fs::path json;
  fs::path model;
  fs::path prompt;
};

// gtest prints a failing parameter with this instead of its bytes.
void PrintTo(const ReferenceCase& c, std::ostream* os) { *os << c.name; }

std::vector<ReferenceCase> ReferenceCases() {
  std::vector<ReferenceCase> cases;
  auto scan = [&](const fs::path& refs, const fs::path& models, const std::string& prefix) {
    for (const auto& e : fs::directory_iterator(refs)) {
      if (e.path().extension() != ".json") continue;
      const std::string stem = e.path().stem().string();
      const size_t sep = stem.find("--");
      cases.push_back({prefix + stem, e.path(), models / (stem.substr(0, sep) + ".gguf"),
                       kShared / "reference" / "prompts" / (stem.substr(sep + 2) + ".txt")});
    }
  };
  scan(kShared / "reference" / "llama.cpp", kShared / "models", "");
  scan(kShared / "coverage" / "reference", kShared / "coverage" / "models", "coverage_");
  std::sort(cases.begin(), cases.end(),
            [](const ReferenceCase& a, const ReferenceCase& b) { return a.name < b.name; });
  return cases;
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

int32_t Argmax(const float* v, int64_t n) {
  return static_cast<int32_t>(std::max_element(v, v + n) - v);
}

class ReferenceTest : public testing::TestWithParam<ReferenceCase> {};

TEST_P(ReferenceTest, MatchesLlamaCpp) {
  const ReferenceCase& c = GetParam();
  const std::string& name = c.name;
  const fs::path& model_path = c.model;
  const fs::path& prompt_path = c.prompt;
  nlohmann::json ref = nlohmann::json::parse(ReadAll(c.json));

  StatusOr<Model> model = Model::LoadOrError(model_path.string());
  ASSERT_TRUE(model.ok()) << model.status().message();
  StatusOr<Tokenizer> tok = Tokenizer::FromGguf(model->gguf());
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  ThreadPool pool(2);
  StatusOr<InferenceContext> ctx = InferenceContext::CreateOrError(*model, {}, &pool);
  ASSERT_TRUE(ctx.ok()) << ctx.status().message();

  // A: identical tokens.
  std::vector<int32_t> tokens = tok->Encode(ReadAll(prompt_path), true, true);
  ASSERT_EQ(tokens, ref["tokens"].get<std::vector<int32_t>>());
  ASSERT_TRUE(ctx->Eval(tokens, /*all_logits=*/true).ok());
  const int64_t n_vocab = ctx->n_vocab();
  ASSERT_EQ(n_vocab, ref["n_vocab"].get<int64_t>());

  // B: last logits close in direction and within 0.25 sigma everywhere.
  std::vector<float> want = ref["last_logits"].get<std::vector<float>>();
  const float* got = ctx->logits(static_cast<int64_t>(tokens.size()) - 1);
  double mean = 0, dot = 0, na = 0, nb = 0, max_diff = 0;
  for (float v : want) mean += v;
  mean /= n_vocab;
  double var = 0;
  for (int64_t i = 0; i < n_vocab; ++i) {
    var += (want[i] - mean) * (want[i] - mean);
    dot += double(want[i]) * got[i];
    na += double(want[i]) * want[i];
    nb += double(got[i]) * got[i];
    max_diff = std::max(max_diff, std::abs(double(want[i]) - got[i]));
  }
  const double sigma = std::sqrt(var / n_vocab);
  const double cosine = dot / std::sqrt(na * nb);
  EXPECT_GE(cosine, 0.995);
  EXPECT_LE(max_diff, 0.25 * sigma) << "sigma " << sigma;

  // C: top-1 agrees at >= 90% of positions whose reference gap is >= 0.1 sigma.
  int considered = 0, agreed = 0;
  for (size_t pos = 0; pos < tokens.size(); ++pos) {
    const auto& top = ref["top_logits"][pos];
    double gap = top[0][1].get<double>() - top[1][1].get<double>();
    if (gap < 0.1 * sigma) continue;
    ++considered;
    agreed += Argmax(ctx->logits(static_cast<int64_t>(pos)), n_vocab) == top[0][0].get<int32_t>();
  }
  EXPECT_GE(agreed, 0.9 * considered) << agreed << " of " << considered;

  // D: the trained model's greedy continuation is identical.
  if (name.rfind("stories260K", 0) == 0) {
    std::vector<int32_t> greedy;
    std::vector<int32_t> want_greedy = ref["greedy_tokens"].get<std::vector<int32_t>>();
    int32_t next = Argmax(got, n_vocab);
    for (size_t i = 0; i < want_greedy.size(); ++i) {
      greedy.push_back(next);
      int32_t one[] = {next};
      ASSERT_TRUE(ctx->Eval(one).ok());
      next = Argmax(ctx->logits(), n_vocab);
    }
    EXPECT_EQ(greedy, want_greedy);
  }
}

INSTANTIATE_TEST_SUITE_P(AllModelsAndPrompts, ReferenceTest, testing::ValuesIn(ReferenceCases()),
                         [](const testing::TestParamInfo<ReferenceCase>& info) {
                           std::string s = info.param.name;
                           for (char& c : s) {
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return s;
                         });

}  // namespace
}  // namespace dormouse
