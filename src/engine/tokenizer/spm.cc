// SentencePiece-style encoding as llama.cpp's llm_tokenizer_spm: start from UTF-8 characters,
// repeatedly merge the adjacent pair whose concatenation is the vocabulary token with the
// highest score (leftmost on ties), and spell leftovers with byte tokens <0xXX>.
#include <algorithm>
#include <queue>
#include <vector>

#include "engine/tokenizer/unicode.h"
#include "engine/tokenizer/vocab.h"

namespace dormouse::tokenizer_internal {
namespace {

struct Symbol {
  int prev, next;
  size_t start, n;  // bytes of the text; n == 0 once merged into its left neighbour
};

struct Bigram {
  float score;
  int left, right;
  size_t size;
};

struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

std::vector<Symbol> SplitChars(std::string_view text) {
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  size_t offset = 0;
  int index = 0;
  while (offset < text.size()) {
    const size_t n = std::min(Utf8SeqLen(static_cast<uint8_t>(text[offset])), text.size() - offset);
    offset += n;
    symbols.push_back({index - 1, offset == text.size() ? -1 : index + 1, offset - n, n});
    ++index;
  }
  return symbols;
}

void EmitSymbol(const TokenizerState& s, std::string_view piece, std::vector<int32_t>* out) {
  const int32_t id = s.Find(piece);
  if (id >= 0) {
    out->push_back(id);
    return;
  }
  for (char c : piece) {
    const int32_t byte_id = s.byte_tokens[static_cast<uint8_t>(c)];
    if (byte_id >= 0) out->push_back(byte_id);
  }
}

}  // namespace

void SpmEncode(const TokenizerState& s, std::string_view text, std::vector<int32_t>* out) {
  std::vector<Symbol> sym = SplitChars(text);
  if (sym.empty()) return;
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const std::string_view piece = text.substr(sym[left].start, sym[left].n + sym[right].n);
    const int32_t id = s.Find(piece);
    if (id < 0) return;
    queue.push({s.tokens[id].score, left, right, piece.size()});
  };
  for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& left = sym[b.left];
    Symbol& right = sym[b.right];
    // Stale entries: one side was merged since the pair was queued.
    if (left.n == 0 || right.n == 0 || left.n + right.n != b.size) continue;
    left.n += right.n;
    right.n = 0;
    left.next = right.next;
    if (right.next >= 0) sym[right.next].prev = b.left;
    try_add(left.prev, b.left);
    try_add(b.left, left.next);
  }
  for (int i = 0; i != -1; i = sym[i].next) {
    EmitSymbol(s, text.substr(sym[i].start, sym[i].n), out);
  }
}

}  // namespace dormouse::tokenizer_internal
