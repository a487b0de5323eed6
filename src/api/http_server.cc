#include "api/http_server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <httplib.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstdlib>
#include <iostream>

#include "base/sha256.h"

namespace dormouse::api {

using nlohmann::json;

namespace {

const char* OpenAiType(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
    case 400:
    case 413:
      return "invalid_request_error";
    case 429:
      return "rate_limit_error";
    default:
      return "server_error";
  }
}

// The shape a path's clients expect: OpenAI under /v1/, the plain one elsewhere.
ErrorShape ShapeForPath(const std::string& path) {
  return path.rfind("/v1/", 0) == 0 ? ErrorShape::kOpenAi : ErrorShape::kOllama;
}

// Address and port of a socket address, for matching a request's connection.
bool AddressOf(const sockaddr_storage& sa, std::string* ip, int* port) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (sa.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(sa);
    inet_ntop(AF_INET, &in.sin_addr, buf, sizeof buf);
    *port = ntohs(in.sin_port);
  } else if (sa.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(sa);
    inet_ntop(AF_INET6, &in6.sin6_addr, buf, sizeof buf);
    *port = ntohs(in6.sin6_port);
  } else {
    return false;
  }
  *ip = buf;
  return true;
}

// Compares without an early exit, so the time taken does not tell how much matched.
bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// The key of 'Authorization: Bearer KEY', or "".
std::string BearerToken(const httplib::Request& req) {
  const std::string auth = req.get_header_value("Authorization");
  const std::string prefix = "Bearer ";
  if (auth.size() <= prefix.size() || auth.compare(0, prefix.size(), prefix) != 0) return "";
  return auth.substr(prefix.size());
}

// A browser's request from another site's page: its Origin names a host other than the one
// it was sent to. Browsers send Origin with every POST and DELETE; other clients send none.
// Refusing those keeps a web page from driving a keyless local server (a text/plain POST
// needs no CORS preflight), which is what Ollama's allowed-origins check is for too.
bool CrossOrigin(const httplib::Request& req) {
  std::string origin = req.get_header_value("Origin");
  if (origin.empty()) return false;
  for (const char* scheme : {"http://", "https://"}) {
    if (origin.rfind(scheme, 0) == 0) origin.erase(0, std::string_view(scheme).size());
  }
  std::string host = req.get_header_value("Host");
  auto lower = [](std::string& s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  };
  lower(origin);
  lower(host);
  return origin != host;
}

}  // namespace

json ErrorBody(ErrorShape shape, const ApiError& e) {
  if (shape == ErrorShape::kOllama) return {{"error", e.message}};
  json err = {{"message", e.message},
              {"type", OpenAiType(e.status)},
              {"param", e.param.empty() ? json(nullptr) : json(e.param)},
              {"code", e.code.empty() ? json(nullptr) : json(e.code)}};
  return {{"error", err}};
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void SendJson(httplib::Response& res, const json& body, int status) {
  res.status = status;
  res.set_content(Dump(body), "application/json");
}

void SendError(httplib::Response& res, ErrorShape shape, const ApiError& e) {
  SendJson(res, ErrorBody(shape, e), e.status);
}

std::optional<ApiError> CheckModel(const ApiContext& ctx, const std::string& model) {
  if (model.empty()) return ApiError{400, "model is required", "model", ""};
  StatusOr<std::string> path = ctx.loader->PathOf(model);
  if (!path.ok()) {
    ApiError e = NotFoundModel(model);
    e.message = path.status().message();  // names the model and what is available
    return e;
  }
  return std::nullopt;
}

int FindConnectionFd(const httplib::Request& req) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    sockaddr_storage local{}, peer{};
    socklen_t ll = sizeof local, pl = sizeof peer;
    if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&local), &ll) != 0 ||
        getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &pl) != 0) {
      continue;
    }
    std::string lip, pip;
    int lport = -1, pport = -1;
    if (!AddressOf(local, &lip, &lport) || !AddressOf(peer, &pip, &pport)) continue;
    if (lport == req.local_port && pport == req.remote_port && pip == req.remote_addr) {
      found = static_cast<int>(fd);
      break;
    }
  }
  closedir(dir);
  return found;
}

