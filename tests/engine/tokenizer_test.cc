// The tokenizer against llama.cpp's vocabulary test vectors and reference prompts, the
// pre-tokenizer regexes per `tokenizer.ggml.pre`, streaming UTF-8 detokenization, and hostile
// vocabularies (these tests also run under AddressSanitizer + UBSan).
#include "engine/tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <stdexcept>

#include "engine/tokenizer/pre_tokenizer.h"
#include "engine/tokenizer/unicode.h"
#include "gguf_builder.h"

namespace dormouse {
namespace {

namespace fs = std::filesystem;
using testing_util::GgufBuilder;
using Ids = std::vector<int32_t>;
const fs::path kShared = DM_SHARED_DIR;

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// .inp: strings separated by "\n__ggml_vocab_test__\n" (the last one ends the file), as
// llama.cpp's test-tokenizer-0 reads them.
std::vector<std::string> ReadInputs(const fs::path& path) {
  const std::string text = ReadAll(path);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t next = text.find(sep, pos);
    if (next == std::string::npos) break;
    out.push_back(text.substr(pos, next - pos));
    pos = next + sep.size();
  }
  return out;
}

std::vector<Ids> ReadOutputs(const fs::path& path) {
  std::ifstream in(path);
  std::vector<Ids> out;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    Ids ids;
    int32_t id;
    while (ss >> id) ids.push_back(id);
    out.push_back(ids);
  }
  return out;
}

struct Loaded {
  GgufFile gguf;
  Tokenizer tok;
};

// Loads a shared file; a failure ends the test with the reason (gtest's fatal failure).
Loaded Load(const fs::path& path) {
  StatusOr<GgufFile> g = GgufFile::OpenOrError(path.string());
  if (!g.ok()) throw std::runtime_error(g.status().message());
  StatusOr<Tokenizer> t = Tokenizer::FromGguf(*g);
  if (!t.ok()) throw std::runtime_error(path.string() + ": " + t.status().message());
  return {std::move(g).value(), std::move(t).value()};
}

std::string Show(const Ids& ids) {
  std::string s;
  for (int32_t id : ids) s += " " + std::to_string(id);
  return s;
}

// ---- llama.cpp's vocabulary test vectors ----

class VocabTest : public ::testing::TestWithParam<std::string> {};

TEST_P(VocabTest, MatchesReferenceTokens) {
  const fs::path base = kShared / "vocab" / ("ggml-vocab-" + GetParam() + ".gguf");
  Loaded v = Load(base);
  const std::vector<std::string> inputs = ReadInputs(base.string() + ".inp");
  const std::vector<Ids> outputs = ReadOutputs(base.string() + ".out");
  ASSERT_EQ(inputs.size(), outputs.size());
  ASSERT_GT(inputs.size(), 40u);
  for (size_t i = 0; i < inputs.size(); ++i) {
    EXPECT_EQ(Show(v.tok.Encode(inputs[i], false, false)), Show(outputs[i]))
        << "string " << i << ": '" << inputs[i] << "'";
  }
}

TEST_P(VocabTest, RoundTrips) {
  const fs::path base = kShared / "vocab" / ("ggml-vocab-" + GetParam() + ".gguf");
  Loaded v = Load(base);
  for (const std::string& s : ReadInputs(base.string() + ".inp")) {
    EXPECT_EQ(v.tok.Decode(v.tok.Encode(s, false, false)), s);
    EXPECT_EQ(v.tok.Decode(v.tok.Encode(s, true, false)), s);
  }
}

INSTANTIATE_TEST_SUITE_P(All, VocabTest,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "deepseek-llm",
                                           "deepseek-coder", "mpt"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name) c = std::isalnum(c) ? c : '_';
                           return name;
                         });

