// Binding a model from GGUF: a well-formed tiny model loads and runs; hostile ones
// (unsupported architecture, missing or misshapen tensors, absurd hyper-parameters,
// non-finite norms, truncated real files) are refused with errors that name the file
// and the problem. Also runs under ASan+UBSan (make test-sanitize).
#include "engine/model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include "engine/context.h"
#include "gguf_builder.h"

namespace dormouse {
namespace {

namespace fs = std::filesystem;
using testing_util::GgufBuilder;

// A tiny llama: n_embd 8, 1 layer, 2 heads (head_dim 4), n_ff 16, vocab 5, all F32.
struct TinyModel {
  std::string arch = "llama";
  uint32_t n_embd = 8, n_head = 2, n_head_kv = 2, n_ff = 16, n_layer = 1;
  std::function<void(GgufBuilder&)> extra_meta;
  std::set<std::string> skip;                          // tensors to leave out
  std::map<std::string, std::vector<uint64_t>> shape;  // overrides
  float norm_value = 1.0f;

  std::vector<uint8_t> Bytes() const {
    GgufBuilder b;
    b.Str("general.architecture", arch)
        .U32(arch + ".embedding_length", n_embd)
        .U32(arch + ".block_count", n_layer)
        .U32(arch + ".feed_forward_length", n_ff)
        .U32(arch + ".attention.head_count", n_head)
        .U32(arch + ".attention.head_count_kv", n_head_kv)
        .U32(arch + ".context_length", 64)
        .F32(arch + ".attention.layer_norm_rms_epsilon", 1e-5f);
    if (extra_meta) extra_meta(b);
    auto add = [&](const std::string& name, std::vector<uint64_t> dims, float value) {
      if (skip.count(name)) return;
      if (auto it = shape.find(name); it != shape.end()) dims = it->second;
      uint64_t n = 1;
      for (uint64_t d : dims) n *= d;
      std::vector<float> v(n);
      for (uint64_t i = 0; i < n; ++i)
        v[i] = value == 0 ? 0.01f * static_cast<float>(i % 7) : value;
      b.F32Tensor(name, dims, v);
    };
    const uint64_t kv = n_head > 0 ? n_embd / n_head * n_head_kv : n_embd;
    add("token_embd.weight", {n_embd, 5}, 0);
    add("output_norm.weight", {n_embd}, norm_value);
    add("blk.0.attn_norm.weight", {n_embd}, norm_value);
    add("blk.0.attn_q.weight", {n_embd, n_embd}, 0);
    add("blk.0.attn_k.weight", {n_embd, kv}, 0);
    add("blk.0.attn_v.weight", {n_embd, kv}, 0);
    add("blk.0.attn_output.weight", {n_embd, n_embd}, 0);
    add("blk.0.ffn_norm.weight", {n_embd}, norm_value);
    add("blk.0.ffn_gate.weight", {n_embd, n_ff}, 0);
    add("blk.0.ffn_up.weight", {n_embd, n_ff}, 0);
    add("blk.0.ffn_down.weight", {n_ff, n_embd}, 0);
    return b.Bytes();
  }
};

StatusOr<Model> Load(const std::vector<uint8_t>& bytes) {
  StatusOr<GgufFile> g = GgufFile::ParseBytesOrError(bytes.data(), bytes.size(), "tiny.gguf");
  if (!g.ok()) return g.status();
  return Model::FromGguf(std::move(g).value());
}

void ExpectRefused(const TinyModel& m, const std::string& needle) {
  std::vector<uint8_t> bytes = m.Bytes();
  StatusOr<Model> model = Load(bytes);
  ASSERT_FALSE(model.ok()) << "expected: " << needle;
  EXPECT_EQ(model.status().message().rfind("tiny.gguf: ", 0), 0u) << model.status().message();
  EXPECT_NE(model.status().message().find(needle), std::string::npos) << model.status().message();
}

TEST(ModelTest, TinyModelLoadsAndRuns) {
  std::vector<uint8_t> bytes = TinyModel{}.Bytes();
  StatusOr<Model> m = Load(bytes);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_TRUE(m->tied_output());
  EXPECT_EQ(m->config().head_dim, 4);
  ThreadPool pool(1);
  StatusOr<InferenceContext> ctx = InferenceContext::CreateOrError(*m, {}, &pool);
  ASSERT_TRUE(ctx.ok()) << ctx.status().message();
  int32_t tokens[] = {1, 2, 3};
  ASSERT_TRUE(ctx->Eval(tokens).ok());
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(std::isfinite(ctx->logits()[i]));
  int32_t bad[] = {7};
  EXPECT_NE(ctx->Eval(bad).message().find("token id 7 is outside the vocabulary [0, 5)"),
            std::string::npos);
}

TEST(ModelHostileTest, UnsupportedArchitectureNamesTheSupportedOnes) {
  TinyModel m;
  m.arch = "gpt-neox";
  ExpectRefused(m, "unsupported architecture 'gpt-neox' (supported: llama, qwen2, qwen3)");
}

TEST(ModelHostileTest, MissingTensorsAreNamed) {
  for (const char* t : {"blk.0.attn_k.weight", "blk.0.ffn_down.weight", "output_norm.weight"}) {
    TinyModel m;
    m.skip = {t};
    ExpectRefused(m, std::string("missing tensor '") + t + "'");
  }
  TinyModel qwen2;  // qwen2 needs q/k/v biases
  qwen2.arch = "qwen2";
  ExpectRefused(qwen2, "missing tensor 'blk.0.attn_q.bias'");
  TinyModel qwen3;  // qwen3 needs q/k norms
  qwen3.arch = "qwen3";
  ExpectRefused(qwen3, "missing tensor 'blk.0.attn_q_norm.weight'");
}

TEST(ModelHostileTest, MisshapenTensorsAreNamed) {
  TinyModel m;
  m.shape["blk.0.attn_q.weight"] = {8, 4};
  ExpectRefused(m, "tensor 'blk.0.attn_q.weight' has shape (8, 4), expected (8, 8)");
  TinyModel n;
  n.shape["blk.0.ffn_norm.weight"] = {4};
  ExpectRefused(n, "tensor 'blk.0.ffn_norm.weight' has shape (4), expected (8)");
}

TEST(ModelHostileTest, AbsurdHyperParametersAreRefused) {
  TinyModel zero_heads;
  zero_heads.n_head = 0;
  ExpectRefused(zero_heads, "attention.head_count = 0");
  TinyModel gqa;
  gqa.n_head_kv = 3;  // not a divisor of 2 heads
  ExpectRefused(gqa, "head_count_kv");
  TinyModel wide;
  wide.extra_meta = [](GgufBuilder& b) { b.U32("llama.rope.dimension_count", 6); };
  ExpectRefused(wide, "rope.dimension_count = 6 is outside [0, 4]");
  TinyModel eps;
  eps.extra_meta = [](GgufBuilder& b) { b.Str("llama.rope.freq_base", "ten thousand"); };
  ExpectRefused(eps, "expected a number");
  TinyModel scaling;
  scaling.extra_meta = [](GgufBuilder& b) { b.Str("llama.rope.scaling.type", "yarn"); };
  ExpectRefused(scaling, "unsupported rope.scaling.type 'yarn'");
}

TEST(ModelHostileTest, NonFiniteNormsAreRefused) {
  TinyModel m;
  m.norm_value = NAN;
  ExpectRefused(m, "holds a non-finite value");
}

TEST(ModelHostileTest, VocabularyOnlyFileIsNotAModel) {
  StatusOr<Model> m = Model::LoadOrError(std::string(DM_SHARED_DIR) + "/vocab/ggml-vocab-mpt.gguf");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("no tensors (a vocabulary-only GGUF?)"), std::string::npos);
}

TEST(ModelHostileTest, TruncatedRealModelsAreRefusedAtManyOffsets) {
  const fs::path path = fs::path(DM_SHARED_DIR) / "models" / "qwen3-15m-q8_0.gguf";
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> full((std::istreambuf_iterator<char>(in)), {});
  for (size_t cut = 1; cut < full.size(); cut = cut * 3 / 2 + 7) {
    std::vector<uint8_t> part(full.begin(), full.begin() + static_cast<int64_t>(cut));
    StatusOr<Model> m = Load(part);
    ASSERT_FALSE(m.ok()) << "cut at " << cut;
  }
}

}  // namespace
}  // namespace dormouse
