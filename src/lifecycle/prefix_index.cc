#include "lifecycle/prefix_index.h"

#include <xxhash.h>

#include <algorithm>

namespace dormouse {
namespace {

uint64_t HashTokens(std::span<const int32_t> tokens, uint64_t seed) {
  return XXH3_64bits_withSeed(tokens.data(), tokens.size_bytes(), seed);
}

}  // namespace

size_t PrefixEntry::bytes() const {
  return sizeof(*this) + fingerprint.arch.capacity() + owner.capacity() +
         blocks.capacity() * sizeof(uint64_t);
}

std::vector<uint64_t> PrefixBlockHashes(std::span<const int32_t> tokens) {
  std::vector<uint64_t> out;
  out.reserve(tokens.size() / kPrefixBlock);
  uint64_t h = 0;
  for (size_t i = 0; i + kPrefixBlock <= tokens.size(); i += kPrefixBlock) {
    h = HashTokens(tokens.subspan(i, kPrefixBlock), h);
    out.push_back(h);
  }
  return out;
}

PrefixEntry MakePrefixEntry(const ModelFingerprint& fingerprint, std::string owner,
                            std::span<const int32_t> tokens, std::string_view text) {
  PrefixEntry e;
  e.fingerprint = fingerprint;
  e.owner = std::move(owner);
  e.n_tokens = static_cast<int64_t>(tokens.size());
  e.all_hash = HashTokens(tokens, 0);
  e.text_len = text.size();
  e.text_hash = XXH3_64bits(text.data(), text.size());
  e.blocks = PrefixBlockHashes(tokens);
  e.blocks.shrink_to_fit();
  return e;
}

bool TextContinues(const PrefixEntry& e, std::string_view text) {
  return e.text_len > 0 && text.size() >= e.text_len &&
         XXH3_64bits(text.data(), e.text_len) == e.text_hash;
}

bool TokensContinue(const PrefixEntry& e, std::span<const int32_t> tokens) {
  return e.n_tokens > 0 && tokens.size() >= static_cast<size_t>(e.n_tokens) &&
         HashTokens(tokens.first(static_cast<size_t>(e.n_tokens)), 0) == e.all_hash;
}

size_t SharedBlockPrefix(const PrefixEntry& e, const std::vector<uint64_t>& blocks) {
  const size_t n = std::min(e.blocks.size(), blocks.size());
  size_t k = 0;
  while (k < n && e.blocks[k] == blocks[k]) ++k;
  return k * kPrefixBlock;
}

}  // namespace dormouse