TEST(TokenizerTest, KnownSequences) {
  Loaded stories = Load(kShared / "models/stories260K.gguf");
  EXPECT_EQ(stories.tok.Encode("Once upon a time", true, true), (Ids{1, 403, 407, 261, 378}));
  EXPECT_EQ(stories.tok.ModelName(), "llama (SentencePiece)");
  Loaded gpt2 = Load(kShared / "vocab/ggml-vocab-gpt-2.gguf");
  EXPECT_EQ(gpt2.tok.Encode("Hello world", true, true), (Ids{15496, 995}));
  EXPECT_EQ(gpt2.tok.ModelName(), "gpt2 (byte-level BPE, pre gpt-2)");
}

// ---- llama.cpp's tokens for the reference prompts (BOS per metadata, specials parsed) ----

TEST(TokenizerTest, ReferencePrompts) {
  int checked = 0;
  std::map<std::string, Loaded> models;
  for (const auto& entry : fs::directory_iterator(kShared / "reference/llama.cpp")) {
    const std::string stem = entry.path().stem().string();
    const size_t dash = stem.find("--");
    ASSERT_NE(dash, std::string::npos) << stem;
    const std::string model = stem.substr(0, dash);
    if (!models.contains(model))
      models.emplace(model, Load(kShared / "models" / (model + ".gguf")));
    const Loaded& m = models.at(model);
    const std::string prompt =
        ReadAll(kShared / "reference/prompts" / (stem.substr(dash + 2) + ".txt"));
    const nlohmann::json ref = nlohmann::json::parse(ReadAll(entry.path()));
    EXPECT_EQ(ref["prompt"].get<std::string>(), prompt) << stem;
    EXPECT_EQ(Show(m.tok.Encode(prompt, true, true)), Show(ref["tokens"].get<Ids>())) << stem;
    EXPECT_EQ(m.tok.n_vocab(), ref["n_vocab"].get<int32_t>()) << stem;
    ++checked;
  }
  EXPECT_EQ(checked, 35);
}

// ---- special tokens and flags ----

TEST(TokenizerTest, SpecialTokensSpm) {
  Loaded v = Load(kShared / "vocab/ggml-vocab-llama-spm.gguf");
  const Tokenizer& t = v.tok;
  EXPECT_EQ(t.bos(), 1);
  EXPECT_EQ(t.eos(), 2);
  EXPECT_TRUE(t.add_bos());
  EXPECT_FALSE(t.add_eos());
  EXPECT_TRUE(t.IsEog(2));
  EXPECT_TRUE(t.IsControl(1));
  EXPECT_FALSE(t.IsEog(1));
  // "<s>" parsed as BOS; the text after a special token gets its own leading space.
  const Ids parsed = t.Encode("<s>Hello", false, true);
  EXPECT_EQ(parsed, (Ids{1, t.Encode("Hello", false, false)[0]}));
  // Not parsed: the text "<s>" is spelled with ordinary tokens.
  const Ids literal = t.Encode("<s>Hello", false, false);
  EXPECT_EQ(std::count(literal.begin(), literal.end(), 1), 0);
  EXPECT_EQ(t.Decode(literal), "<s>Hello");
  EXPECT_EQ(t.Encode("", true, true), (Ids{1}));
  EXPECT_EQ(t.Encode("", false, true), (Ids{}));
}

TEST(TokenizerTest, SpecialTokensPhi3StripSpacesAfterThem) {
  Loaded v = Load(kShared / "vocab/ggml-vocab-phi-3.gguf");
  const Tokenizer& t = v.tok;
  const int32_t user = *t.FindToken("<|user|>");
  const int32_t end = *t.FindToken("<|end|>");
  EXPECT_TRUE(t.IsEog(end));
  EXPECT_TRUE(t.IsEog(t.eos()));  // <|endoftext|>
  const Ids ids = t.Encode("<|user|>\nHi<|end|>", false, true);
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), user);
  EXPECT_EQ(ids.back(), end);
  // The newline after <|user|> is stripped (rstrip), then " Hi" gets the SPM space prefix.
  EXPECT_EQ(Ids(ids.begin() + 1, ids.end() - 1), t.Encode("Hi", false, false));
}

