// What the server remembers of each saved conversation so that a new prompt can find the
// longest cached prefix among them, in bounded memory: hashes, never the tokens or the
// text (those stay in the snapshot on disk, read back only for the one chosen). An entry
// costs about 8 bytes per kPrefixBlock tokens plus a fixed part; the snapshot disk budget
// bounds how many there are.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/fingerprint.h"

namespace dormouse {

inline constexpr size_t kPrefixBlock = 32;

struct PrefixEntry {
  ModelFingerprint fingerprint;
  std::string owner;
  int64_t n_tokens = 0;
  uint64_t all_hash = 0;                 // of all n_tokens tokens
  uint64_t text_len = 0, text_hash = 0;  // of the exact text they spell (text_len 0: unknown)
  std::vector<uint64_t> blocks;          // blocks[k]: of tokens [0, (k + 1) * kPrefixBlock)
  size_t bytes() const;                  // what this entry holds in RAM
};

PrefixEntry MakePrefixEntry(const ModelFingerprint& fingerprint, std::string owner,
                            std::span<const int32_t> tokens, std::string_view text);

// Chained hashes of the whole blocks of `tokens` (see PrefixEntry::blocks).
std::vector<uint64_t> PrefixBlockHashes(std::span<const int32_t> tokens);

// True when `text` starts with the entry's text.
bool TextContinues(const PrefixEntry& e, std::string_view text);
// True when `tokens` start with all of the entry's tokens.
bool TokensContinue(const PrefixEntry& e, std::span<const int32_t> tokens);
// How many leading tokens `tokens` share with the entry, to whole blocks (a lower bound
// of the exact common prefix). `blocks` are PrefixBlockHashes(tokens).
size_t SharedBlockPrefix(const PrefixEntry& e, const std::vector<uint64_t>& blocks);

}  // namespace dormouse
