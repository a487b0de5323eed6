// The prefix index holds hashes, not conversations: its entries stay small however long
// the conversation, and still tell exactly whether a prompt continues a saved text or
// token sequence, and how many whole blocks of tokens it shares.
#include "lifecycle/prefix_index.h"

#include <gtest/gtest.h>

namespace dormouse {
namespace {

std::vector<int32_t> Tokens(size_t n) {
  std::vector<int32_t> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>((i * 7919) % 32000);
  return t;
}

TEST(PrefixIndexTest, EntriesAreSmallAndMatchExactly) {
  const std::vector<int32_t> tokens = Tokens(3000);
  const std::string text(12000, 'x');
  ModelFingerprint fp;
  fp.arch = "llama";
  PrefixEntry e = MakePrefixEntry(fp, std::string(64, 'o'), tokens, text);
  EXPECT_EQ(e.n_tokens, 3000);
  // 3,000 tokens and 12,000 bytes of text take 24,000 bytes as such; the entry ~1 KB.
  EXPECT_LT(e.bytes(), 256 + 64 + (3000 / kPrefixBlock) * sizeof(uint64_t) + 64);

  EXPECT_TRUE(TextContinues(e, text));
  EXPECT_TRUE(TextContinues(e, text + " and more"));
  EXPECT_FALSE(TextContinues(e, text.substr(0, 11999)));
  std::string changed = text + "!";
  changed[5] = 'y';
  EXPECT_FALSE(TextContinues(e, changed));

  std::vector<int32_t> longer = tokens;
  longer.push_back(5);
  EXPECT_TRUE(TokensContinue(e, longer));
  EXPECT_FALSE(TokensContinue(e, std::vector<int32_t>(tokens.begin(), tokens.end() - 1)));

  std::vector<int32_t> diverged = tokens;
  diverged[100] = -1;  // in block 3 (tokens 96..127)
  EXPECT_FALSE(TokensContinue(e, diverged));
  EXPECT_EQ(SharedBlockPrefix(e, PrefixBlockHashes(diverged)), 3 * kPrefixBlock);
  EXPECT_EQ(SharedBlockPrefix(e, PrefixBlockHashes(longer)), 3000 / kPrefixBlock * kPrefixBlock);

  PrefixEntry unknown_text = MakePrefixEntry(fp, "", tokens, "");
  EXPECT_FALSE(TextContinues(unknown_text, "anything"));
}

}  // namespace
}  // namespace dormouse
