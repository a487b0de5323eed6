// The server's core, below HTTP: one internal request type that the OpenAI and Ollama
// adapters translate to and from (../shared/STYLE.md, principle 8), executed by a worker
// thread per loaded model. HTTP threads post requests and receive pieces through a
// callback; they never touch engine state.
//
// Prefix reuse: every model keeps a few live contexts ("slots"); a request's tokens are
// matched against the slots and against every saved snapshot of the model (a prefix
// index of hashes, lifecycle/prefix_index.h), the longest match is continued (restoring a
// snapshot from disk if need be), and only the rest is prefilled. So a stateless client
// that resends the whole conversation each turn costs only the new tokens, also after an
// idle eject or a restart. Each slot is a Conversation (lifecycle/conversation.h), the
// same mechanism `dormouse chat` uses; after every reply it is checkpointed to disk.
// It lives in lifecycle/: api/ holds only the HTTP adapters.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "base/status.h"
#include "engine/chat/chat_template.h"
#include "engine/context.h"
#include "engine/generate.h"
#include "engine/sampler.h"
#include "lifecycle/model_manager.h"
#include "store/snapshot.h"

namespace dormouse {

class TranscriptDb;
class SnapshotStore;
class GgufModelLoader;

// Errors carry an HTTP-ish category so adapters pick the status code.
enum class ErrorKind {
  kBadRequest,   // 400: malformed or out-of-range parameters
  kNotFound,     // 404: unknown model or session
  kTooLarge,     // 413: prompt longer than the context, body too large
  kOverloaded,   // 429: the model's queue is full
  kUnavailable,  // 503: cannot load (memory budget), shutting down
  kInternal,     // 500
};

struct ServiceError {
  ErrorKind kind = ErrorKind::kInternal;
  std::string message;
};

struct CompletionRequest {
  std::string model;
  // Chat requests carry messages (rendered with the model's template); completion
  // requests carry a prompt, used as is (BOS added when the model asks for it).
  bool chat = false;
  std::vector<ChatMessage> messages;
  std::string prompt;
  int64_t max_tokens = -1;  // < 0: until end of generation or the context is full
  SamplerParams sampling;
  std::vector<std::string> stop;
  KeepAlive keep_alive = KeepAlive::Default();
  // Who may see and continue the conversation: the SHA-256 hex of the client's API key
  // when the server has keys (nullopt when it has none: every session is everyone's).
  std::optional<std::string> owner;
  // Set by the adapter when the client went away; generation stops at the next token.
  std::shared_ptr<std::atomic<bool>> cancelled = std::make_shared<std::atomic<bool>>(false);
};

struct CompletionResult {
  std::string text;
  StopReason stop = StopReason::kEndOfGeneration;
  std::string session_id;     // the conversation this request continued or started
  int64_t prompt_tokens = 0;  // tokens of the full prompt
  int64_t cached_tokens = 0;  // of those, reused from a live context or a snapshot
  int64_t prefilled_tokens = 0;
  int64_t completion_tokens = 0;
  bool restored_from_snapshot = false;
  double load_seconds = 0;     // model load (0 when it was loaded)
  double restore_seconds = 0;  // snapshot read into the context
  double prompt_seconds = 0;   // prefill
  double generate_seconds = 0;
  double total_seconds = 0;  // from posting to the last token, queue wait included
};

// Called on the worker thread with each new piece of text; returning false cancels.
using PieceSink = std::function<bool(std::string_view piece)>;

// Test hooks, called on the model's worker thread; empty in production. A hook may block
// (to hold a request at a known point) or throw (to inject a failure such as bad_alloc).
struct ServiceHooks {
  std::function<void(const CompletionRequest&)> on_piece;  // before a piece reaches the sink
};

struct ServiceOptions {
  int threads = 0;  // compute threads, shared by all models; 0 = one per physical core
  int64_t contexts_per_model = 4;  // live slots per model
  int64_t max_queue = 16;          // waiting requests per model before 429
  ContextParams context;           // of every slot
  SnapshotWriteOptions snapshots;
  ServiceHooks hooks;
};

struct SessionInfo {
  std::string id;
  std::string model;
  std::string state;  // "live" (in a loaded context), "saved" (snapshot only), "transcript"
  int64_t n_tokens = 0;
  int64_t n_tokens_saved = 0;  // of n_tokens, those on disk: a crash loses only the rest
  uint64_t snapshot_bytes = 0;
  double updated_at = 0;
  int64_t n_messages = 0;
  std::string owner;  // see CompletionRequest::owner; never shown to clients
};

// Which sessions a caller sees: nullopt, all of them (no API keys); else those whose
// owner is this key hash.
using SessionScope = std::optional<std::string>;

// A Prometheus-style latency histogram: fixed bounds, cumulative counts that only grow.
struct LatencyHistogram {
  static constexpr double kBounds[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                       0.5,   1,     2.5,  5,     10,   30,  60};
  int64_t buckets[std::size(kBounds)] = {};  // observations <= kBounds[i]
  int64_t count = 0;
  double sum = 0;
  void Observe(double seconds) {
    for (size_t i = 0; i < std::size(kBounds); ++i) buckets[i] += seconds <= kBounds[i];
    ++count;
    sum += seconds;
  }
};

struct ServiceMetrics {
  int64_t requests = 0, requests_failed = 0, requests_rejected = 0;
  int64_t tokens_prefilled = 0, tokens_cached = 0, tokens_generated = 0;
  int64_t snapshots_saved = 0, snapshots_restored = 0;
  int64_t snapshots_appended = 0;  // incremental journal records (one per request)
  uint64_t snapshot_bytes_written = 0;
  int64_t requests_cancelled = 0;  // the client went away before or while it ran
  LatencyHistogram restore_seconds;
  LatencyHistogram load_seconds;
  LatencyHistogram snapshot_write_seconds;
  double generate_seconds = 0;  // total, for tokens/s
  // RAM held by the prefix index of saved snapshots (their tokens and texts), and its
  // entries: filled in by Metrics(), so its growth is visible.
  uint64_t prefix_index_bytes = 0;
  int64_t prefix_index_entries = 0;
};

class Service {
 public:
  // Loader, manager, transcripts and snapshots must outlive the service.
  Service(ServiceOptions options, GgufModelLoader* loader, ModelManager* manager, TranscriptDb* db,
          SnapshotStore* snapshots);
  ~Service();  // Shutdown()

