// A conversation: its transcript (the source of truth, in the TranscriptDb) and, while
// its model is loaded, an inference context whose KV cache holds the tokens in
// `tokens()`. A turn prefills only what the cache does not hold yet; an eject saves the
// cache as a snapshot, and attaching again restores it, so coming back to a
// conversation never recomputes it unless the snapshot is unusable (then the transcript
// is re-prefilled, and the report says why).
//
// Context overflow policy: the system message is always kept; when the conversation
// plus room for the reply no longer fits the context, the oldest other messages are
// dropped from the window (never from the transcript) until it fits, the window is
// re-prefilled, and the turn's report carries a notice. A latest message that does not
// fit even alone is refused with an error; it is never truncated.
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
#include "lifecycle/conversation.h"
#include "lifecycle/loaded_model.h"
#include "store/snapshot_store.h"
#include "store/transcript_db.h"

namespace dormouse {

// Members all have initializers, so `{.max_tokens = 8}` compiles without
// -Wmissing-field-initializers.
struct TurnOptions {
  int64_t max_tokens = -1;  // < 0: until end of generation (room reserved: see Reserve())
  std::vector<std::string> stop{};
  LogitsObserver observe{};  // tests: the logits of every sampled token
};

struct TurnReport {
  std::string reply;
  StopReason stop = StopReason::kEndOfGeneration;
  int64_t n_prompt = 0;      // tokens of the conversation window sent to the model
  int64_t n_reused = 0;      // of those, already in the KV cache
  int64_t n_prefilled = 0;   // of those, computed now
  int64_t n_new = 0;         // tokens this turn added (the new message and its template text)
  int64_t n_recomputed = 0;  // prefilled tokens that belonged to earlier turns
  int64_t n_generated = 0;
  double prefill_seconds = 0, generate_seconds = 0;
  std::string notice;  // the overflow policy's message, when it dropped messages
};

struct RestoreReport {
  bool restored = false;
  int64_t n_restored = 0;  // tokens whose KV rows came back from the snapshot
  double seconds = 0;
  std::string fallback_reason;  // why the snapshot was not used (empty when restored)
};

class ChatSession {
 public:
  ChatSession(SessionRecord record, std::vector<MessageRecord> messages, SamplerParams sampling);

  // Binds to a loaded model with a fresh, empty context. The model must outlive the
  // binding (Detach before the model goes).
  Status Attach(const LoadedModel& model, ContextParams params);
  // Frees the context and its KV cache; the transcript stays.
  void Detach();
  bool attached() const { return conv_.open(); }
  const LoadedModel* model() const { return model_; }
  // True when the cache changed since the last Save, Checkpoint or Restore.
  bool unsaved() const { return conv_.unsaved(); }
  // True when turns were checkpointed as journal records since the last full Save.
  bool has_journal() const { return conv_.has_journal(); }

  // Saves the KV cache (tokens in use only) and the sampler state as a full snapshot.
  StatusOr<SnapshotSaveResult> Save(SnapshotStore& store, const SnapshotWriteOptions& options);
  // After a turn: appends what the turn added to the snapshot's journal (or saves in
  // full when it cannot), so a crash loses at most the turn in flight.
  StatusOr<SnapshotSaveResult> Checkpoint(SnapshotStore& store,
                                          const SnapshotWriteOptions& options);
  // Restores the snapshot into the attached context; on any problem leaves the cache
  // empty (the next turn re-prefills from the transcript) and says why.
  RestoreReport Restore(SnapshotStore& store);

  // Adds the user's message to the transcript (db may be null in tests), prefills what
  // the cache lacks, generates the reply, and records it. Pieces stream to on_piece.
  StatusOr<TurnReport> Send(const std::string& user_text, const TurnOptions& options,
                            const PieceCallback& on_piece, TranscriptDb* db);

  const SessionRecord& record() const { return record_; }
  const std::vector<MessageRecord>& messages() const { return messages_; }
  const std::vector<int32_t>& tokens() const { return conv_.tokens(); }
  const SamplerParams& sampling() const { return sampling_; }
  int64_t n_ctx() const { return conv_.open() ? conv_.ctx().n_ctx() : 0; }

 private:
  struct Prompt {
    std::vector<int32_t> tokens;
    std::string text;
    int64_t n_new = 0;
  };
  StatusOr<Prompt> BuildPrompt(int64_t reserve, std::string* notice);
  StatusOr<Prompt> RenderWindow(size_t window_start);
  StatusOr<int64_t> Prefill(const Prompt& prompt, TurnReport* report);
  int64_t Reserve(const TurnOptions& o) const;
  std::string EncodeExtra() const;
  Status DecodeExtra(const std::string& extra);

  SessionRecord record_;
  std::vector<MessageRecord> messages_;
  SamplerParams sampling_;
  size_t window_start_ = 0;  // first non-system message in the context window

  const LoadedModel* model_ = nullptr;
  Conversation conv_;
  std::unique_ptr<Sampler> sampler_;
};

}  // namespace dormouse
