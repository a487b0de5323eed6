// Byte-level BPE as llama.cpp's llm_tokenizer_bpe: pre-tokenize into words, map each word's
// bytes to GPT-2's printable alphabet, then merge adjacent symbols by merge rank (lowest
// first, leftmost on ties) with a priority queue, so long words stay O(n log n).
#include <algorithm>
#include <queue>
#include <string>
#include <vector>

#include "engine/tokenizer/unicode.h"
#include "engine/tokenizer/vocab.h"

namespace dormouse::tokenizer_internal {
namespace {

struct Symbol {
  int prev, next;
  size_t start, n;  // n == 0 once merged into its left neighbour
};

struct Bigram {
  int32_t rank;
  int left, right;
  size_t left_n, right_n;  // sizes when queued; a change means the entry is stale
};

struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

class WordMerger {
 public:
  WordMerger(const TokenizerState& s, std::string_view word) : s_(s), word_(word) {}

  void Run(std::vector<int32_t>* out) {
    SplitChars();
    for (int i = 1; i < static_cast<int>(sym_.size()); ++i) TryAdd(i - 1, i);
    while (!queue_.empty()) {
      const Bigram b = queue_.top();
      queue_.pop();
      Symbol& left = sym_[b.left];
      Symbol& right = sym_[b.right];
      if (left.n != b.left_n || right.n != b.right_n || left.n == 0 || right.n == 0) continue;
      left.n += right.n;
      right.n = 0;
      left.next = right.next;
      if (right.next >= 0) sym_[right.next].prev = b.left;
      TryAdd(left.prev, b.left);
      TryAdd(b.left, left.next);
    }
    for (const Symbol& x : sym_) {
      if (x.n > 0) Emit(word_.substr(x.start, x.n), out);
    }
  }

 private:
  void SplitChars() {
    size_t offset = 0;
    int index = 0;
    while (offset < word_.size()) {
      const size_t n =
          std::min(Utf8SeqLen(static_cast<uint8_t>(word_[offset])), word_.size() - offset);
      offset += n;
      sym_.push_back({index - 1, offset == word_.size() ? -1 : index + 1, offset - n, n});
      ++index;
    }
  }

  void TryAdd(int left, int right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = sym_[left];
    const Symbol& r = sym_[right];
    key_.assign(word_.substr(l.start, l.n));
    key_.push_back('\xFF');
    key_.append(word_.substr(r.start, r.n));
    auto it = s_.merge_ranks.find(key_);
    if (it == s_.merge_ranks.end()) return;
    queue_.push({it->second, left, right, l.n, r.n});
  }

  // A merged symbol that is not a token falls back to its single bytes, as llama.cpp does.
  void Emit(std::string_view piece, std::vector<int32_t>* out) const {
    const int32_t id = s_.Find(piece);
    if (id >= 0) {
      out->push_back(id);
      return;
    }
    for (size_t i = 0; i < piece.size(); ++i) {
      const int32_t byte_id = s_.Find(piece.substr(i, 1));
      if (byte_id >= 0) out->push_back(byte_id);
    }
  }

  const TokenizerState& s_;
  std::string_view word_;
  std::vector<Symbol> sym_;
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue_;
  std::string key_;
};

}  // namespace

void BpeEncode(const TokenizerState& s, std::string_view text, std::vector<int32_t>* out) {
  if (!s.pre.has_value()) return;
  const std::string clean = SanitizeUtf8(text);
  for (std::string_view word : s.pre->Split(clean)) {
    const std::string encoded = BytesToUnicode(word);
    if (s.ignore_merges) {
      const int32_t id = s.Find(encoded);
      if (id >= 0) {
        out->push_back(id);
        continue;
      }
    }
    WordMerger(s, encoded).Run(out);
  }
}

}  // namespace dormouse::tokenizer_internal
