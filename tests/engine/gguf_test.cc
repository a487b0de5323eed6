// The GGUF reader on good files, and on corrupt and hostile ones: every failure must be
// an error naming the file and the problem, never a crash (these tests also run under
// AddressSanitizer + UBSan: `make test-sanitize`).
#include "engine/gguf.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "gguf_builder.h"

namespace dormouse {
namespace {

namespace fs = std::filesystem;
using testing_util::GgufBuilder;
const fs::path kShared = DM_SHARED_DIR;

std::vector<uint8_t> ReadBytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

StatusOr<GgufFile> Parse(const std::vector<uint8_t>& bytes) {
  return GgufFile::ParseBytesOrError(bytes.data(), bytes.size(), "test.gguf");
}

// Asserts the parse fails with a message that names the file and contains `needle`.
void ExpectError(const std::vector<uint8_t>& bytes, const std::string& needle) {
  StatusOr<GgufFile> g = Parse(bytes);
  ASSERT_FALSE(g.ok()) << "expected an error containing '" << needle << "'";
  EXPECT_EQ(g.status().message().rfind("test.gguf: ", 0), 0u) << g.status().message();
  EXPECT_NE(g.status().message().find(needle), std::string::npos) << g.status().message();
}

TEST(GgufTest, ParsesEveryValueTypeAndTensors) {
  std::vector<uint8_t> raw_i8_array;  // an int8 array and a nested array by hand
  GgufBuilder::PutString(raw_i8_array, "nested");
  GgufBuilder::Put(raw_i8_array, uint32_t{9});  // array
  GgufBuilder::Put(raw_i8_array, uint32_t{9});  // of arrays
  GgufBuilder::Put(raw_i8_array, uint64_t{1});
  GgufBuilder::Put(raw_i8_array, uint32_t{1});  // of int8
  GgufBuilder::Put(raw_i8_array, uint64_t{2});
  GgufBuilder::Put(raw_i8_array, int8_t{-3});
  GgufBuilder::Put(raw_i8_array, int8_t{4});
  std::vector<uint8_t> f64;
  GgufBuilder::PutString(f64, "f64");
  GgufBuilder::Put(f64, uint32_t{12});
  GgufBuilder::Put(f64, 2.5);
  std::vector<uint8_t> u64max;
  GgufBuilder::PutString(u64max, "u64max");
  GgufBuilder::Put(u64max, uint32_t{10});
  GgufBuilder::Put(u64max, ~uint64_t{0});

  GgufBuilder b;
  b.U32("general.alignment", 64)
      .Str("general.architecture", "llama")
      .I32("i32", -7)
      .U64("u64", 1ull << 40)
      .F32("f32", 0.5f)
      .Bool("flag", true)
      .StrArray("strs", {"a", "", "ccc"})
      .F32Array("floats", {1.0f, -2.0f})
      .I32Array("ints", {5, -6})
      .RawKv(raw_i8_array, 1)
      .RawKv(f64, 1)
      .RawKv(u64max, 1);
  b.F32Tensor("w", {2, 3}, {1, 2, 3, 4, 5, 6}).F32Tensor("v", {3}, {7, 8, 9});
  std::vector<uint8_t> bytes = b.Bytes();
  StatusOr<GgufFile> g = Parse(bytes);
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ(g->version(), 3u);
  EXPECT_EQ(g->alignment(), 64u);
  EXPECT_EQ(g->data_offset() % 64, 0u);
  EXPECT_EQ(*g->GetString("general.architecture").value(), "llama");
  EXPECT_EQ(*g->GetInt("i32").value(), -7);
  EXPECT_EQ(*g->GetInt("u64").value(), int64_t{1} << 40);
  EXPECT_FALSE(g->GetInt("u64max").ok());  // does not fit: an error, not a negative number
  EXPECT_DOUBLE_EQ(*g->GetFloat("f32").value(), 0.5);
  EXPECT_DOUBLE_EQ(*g->GetFloat("f64").value(), 2.5);
  EXPECT_DOUBLE_EQ(*g->GetFloat("i32").value(), -7.0);  // integers read as numbers
  EXPECT_TRUE(*g->GetBool("flag").value());
  EXPECT_FALSE(g->GetInt("absent").value().has_value());
  EXPECT_FALSE(g->GetInt("general.architecture").ok());  // wrong type is an error
  EXPECT_NE(g->GetInt("general.architecture").status().message().find("expected an integer"),
            std::string::npos);
  ASSERT_NE(g->GetArray("strs"), nullptr);
  EXPECT_EQ(g->GetArray("strs")->strings, (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_EQ(g->GetArray("floats")->floats, (std::vector<double>{1.0, -2.0}));
  EXPECT_EQ(g->GetArray("ints")->ints, (std::vector<int64_t>{5, -6}));
  const GgufArray* nested = g->GetArray("nested");
  ASSERT_NE(nested, nullptr);
  ASSERT_EQ(nested->arrays.size(), 1u);
  EXPECT_EQ(std::get<GgufArray>(nested->arrays[0].data).ints, (std::vector<int64_t>{-3, 4}));
  const GgufTensorInfo* w = g->FindTensor("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->dims, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(w->n_elements, 6u);
  EXPECT_EQ(w->n_bytes, 24u);
  float v[6];
  std::memcpy(v, w->data, sizeof v);
  EXPECT_EQ(v[5], 6.0f);
  const GgufTensorInfo* t2 = g->FindTensor("v");
  ASSERT_NE(t2, nullptr);
  EXPECT_EQ(t2->offset, 64u);
  std::memcpy(v, t2->data, 12);
  EXPECT_EQ(v[0], 7.0f);
}

TEST(GgufTest, ReadsSharedModelsAndVocabularies) {
  for (const auto& dir : {"models", "vocab"}) {
    for (const auto& e : fs::directory_iterator(kShared / dir)) {
      if (e.path().extension() != ".gguf") continue;
      StatusOr<GgufFile> g = GgufFile::OpenOrError(e.path().string());
      ASSERT_TRUE(g.ok()) << g.status().message();
      EXPECT_TRUE(g->GetString("general.architecture").value().has_value()) << e.path();
      EXPECT_NE(g->GetArray("tokenizer.ggml.tokens"), nullptr) << e.path();
      if (std::string(dir) == "models") {
        EXPECT_FALSE(g->tensors().empty()) << e.path();
      }
    }
  }
}

TEST(GgufTest, RefusesBadMagicVersionAndEmptyFile) {
  ExpectError({}, "truncated");
  ExpectError({'G', 'G', 'U', 'F'}, "truncated");
  std::vector<uint8_t> notgguf(64, 'x');
  ExpectError(notgguf, "not a GGUF file");
  ExpectError(GgufBuilder(1).Bytes(), "unsupported GGUF version 1 (supported: 2, 3)");
  ExpectError(GgufBuilder(7).Bytes(), "unsupported GGUF version 7");
  EXPECT_TRUE(Parse(GgufBuilder(2).Bytes()).ok());
}

TEST(GgufTest, RefusesOversizedCountsAndStrings) {
  ExpectError(GgufBuilder().OverrideCounts(0, ~uint64_t{0}).Bytes(), "metadata count");
  ExpectError(GgufBuilder().OverrideCounts(1ull << 60, 0).Bytes(), "tensor count");
  std::vector<uint8_t> key;
  GgufBuilder::Put(key, uint64_t{1} << 62);  // key length
  GgufBuilder::Put(key, uint64_t{0});        // a few bytes, so the count itself is plausible
  ExpectError(GgufBuilder().RawKv(key, 1).Bytes(), "absurd length");
  std::vector<uint8_t> longstr;
  GgufBuilder::PutString(longstr, "k");
  GgufBuilder::Put(longstr, uint32_t{8});
  GgufBuilder::Put(longstr, uint64_t{1000});  // string longer than the file
  ExpectError(GgufBuilder().RawKv(longstr, 1).Bytes(), "truncated");
  std::vector<uint8_t> arr;
  GgufBuilder::PutString(arr, "tokenizer.ggml.tokens");
  GgufBuilder::Put(arr, uint32_t{9});
  GgufBuilder::Put(arr, uint32_t{8});
  GgufBuilder::Put(arr, uint64_t{1} << 61);  // 2^61 strings
  ExpectError(GgufBuilder().RawKv(arr, 1).Bytes(), "runs past the end");
  std::vector<uint8_t> badtype;
  GgufBuilder::PutString(badtype, "k");
  GgufBuilder::Put(badtype, uint32_t{99});
  ExpectError(GgufBuilder().RawKv(badtype, 1).Bytes(), "invalid value type 99");
  std::vector<uint8_t> badbool;
  GgufBuilder::PutString(badbool, "k");
  GgufBuilder::Put(badbool, uint32_t{7});
  GgufBuilder::Put(badbool, uint8_t{2});
  ExpectError(GgufBuilder().RawKv(badbool, 1).Bytes(), "neither 0 nor 1");
}

TEST(GgufTest, RefusesDeepNestingAndDuplicates) {
  std::vector<uint8_t> deep;
  GgufBuilder::PutString(deep, "deep");
  GgufBuilder::Put(deep, uint32_t{9});
  for (int i = 0; i < 10; ++i) {
    GgufBuilder::Put(deep, uint32_t{9});
    GgufBuilder::Put(deep, uint64_t{1});
  }
  ExpectError(GgufBuilder().RawKv(deep, 1).Bytes(), "nested too deeply");
  ExpectError(GgufBuilder().U32("a", 1).U32("a", 2).Bytes(), "duplicate metadata key 'a'");
  GgufBuilder dup;
  dup.F32Tensor("t", {1}, {1}).F32Tensor("t", {1}, {2});
  ExpectError(dup.Bytes(), "duplicate tensor name 't'");
}

TEST(GgufTest, RefusesBadTensorInfos) {
  ExpectError(GgufBuilder().TensorInfo("t", {4}, 0, 0).Bytes(), "not within the file");
  ExpectError(GgufBuilder().TensorInfo("t", {4}, 0, 1ull << 63).Bytes(), "not within the file");
  ExpectError(GgufBuilder().TensorInfo("t", {4}, 0, ~uint64_t{0} - 31).Bytes(), "");
  ExpectError(GgufBuilder().TensorInfo("t", {4}, 0, 3).Bytes(), "not aligned");
  ExpectError(GgufBuilder().TensorInfo("t", {1ull << 40, 1ull << 40}, 0, 0).Bytes(),
              "absurd dimension");
  ExpectError(GgufBuilder().TensorInfo("t", {0}, 0, 0).Bytes(), "absurd dimension 0");
  ExpectError(GgufBuilder().TensorInfo("t", {1, 1, 1, 1, 1}, 0, 0).Bytes(), "5 dimensions");
  ExpectError(GgufBuilder().TensorInfo("t", {32}, 16, 0).Bytes(),
              "tensor 't': has unsupported type type 16 (IQ2_XXS) (supported: F32, F16, BF16, "
              "Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS)");
  ExpectError(GgufBuilder().TensorInfo("t", {32}, 1234, 0).Bytes(), "type 1234 (unknown)");
  ExpectError(GgufBuilder().TensorInfo("t", {33}, 8, 0).Bytes(), "not a multiple of Q8_0's");
  ExpectError(GgufBuilder().U32("general.alignment", 3).Bytes(), "not a power of two");
  ExpectError(GgufBuilder().U32("general.alignment", 0).Bytes(), "not a power of two");
  ExpectError(GgufBuilder().Str("general.alignment", "x").Bytes(), "not an integer");
}

TEST(GgufTest, TruncatedAtEveryHeaderOffsetAndSampledDataOffsets) {
  const fs::path path = kShared / "models" / "stories260K.gguf";
  const std::vector<uint8_t> full = ReadBytes(path);
  StatusOr<GgufFile> good = Parse(full);
  ASSERT_TRUE(good.ok()) << good.status().message();
  const uint64_t header = good->data_offset();
  for (uint64_t cut = 0; cut < full.size(); cut += cut < header ? 1 : 997) {
    std::vector<uint8_t> part(full.begin(), full.begin() + static_cast<int64_t>(cut));
    StatusOr<GgufFile> g = Parse(part);
    ASSERT_FALSE(g.ok()) << "cut at " << cut;
    const std::string& m = g.status().message();
    ASSERT_TRUE(m.find("truncated") != std::string::npos ||
                m.find("not within the file") != std::string::npos ||
                m.find("runs past the end") != std::string::npos ||
                m.find("impossible for a") != std::string::npos)
        << "cut at " << cut << ": " << m;
  }
}

TEST(GgufTest, RandomBytesAndMutatedHeadersNeverCrash) {
  std::mt19937_64 rng(1234);
  for (int i = 0; i < 2000; ++i) {  // pure noise, with and without the magic
    std::vector<uint8_t> bytes(rng() % 512);
    for (uint8_t& c : bytes) c = static_cast<uint8_t>(rng());
    if (i % 2 == 0 && bytes.size() >= 8) std::memcpy(bytes.data(), "GGUF\x03\0\0\0", 8);
    (void)Parse(bytes);
  }
  const std::vector<uint8_t> full = ReadBytes(kShared / "models" / "stories260K.gguf");
  const uint64_t header = Parse(full)->data_offset();
  int errors = 0;
  for (int i = 0; i < 3000; ++i) {  // a few flipped bytes in the metadata and tensor infos
    std::vector<uint8_t> bytes = full;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) bytes[rng() % header] ^= static_cast<uint8_t>(1 + rng() % 255);
    StatusOr<GgufFile> g = Parse(bytes);
    if (!g.ok()) {
      ++errors;
      EXPECT_EQ(g.status().message().rfind("test.gguf: ", 0), 0u);
    }
  }
  EXPECT_GT(errors, 0);
}

TEST(GgufTest, OpenNamesTheFile) {
  StatusOr<GgufFile> g = GgufFile::OpenOrError("/nonexistent/model.gguf");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("/nonexistent/model.gguf: cannot open"), std::string::npos);
  StatusOr<GgufFile> dir = GgufFile::OpenOrError("/tmp");
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.status().message().find("not a regular file"), std::string::npos);
}

}  // namespace
}  // namespace dormouse