  // Runs one request to the end (streaming pieces to `sink`) or fails with a kind.
  // Blocks the calling (HTTP) thread; the work happens on the model's worker.
  std::variant<CompletionResult, ServiceError> Complete(const CompletionRequest& request,
                                                        const PieceSink& sink);
  // Unloads the model (Ollama's empty prompt with keep_alive 0), saving its sessions.
  std::variant<EjectReport, ServiceError> Unload(const std::string& model, EjectLevel level,
                                                 bool force);

  std::vector<std::string> ModelNames() const;
  // Sessions visible in `scope`; one outside it is reported as absent.
  std::vector<SessionInfo> Sessions(const SessionScope& scope = std::nullopt) const;
  std::optional<SessionInfo> Session(const std::string& id,
                                     const SessionScope& scope = std::nullopt) const;
  // Messages of a session's transcript, oldest first.
  StatusOr<std::vector<std::pair<std::string, std::string>>> Transcript(
      const std::string& id, const SessionScope& scope = std::nullopt) const;
  // Forgets the session everywhere (live context, snapshot, transcript); NotFound-kind
  // error when there is no such session.
  std::optional<ServiceError> DeleteSession(const std::string& id,
                                            const SessionScope& scope = std::nullopt);
  ServiceMetrics Metrics() const;

  // Stops accepting requests, finishes or checkpoints in-flight ones, saves every live
  // session, and stops the workers. Idempotent.
  void Shutdown();

  // The eject hook for the ModelManager: saves the model's live sessions, frees slots.
  void OnEject(const std::string& model, ModelHandle& handle, Reason reason);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dormouse