bool ClientGone(int fd) {
  if (fd < 0) return false;
  pollfd p{fd, static_cast<short>(POLLIN | POLLRDHUP), 0};
  if (poll(&p, 1, 0) <= 0) return false;
  if (p.revents & (POLLHUP | POLLERR | POLLRDHUP | POLLNVAL)) return true;
  if (p.revents & POLLIN) {  // data (a pipelined request) or the end of the stream
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
  }
  return false;
}

// ---- CompletionRun ----

CompletionRun::CompletionRun(Service* service, CompletionRequest request, int connection_fd)
    : request_(std::move(request)), fd_(connection_fd) {
  thread_ = std::thread([this, service] {
    std::variant<CompletionResult, ServiceError> result;
    try {  // this thread's top level: a throw becomes the request's 500, not a terminate
      result = service->Complete(request_, [this](std::string_view piece) {
        std::lock_guard<std::mutex> lock(mu_);
        pending_.append(piece);
        cv_.notify_one();
        return !request_.cancelled->load();
      });
    } catch (const std::exception& ex) {
      result = ServiceError{ErrorKind::kInternal, fmt::format("internal error: {}", ex.what())};
    } catch (...) {
      result = ServiceError{ErrorKind::kInternal, "internal error: unknown exception"};
    }
    std::lock_guard<std::mutex> lock(mu_);
    outcome_ = std::move(result);
    done_ = true;
    cv_.notify_one();
  });
}

CompletionRun::~CompletionRun() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!done_) Cancel();
  }
  if (thread_.joinable()) thread_.join();
}

CompletionRun::Event CompletionRun::Wait(std::string* text) {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    // Checked by the clock, not only when idle: text may arrive faster than 10 Hz.
    const auto now = std::chrono::steady_clock::now();
    if (!done_ && now - last_check_ >= std::chrono::milliseconds(100)) {
      last_check_ = now;
      if (ClientGone(fd_)) {
        Cancel();
        return Event::kClientGone;
      }
    }
    if (!pending_.empty()) {
      text->append(pending_);
      pending_.clear();
      return Event::kText;
    }
    if (done_) return Event::kDone;
    cv_.wait_for(lock, std::chrono::milliseconds(100));
  }
}

CompletionRun::Event CompletionRun::Finish() {
  std::string ignored;
  for (;;) {
    Event e = Wait(&ignored);
    ignored.clear();
    if (e != Event::kText) return e;
  }
}

bool CompletionRun::Pump(std::string text, const std::function<bool(const std::string&)>& write) {
  for (;;) {
    if (!text.empty()) {
      if (!write(text)) {
        Cancel();
        return false;
      }
      text.clear();
    }
    const Event ev = Wait(&text);
    if (ev == Event::kClientGone) return false;
    if (ev == Event::kDone && text.empty()) return true;
  }
}

// ---- Router ----

SessionScope ScopeOf(const ApiContext& ctx, const httplib::Request& req) {
  if (!ctx.scoped_sessions) return std::nullopt;
  return Sha256Hex(BearerToken(req));
}

bool Router::Authorized(const httplib::Request& req, httplib::Response& res,
                        ErrorShape shape) const {
  if (req.method != "GET" && CrossOrigin(req)) {
    SendError(
        res, shape,
        {403, "cross-origin request refused (Origin '" + req.get_header_value("Origin") + "')", "",
         "cross_origin"});
    return false;
  }
  if (keys_.empty()) return true;
  const std::string auth = req.get_header_value("Authorization");
  const std::string token = BearerToken(req);
  bool match = false;
  for (const std::string& key : keys_) match |= !token.empty() && ConstantTimeEquals(token, key);
  if (match) return true;
  ApiError e{401,
             auth.empty() ? "missing API key: send the header 'Authorization: Bearer <key>'"
                          : "invalid API key",
             "", "invalid_api_key"};
  SendError(res, shape, e);
  res.set_header("WWW-Authenticate", "Bearer");
  return false;
}