TEST(TokenizerTest, SpecialTokensBpe) {
  Loaded v = Load(kShared / "models/qwen2-20m-q8_0.gguf");
  const Tokenizer& t = v.tok;
  EXPECT_FALSE(t.add_bos());
  EXPECT_EQ(t.eos(), 50256);
  EXPECT_TRUE(t.IsEog(50256));
  EXPECT_TRUE(t.IsControl(50256));
  EXPECT_EQ(t.Encode("a<|endoftext|>b", false, true), (Ids{64, 50256, 65}));
  const Ids literal = t.Encode("a<|endoftext|>b", false, false);
  EXPECT_GT(literal.size(), 3u);
  EXPECT_EQ(t.Decode(literal), "a<|endoftext|>b");
  EXPECT_EQ(t.DecodeToken(50256), "");  // control tokens print nothing
  EXPECT_EQ(t.TokenText(50256), "<|endoftext|>");
}

TEST(TokenizerTest, UserDefinedTokensMatchWithoutParseSpecial) {
  Loaded v = Load(kShared / "vocab/ggml-vocab-mpt.gguf");
  const std::optional<int32_t> spaces = v.tok.FindToken("   ");
  ASSERT_TRUE(spaces.has_value());
  EXPECT_EQ(v.tok.Encode("a   b", false, false)[1], *spaces);
}

// ---- detokenization ----

TEST(TokenizerTest, DecodeTokenBytesAndSpaces) {
  Loaded spm = Load(kShared / "vocab/ggml-vocab-llama-spm.gguf");
  EXPECT_EQ(spm.tok.DecodeToken(*spm.tok.FindToken("<0x41>")), "A");
  EXPECT_EQ(spm.tok.DecodeToken(*spm.tok.FindToken("\xE2\x96\x81Hello")), " Hello");
  EXPECT_EQ(spm.tok.DecodeToken(1), "");
  Loaded gpt2 = Load(kShared / "vocab/ggml-vocab-gpt-2.gguf");
  EXPECT_EQ(gpt2.tok.DecodeToken(18435), " Hello");
  EXPECT_EQ(gpt2.tok.DecodeToken(198), "\n");
  for (int32_t bad : {-1, -100, 50257, 1 << 30}) {
    EXPECT_EQ(gpt2.tok.DecodeToken(bad), "");
    EXPECT_EQ(gpt2.tok.TokenText(bad), "");
    EXPECT_FALSE(gpt2.tok.IsEog(bad));
    EXPECT_FALSE(gpt2.tok.IsControl(bad));
    EXPECT_EQ(gpt2.tok.Decode(Ids{bad, 15496}), "Hello");
  }
}

