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
  std::function<void(GgufBuilder&)> extra_tensors;
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
    const bool phi3 = arch == "phi3", gemma = arch.rfind("gemma", 0) == 0;
    for (uint32_t l = 0; l < n_layer; ++l) {
      const std::string blk = "blk." + std::to_string(l) + ".";
      if (l > 0) add(blk + "attn_norm.weight", {n_embd}, norm_value);
      if (phi3) {
        add(blk + "attn_qkv.weight", {n_embd, n_embd + 2 * kv}, 0);
      } else {
        add(blk + "attn_q.weight", {n_embd, n_embd}, 0);
        add(blk + "attn_k.weight", {n_embd, kv}, 0);
        add(blk + "attn_v.weight", {n_embd, kv}, 0);
      }
      if (arch == "gemma3") {
        add(blk + "attn_q_norm.weight", {n_embd / n_head}, norm_value);
        add(blk + "attn_k_norm.weight", {n_embd / n_head}, norm_value);
      }
      if (gemma) {
        add(blk + "post_attention_norm.weight", {n_embd}, norm_value);
        add(blk + "post_ffw_norm.weight", {n_embd}, norm_value);
      }
      add(blk + "attn_output.weight", {n_embd, n_embd}, 0);
      add(blk + "ffn_norm.weight", {n_embd}, norm_value);
      if (phi3) {
        add(blk + "ffn_up.weight", {n_embd, 2 * n_ff}, 0);
      } else {
        add(blk + "ffn_gate.weight", {n_embd, n_ff}, 0);
        add(blk + "ffn_up.weight", {n_embd, n_ff}, 0);
      }
      add(blk + "ffn_down.weight", {n_ff, n_embd}, 0);
    }
    if (extra_tensors) extra_tensors(b);
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
  ExpectRefused(m, "unsupported architecture 'gpt-neox' (supported: " + SupportedArchList() + ")");
  EXPECT_EQ(SupportedArchList(), "llama, qwen2, qwen3, phi3, gemma2, gemma3");
  TinyModel clip;  // a vision projector (mmproj) file
  clip.arch = "clip";
  ExpectRefused(clip, "unsupported architecture 'clip' (supported: llama, qwen2");
}

TEST(ModelHostileTest, UnsupportedTensorTypesNameTheTensorAndTheSupportedOnes) {
  // IQ2_XXS (16) and MXFP4 (39): refused while parsing, naming the file and tensor.
  for (uint32_t type : {16u, 39u}) {
    TinyModel m;
    m.extra_tensors = [type](GgufBuilder& b) {
      b.Tensor("blk.0.odd.weight", {256}, type, std::vector<uint8_t>(256, 0));
    };
    ExpectRefused(m, "tensor 'blk.0.odd.weight': has unsupported type type " +
                         std::to_string(type) + (type == 16 ? " (IQ2_XXS)" : " (MXFP4)"));
    ExpectRefused(m, std::string("(supported: ") + SupportedTypeList() + ")");
  }
}

TEST(ModelTest, Phi3SplitsFusedTensorsByRowsWithoutCopies) {
  TinyModel m;
  m.arch = "phi3";
  m.extra_meta = [](GgufBuilder& b) { b.U32("phi3.attention.sliding_window", 2047); };
  std::vector<uint8_t> bytes = m.Bytes();
  StatusOr<Model> model = Load(bytes);
  ASSERT_TRUE(model.ok()) << model.status().message();
  const LayerWeights& l = model->layers()[0];
  const GgufTensorInfo* qkv = model->gguf().FindTensor("blk.0.attn_qkv.weight");
  const GgufTensorInfo* up = model->gguf().FindTensor("blk.0.ffn_up.weight");
  EXPECT_EQ(l.wq.data, qkv->data);
  EXPECT_EQ(l.wk.data, qkv->data + 8 * l.wq.row_bytes);
  EXPECT_EQ(l.wv.data, qkv->data + 16 * l.wq.row_bytes);
  EXPECT_EQ(l.wk.rows, 8);
  EXPECT_EQ(l.w_gate.data, up->data);
  EXPECT_EQ(l.w_up.data, up->data + 16 * l.w_gate.row_bytes);
  EXPECT_EQ(l.w_up.rows, 16);
  EXPECT_FALSE(model->config().HasSwa());  // phi3's sliding_window is ignored, as llama.cpp
  ThreadPool pool(1);
  StatusOr<InferenceContext> ctx = InferenceContext::CreateOrError(*model, {}, &pool);
  ASSERT_TRUE(ctx.ok());
  int32_t tokens[] = {1, 2, 3};
  ASSERT_TRUE(ctx->Eval(tokens).ok());
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(std::isfinite(ctx->logits()[i]));
}

