#include "engine/fingerprint.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <cstring>

namespace dormouse {

std::string Hash128::Hex() const { return fmt::format("{:016x}{:016x}", hi, lo); }

bool Hash128::FromHex(const std::string& hex, Hash128* out) {
  if (hex.size() != 32) return false;
  for (char c : hex) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  out->hi = std::stoull(hex.substr(0, 16), nullptr, 16);
  out->lo = std::stoull(hex.substr(16), nullptr, 16);
  return true;
}

std::string ModelFingerprint::Describe() const {
  return fmt::format(
      "{} n_vocab {} n_embd {} n_layer {} n_ff {} n_head {} n_head_kv {} head_dim {} "
      "rope_dim {} layout {:016x} content {}",
      arch, n_vocab, n_embd, n_layer, n_ff, n_head, n_head_kv, head_dim, rope_dim, layout_hash,
      content_hash.Hex());
}

std::string ModelFingerprint::Mismatch(const ModelFingerprint& o) const {
  if (*this == o) return "";
  if (arch != o.arch || n_vocab != o.n_vocab || n_embd != o.n_embd || n_layer != o.n_layer ||
      n_ff != o.n_ff || n_head != o.n_head || n_head_kv != o.n_head_kv || head_dim != o.head_dim ||
      rope_dim != o.rope_dim) {
    return fmt::format("it was made by another model ({}; loaded: {})", o.Describe(), Describe());
  }
  if (layout_hash != o.layout_hash) {
    return "it was made by a model with the same shapes but other tensor types or layout";
  }
  return fmt::format("it was made by other weights of the same shape (content {} vs {})",
                     o.content_hash.Hex(), content_hash.Hex());
}

ModelFingerprint ModelFingerprint::OfModel(const Model& model) {
  const ModelConfig& c = model.config();
  ModelFingerprint f;
  f.arch = c.arch;
  f.n_vocab = c.n_vocab;
  f.n_embd = c.n_embd;
  f.n_layer = c.n_layer;
  f.n_ff = c.n_ff;
  f.n_head = c.n_head;
  f.n_head_kv = c.n_head_kv;
  f.head_dim = c.head_dim;
  f.rope_dim = c.rope_dim;
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  for (const GgufTensorInfo& t : model.gguf().tensors()) {
    XXH3_64bits_update(st, t.name.data(), t.name.size() + 1);  // with the NUL: unambiguous
    XXH3_64bits_update(st, t.dims.data(), t.dims.size() * sizeof(t.dims[0]));
    uint32_t type = static_cast<uint32_t>(t.type);
    XXH3_64bits_update(st, &type, sizeof type);
    XXH3_64bits_update(st, &t.offset, sizeof t.offset);
  }
  f.layout_hash = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  return f;
}

Hash128 HashFileContent(const GgufFile& gguf) {
  XXH128_hash_t h = XXH3_128bits(gguf.file_data(), gguf.file_size());
  return Hash128{h.low64, h.high64};
}

}  // namespace dormouse
