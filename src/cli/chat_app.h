// `dormouse chat`: an interactive conversation that survives ejects and restarts. The
// model lives in a ModelManager (idle eject after --keep-alive while we wait for input;
// reload and restore on the next message); the conversation is a ChatSession whose
// transcript is in the data directory's SQLite file and whose KV cache is saved as a
// snapshot after every turn and on every eject.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <string>

#include "base/duration.h"
#include "engine/sampler.h"
#include "lifecycle/chat_session.h"
#include "lifecycle/gguf_loader.h"
#include "lifecycle/model_manager.h"

namespace dormouse::cli {

struct ChatOptions {
  std::string model;
  std::string session;  // empty: a new session with a generated name
  std::string system;
  std::string data_dir;
  std::string keep_alive = "5m";
  int threads = 0;
  int64_t ctx = 0;
  int64_t max_tokens = -1;
  int64_t snapshot_budget_mib = -1;  // < 0: SnapshotStore::DefaultBudget
  bool compress = false;
  SamplerParams sampling;
  int64_t seed = -1;
};

class ChatApp {
 public:
  static StatusOr<std::unique_ptr<ChatApp>> CreateOrError(const ChatOptions& options);
  ~ChatApp();
  // Reads messages and commands from `in` until /quit or end of input.
  int Run(std::istream& in);

 private:
  ChatApp() = default;
  Status OpenSession();
  StatusOr<ModelManager::Lease> EnsureReady();
  void Turn(const std::string& text);
  bool Command(const std::string& line);  // false: quit
  void PrintStatus();
  void PrintSessions();
  void Eject(const std::string& arg);
  void Save();
  void OnEject(const std::string& model, Reason reason);

  ChatOptions o_;
  std::string model_name_;
  KeepAlive keep_alive_;
  ContextParams context_;
  SnapshotWriteOptions write_options_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<TranscriptDb> db_;
  std::unique_ptr<SnapshotStore> snapshots_;
  std::unique_ptr<GgufModelLoader> loader_;
  SystemClock clock_;
  ProcMemoryProbe probe_;
  std::unique_ptr<ModelManager> manager_;
  std::unique_ptr<ChatSession> session_;
  std::mutex session_mu_;   // the eject hook (timer thread) and the input loop share it
  std::string last_eject_;  // what the last eject did, for the reload notice
};

}  // namespace dormouse::cli
