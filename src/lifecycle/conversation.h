// A conversation on an inference context: the tokens its KV cache holds and the exact
// text they spell, reuse of the cached prefix, forks, and keeping it on disk. The one
// mechanism behind `dormouse chat` sessions (ChatSession) and the server's contexts.
//
// On disk a conversation is a full snapshot plus a journal of incremental records
// (store/snapshot_delta.h). Checkpoint() after each request appends only the rows that
// request added, so a crash costs at most the request in flight; it writes a full
// snapshot instead (compaction) when there is no base yet, when the cache no longer
// extends what is on disk (an edit or a regenerate rewound it), or when the journal has
// grown as large as the base. Save() always writes a full snapshot (eject).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "engine/context.h"
#include "engine/generate.h"
#include "engine/sampler.h"
#include "lifecycle/session_state.h"
#include "store/snapshot_store.h"

namespace dormouse {

class Conversation {
 public:
  // Creates a fresh, empty context (any previous one is freed).
  Status Open(const Model& model, const ContextParams& params, ThreadPool* pool);
  // Frees the context and its KV cache; what is on disk stays.
  void Close();
  bool open() const { return ctx_ != nullptr; }
  InferenceContext& ctx() { return *ctx_; }
  const InferenceContext& ctx() const { return *ctx_; }

  const std::vector<int32_t>& tokens() const { return tokens_; }
  const std::string& text() const { return text_; }  // "" when unknown
  // True when the cache holds something the disk does not (since the last save/restore).
  bool unsaved() const { return unsaved_; }
  // True when incremental records follow the base on disk (an eject compacts them).
  bool has_journal() const { return journal_bytes_ > 0; }
  // How many of tokens() are on disk under `key` (base and journal), unchanged.
  size_t saved_tokens(const std::string& key) const { return key == disk_key_ ? clean_n_ : 0; }

  // The tokens of `text` when it continues this conversation's exact text: the held
  // tokens followed by the tokens of the rest only (see ContinueByText).
  // *kept, *redone: see ContinueByText.
  std::optional<std::vector<int32_t>> Continue(const Tokenizer& tok, const std::string& text,
                                               size_t* kept = nullptr,
                                               size_t* redone = nullptr) const;
  // Makes the cache hold `tokens` (spelling `text`), reusing the common prefix.
  StatusOr<PrefillCounts> Prefill(const std::vector<int32_t>& tokens, const std::string& text);
  // Generates from the current logits and appends what was sampled: the ids, and as
  // their text the reply as the caller records it (the decoder's text, where invalid
  // UTF-8 became U+FFFD), so that the next prompt, rendered from the transcript,
  // continues it. A reply cut at a stop string keeps the pieces its tokens spell.
  StatusOr<GenerateResult> Generate(Sampler& sampler, const Tokenizer& tok,
                                    const GenerateParams& params, const PieceCallback& on_piece,
                                    const LogitsObserver& observe = nullptr);
  // Makes this conversation hold the first n positions of `from` (a copy of its rows), as
  // a new conversation that has nothing on disk yet. On failure it is left empty.
  Status ForkFrom(const Conversation& from, size_t n);
  // Empties the cache (the context stays allocated).
  void Clear();
  // Gives back the KV memory past what the cache holds now (a conversation cut short
  // keeps its pages until then, so that regrowing it costs no page faults).
  void ReleaseUnusedMemory() {
    if (ctx_) ctx_->ReleaseUnusedKv();
  }

  // Writes a full snapshot under `key` (replacing its journal).
  StatusOr<SnapshotSaveResult> Save(SnapshotStore& store, const std::string& key,
                                    const ModelFingerprint& fingerprint, std::string_view extra,
                                    const SnapshotWriteOptions& options);
  // Brings the disk up to date: a journal record of what changed since the last save
  // when that is possible, else a full snapshot. *incremental says which (may be null).
  StatusOr<SnapshotSaveResult> Checkpoint(SnapshotStore& store, const std::string& key,
                                          const ModelFingerprint& fingerprint,
                                          std::string_view extra,
                                          const SnapshotWriteOptions& options, bool* incremental);
  // Restores `key` (base and journal) into the open context. On failure the cache is
  // empty. The extra data is returned for the owner to decode; text() is set from it
  // when it is a SessionExtra.
  StatusOr<SnapshotHeader> Restore(SnapshotStore& store, const std::string& key,
                                   const ModelFingerprint& fingerprint);

 private:
  void SavedAs(const std::string& key, size_t n, bool journal, uint64_t bytes);

  std::unique_ptr<InferenceContext> ctx_;
  std::vector<int32_t> tokens_;  // what the KV cache holds, in order
  std::string text_;             // the exact text tokens_ spell ("" if unknown)
  bool unsaved_ = false;
  // What is on disk: under disk_key_, the first disk_n_ positions, of which the cache
  // still holds the first clean_n_ unchanged; the base's size and what the journal adds.
  std::string disk_key_;
  size_t disk_n_ = 0, clean_n_ = 0;
  uint64_t base_bytes_ = 0, journal_bytes_ = 0;
};

}  // namespace dormouse
