// Starts the real `dormouse serve` binary on a free loopback port with the shared models
// and a temporary data directory, for HTTP-level tests.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace dormouse::testing {

namespace fs = std::filesystem;
using nlohmann::json;

inline std::string SharedModels() { return std::string(DM_SHARED_DIR) + "/models"; }

inline std::string MakeTempDir() {
  std::string tmpl = (fs::temp_directory_path() / "dormouse-api-XXXXXX").string();
  return mkdtemp(tmpl.data()) ? tmpl : "";
}

class ServerProcess {
 public:
  // Starts `dormouse serve --port 0 --models-dir <shared> --data-dir <data> -t 2 <args>`.
  // An empty data_dir gets a fresh temporary one (removed at the end); an empty
  // models_dir is the shared models.
  static std::unique_ptr<ServerProcess> Start(const std::vector<std::string>& args,
                                              std::string data_dir = "",
                                              std::string models_dir = "") {
    auto s = std::unique_ptr<ServerProcess>(new ServerProcess());
    s->base_ = MakeTempDir();
    s->data_dir_ = data_dir.empty() ? s->base_ + "/data" : data_dir;
    s->log_path_ = s->base_ + "/server.log";
    std::vector<std::string> argv = {
        DM_BINARY,    "serve",        "--port",
        "0",          "--models-dir", models_dir.empty() ? SharedModels() : models_dir,
        "--data-dir", s->data_dir_,   "-t",
        "2"};
    argv.insert(argv.end(), args.begin(), args.end());
    s->pid_ = fork();
    if (s->pid_ == 0) {
      int fd = open(s->log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 2);
      int null = open("/dev/null", O_RDWR);
      dup2(null, 0);
      dup2(null, 1);
      std::vector<char*> cargv;
      for (std::string& a : argv) cargv.push_back(a.data());
      cargv.push_back(nullptr);
      execv(cargv[0], cargv.data());
      _exit(127);
    }
    if (!s->WaitListening()) {
      ADD_FAILURE() << "the server did not start:\n" << s->log();
      return nullptr;
    }
    return s;
  }

  ~ServerProcess() {
    Stop(SIGKILL);
    std::error_code ec;
    fs::remove_all(base_, ec);
  }

  // Sends `sig` and waits; the exit code, or 128 + the signal that killed it.
  int Stop(int sig = SIGTERM, int timeout_seconds = 20) {
    if (pid_ <= 0) return exit_code_;
    kill(pid_, sig);
    int status = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        ADD_FAILURE() << "the server did not stop in " << timeout_seconds << " s:\n" << log();
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    pid_ = -1;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return exit_code_;
  }

  httplib::Client Client(int read_timeout_seconds = 60) const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(read_timeout_seconds, 0);
    c.set_connection_timeout(5, 0);
    return c;
  }

  std::string log() const {
    std::ifstream in(log_path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  int port() const { return port_; }
  const std::string& data_dir() const { return data_dir_; }

 private:
  ServerProcess() = default;
  bool WaitListening() {
    const std::string marker = "listening on http://127.0.0.1:";
    for (int i = 0; i < 400; ++i) {
      std::string l = log();
      size_t at = l.find(marker);
      if (at != std::string::npos) {
        port_ = std::atoi(l.c_str() + at + marker.size());
        return port_ > 0;
      }
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  pid_t pid_ = -1;
  int port_ = 0;
  int exit_code_ = -1;
  std::string base_, data_dir_, log_path_;
};

// A plain TCP connection, for what HTTP clients do not do on purpose: stall, or vanish
// in the middle of a response.
class RawConnection {
 public:
  explicit RawConnection(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) Close();
  }
  ~RawConnection() { Close(); }
  bool ok() const { return fd_ >= 0; }
  bool Send(const std::string& s) {
    return ok() && write(fd_, s.data(), s.size()) == ssize_t(s.size());
  }
  // Reads until `needle` shows up, the peer closes, or the timeout; returns what was read.
  std::string ReadUntil(const std::string& needle, int timeout_ms) {
    std::string got;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    timeval tv{0, 50000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[4096];
    while (std::chrono::steady_clock::now() < deadline && got.find(needle) == std::string::npos) {
      ssize_t n = read(fd_, buf, sizeof buf);
      if (n == 0) break;
      if (n > 0) got.append(buf, static_cast<size_t>(n));
    }
    return got;
  }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

inline std::string HttpPost(const std::string& path, const std::string& body,
                            const std::string& extra_headers = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
         extra_headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

inline json BodyJson(const httplib::Result& r) {
  if (!r) return json();
  return json::parse(r->body, nullptr, /*allow_exceptions=*/false);
}

// Polls `f` every 50 ms until it is true or `timeout_ms` passed.
template <typename F>
bool Eventually(F f, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return f();
}

}  // namespace dormouse::testing
