// The engine's results do not depend on how many pool threads compute them, nor on
// which thread runs which share: the pool's caller takes over the shares of workers that
// lost their core, and that must never change a bit of the logits.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <vector>

#include "base/thread_pool.h"
#include "engine/context.h"
#include "engine/model.h"

namespace dormouse {
namespace {

namespace fs = std::filesystem;
const fs::path kShared = DM_SHARED_DIR;

// Logits of a 24-token prefill (parallel norms, RoPE, matmuls, attention) and then of
// 6 decoded tokens, all concatenated.
std::vector<float> Logits(const Model& model, int n_threads) {
  ThreadPool pool(n_threads);
  StatusOr<InferenceContext> ctx = InferenceContext::CreateOrError(model, {}, &pool);
  EXPECT_TRUE(ctx.ok()) << ctx.status().message();
  if (!ctx.ok()) return {};
  std::vector<int32_t> prompt;
  for (int32_t t = 0; t < 24; ++t) prompt.push_back(1 + (t * 37) % 400);
  std::vector<float> out;
  EXPECT_TRUE(ctx->Eval(prompt).ok());
  out.insert(out.end(), ctx->logits(), ctx->logits() + ctx->n_vocab());
  for (int32_t t = 0; t < 6; ++t) {
    const int32_t one[] = {5 + t * 11};
    EXPECT_TRUE(ctx->Eval(one).ok());
    out.insert(out.end(), ctx->logits(), ctx->logits() + ctx->n_vocab());
  }
  return out;
}

TEST(ThreadCountTest, LogitsAreBitIdenticalForAnyThreadCount) {
  for (const char* name : {"stories260K.gguf", "llama-58m-q8_0.gguf"}) {
    StatusOr<Model> model = Model::LoadOrError((kShared / "models" / name).string());
    ASSERT_TRUE(model.ok()) << model.status().message();
    const std::vector<float> one = Logits(*model, 1);
    ASSERT_FALSE(one.empty());
    // 5 threads on a smaller machine: workers keep losing their cores, so the caller
    // runs some of their shares.
    for (int n_threads : {2, 3, 5}) {
      const std::vector<float> many = Logits(*model, n_threads);
      ASSERT_EQ(many.size(), one.size());
      EXPECT_EQ(std::memcmp(many.data(), one.data(), one.size() * sizeof(float)), 0)
          << name << " with " << n_threads << " threads";
    }
  }
}

}  // namespace
}  // namespace dormouse
