// The default context: a model's trained length, capped so that its KV caches at full
// length fit in the memory the machine (or the server's budget) has; and the loader gives
// every model that default.
#include "lifecycle/context_size.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "lifecycle/gguf_loader.h"

namespace dormouse {
namespace {

const std::filesystem::path kShared = DM_SHARED_DIR;
const std::string kModel = (kShared / "models" / "llama-58m-q8_0.gguf").string();  // trained 4096

class FixedProbe : public MemoryProbe {
 public:
  explicit FixedProbe(uint64_t available) : available_(available) {}
  SystemMemory System() override {
    SystemMemory m;
    m.total = m.available = available_;
    return m;
  }
  ProcessMemory Process() override { return {}; }

 private:
  uint64_t available_;
};

// What a model with `contexts` full-length contexts of n_ctx needs.
uint64_t Need(const ModelConfig& c, uint64_t weights, int64_t n_ctx, int64_t contexts = 1) {
  ContextParams p;
  p.n_ctx = n_ctx;
  return EstimateModelBytes(c, weights, p, contexts) +
         contexts * KvCache::BytesFor(c, n_ctx, std::min<int64_t>(p.n_ubatch, n_ctx), p.kv_type);
}

class ContextSizeTest : public testing::Test {
 protected:
  void SetUp() override {
    StatusOr<Model> m = Model::LoadOrError(kModel);
    ASSERT_TRUE(m.ok()) << m.status().message();
    config_ = m->config();
    weights_ = m->weight_bytes();
  }
  ModelConfig config_;
  uint64_t weights_ = 0;
};

TEST_F(ContextSizeTest, ALongTrainedModelGetsWhatFitsInMemory) {
  config_.n_ctx_train = 131072;
  EXPECT_EQ(DefaultContextSize(config_, weights_, {}, 1, 0), 131072);  // no cap
  EXPECT_EQ(DefaultContextSize(config_, weights_, {}, 1, uint64_t{1} << 50), 131072);
  // Room for 10,000 tokens (and a little): the longest multiple of 256 that fits.
  const uint64_t memory = Need(config_, weights_, 10000) + 100;
  const int64_t n = DefaultContextSize(config_, weights_, {}, 1, memory);
  EXPECT_EQ(n, 9984);
  EXPECT_LE(Need(config_, weights_, n), memory);
  EXPECT_GT(Need(config_, weights_, n + kContextGranule), memory);
  // Two conversations share it.
  const int64_t two = DefaultContextSize(config_, weights_, {}, 2, memory);
  EXPECT_LT(two, n);
  EXPECT_LE(Need(config_, weights_, two, 2), memory);
  // Less than the floor fits: the floor (the load's own fit check judges the weights).
  EXPECT_EQ(DefaultContextSize(config_, weights_, {}, 1, weights_), kMinDefaultContext);
}

TEST_F(ContextSizeTest, AShortTrainedModelGetsItsTrainedLength) {
  config_.n_ctx_train = 2048;
  EXPECT_EQ(DefaultContextSize(config_, weights_, {}, 1, uint64_t{64} << 30), 2048);
  EXPECT_EQ(DefaultContextSize(config_, weights_, {}, 1, weights_), 2048);
  config_.n_ctx_train = 1000;  // not a multiple of the granule
  EXPECT_EQ(DefaultContextSize(config_, weights_, {}, 1, uint64_t{64} << 30), 1000);
}

TEST_F(ContextSizeTest, TheLoaderGivesModelsTheDefaultAndContextsUseIt) {
  GgufModelLoader::Options o;
  o.files["m"] = kModel;
  FixedProbe probe(Need(config_, weights_, 3100));
  o.probe = &probe;
  GgufModelLoader loader(o, nullptr, nullptr);
  StatusOr<std::shared_ptr<ModelHandle>> h = loader.Load("m");
  ASSERT_TRUE(h.ok()) << h.status().message();
  const Model& model = *static_cast<LoadedModelHandle&>(**h).model->model;
  EXPECT_EQ(model.default_n_ctx(), 3072);
  EXPECT_EQ(ContextSize(model, {}), 3072);
  ThreadPool pool(1);
  StatusOr<InferenceContext> ctx = InferenceContext::CreateOrError(model, {}, &pool);
  ASSERT_TRUE(ctx.ok());
  EXPECT_EQ(ctx->n_ctx(), 3072);
  ContextParams asked;
  asked.n_ctx = 5000;  // an explicit size wins
  EXPECT_EQ(ContextSize(model, asked), 5000);

  // A budget smaller than the memory caps too; plenty of memory gives the trained 4096.
  o.probe = &probe;
  o.memory_budget = Need(config_, weights_, 2600);
  GgufModelLoader budgeted(o, nullptr, nullptr);
  h = budgeted.Load("m");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(static_cast<LoadedModelHandle&>(**h).model->model->default_n_ctx(), 2560);
  FixedProbe plenty(uint64_t{64} << 30);
  o.probe = &plenty;
  o.memory_budget = 0;
  GgufModelLoader roomy(o, nullptr, nullptr);
  h = roomy.Load("m");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(static_cast<LoadedModelHandle&>(**h).model->model->default_n_ctx(), 4096);
}

}  // namespace
}  // namespace dormouse
