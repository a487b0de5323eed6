// The KV cache grows with the conversation: reserving a 128k context commits nothing, the
// resident pages (mincore) follow the positions evaluated, a truncation gives them back,
// and the model's kv_bytes_in_use() adds up its live contexts.
#include "engine/kv_cache.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <numeric>
#include <optional>
#include <vector>

#include "engine/context.h"
#include "engine/model.h"

namespace dormouse {
namespace {

const std::filesystem::path kShared = DM_SHARED_DIR;
constexpr int64_t kBigContext = 131072;

// Page rounding: each layer's K and V may touch one page more at either end.
uint64_t Slack(const KvCache& kv) {
  return 2 * 2 * static_cast<uint64_t>(kv.n_layer()) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

class KvCacheTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    StatusOr<Model> m = Model::LoadOrError((kShared / "models" / "llama-58m-q8_0.gguf").string());
    ASSERT_TRUE(m.ok()) << m.status().message();
    model_ = new Model(std::move(m).value());
  }
  static void TearDownTestSuite() { delete model_; }
  static Model* model_;
};
Model* KvCacheTest::model_ = nullptr;

TEST_F(KvCacheTest, ResidentPagesFollowTheRowsWritten) {
  StatusOr<KvCache> kv = KvCache::CreateOrError(model_->config(), kBigContext, 512, KvType::kF16);
  ASSERT_TRUE(kv.ok()) << kv.status().message();
  EXPECT_GT(kv->capacity_bytes(), uint64_t{500} << 20);
  EXPECT_LE(kv->ResidentBytes(), Slack(*kv));
  const int64_t n = 1000;
  for (int64_t l = 0; l < kv->n_layer(); ++l) {
    for (int64_t p = 0; p < n; ++p) {
      std::fill_n(kv->KRow(l, p), kv->row_bytes(), uint8_t{1});
      std::fill_n(kv->VRow(l, p), kv->row_bytes(), uint8_t{2});
    }
  }
  EXPECT_GE(kv->ResidentBytes(), kv->BytesInUse(n));
  EXPECT_LE(kv->ResidentBytes(), kv->BytesInUse(n) + Slack(*kv));
  kv->Release(100);
  EXPECT_GE(kv->ResidentBytes(), kv->BytesInUse(100) - Slack(*kv));
  EXPECT_LE(kv->ResidentBytes(), kv->BytesInUse(100) + Slack(*kv));
  EXPECT_EQ(kv->KRow(3, 99)[0], 1);  // kept rows keep their data
  EXPECT_EQ(kv->VRow(3, 99)[kv->row_bytes() - 1], 2);
  kv->Release(0);
  EXPECT_LE(kv->ResidentBytes(), Slack(*kv));
}

TEST_F(KvCacheTest, AContextCommitsOnlyWhatItsConversationUses) {
  ThreadPool pool(2);
  std::optional<InferenceContext> ctx;
  {
    StatusOr<InferenceContext> c =
        InferenceContext::CreateOrError(*model_, {.n_ctx = kBigContext}, &pool);
    ASSERT_TRUE(c.ok()) << c.status().message();
    ctx.emplace(std::move(c).value());
  }
  EXPECT_EQ(ctx->n_ctx(), kBigContext);
  EXPECT_LE(ctx->kv().ResidentBytes(), Slack(ctx->kv()));
  EXPECT_EQ(model_->kv_bytes_in_use(), 0u);

  std::vector<int32_t> tokens(700);
  std::iota(tokens.begin(), tokens.end(), 100);
  ASSERT_TRUE(ctx->Eval(tokens).ok());
  const uint64_t used = ctx->kv_bytes_in_use();
  EXPECT_EQ(used, ctx->kv().BytesInUse(700));
  EXPECT_GE(ctx->kv().ResidentBytes(), used);
  EXPECT_LE(ctx->kv().ResidentBytes(), used + Slack(ctx->kv()));
  EXPECT_EQ(model_->kv_bytes_in_use(), used);

  // A second context counts too; a moved context is counted once.
  StatusOr<InferenceContext> other = InferenceContext::CreateOrError(*model_, {}, &pool);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(other->Eval(std::span<const int32_t>(tokens.data(), 10)).ok());
  InferenceContext moved = std::move(other).value();
  EXPECT_EQ(model_->kv_bytes_in_use(), used + moved.kv_bytes_in_use());

  // Cut short, the context keeps (and counts) its pages until asked to give them back.
  ctx->Truncate(50);
  EXPECT_EQ(ctx->kv_bytes_in_use(), used);
  EXPECT_EQ(model_->kv_bytes_in_use(), used + moved.kv_bytes_in_use());
  ctx->ReleaseUnusedKv();
  EXPECT_EQ(ctx->kv_bytes_in_use(), ctx->kv().BytesInUse(50));
  EXPECT_LE(ctx->kv().ResidentBytes(), ctx->kv_bytes_in_use() + Slack(ctx->kv()));
  EXPECT_EQ(model_->kv_bytes_in_use(), ctx->kv_bytes_in_use() + moved.kv_bytes_in_use());
  // The kept positions are intact: continuing gives the logits of an uncut run.
  ASSERT_TRUE(ctx->Eval(std::span<const int32_t>(tokens.data() + 50, 1)).ok());
  std::vector<float> after(ctx->logits(), ctx->logits() + ctx->n_vocab());
  {
    StatusOr<InferenceContext> fresh = InferenceContext::CreateOrError(*model_, {}, &pool);
    ASSERT_TRUE(fresh.ok());
    ASSERT_TRUE(fresh->Eval(std::span<const int32_t>(tokens.data(), 50)).ok());
    ASSERT_TRUE(fresh->Eval(std::span<const int32_t>(tokens.data() + 50, 1)).ok());
    EXPECT_EQ(after, std::vector<float>(fresh->logits(), fresh->logits() + fresh->n_vocab()));
  }
  ctx.reset();
  EXPECT_EQ(model_->kv_bytes_in_use(), moved.kv_bytes_in_use());
}

}  // namespace
}  // namespace dormouse
