// `dormouse info MODEL`: architecture, shapes, tensor types, vocabulary, memory needed.
#include <algorithm>
#include <iostream>
#include <map>

#include "cli/commands.h"
#include "cli/common.h"
#include "engine/kernels.h"
#include "engine/kv_cache.h"
#include "lifecycle/context_size.h"

namespace dormouse::cli {
namespace {

struct InfoOptions {
  std::string model;
  int64_t ctx = 0;
};

double MiB(uint64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

// "tensors Q8_0:   43 tensors,     1.23 MiB" per type; types this build cannot read
// are marked. Lists from the lenient parse, so an unsupported file is described too.
void PrintTensorTypes(const GgufFile& g) {
  std::map<std::string, std::pair<int, uint64_t>> types;
  for (const GgufTensorInfo& t : g.tensors()) {
    const std::string name = t.known_type ? TypeName(t.type) : TypeName(t.raw_type);
    auto& [count, bytes] = types[name];
    ++count;
    bytes += t.n_bytes;
  }
  for (const auto& [name, cb] : types) {
    if (name.starts_with("type ")) {
      std::cout << fmt::format("tensors        {}: {} tensors, unsupported\n", name, cb.first);
    } else {
      std::cout << fmt::format("tensors {:<6} {:4} tensors, {:8.2f} MiB\n", name + ":", cb.first,
                               MiB(cb.second));
    }
  }
}

int Info(const InfoOptions& o) {
  StatusOr<GgufFile> described = GgufFile::DescribeOrError(o.model);
  if (!described.ok()) return Fail(described.status());
  StatusOr<Model> model = Model::LoadOrError(o.model);
  if (!model.ok()) {
    StatusOr<std::optional<std::string>> arch = described->GetString("general.architecture");
    std::cout << fmt::format("file:          {} (GGUF v{})\n", o.model, described->version());
    std::cout << fmt::format("architecture:  {}\n",
                             arch.ok() && *arch ? **arch : std::string("(none)"));
    PrintTensorTypes(*described);
    std::cout << fmt::format("supported:     no: {}\n", model.status().message());
    return 1;
  }
  StatusOr<Tokenizer> tok = Tokenizer::FromGguf(model->gguf());
  if (!tok.ok()) return Fail(tok.status().WithContext(o.model));
  const ModelConfig& c = model->config();
  ProcMemoryProbe probe;
  const int64_t n_ctx =
      o.ctx > 0 ? o.ctx
                : DefaultContextSize(c, model->weight_bytes(), {}, 1, MemoryForContexts(probe, 0));
  uint64_t kv = KvCache::BytesFor(c, n_ctx, std::min<int64_t>(512, n_ctx), KvType::kF16);
  std::cout << fmt::format("file:          {} (GGUF v{})\n", o.model, model->gguf().version());
  std::cout << fmt::format("name:          {}\n", c.name);
  std::cout << fmt::format("architecture:  {}\n", c.arch);
  std::cout << fmt::format(
      "shape:         n_embd {}, n_layer {}, n_head {}, n_head_kv {}, head_dim {}, n_ff {}\n",
      c.n_embd, c.n_layer, c.n_head, c.n_head_kv, c.head_dim, c.n_ff);
  std::cout << fmt::format("rope:          dim {}, base {}, scale {}, {}\n", c.rope_dim,
                           c.rope_freq_base, c.rope_freq_scale,
                           c.traits.rope == RopeLayout::kNeox ? "neox" : "normal");
  std::cout << fmt::format("context:       trained {}, default {}\n", c.n_ctx_train, n_ctx);
  if (c.HasSwa()) {
    const auto local = std::count(c.swa_layers.begin(), c.swa_layers.end(), true);
    std::cout << fmt::format(
        "attention:     sliding window {} on {} of {} layers (local rope base {})\n", c.n_swa,
        local, c.n_layer, c.rope_freq_base_swa);
  }
  std::cout << fmt::format("output:        {}\n",
                           model->tied_output() ? "tied to token_embd" : "separate");
  std::cout << fmt::format("vocabulary:    {} tokens ({}), bos {}, eos {}\n", tok->n_vocab(),
                           tok->ModelName(), tok->bos(), tok->eos());
  PrintTensorTypes(model->gguf());
  std::cout << fmt::format(
      "memory:        weights {:.2f} MiB (mapped) + KV cache up to {:.2f} MiB "
      "(f16, context {}; it grows as used) = {:.2f} MiB\n",
      MiB(model->weight_bytes()), MiB(kv), n_ctx, MiB(model->weight_bytes() + kv));
  std::cout << fmt::format("kernels:       {}\n", KernelTargetName());
  std::cout << fmt::format("threads:       {}\n", DescribeThreads(0));
  std::cout << "supported:     yes\n";
  return 0;
}

}  // namespace

void AddInfoCommand(CLI::App& app, Action* action) {
  auto o = std::make_shared<InfoOptions>();
  CLI::App* cmd = app.add_subcommand("info", "Describe a model and the memory it needs");
  cmd->add_option("model", o->model, "GGUF model file")->required();
  cmd->add_option("-c,--ctx-size", o->ctx, "Context size for the memory estimate")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 22));
  cmd->callback([o, action] { *action = [o] { return Info(*o); }; });
}

}  // namespace dormouse::cli
