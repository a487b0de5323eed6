// GgufWriter round trips through the reader; random models (make-gguf) of every K-quant
// mix load and run, with the types llama-quantize's mixes give each tensor.
#include "engine/gguf_writer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <vector>

#include "base/thread_pool.h"
#include "engine/context.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/quants.h"
#include "engine/random_model.h"
#include "engine/tokenizer/tokenizer.h"

namespace dormouse {
namespace {

namespace fs = std::filesystem;

std::string TempPath(const std::string& name) {
  return (fs::temp_directory_path() / ("dm_gguf_writer_" + name)).string();
}

TEST(GgufWriterTest, RoundTripsMetadataAndTensors) {
  GgufWriter w;
  w.U32("a.u32", 7);
  w.F32("a.f32", 1.5f);
  w.Str("a.str", "hello");
  w.StrArray("a.strs", {"x", "", "yz"});
  w.F32Array("a.floats", {0.5f, -2.0f});
  w.I32Array("a.ints", {-1, 3});
  std::vector<float> row(64);
  for (int i = 0; i < 64; ++i) row[i] = 0.1f * static_cast<float>(i - 32);
  ASSERT_TRUE(w.AddTensorOrError("t.q8", {64, 2}, GgmlType::kQ8_0, [&](uint8_t* dst) {
                 QuantizeRow(GgmlType::kQ8_0, row.data(), dst, 64);
                 QuantizeRow(GgmlType::kQ8_0, row.data(), dst + RowBytes(GgmlType::kQ8_0, 64), 64);
               }).ok());
  ASSERT_TRUE(w.AddTensorOrError("t.f32", {3}, GgmlType::kF32, [](uint8_t* dst) {
                 const float v[3] = {1, 2, 3};
                 std::memcpy(dst, v, 12);
               }).ok());
  Status bad = w.AddTensorOrError("t.bad", {100}, GgmlType::kQ5_K, [](uint8_t*) {});
  EXPECT_NE(bad.message().find("not a multiple of Q5_K's block of 256"), std::string::npos)
      << bad.message();
  const std::string path = TempPath("roundtrip.gguf");
  ASSERT_TRUE(w.WriteOrError(path).ok());
  StatusOr<GgufFile> f = GgufFile::OpenOrError(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(**f->GetInt("a.u32"), 7);
  EXPECT_EQ(**f->GetFloat("a.f32"), 1.5);
  EXPECT_EQ(**f->GetString("a.str"), "hello");
  EXPECT_EQ(f->GetArray("a.strs")->strings, (std::vector<std::string>{"x", "", "yz"}));
  EXPECT_EQ(f->GetArray("a.floats")->floats, (std::vector<double>{0.5, -2.0}));
  EXPECT_EQ(f->GetArray("a.ints")->ints, (std::vector<int64_t>{-1, 3}));
  const GgufTensorInfo* q8 = f->FindTensor("t.q8");
  ASSERT_NE(q8, nullptr);
  std::vector<float> back(64);
  DequantizeRow(GgmlType::kQ8_0, q8->data + RowBytes(GgmlType::kQ8_0, 64), back.data(), 64);
  for (int i = 0; i < 64; ++i) EXPECT_NEAR(back[i], row[i], 0.02f);
  const GgufTensorInfo* f32 = f->FindTensor("t.f32");
  ASSERT_NE(f32, nullptr);
  EXPECT_EQ(f32->data[4 * 2 + 3], 0x40);  // 3.0f = 0x40400000
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  fs::remove(path);
}

// Runs a few tokens through the model at `path`: the logits are finite and not all equal.
void ExpectRuns(const std::string& path) {
  StatusOr<Model> model = Model::LoadOrError(path);
  ASSERT_TRUE(model.ok()) << model.status().message();
  StatusOr<Tokenizer> tok = Tokenizer::FromGguf(model->gguf());
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  EXPECT_EQ(tok->n_vocab(), model->config().n_vocab);
  ThreadPool pool(2);
  ContextParams cp;
  cp.n_ctx = 64;
  StatusOr<InferenceContext> ctx = InferenceContext::CreateOrError(*model, cp, &pool);
  ASSERT_TRUE(ctx.ok()) << ctx.status().message();
  std::vector<int32_t> prompt = tok->Encode("once upon a time", true, false);
  ASSERT_TRUE(ctx->Eval(prompt).ok());
  const int32_t next[] = {5};
  ASSERT_TRUE(ctx->Eval(next).ok());
  const float* logits = ctx->logits(0);
  float lo = INFINITY, hi = -INFINITY;
  for (int64_t i = 0; i < ctx->n_vocab(); ++i) {
    const float v = logits[i];
    ASSERT_TRUE(std::isfinite(v));
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  EXPECT_GT(hi - lo, 0.1f);
}

RandomModelSpec SmallSpec(const std::string& type) {
  RandomModelSpec s;
  s.n_embd = 256;
  s.n_layer = 8;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.n_ff = 512;
  s.n_vocab = 300;
  s.type = type;
  return s;
}

GgmlType TypeOf(const GgufFile& f, const std::string& tensor) { return f.FindTensor(tensor)->type; }

TEST(GgufWriterTest, RandomModelsOfEveryKQuantMixLoadAndRun) {
  for (const char* type : {"Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "Q5_K"}) {
    SCOPED_TRACE(type);
    const std::string path = TempPath(std::string(type) + ".gguf");
    Status st = WriteRandomModelOrError(SmallSpec(type), nullptr, path);
    ASSERT_TRUE(st.ok()) << st.message();
    ExpectRuns(path);
    fs::remove(path);
  }
}

TEST(GgufWriterTest, MixesFollowLlamaQuantize) {
  RandomModelSpec s = SmallSpec("Q4_K_M");
  auto type = [&](const std::string& name, int64_t layer) {
    return *TensorTypeOrError(s, name, layer);
  };
  EXPECT_EQ(type("output.weight", -1), GgmlType::kQ6_K);
  EXPECT_EQ(type("token_embd.weight", -1), GgmlType::kQ4_K);
  EXPECT_EQ(type("blk.0.attn_v.weight", 0), GgmlType::kQ6_K);  // first eighth
  EXPECT_EQ(type("blk.1.attn_v.weight", 1), GgmlType::kQ4_K);
  EXPECT_EQ(type("blk.3.ffn_down.weight", 3), GgmlType::kQ6_K);  // (3 - 1) % 3 == 2
  EXPECT_EQ(type("blk.7.ffn_down.weight", 7), GgmlType::kQ6_K);  // last eighth
  EXPECT_EQ(type("blk.2.ffn_up.weight", 2), GgmlType::kQ4_K);
  s.type = "Q2_K";
  EXPECT_EQ(type("blk.2.attn_output.weight", 2), GgmlType::kQ3_K);
  EXPECT_EQ(type("blk.2.attn_q.weight", 2), GgmlType::kQ2_K);
  s.type = "q3_k_m";
  EXPECT_EQ(type("blk.0.attn_v.weight", 0), GgmlType::kQ5_K);
  EXPECT_EQ(type("blk.5.attn_v.weight", 5), GgmlType::kQ4_K);
  s.type = "Q5_K";
  s.pure = true;
  EXPECT_EQ(type("output.weight", -1), GgmlType::kQ5_K);
  s.type = "Q9_K";
  StatusOr<GgmlType> bad = TensorTypeOrError(s, "output.weight", -1);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("unknown or unsupported type 'Q9_K'"), std::string::npos);
}

TEST(GgufWriterTest, TiedOutputReusesTheEmbeddingInTheOutputsType) {
  RandomModelSpec s = SmallSpec("Q4_K_M");
  s.tied_output = true;
  s.rope_freq_base = 500000.0f;
  const std::string path = TempPath("tied.gguf");
  Status st = WriteRandomModelOrError(s, nullptr, path);
  ASSERT_TRUE(st.ok()) << st.message();
  StatusOr<GgufFile> out = GgufFile::OpenOrError(path);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->FindTensor("output.weight"), nullptr);
  EXPECT_EQ(TypeOf(*out, "token_embd.weight"), GgmlType::kQ6_K);  // as llama-quantize's tied
  EXPECT_EQ(TypeOf(*out, "blk.2.ffn_up.weight"), GgmlType::kQ4_K);
  StatusOr<RandomModelSpec> back = SpecLikeOrError(*out);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_TRUE(back->tied_output);
  EXPECT_EQ(back->rope_freq_base, 500000.0f);
  ExpectRuns(path);
  fs::remove(path);
}

TEST(GgufWriterTest, LikeCopiesShapeAndTokenizer) {
  const std::string src = std::string(DM_SHARED_DIR) + "/models/stories260K.gguf";
  StatusOr<GgufFile> like = GgufFile::OpenOrError(src);
  ASSERT_TRUE(like.ok()) << like.status().message();
  StatusOr<RandomModelSpec> s = SpecLikeOrError(*like);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->n_embd, 64);
  EXPECT_EQ(s->n_vocab, 512);
  s->type = "Q5_K";  // rows of 64: falls back to Q8_0, as llama-quantize does
  s->n_vocab = 520;  // padded with control tokens
  const std::string path = TempPath("like.gguf");
  Status st = WriteRandomModelOrError(*s, &*like, path);
  ASSERT_TRUE(st.ok()) << st.message();
  StatusOr<GgufFile> out = GgufFile::OpenOrError(path);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(TypeOf(*out, "blk.0.attn_q.weight"), GgmlType::kQ8_0);
  EXPECT_EQ(out->GetArray("tokenizer.ggml.tokens")->strings[100],
            like->GetArray("tokenizer.ggml.tokens")->strings[100]);
  ExpectRuns(path);
  s->n_vocab = 100;  // smaller than the tokenizer
  st = WriteRandomModelOrError(*s, &*like, path);
  EXPECT_NE(st.message().find("do not fit a vocabulary of 100"), std::string::npos) << st.message();
  fs::remove(path);
}

TEST(GgufWriterTest, RefusesAbsurdShapes) {
  RandomModelSpec s = SmallSpec("Q8_0");
  s.n_head = 3;
  EXPECT_NE(WriteRandomModelOrError(s, nullptr, TempPath("x.gguf")).message().find("heads 3"),
            std::string::npos);
  s = SmallSpec("Q8_0");
  s.n_vocab = 10;
  EXPECT_NE(WriteRandomModelOrError(s, nullptr, TempPath("x.gguf")).message().find("too small"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(TempPath("x.gguf")));
}

}  // namespace
}  // namespace dormouse
