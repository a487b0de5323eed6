#include "engine/random_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <optional>
#include <vector>

#include "engine/gguf.h"
#include "engine/gguf_writer.h"
#include "engine/model_config.h"
#include "engine/quants.h"

namespace dormouse {
namespace {

// llama-quantize's file types this writer mixes, with their base tensor type.
struct Mix {
  const char* name;
  GgmlType base;
};
constexpr Mix kMixes[] = {
    {"Q2_K", GgmlType::kQ2_K},   {"Q3_K_S", GgmlType::kQ3_K}, {"Q3_K_M", GgmlType::kQ3_K},
    {"Q3_K_L", GgmlType::kQ3_K}, {"Q3_K", GgmlType::kQ3_K},   {"Q4_K_S", GgmlType::kQ4_K},
    {"Q4_K_M", GgmlType::kQ4_K}, {"Q4_K", GgmlType::kQ4_K},   {"Q5_K_S", GgmlType::kQ5_K},
    {"Q5_K_M", GgmlType::kQ5_K}, {"Q5_K", GgmlType::kQ5_K},   {"Q6_K", GgmlType::kQ6_K},
};

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::optional<GgmlType> TypeByName(const std::string& name) {
  for (uint32_t id = 0; id < 64; ++id) {
    if (auto t = TraitsOf(id); t && name == t->name) return static_cast<GgmlType>(id);
  }
  return std::nullopt;
}

// llama.cpp's use_more_bits: the first and last eighth of the layers, and every third.
bool MoreBits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

bool EndsWith(const std::string& s, const char* suffix) {
  const size_t n = std::char_traits<char>::length(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// The mixed type of one tensor (llama.cpp's llama_tensor_get_type for the llama family,
// without its GQA and MoE special cases).
GgmlType MixedType(const std::string& mix, GgmlType base, const std::string& tensor, int64_t layer,
                   int64_t n_layer) {
  const bool m = mix == "Q4_K_M" || mix == "Q5_K_M" || mix == "Q4_K" || mix == "Q5_K";
  const bool q3m = mix == "Q3_K_M" || mix == "Q3_K";
  if (tensor == "output.weight") return GgmlType::kQ6_K;
  if (EndsWith(tensor, "attn_v.weight")) {
    if (mix == "Q2_K") return GgmlType::kQ3_K;
    if (q3m) return layer < 2 ? GgmlType::kQ5_K : GgmlType::kQ4_K;
    if (mix == "Q3_K_L") return GgmlType::kQ5_K;
    if (m && MoreBits(layer, n_layer)) return GgmlType::kQ6_K;
  } else if (EndsWith(tensor, "ffn_down.weight")) {
    if (mix == "Q2_K") return GgmlType::kQ3_K;
    if (q3m) return layer < n_layer / 16 ? GgmlType::kQ5_K : GgmlType::kQ4_K;
    if (mix == "Q3_K_L") return GgmlType::kQ5_K;
    if (m && MoreBits(layer, n_layer)) return GgmlType::kQ6_K;
  } else if (EndsWith(tensor, "attn_output.weight")) {
    if (mix == "Q2_K") return GgmlType::kQ3_K;
    if (q3m) return GgmlType::kQ4_K;
    if (mix == "Q3_K_L") return GgmlType::kQ5_K;
  }
  return base;
}

// Deterministic per-tensor stream of approximately normal floats (sum of 4 uniforms),
// cheap enough for billion-weight files.
class Noise {
 public:
  Noise(uint64_t seed, const std::string& name) : s_(seed * 0x9e3779b97f4a7c15ull) {
    for (char c : name) s_ = (s_ ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  }
  float Next() {
    uint64_t z = Mix64();
    float sum = 0.0f;
    for (int i = 0; i < 4; ++i, z >>= 16) sum += static_cast<float>(z & 0xffff);
    return (sum / 65535.0f - 2.0f) * 1.7320508f;  // unit variance
  }

 private:
  uint64_t Mix64() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint64_t s_;
};

// A matrix of `rows` rows of `n` elements, each row of unit norm on average.
Status AddMatrix(GgufWriter& w, const RandomModelSpec& s, const std::string& name, int64_t n,
                 int64_t rows, int64_t layer) {
  DM_ASSIGN_OR_RETURN(GgmlType type, TensorTypeOrError(s, name, layer));
  if (n % TraitsOf(type).block_elems != 0) type = GgmlType::kQ8_0;  // as llama.cpp falls back
  if (n % TraitsOf(type).block_elems != 0) type = GgmlType::kF16;
  const uint64_t seed = s.seed;
  return w.AddTensorOrError(name, {n, rows}, type, [=](uint8_t* dst) {
    Noise noise(seed, name);
    std::vector<float> row(static_cast<size_t>(n));
    const float sigma = 1.0f / std::sqrt(static_cast<float>(n));
    const size_t row_bytes = RowBytes(type, n);
    for (int64_t r = 0; r < rows; ++r) {
      for (float& x : row) x = sigma * noise.Next();
      QuantizeRow(type, row.data(), dst + static_cast<size_t>(r) * row_bytes, n);
    }
  });
}

Status AddNorm(GgufWriter& w, const RandomModelSpec& s, const std::string& name) {
  const int64_t n = s.n_embd;
  const uint64_t seed = s.seed;
  return w.AddTensorOrError(name, {n}, GgmlType::kF32, [=](uint8_t* dst) {
    Noise noise(seed, name);
    for (int64_t i = 0; i < n; ++i) {
      float v = 1.0f + 0.1f * noise.Next();
      std::memcpy(dst + 4 * i, &v, 4);
    }
  });
}

Status AddTensors(GgufWriter& w, const RandomModelSpec& s) {
  const int64_t head_dim = s.n_embd / s.n_head, kv = head_dim * s.n_head_kv;
  DM_RETURN_IF_ERROR(AddMatrix(w, s, "token_embd.weight", s.n_embd, s.n_vocab, -1));
  DM_RETURN_IF_ERROR(AddNorm(w, s, "output_norm.weight"));
  if (!s.tied_output) {
    DM_RETURN_IF_ERROR(AddMatrix(w, s, "output.weight", s.n_embd, s.n_vocab, -1));
  }
  for (int64_t i = 0; i < s.n_layer; ++i) {
    const std::string p = fmt::format("blk.{}.", i);
    DM_RETURN_IF_ERROR(AddNorm(w, s, p + "attn_norm.weight"));
    DM_RETURN_IF_ERROR(AddMatrix(w, s, p + "attn_q.weight", s.n_embd, s.n_embd, i));
    DM_RETURN_IF_ERROR(AddMatrix(w, s, p + "attn_k.weight", s.n_embd, kv, i));
    DM_RETURN_IF_ERROR(AddMatrix(w, s, p + "attn_v.weight", s.n_embd, kv, i));
    DM_RETURN_IF_ERROR(AddMatrix(w, s, p + "attn_output.weight", s.n_embd, s.n_embd, i));
    DM_RETURN_IF_ERROR(AddNorm(w, s, p + "ffn_norm.weight"));
    DM_RETURN_IF_ERROR(AddMatrix(w, s, p + "ffn_gate.weight", s.n_embd, s.n_ff, i));
    DM_RETURN_IF_ERROR(AddMatrix(w, s, p + "ffn_up.weight", s.n_embd, s.n_ff, i));
    DM_RETURN_IF_ERROR(AddMatrix(w, s, p + "ffn_down.weight", s.n_ff, s.n_embd, i));
  }
  return Status::Ok();
}

// "▁" + a distinct lowercase word for each k.
std::string SyntheticPiece(int64_t k) {
  std::string word;
  do {
    word.insert(word.begin(), static_cast<char>('a' + k % 26));
    k = k / 26 - 1;
  } while (k >= 0);
  return "\xe2\x96\x81" + word;
}

Status AddSyntheticTokenizer(GgufWriter& w, int64_t n_vocab) {
  if (n_vocab < 260) {
    return Status::Errorf("vocabulary of {} is too small for the synthetic tokenizer (>= 260)",
                          n_vocab);
  }
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int32_t> types = {2, 3, 3};  // unknown, control, control
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(fmt::format("<0x{:02X}>", b));
    types.push_back(6);  // byte
  }
  for (int64_t k = 0; static_cast<int64_t>(tokens.size()) < n_vocab; ++k) {
    tokens.push_back(SyntheticPiece(k));
    types.push_back(1);
  }
  std::vector<float> scores(tokens.size());
  for (size_t i = 0; i < scores.size(); ++i) scores[i] = -static_cast<float>(i);
  w.Str("tokenizer.ggml.model", "llama");
  w.StrArray("tokenizer.ggml.tokens", tokens);
  w.F32Array("tokenizer.ggml.scores", scores);
  w.I32Array("tokenizer.ggml.token_type", types);
  w.U32("tokenizer.ggml.unknown_token_id", 0);
  w.U32("tokenizer.ggml.bos_token_id", 1);
  w.U32("tokenizer.ggml.eos_token_id", 2);
  return Status::Ok();
}

// `tokenizer.*` of `src`, its vocabulary padded with control tokens up to n_vocab.
Status CopyTokenizer(GgufWriter& w, const GgufFile& src, int64_t n_vocab) {
  const GgufArray* tokens = src.GetArray("tokenizer.ggml.tokens");
  if (tokens == nullptr || tokens->elem_type != GgufValueType::kString) {
    return Status::Errorf("{}: has no tokenizer.ggml.tokens to copy", src.path());
  }
  const int64_t have = static_cast<int64_t>(tokens->strings.size());
  if (have > n_vocab) {
    return Status::Errorf("{}: its {} tokens do not fit a vocabulary of {}", src.path(), have,
                          n_vocab);
  }
  for (const auto& [key, value] : src.metadata()) {
    if (key.rfind("tokenizer.", 0) != 0) continue;
    GgufValue v = value;
    if (v.type == GgufValueType::kArray) {
      GgufArray& a = std::get<GgufArray>(v.data);
      if (key == "tokenizer.ggml.tokens") {
        for (int64_t i = have; i < n_vocab; ++i) a.strings.push_back(fmt::format("<pad_{}>", i));
      } else if (key == "tokenizer.ggml.scores" && a.floats.size() == tokens->strings.size()) {
        a.floats.resize(static_cast<size_t>(n_vocab), 0.0);
      } else if (key == "tokenizer.ggml.token_type" && a.ints.size() == tokens->strings.size()) {
        a.ints.resize(static_cast<size_t>(n_vocab), 3);  // control: never matched in text
      }
    }
    DM_RETURN_IF_ERROR(w.CopyOrError(key, v).WithContext(src.path()));
  }
  return Status::Ok();
}

Status CheckSpec(const RandomModelSpec& s) {
  auto range = [](const char* what, int64_t v, int64_t lo, int64_t hi) -> Status {
    if (v < lo || v > hi) return Status::Errorf("{} = {} is outside [{}, {}]", what, v, lo, hi);
    return Status::Ok();
  };
  DM_RETURN_IF_ERROR(range("dim", s.n_embd, 1, 1 << 16));
  DM_RETURN_IF_ERROR(range("layers", s.n_layer, 1, 1024));
  DM_RETURN_IF_ERROR(range("heads", s.n_head, 1, 1024));
  DM_RETURN_IF_ERROR(range("kv-heads", s.n_head_kv, 1, s.n_head));
  DM_RETURN_IF_ERROR(range("ffn", s.n_ff, 1, 1 << 20));
  DM_RETURN_IF_ERROR(range("vocab", s.n_vocab, 1, 1 << 22));
  DM_RETURN_IF_ERROR(range("ctx", s.n_ctx, 1, 1 << 24));
  if (s.n_embd % s.n_head != 0 || (s.n_embd / s.n_head) % 2 != 0) {
    return Status::Errorf("dim {} is not an even head size times heads {}", s.n_embd, s.n_head);
  }
  if (s.n_head % s.n_head_kv != 0) {
    return Status::Errorf("heads {} is not a multiple of kv-heads {}", s.n_head, s.n_head_kv);
  }
  return Status::Ok();
}

}  // namespace

StatusOr<GgmlType> TensorTypeOrError(const RandomModelSpec& spec, const std::string& in_name,
                                     int64_t layer) {
  const std::string name =
      spec.tied_output && in_name == "token_embd.weight" ? "output.weight" : in_name;
  const std::string t = Upper(spec.type);
  for (const Mix& m : kMixes) {
    if (t != m.name) continue;
    if (spec.pure) return m.base;
    return MixedType(t, m.base, name, layer, spec.n_layer);
  }
  std::optional<GgmlType> type = TypeByName(t);
  if (!type) {
    return Status::Errorf(
        "unknown or unsupported type '{}' (supported: {}, Q3_K_S/M/L, "
        "Q4_K_S/M, Q5_K_S/M)",
        spec.type, SupportedTypeList());
  }
  const bool wide = *type == GgmlType::kF32 || *type == GgmlType::kF16 ||
                    *type == GgmlType::kBF16 || *type == GgmlType::kQ8_0;
  if (!spec.pure && !wide && name == "output.weight") return GgmlType::kQ6_K;
  return *type;
}

StatusOr<RandomModelSpec> SpecLikeOrError(const GgufFile& like) {
  const GgufTensorInfo* embd = like.FindTensor("token_embd.weight");
  if (embd == nullptr || embd->dims.size() != 2) {
    return Status::Errorf("{}: no 2-D token_embd.weight to take the shape from", like.path());
  }
  StatusOr<ModelConfig> c = ModelConfig::FromGguf(like, embd->dims[1]);
  if (!c.ok()) return c.status().WithContext(like.path());
  if (c->arch != "llama" || c->head_dim * c->n_head != c->n_embd) {
    return Status::Errorf("{}: make-gguf writes plain llama shapes; this is '{}'", like.path(),
                          c->arch);
  }
  RandomModelSpec s;
  s.n_embd = c->n_embd;
  s.n_layer = c->n_layer;
  s.n_head = c->n_head;
  s.n_head_kv = c->n_head_kv;
  s.n_ff = c->n_ff;
  s.n_vocab = c->n_vocab;
  s.n_ctx = c->n_ctx_train;
  s.rope_freq_base = c->rope_freq_base;
  s.rms_eps = c->rms_eps;
  s.tied_output = like.FindTensor("output.weight") == nullptr;
  return s;
}

Status WriteRandomModelOrError(const RandomModelSpec& s, const GgufFile* tokenizer,
                               const std::string& path) {
  DM_RETURN_IF_ERROR(CheckSpec(s));
  DM_RETURN_IF_ERROR(TensorTypeOrError(s, "output.weight", -1).status());
  GgufWriter w;
  w.Str("general.architecture", "llama");
  w.Str("general.name", fmt::format("random llama {}x{} {}", s.n_embd, s.n_layer, s.type));
  w.U32("llama.context_length", static_cast<uint32_t>(s.n_ctx));
  w.U32("llama.embedding_length", static_cast<uint32_t>(s.n_embd));
  w.U32("llama.block_count", static_cast<uint32_t>(s.n_layer));
  w.U32("llama.feed_forward_length", static_cast<uint32_t>(s.n_ff));
  w.U32("llama.attention.head_count", static_cast<uint32_t>(s.n_head));
  w.U32("llama.attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
  w.U32("llama.rope.dimension_count", static_cast<uint32_t>(s.n_embd / s.n_head));
  w.F32("llama.rope.freq_base", s.rope_freq_base);
  w.F32("llama.attention.layer_norm_rms_epsilon", s.rms_eps);
  w.U32("llama.vocab_size", static_cast<uint32_t>(s.n_vocab));
  if (tokenizer != nullptr) {
    DM_RETURN_IF_ERROR(CopyTokenizer(w, *tokenizer, s.n_vocab));
  } else {
    DM_RETURN_IF_ERROR(AddSyntheticTokenizer(w, s.n_vocab));
  }
  DM_RETURN_IF_ERROR(AddTensors(w, s));
  return w.WriteOrError(path);
}

}  // namespace dormouse
