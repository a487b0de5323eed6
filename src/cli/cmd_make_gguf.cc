// `dormouse make-gguf -o OUT (--like FILE | --dim D --layers L --heads H --ffn F --vocab V)
// [--kv-heads K] [--type Q4_K_M] [--pure] [--tied] [--rope-base B] [--tokenizer FILE]`: writes a
// random llama of a given shape and tensor type, for benchmarks (the engine's random_model.h).
#include <iostream>
#include <optional>

#include "cli/commands.h"
#include "cli/common.h"
#include "engine/gguf.h"
#include "engine/random_model.h"

namespace dormouse::cli {
namespace {

struct MakeGgufOptions {
  std::string out, like, tokenizer, type = "Q8_0";
  int64_t dim = 0, layers = 0, heads = 0, kv_heads = 0, ffn = 0, vocab = 0, ctx = 0;
  float rope_base = 0;
  bool pure = false, tied = false;
  uint64_t seed = 1;
};

int MakeGguf(const MakeGgufOptions& o) {
  std::optional<GgufFile> like, tok;
  RandomModelSpec s;
  if (!o.like.empty()) {
    StatusOr<GgufFile> f = GgufFile::OpenOrError(o.like);
    if (!f.ok()) return Fail(f.status());
    like = std::move(f).value();
    StatusOr<RandomModelSpec> spec = SpecLikeOrError(*like);
    if (!spec.ok()) return Fail(spec.status());
    s = *spec;
  }
  // Explicit sizes override --like's.
  if (o.dim) s.n_embd = o.dim;
  if (o.layers) s.n_layer = o.layers;
  if (o.heads) s.n_head = o.heads;
  if (o.kv_heads) s.n_head_kv = o.kv_heads;
  if (!o.kv_heads && !like) s.n_head_kv = s.n_head;
  if (o.ffn) s.n_ff = o.ffn;
  if (o.ctx) s.n_ctx = o.ctx;
  if (o.rope_base > 0) s.rope_freq_base = o.rope_base;
  if (o.tied) s.tied_output = true;
  s.type = o.type;
  s.pure = o.pure;
  s.seed = o.seed;
  const std::string tok_path = !o.tokenizer.empty() ? o.tokenizer : o.like;
  if (!tok_path.empty()) {
    if (tok_path == o.like) {
      tok = std::move(like);
    } else {
      StatusOr<GgufFile> f = GgufFile::OpenOrError(tok_path);
      if (!f.ok()) return Fail(f.status());
      tok = std::move(f).value();
    }
    if (const GgufArray* t = tok->GetArray("tokenizer.ggml.tokens"); t && !o.vocab && !s.n_vocab) {
      s.n_vocab = static_cast<int64_t>(t->size());
    }
  }
  if (o.vocab) s.n_vocab = o.vocab;
  if (Status st = WriteRandomModelOrError(s, tok ? &*tok : nullptr, o.out); !st.ok()) {
    return Fail(st);
  }
  std::cout << o.out << ": random llama, dim " << s.n_embd << ", " << s.n_layer << " layers, "
            << s.n_head << "/" << s.n_head_kv << " heads, ffn " << s.n_ff << ", vocab " << s.n_vocab
            << ", " << s.type << (s.pure ? " (pure)" : "") << (s.tied_output ? ", tied output" : "")
            << "\n";
  return 0;
}

}  // namespace

void AddMakeGgufCommand(CLI::App& app, Action* action) {
  auto o = std::make_shared<MakeGgufOptions>();
  CLI::App* cmd =
      app.add_subcommand("make-gguf", "Write a random llama GGUF of a given shape and type");
  cmd->add_option("-o,--output", o->out, "Output GGUF file")->required();
  cmd->add_option("--like", o->like, "Take the shape and tokenizer of this llama GGUF");
  cmd->add_option("--tokenizer", o->tokenizer,
                  "Copy the tokenizer of this GGUF (default: --like's, else synthetic)");
  cmd->add_option("--type", o->type,
                  "Tensor type (Q8_0, Q5_K, ...) or llama-quantize mix (Q4_K_M, ...)");
  cmd->add_flag("--pure", o->pure, "Every matrix in --type (no llama-quantize mix)");
  cmd->add_option("--dim", o->dim, "Embedding width")->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--layers", o->layers, "Layers")->check(CLI::Range(1, 1024));
  cmd->add_option("--heads", o->heads, "Attention heads")->check(CLI::Range(1, 1024));
  cmd->add_option("--kv-heads", o->kv_heads, "KV heads (default: heads)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--ffn", o->ffn, "Feed-forward width")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--vocab", o->vocab, "Vocabulary size (default: the tokenizer's)")
      ->check(CLI::Range(1, 1 << 22));
  cmd->add_option("--ctx", o->ctx, "Training context length in the metadata (default 2048)")
      ->check(CLI::Range(1, 1 << 24));
  cmd->add_option("--rope-base", o->rope_base, "RoPE frequency base (default 10000)")
      ->check(CLI::Range(1.0f, 1e9f));
  cmd->add_flag("--tied", o->tied, "No output matrix: the output reuses token_embd");
  cmd->add_option("--seed", o->seed, "Random seed");
  cmd->callback([o, action] { *action = [o] { return MakeGguf(*o); }; });
}

}  // namespace dormouse::cli
