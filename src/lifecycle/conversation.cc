#include "lifecycle/conversation.h"

#include <filesystem>

namespace dormouse {

Status Conversation::Open(const Model& model, const ContextParams& params, ThreadPool* pool) {
  Close();
  DM_ASSIGN_OR_RETURN(InferenceContext ctx, InferenceContext::CreateOrError(model, params, pool));
  ctx_ = std::make_unique<InferenceContext>(std::move(ctx));
  return Status::Ok();
}

void Conversation::Close() {
  ctx_.reset();
  tokens_.clear();
  text_.clear();
  unsaved_ = false;
  clean_n_ = 0;
}

std::optional<std::vector<int32_t>> Conversation::Continue(const Tokenizer& tok,
                                                           const std::string& text, size_t* kept,
                                                           size_t* redone) const {
  return ContinueByText(tokens_, text_, tok, text, kept, redone);
}

StatusOr<PrefillCounts> Conversation::Prefill(const std::vector<int32_t>& tokens,
                                              const std::string& text) {
  unsaved_ = true;
  StatusOr<PrefillCounts> counts = PrefillFromCommonPrefix(*ctx_, tokens_, text_, tokens, text);
  // The rows past what was kept are recomputed (or lost, on failure): the disk no longer
  // matches them.
  clean_n_ = std::min(clean_n_, counts.ok() ? counts->reused : tokens_.size());
  return counts;
}

StatusOr<GenerateResult> Conversation::Generate(Sampler& sampler, const Tokenizer& tok,
                                                const GenerateParams& params,
                                                const PieceCallback& on_piece,
                                                const LogitsObserver& observe) {
  const size_t before = tokens_.size();
  StatusOr<GenerateResult> g = dormouse::Generate(*ctx_, sampler, tok, params, on_piece, observe);
  if (!g.ok()) {
    // The cache may hold tokens sampled before the failure: make it mirror tokens_ again.
    ctx_->Truncate(static_cast<int64_t>(before));
    tokens_.resize(static_cast<size_t>(ctx_->n_past()));
    if (tokens_.size() != before) text_.clear();
    clean_n_ = std::min(clean_n_, tokens_.size());
    return g.status();
  }
  if (g->reason == StopReason::kStopString) {
    for (int32_t t : g->tokens) text_ += tok.DecodeToken(t);
  } else {
    text_ += g->text;
  }
  tokens_.insert(tokens_.end(), g->tokens.begin(), g->tokens.end());
  unsaved_ = true;
  return g;
}

Status Conversation::ForkFrom(const Conversation& from, size_t n) {
  n = std::min(n, from.tokens_.size());
  text_.clear();
  unsaved_ = false;
  disk_key_.clear();
  disk_n_ = clean_n_ = 0;
  if (Status st = CopyCachedRows(*from.ctx_, *ctx_, static_cast<int64_t>(n)); !st.ok()) {
    Clear();
    return st;
  }
  tokens_.assign(from.tokens_.begin(), from.tokens_.begin() + static_cast<ptrdiff_t>(n));
  return Status::Ok();
}

void Conversation::Clear() {
  if (ctx_) ctx_->Truncate(0);
  tokens_.clear();
  text_.clear();
  clean_n_ = 0;
}

void Conversation::SavedAs(const std::string& key, size_t n, bool journal, uint64_t bytes) {
  if (journal) {
    journal_bytes_ += bytes;
  } else {
    base_bytes_ = bytes;
    journal_bytes_ = 0;
  }
  disk_key_ = key;
  disk_n_ = clean_n_ = n;
  unsaved_ = false;
}

StatusOr<SnapshotSaveResult> Conversation::Save(SnapshotStore& store, const std::string& key,
                                                const ModelFingerprint& fingerprint,
                                                std::string_view extra,
                                                const SnapshotWriteOptions& options) {
  if (!open()) return Status::Errorf("conversation '{}' has no loaded context", key);
  DM_ASSIGN_OR_RETURN(SnapshotSaveResult r,
                      store.Save(key, fingerprint, *ctx_, tokens_, extra, options));
  SavedAs(key, tokens_.size(), false, r.info.bytes);
  return r;
}

StatusOr<SnapshotSaveResult> Conversation::Checkpoint(SnapshotStore& store, const std::string& key,
                                                      const ModelFingerprint& fingerprint,
                                                      std::string_view extra,
                                                      const SnapshotWriteOptions& options,
                                                      bool* incremental) {
  if (incremental != nullptr) *incremental = false;
  if (!open()) return Status::Errorf("conversation '{}' has no loaded context", key);
  const bool extends = disk_key_ == key && disk_n_ > 0 && clean_n_ == disk_n_ &&
                       tokens_.size() > disk_n_ && store.Exists(key);
  if (!extends || journal_bytes_ >= base_bytes_)
    return Save(store, key, fingerprint, extra, options);
  DM_ASSIGN_OR_RETURN(
      SnapshotSaveResult r,
      store.Append(key, *ctx_, tokens_, static_cast<int64_t>(disk_n_), extra, options));
  SavedAs(key, tokens_.size(), true, r.info.bytes);
  if (incremental != nullptr) *incremental = true;
  return r;
}

StatusOr<SnapshotHeader> Conversation::Restore(SnapshotStore& store, const std::string& key,
                                               const ModelFingerprint& fingerprint) {
  Clear();
  if (!open()) return Status::Errorf("conversation '{}' has no loaded context", key);
  StatusOr<SnapshotHeader> h = store.Restore(key, fingerprint, *ctx_);
  if (!h.ok()) return h;
  StatusOr<SessionExtra> e = DecodeSessionExtra(h->extra);
  tokens_ = h->tokens;
  text_ = e.ok() ? e->text : "";
  std::error_code ec;
  base_bytes_ = std::filesystem::file_size(store.PathFor(key), ec);
  const uint64_t journal = std::filesystem::file_size(store.JournalPathFor(key), ec);
  journal_bytes_ = ec ? 0 : journal;
  disk_key_ = key;
  disk_n_ = clean_n_ = tokens_.size();
  unsaved_ = false;
  return h;
}

}  // namespace dormouse
