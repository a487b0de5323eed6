// The HTTP layer over the Service: routing, the API key check, body size limit and
// timeouts against slow clients, error shapes, and the hand-off of a completion's pieces
// from the model's worker thread to the HTTP thread that streams them.
//
// Streaming design: Service::Complete blocks its caller and calls the sink on the model's
// worker thread. A CompletionRun calls Complete on a thread of its own; the sink only
// appends to the run's buffer (the worker never waits for a client), and the HTTP thread
// drains the buffer into cpp-httplib's chunked content provider. While it waits, the
// HTTP thread checks every 100 ms whether the client closed its connection, and then
// sets the request's `cancelled` flag: generation stops at the next token, for streaming
// and non-streaming requests alike. A thread per request is cheap next to a generation,
// and their number is bounded by the HTTP thread pool (each run belongs to one HTTP
// thread, which joins it).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "api/json_params.h"
#include "library/library.h"
#include "library/pull.h"
#include "lifecycle/gguf_loader.h"
#include "lifecycle/memory_probe.h"
#include "lifecycle/model_manager.h"
#include "lifecycle/service.h"
#include "store/snapshot_store.h"
#include "store/transcript_db.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace dormouse {
class EventBus;
}

namespace dormouse::api {

class SettingsStore;

inline constexpr const char* kDormouseVersion = "0.1.0";

// What the handlers use; everything outlives the HttpServer.
struct ApiContext {
  Service* service = nullptr;
  ModelManager* manager = nullptr;
  GgufModelLoader* loader = nullptr;
  SnapshotStore* snapshots = nullptr;
  MemoryProbe* probe = nullptr;
  Library* library = nullptr;  // pulls go into its models dir; none: /api/pull is a 501
  PullEndpoints pull_endpoints;
  // For the browser app's routes (app_api.h); those routes answer 503 while unset.
  EventBus* events = nullptr;
  SettingsStore* settings = nullptr;
  TranscriptDb* app_db = nullptr;  // a connection of the app routes' own
  std::mutex app_db_mu;
  Limits limits;
  std::atomic<bool> stopping{false};  // /health answers 503 once set
  bool scoped_sessions = false;       // API keys are set: sessions belong to a key
};

// The session scope of an (authorized) request: the SHA-256 hex of its bearer key when
// the server has API keys, nullopt (everything) when it has none.
SessionScope ScopeOf(const ApiContext& ctx, const httplib::Request& req);

// OpenAI nests the error ({"error": {"message", "type", "param", "code"}}); Ollama and
// the dormouse API use {"error": "message"}.
enum class ErrorShape { kOpenAi, kOllama };

nlohmann::json ErrorBody(ErrorShape shape, const ApiError& e);
// JSON text that never throws: invalid UTF-8 (a model can emit it) is replaced.
std::string Dump(const nlohmann::json& j);
void SendJson(httplib::Response& res, const nlohmann::json& body, int status = 200);
void SendError(httplib::Response& res, ErrorShape shape, const ApiError& e);
// 404 unless the model exists (PathOf refuses names that would leave the models dir).
std::optional<ApiError> CheckModel(const ApiContext& ctx, const std::string& model);

// The client's TCP connection of a request (-1 when it cannot be found): cpp-httplib
// 0.11 does not expose the socket, so it is found by its address pair.
int FindConnectionFd(const httplib::Request& req);
// True when the peer closed (or reset) the connection. A client that half-closes (shuts
// down its sending side) after its request counts as gone: HTTP clients do not do that.
bool ClientGone(int fd);

// One completion running on its own thread (see the file comment).
class CompletionRun {
 public:
  CompletionRun(Service* service, CompletionRequest request, int connection_fd);
  ~CompletionRun();  // cancels an unfinished run and waits for it
  CompletionRun(const CompletionRun&) = delete;
  CompletionRun& operator=(const CompletionRun&) = delete;

  enum class Event { kText, kDone, kClientGone };
  // Blocks until new text (appended to *text), the end of the run, or the client leaving
  // (the run is then cancelled). Text that arrived before the end comes first.
  Event Wait(std::string* text);
  // Waits for the end, discarding text; kClientGone or kDone.
  Event Finish();
  // Streams: hands `first` and then every new piece of text to `write` until the end.
  // False when the client went away or a write failed (the run is then cancelled).
  bool Pump(std::string first, const std::function<bool(const std::string&)>& write);
  // Valid after Wait returned kDone.
  const std::variant<CompletionResult, ServiceError>& outcome() const { return outcome_; }
  void Cancel() { request_.cancelled->store(true); }
  const CompletionRequest& request() const { return request_; }

 private:
  CompletionRequest request_;
  int fd_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::string pending_;
  bool done_ = false;
  std::chrono::steady_clock::time_point last_check_ = std::chrono::steady_clock::now();
  std::variant<CompletionResult, ServiceError> outcome_;
  std::thread thread_;
};

// Registers routes with the API key check, JSON body parsing and error shapes.
class Router {
 public:
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;
  using JsonHandler =
      std::function<void(const httplib::Request&, httplib::Response&, const nlohmann::json&)>;
  Router(httplib::Server* server, std::vector<std::string> api_keys)
      : server_(server), keys_(std::move(api_keys)) {}

  void Get(const std::string& pattern, ErrorShape shape, Handler h, bool open = false);
  void Delete(const std::string& pattern, ErrorShape shape, Handler h);
  // The body must be a JSON object; anything else is a 400 in `shape`.
  void Post(const std::string& pattern, ErrorShape shape, JsonHandler h);

  // True when the request may pass; otherwise the 401 (no or wrong key) or 403 (a POST or
  // DELETE from another site's page) is already in `res`.
  bool Authorized(const httplib::Request& req, httplib::Response& res, ErrorShape shape) const;

 private:
  httplib::Server* server_;
  std::vector<std::string> keys_;  // any one of them passes; none: the API is open
};

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 11435;  // 0: any free port
  // Clients send one of these as 'Authorization: Bearer KEY'; each key sees only the
  // sessions it created. Empty: no check.
  std::vector<std::string> api_keys;
  size_t max_body_bytes = 8u << 20;
  int timeout_seconds = 30;  // per read and per write: a stalled client is dropped
  int threads = 32;          // HTTP threads (connections served at once)
};

class HttpServer {
 public:
  HttpServer(HttpOptions options, ApiContext* ctx);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listening socket; returns the port (useful with port 0).
  StatusOr<int> Bind();
  // Serves until Stop(); in-flight requests finish before it returns.
  void Serve();
  // Stops accepting; safe from any thread.
  void Stop();

 private:
  void InstallErrorHandlers();
  HttpOptions options_;
  ApiContext* ctx_;
  std::unique_ptr<Router> router_;  // the routes point at it: destroyed after the server
  std::unique_ptr<httplib::Server> server_;
};

// Each API's routes (openai_api.cc, ollama_api.cc, dormouse_api.cc).
void RegisterOpenAiRoutes(Router& router, ApiContext& ctx);
void RegisterOllamaRoutes(Router& router, ApiContext& ctx);
void RegisterDormouseRoutes(Router& router, ApiContext& ctx);
void RegisterPullRoutes(Router& router, ApiContext& ctx);  // pull_api.cc
void RegisterAppRoutes(Router& router, ApiContext& ctx);   // app_api.cc

}  // namespace dormouse::api