void Router::Get(const std::string& pattern, ErrorShape shape, Handler h, bool open) {
  server_->Get(pattern,
               [this, shape, h, open](const httplib::Request& req, httplib::Response& res) {
                 if (open || Authorized(req, res, shape)) h(req, res);
               });
}

void Router::Delete(const std::string& pattern, ErrorShape shape, Handler h) {
  server_->Delete(pattern, [this, shape, h](const httplib::Request& req, httplib::Response& res) {
    if (Authorized(req, res, shape)) h(req, res);
  });
}

void Router::Post(const std::string& pattern, ErrorShape shape, JsonHandler h) {
  server_->Post(pattern, [this, shape, h](const httplib::Request& req, httplib::Response& res) {
    if (!Authorized(req, res, shape)) return;
    auto body = ParseJsonObject(req.body);
    if (auto* e = std::get_if<ApiError>(&body)) {
      SendError(res, shape, *e);
      return;
    }
    h(req, res, std::get<json>(body));
  });
}

// ---- HttpServer ----

HttpServer::HttpServer(HttpOptions options, ApiContext* ctx)
    : options_(std::move(options)), ctx_(ctx), server_(std::make_unique<httplib::Server>()) {
  httplib::Server& s = *server_;
  const int threads = std::max(2, options_.threads);
  s.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  s.set_payload_max_length(options_.max_body_bytes);
  s.set_read_timeout(options_.timeout_seconds, 0);
  s.set_write_timeout(options_.timeout_seconds, 0);
  s.set_keep_alive_max_count(1000);
  // Idle keep-alive connections hold an HTTP thread, and shutdown waits for them: short.
  s.set_keep_alive_timeout(2);
  InstallErrorHandlers();
  ctx_->scoped_sessions = !options_.api_keys.empty();
  router_ = std::make_unique<Router>(&s, options_.api_keys);
  RegisterOpenAiRoutes(*router_, *ctx_);
  RegisterOllamaRoutes(*router_, *ctx_);
  RegisterDormouseRoutes(*router_, *ctx_);
  RegisterPullRoutes(*router_, *ctx_);
  RegisterAppRoutes(*router_, *ctx_);
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::InstallErrorHandlers() {
  const size_t max_body = options_.max_body_bytes;
  const int timeout = options_.timeout_seconds;
  // Called for error statuses whose body is still empty: cpp-httplib's own 400 (bad
  // request line, a body not received in time), 404 (no route) and 413 (body too large).
  server_->set_error_handler([max_body, timeout](const httplib::Request& req,
                                                 httplib::Response& res) {
    if (!res.body.empty()) return;
    ApiError e{res.status, "", "", ""};
    if (res.status == 404) {
      e.message = fmt::format("no endpoint {} {}", req.method, req.path);
    } else if (res.status == 413) {
      e.message = fmt::format("the request body is larger than the limit of {} bytes", max_body);
    } else if (res.status == 400) {
      e.message =
          fmt::format("malformed HTTP request, or its body did not arrive within {} s", timeout);
    } else {
      e.message = fmt::format("HTTP error {}", res.status);
    }
    SendError(res, ShapeForPath(req.path), e);
  });
  server_->set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& ex) {
          what = ex.what();
        } catch (...) {
        }
        std::cerr << "error: " << req.method << " " << req.path << ": " << what << "\n";
        SendError(res, ShapeForPath(req.path), ApiError{500, "internal error: " + what, "", ""});
      });
}

StatusOr<int> HttpServer::Bind() {
  int port = options_.port;
  if (port == 0) {
    port = server_->bind_to_any_port(options_.host);
    if (port <= 0) return Status::Errorf("cannot listen on {} (any port)", options_.host);
  } else if (!server_->bind_to_port(options_.host, port)) {
    return Status::Errorf("cannot listen on {}:{} (in use, or not an address of this machine)",
                          options_.host, port);
  }
  return port;
}

void HttpServer::Serve() { server_->listen_after_bind(); }

void HttpServer::Stop() { server_->stop(); }

}  // namespace dormouse::api
