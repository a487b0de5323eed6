#include "lifecycle/session_state.h"

#include <algorithm>
#include <cstring>
#include <string_view>

namespace dormouse {
namespace {

constexpr char kTag[4] = {'D', 'M', 'X', '1'};

void PutBlob(std::string& out, std::string_view blob) {
  uint32_t n = static_cast<uint32_t>(blob.size());
  out.append(reinterpret_cast<const char*>(&n), sizeof n);
  out.append(blob);
}

bool GetBlob(std::string_view& in, std::string* blob) {
  uint32_t n = 0;
  if (in.size() < sizeof n) return false;
  std::memcpy(&n, in.data(), sizeof n);
  in.remove_prefix(sizeof n);
  if (in.size() < n) return false;
  blob->assign(in.substr(0, n));
  in.remove_prefix(n);
  return true;
}

}  // namespace

std::string EncodeSessionExtra(const SessionExtra& e) {
  std::string out(kTag, sizeof kTag);
  PutBlob(out, e.sampler_state);
  PutBlob(out, e.text);
  out.append(reinterpret_cast<const char*>(&e.window_start), sizeof e.window_start);
  return out;
}

StatusOr<SessionExtra> DecodeSessionExtra(const std::string& bytes) {
  std::string_view in(bytes);
  if (in.size() < sizeof kTag || std::memcmp(in.data(), kTag, sizeof kTag) != 0) {
    return Status::Error("snapshot session data has an unknown format");
  }
  in.remove_prefix(sizeof kTag);
  SessionExtra e;
  if (!GetBlob(in, &e.sampler_state) || !GetBlob(in, &e.text) ||
      in.size() != sizeof e.window_start) {
    return Status::Error("snapshot session data is malformed");
  }
  std::memcpy(&e.window_start, in.data(), sizeof e.window_start);
  return e;
}

size_t CommonPrefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

std::optional<std::vector<int32_t>> ContinueByText(const std::vector<int32_t>& held,
                                                   const std::string& held_text,
                                                   const Tokenizer& tok, const std::string& text,
                                                   size_t* kept, size_t* redone) {
  constexpr size_t kMaxDropped = 64;  // a trimmed reply end, not a different conversation
  if (held.empty() || held_text.empty()) return std::nullopt;
  const size_t common = static_cast<size_t>(
      std::mismatch(held_text.begin(), held_text.end(), text.begin(), text.end()).first -
      held_text.begin());
  size_t n = held.size(), cut = held_text.size();
  while (cut > common) {
    if (n == 0 || held.size() - n >= kMaxDropped) return std::nullopt;
    const std::string piece = tok.DecodeToken(held[n - 1]);
    if (piece.size() > cut || held_text.compare(cut - piece.size(), piece.size(), piece) != 0) {
      return std::nullopt;  // the tokens do not spell the text piece by piece here
    }
    cut -= piece.size();
    --n;
  }
  if (n == 0) return std::nullopt;
  std::vector<int32_t> out(held.begin(), held.begin() + static_cast<ptrdiff_t>(n));
  std::vector<int32_t> rest = tok.Encode(std::string_view(text).substr(cut), false, true);
  out.insert(out.end(), rest.begin(), rest.end());
  if (kept != nullptr) *kept = n;
  // Text a dropped token spelled that the new text still holds is computed again.
  if (redone != nullptr) {
    *redone = cut < common
                  ? tok.Encode(std::string_view(text).substr(cut, common - cut), false, true).size()
                  : 0;
  }
  return out;
}

Status CopyCachedRows(const InferenceContext& from, InferenceContext& to, int64_t n) {
  const KvCache& a = from.kv();
  KvCache& b = to.kv();
  if (n < 0 || n > from.n_past() || n > b.n_ctx()) {
    return Status::Errorf(
        "cannot copy {} cached positions (the source holds {}, the target fits {})", n,
        from.n_past(), b.n_ctx());
  }
  if (a.type() != b.type() || a.n_layer() != b.n_layer() || a.kv_dim() != b.kv_dim()) {
    return Status::Error("cannot copy cached rows between contexts of different layouts");
  }
  const ModelConfig& c = from.model().config();
  // As a snapshot does: a global layer copies every position, a sliding-window layer what
  // its ring still holds of [0, n), which must cover the window before n.
  int64_t floor = 0;
  for (int64_t il = 0; il < a.n_layer(); ++il) {
    if (c.IsSwa(il) && from.WindowStart(il, n) < from.swa_floor()) {
      return Status::Errorf("cannot copy {} positions: the sliding window has moved past them", n);
    }
    const int64_t first = std::max(from.SnapshotStart(il, n), n - b.rows(il));
    if (c.IsSwa(il)) floor = std::max(floor, first);
    for (auto [src, dst] : {std::pair{a.KSpans(il, first, n), b.KSpans(il, first, n)},
                            std::pair{a.VSpans(il, first, n), b.VSpans(il, first, n)}}) {
      // Both rings have the same size, so the spans of the same positions line up.
      for (size_t i = 0; i < src.size(); ++i) {
        if (src[i].size() != dst[i].size()) {
          return Status::Error("cannot copy cached rows between rings of different sizes");
        }
        std::memcpy(dst[i].data(), src[i].data(), src[i].size());
      }
    }
  }
  return to.AdoptRestoredRows(n, floor);
}

StatusOr<PrefillCounts> PrefillFromCommonPrefix(InferenceContext& ctx, std::vector<int32_t>& held,
                                                std::string& held_text,
                                                const std::vector<int32_t>& tokens,
                                                const std::string& text) {
  if (tokens.empty()) return Status::Error("the prompt is empty");
  size_t lcp = CommonPrefix(tokens, held);
  if (lcp == tokens.size()) --lcp;  // evaluate at least one token to have logits
  ctx.Truncate(static_cast<int64_t>(lcp));
  lcp = static_cast<size_t>(ctx.n_past());  // less when a sliding window cannot step back
  held.resize(lcp);
  held_text.clear();
  std::span<const int32_t> rest(tokens.data() + lcp, tokens.size() - lcp);
  DM_RETURN_IF_ERROR(ctx.Eval(rest));  // leaves the cache at lcp on failure
  held = tokens;
  held_text = text;
  return PrefillCounts{lcp, rest.size()};
}

}  // namespace dormouse
