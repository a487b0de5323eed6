// What a conversation's snapshot carries besides tokens and KV rows: the sampler's state,
// the exact text the cached tokens spell (so a continuation can tokenize only what is
// new), and the first message of the context window. Shared by `dormouse chat` sessions
// and the server's contexts, so either can pick up the other's snapshots.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace dormouse {

struct SessionExtra {
  std::string sampler_state;  // Sampler::SaveState(), or empty
  std::string text;           // the text the snapshot's tokens spell, or empty if unknown
  uint64_t window_start = 0;  // first non-system message in the context window
};

std::string EncodeSessionExtra(const SessionExtra& e);
StatusOr<SessionExtra> DecodeSessionExtra(const std::string& bytes);

// Length of the longest common prefix of a and b.
size_t CommonPrefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b);

}  // namespace dormouse