StatusOr<ModelConfig> ConfigOf(const TinyModel& m) {
  std::vector<uint8_t> bytes = m.Bytes();
  StatusOr<Model> model = Load(bytes);
  if (!model.ok()) return model.status();
  return model->config();
}

TEST(ModelTest, SlidingWindowLayersFollowThePattern) {
  TinyModel g3;
  g3.arch = "gemma3";
  g3.n_layer = 7;
  g3.extra_meta = [](GgufBuilder& b) { b.U32("gemma3.attention.sliding_window", 32); };
  StatusOr<ModelConfig> c = ConfigOf(g3);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->n_swa, 32);
  // llama.cpp's default gemma3 pattern: 5 local layers, then a global one.
  EXPECT_EQ(c->swa_layers, (std::vector<bool>{true, true, true, true, true, false, true}));
  EXPECT_EQ(c->rope_freq_base_swa, 10000.0f);
  EXPECT_EQ(c->attn_softcap, 0.0f);
  EXPECT_FLOAT_EQ(c->attn_scale, 0.5f);  // 1/sqrt(head_dim 4)

  TinyModel explicit_pattern = g3;
  explicit_pattern.extra_meta = [](GgufBuilder& b) {
    b.U32("gemma3.attention.sliding_window", 32).U32("gemma3.attention.sliding_window_pattern", 3);
  };
  c = ConfigOf(explicit_pattern);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->swa_layers, (std::vector<bool>{true, true, false, true, true, false, true}));

  TinyModel no_window = g3;
  no_window.extra_meta = nullptr;
  c = ConfigOf(no_window);
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->HasSwa());

  TinyModel g2;  // gemma2: alternating, window 4096 and soft-caps 50 / 30 by default
  g2.arch = "gemma2";
  g2.n_layer = 3;
  c = ConfigOf(g2);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->n_swa, 4096);
  EXPECT_EQ(c->swa_layers, (std::vector<bool>{true, false, true}));
  EXPECT_EQ(c->attn_softcap, 50.0f);
  EXPECT_EQ(c->final_softcap, 30.0f);
}

TEST(ModelTest, YarnScalingIsReadFromTheMetadata) {
  TinyModel m;
  m.extra_meta = [](GgufBuilder& b) {
    b.Str("llama.rope.scaling.type", "yarn")
        .F32("llama.rope.scaling.factor", 4.0f)
        .U32("llama.rope.scaling.original_context_length", 32);
  };
  StatusOr<ModelConfig> c = ConfigOf(m);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->rope_freq_scale, 0.25f);
  EXPECT_EQ(c->rope_scaling.ext_factor, 1.0f);
  EXPECT_EQ(c->rope_scaling.n_ctx_orig, 32);
  EXPECT_EQ(c->rope_scaling.beta_fast, 32.0f);
  EXPECT_EQ(c->rope_scaling.beta_slow, 1.0f);
  // llama.cpp sets 0.1 ln(4) + 1 and then cancels it (ggml's rope multiplies it back).
  const float m1 = 0.1f * std::log(4.0f) + 1.0f;
  EXPECT_FLOAT_EQ(c->rope_scaling.attn_factor, m1 * (1.0f / (1.0f + 0.1f * std::log(4.0f))));
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
  scaling.extra_meta = [](GgufBuilder& b) { b.Str("llama.rope.scaling.type", "dynamic"); };
  ExpectRefused(scaling, "unsupported rope.scaling.type 'dynamic' (supported: none, linear, yarn)");
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