TEST(StreamDecoderTest, SplitCharacterComesOutWholeOnce) {
  Loaded v = Load(kShared / "vocab/ggml-vocab-llama-spm.gguf");
  const int32_t c3 = *v.tok.FindToken("<0xC3>");
  const int32_t a9 = *v.tok.FindToken("<0xA9>");
  StreamDecoder d(v.tok);
  EXPECT_EQ(d.Push(*v.tok.FindToken("\xE2\x96\x81"
                                    "c")),
            " c");
  EXPECT_EQ(d.Push(c3), "");
  EXPECT_EQ(d.Push(a9), "\xC3\xA9");
  EXPECT_EQ(d.Flush(), "");
  // A lone lead byte becomes U+FFFD at Flush; a byte no token could complete, at once.
  EXPECT_EQ(d.Push(c3), "");
  EXPECT_EQ(d.Flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(d.Push(a9), "\xEF\xBF\xBD");
  EXPECT_EQ(d.Push(c3), "");
  EXPECT_EQ(d.Push(*v.tok.FindToken("<0x41>")),
            "\xEF\xBF\xBD"
            "A");
}

TEST(StreamDecoderTest, EmojiAcrossByteLevelTokens) {
  Loaded v = Load(kShared / "vocab/ggml-vocab-gpt-2.gguf");
  const std::string emoji = "\xF0\x9F\xA6\x99";  // U+1F999
  StreamDecoder d(v.tok);
  std::string streamed;
  for (size_t i = 0; i < emoji.size(); ++i) {
    const std::string piece = tokenizer_internal::BytesToUnicode(emoji.substr(i, 1));
    const std::string out = d.Push(*v.tok.FindToken(piece));
    EXPECT_EQ(out.empty(), i + 1 < emoji.size()) << i;
    streamed += out;
  }
  EXPECT_EQ(streamed + d.Flush(), emoji);
  // Whole-text round trip through the stream equals Decode.
  const std::string text = "Hello 🦙 wörld 日本";
  StreamDecoder d2(v.tok);
  std::string all;
  for (int32_t id : v.tok.Encode(text, false, false)) all += d2.Push(id);
  EXPECT_EQ(all + d2.Flush(), text);
}

// ---- pre-tokenizers: the splits llama.cpp's regexes produce ----

using Words = std::vector<std::string>;

Words Split(std::string_view pre, std::string_view text) {
  std::optional<tokenizer_internal::PreTokenizerSpec> spec =
      tokenizer_internal::FindPreTokenizer(pre);
  EXPECT_TRUE(spec.has_value()) << pre;
  if (!spec.has_value()) return {};
  StatusOr<tokenizer_internal::PreTokenizer> p =
      tokenizer_internal::PreTokenizer::Compile(spec->regexes);
  EXPECT_TRUE(p.ok()) << p.status().message();
  Words out;
  for (std::string_view w : p->Split(text)) out.emplace_back(w);
  return out;
}

const char kMixed[] = "I've 12345 cats!!  ok";

TEST(PreTokenizerTest, Gpt2Family) {
  const Words want = {"I", "'ve", " 12345", " cats", "!!", " ", " ok"};
  for (const char* pre : {"gpt-2", "mpt", "olmo", "phi-2"}) EXPECT_EQ(Split(pre, kMixed), want);
  EXPECT_EQ(Split("gpt-2", "日本語 😀 ok"), (Words{"日本語", " 😀", " ok"}));
  EXPECT_EQ(Split("gpt-2", "a  \n"), (Words{"a", "  \n"}));
  EXPECT_EQ(Split("gpt-2", "\tHi"), (Words{"\t", "Hi"}));
}

TEST(PreTokenizerTest, Llama3Family) {
  const Words want = {"I", "'ve", " ", "123", "45", " cats", "!!", " ", " ok", "\n\n", " x"};
  for (const char* pre : {"llama3", "llama-bpe", "dbrx", "smaug-bpe"}) {
    EXPECT_EQ(Split(pre, std::string(kMixed) + "\n\n x"), want) << pre;
  }
  EXPECT_EQ(Split("llama-bpe", "I'VE 😀😀 ok"), (Words{"I", "'VE", " 😀😀", " ok"}));
  EXPECT_EQ(Split("llama-bpe", "日本語"), (Words{"日本語"}));
}

TEST(PreTokenizerTest, Qwen2SplitsEveryDigit) {
  EXPECT_EQ(Split("qwen2", kMixed),
            (Words{"I", "'ve", " ", "1", "2", "3", "4", "5", " cats", "!!", " ", " ok"}));
  EXPECT_EQ(Split("qwen2", "x=1;\r\n\r\ny"), (Words{"x", "=", "1", ";\r\n\r\n", "y"}));
  EXPECT_EQ(Split("qwen2", "你好，世界"), (Words{"你好", "，世界"}));
}

TEST(PreTokenizerTest, StarcoderFamilySplitsDigitsFirst) {
  const Words want = {"I", "'ve", " ", "1", "2", "3", "4", "5", " cats", "!!", " ", " ok"};
  for (const char* pre : {"starcoder", "refact", "smollm", "command-r"}) {
    EXPECT_EQ(Split(pre, kMixed), want) << pre;
  }
}

TEST(PreTokenizerTest, FalconAndDefault) {
  const Words want = {"I", "'", "ve", " ", "123", "45", " cats", "!!", " ", " ok"};
  EXPECT_EQ(Split("falcon", kMixed), want);
  EXPECT_EQ(Split("default", kMixed), want);
  EXPECT_EQ(Split("", kMixed), want);
  // Only falcon puts the backtick in its first class.
  EXPECT_EQ(Split("falcon", "a`!b"), (Words{"a", "`!", "b"}));
  EXPECT_EQ(Split("default", "a`!b"), (Words{"a", "`", "!", "b"}));
}

TEST(PreTokenizerTest, Deepseek) {
  EXPECT_EQ(Split("deepseek-coder", kMixed),
            (Words{"I", "'", "ve", " ", "1", "2", "3", "4", "5", " cats", "!!", " ", " ok"}));
  EXPECT_EQ(Split("deepseek-llm", kMixed),
            (Words{"I", "'", "ve", " ", "12345", " cats", "!!", " ", " ok"}));
  EXPECT_EQ(Split("deepseek-llm", "你好world 한국"), (Words{"你好", "world", " ", "한국"}));
  EXPECT_EQ(Split("deepseek-coder", "a\nb"), (Words{"a", "\n", "b"}));
}

TEST(PreTokenizerTest, EveryKnownNameCompilesAndCoversTheText) {
  const std::string text = "Hello, WORLD's 2024 日本語 — 😀\n\n  x\t<sentinel:1> IMGIMGAZ";
  for (const char* pre :
       {"default",   "llama3",      "llama-v3",   "llama-bpe",    "falcon3",         "dbrx",
        "smaug-bpe", "chatglm-bpe", "glm4",       "deepseek-llm", "deepseek-coder",  "deepseek-v3",
        "falcon",    "mpt",         "gpt-2",      "starcoder",    "refact",          "command-r",
        "smollm",    "codeshell",   "exaone",     "qwen2",        "stablelm2",       "olmo",
        "poro-chat", "bloom",       "viking",     "jais",         "tekken",          "gpt-4o",
        "llama4",    "chameleon",   "minerva-7b", "megrez",       "deepseek-r1-qwen"}) {
    std::string joined;
    for (const std::string& w : Split(pre, text)) {
      EXPECT_FALSE(w.empty()) << pre;
      joined += w;
    }
    EXPECT_EQ(joined, text) << pre;
  }
  EXPECT_FALSE(tokenizer_internal::FindPreTokenizer("no-such-pre").has_value());
}

// ---- hostile vocabularies ----

struct Built {
  std::vector<uint8_t> bytes;
  StatusOr<GgufFile> gguf = Status::Error("unparsed");
};

std::unique_ptr<Built> Parse(const GgufBuilder& b) {
  auto built = std::make_unique<Built>();
  built->bytes = b.Bytes();
  built->gguf = GgufFile::ParseBytesOrError(built->bytes.data(), built->bytes.size(), "t.gguf");
  EXPECT_TRUE(built->gguf.ok()) << built->gguf.status().message();
  return built;
}

std::string LoadError(const GgufBuilder& b) {
  std::unique_ptr<Built> built = Parse(b);
  if (!built->gguf.ok()) return "gguf: " + built->gguf.status().message();
  StatusOr<Tokenizer> t = Tokenizer::FromGguf(*built->gguf);
  return t.ok() ? "" : t.status().message();
}

const std::vector<std::string> kSmallVocab = {"<unk>", "<s>", "</s>",        "a",
                                              "b",     "ab",  "\xE2\x96\x81"};

GgufBuilder SmallSpm() {
  GgufBuilder b;
  b.Str("tokenizer.ggml.model", "llama").StrArray("tokenizer.ggml.tokens", kSmallVocab);
  return b;
}

TEST(TokenizerHostileTest, MissingOrMalformedArrays) {
  EXPECT_NE(
      LoadError(GgufBuilder().Str("tokenizer.ggml.model", "llama")).find("tokenizer.ggml.tokens"),
      std::string::npos);
  EXPECT_NE(LoadError(GgufBuilder()
                          .Str("tokenizer.ggml.model", "llama")
                          .I32Array("tokenizer.ggml.tokens", {1, 2}))
                .find("not an array of strings"),
            std::string::npos);
  EXPECT_NE(LoadError(SmallSpm().F32Array("tokenizer.ggml.scores", {1, 2})).find("scores"),
            std::string::npos);
  EXPECT_NE(LoadError(SmallSpm().I32Array("tokenizer.ggml.token_type", {1})).find("token_type"),
            std::string::npos);
  EXPECT_NE(LoadError(SmallSpm().StrArray("tokenizer.ggml.scores", kSmallVocab)).find("scores"),
            std::string::npos);
  EXPECT_NE(LoadError(GgufBuilder()
                          .Str("tokenizer.ggml.model", "llama")
                          .StrArray("tokenizer.ggml.tokens", {"a", "b", "a"}))
                .find("duplicates"),
            std::string::npos);
  EXPECT_NE(
      LoadError(
          GgufBuilder().Str("tokenizer.ggml.model", "llama").StrArray("tokenizer.ggml.tokens", {}))
          .find("0 tokens"),
      std::string::npos);
  EXPECT_NE(LoadError(GgufBuilder().StrArray("tokenizer.ggml.tokens", kSmallVocab))
                .find("tokenizer.ggml.model"),
            std::string::npos);
}

TEST(TokenizerHostileTest, BadIdsAndModel) {
  EXPECT_NE(LoadError(SmallSpm().U32("tokenizer.ggml.bos_token_id", 7)).find("bos_token_id = 7"),
            std::string::npos);
  EXPECT_NE(LoadError(SmallSpm().U32("tokenizer.ggml.eos_token_id", 4000000000u)).find("eos"),
            std::string::npos);
  EXPECT_NE(LoadError(SmallSpm().Str("tokenizer.ggml.bos_token_id", "1")).find("bos_token_id"),
            std::string::npos);
  const std::string err = LoadError(GgufBuilder()
                                        .Str("tokenizer.ggml.model", "bert")
                                        .StrArray("tokenizer.ggml.tokens", kSmallVocab));
  EXPECT_NE(err.find("'bert'"), std::string::npos) << err;
  EXPECT_NE(err.find("llama, gpt2"), std::string::npos) << err;
  // -1 spelled as uint32 means "none" (stories260K's padding id); unk out of range is ignored.
  EXPECT_EQ(LoadError(SmallSpm()
                          .U32("tokenizer.ggml.bos_token_id", 0xFFFFFFFFu)
                          .U32("tokenizer.ggml.unknown_token_id", 99)),
            "");
}

GgufBuilder SmallBpe(const std::vector<std::string>& merges) {
  GgufBuilder b;
  b.Str("tokenizer.ggml.model", "gpt2")
      .Str("tokenizer.ggml.pre", "gpt-2")
      .StrArray("tokenizer.ggml.tokens", {"a", "b", "ab", "Ġ", "Ġa"})
      .StrArray("tokenizer.ggml.merges", merges);
  return b;
}

TEST(TokenizerHostileTest, Merges) {
  EXPECT_EQ(LoadError(SmallBpe({"a b", "Ġ a"})), "");
  EXPECT_NE(LoadError(SmallBpe({"a b", "ab"})).find("merges[1]"), std::string::npos);
  EXPECT_NE(LoadError(SmallBpe({"a "})).find("merges[0]"), std::string::npos);
  EXPECT_NE(LoadError(SmallBpe({""})).find("merges[0]"), std::string::npos);
  GgufBuilder no_merges;
  no_merges.Str("tokenizer.ggml.model", "gpt2").StrArray("tokenizer.ggml.tokens", {"a"});
  EXPECT_NE(LoadError(no_merges).find("merges"), std::string::npos);
  GgufBuilder int_merges;
  int_merges.Str("tokenizer.ggml.model", "gpt2")
      .StrArray("tokenizer.ggml.tokens", {"a"})
      .I32Array("tokenizer.ggml.merges", {1});
  EXPECT_NE(LoadError(int_merges).find("merges"), std::string::npos);
}

TEST(TokenizerHostileTest, UnknownPreFallsBackToGpt2WithOneWarning) {
  GgufBuilder b;
  b.Str("tokenizer.ggml.model", "gpt2")
      .Str("tokenizer.ggml.pre", "martian")
      .StrArray("tokenizer.ggml.tokens", {"a", "b", "ab", "Ġ", "Ġa"})
      .StrArray("tokenizer.ggml.merges", {"a b", "Ġ a"});
  std::unique_ptr<Built> built = Parse(b);
  ::testing::internal::CaptureStderr();
  StatusOr<Tokenizer> t = Tokenizer::FromGguf(*built->gguf);
  const std::string warning = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_NE(warning.find("martian"), std::string::npos);
  EXPECT_EQ(std::count(warning.begin(), warning.end(), '\n'), 1);
  EXPECT_NE(t->ModelName().find("martian"), std::string::npos);
  EXPECT_EQ(t->Encode("ab a", false, false), (Ids{2, 4}));
  EXPECT_FALSE(t->add_bos());
  EXPECT_EQ(t->bos(), -1);
}

TEST(TokenizerHostileTest, OddVocabulariesEncodeWithoutCrashing) {
  // Empty token texts, no byte tokens, NaN scores, token types out of range.
  GgufBuilder b;
  b.Str("tokenizer.ggml.model", "llama")
      .StrArray("tokenizer.ggml.tokens", {"", "x", "", "\xE2\x96\x81x", "\xFF"})
      .F32Array("tokenizer.ggml.scores", {0, 1, 2, std::nanf(""), -1})
      .I32Array("tokenizer.ggml.token_type", {3, 1, 99, 1, -5});
  std::unique_ptr<Built> built = Parse(b);
  StatusOr<Tokenizer> t = Tokenizer::FromGguf(*built->gguf);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->TokenText(0), "[EMPTY_0]");
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    std::string s(rng() % 16, '\0');
    for (char& c : s) c = "x \xFF\xE2\x96\x81[<EMPTY_0]>"[rng() % 14];
    for (int32_t id : t->Encode(s, true, true)) EXPECT_LT(id, t->n_vocab());
  }
}

TEST(TokenizerHostileTest, InvalidUtf8InBpeBecomesReplacementCharacter) {
  Loaded v = Load(kShared / "vocab/ggml-vocab-gpt-2.gguf");
  const Ids bad = v.tok.Encode("a\xFF\xC3", false, false);
  EXPECT_EQ(v.tok.Decode(bad), "a\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(TokenizerTest, LongInputsStayFast) {
  Loaded v = Load(kShared / "vocab/ggml-vocab-gpt-2.gguf");
  // One 60k-character "word" and a 60k run of spaces: no quadratic blowup.
  const std::string word(60000, 'x');
  const std::string spaces(60000, ' ');
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(v.tok.Decode(v.tok.Encode(word + spaces + "y", false, false)), word + spaces + "y");
  Loaded spm = Load(kShared / "vocab/ggml-vocab-llama-spm.gguf");
  EXPECT_EQ(spm.tok.Decode(spm.tok.Encode(word, false, false)), word);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 20.0);
}

}  // namespace
}  // namespace dormouse
