// The HTTP server and the Runtime in the test's own process, for tests that inject
// faults or hold a request at a known point through the runtime's hooks (which a
// `dormouse serve` child process cannot take).
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "api/http_server.h"
#include "api/runtime.h"

namespace dormouse::testing {

class InProcessServer {
 public:
  // `options` gets a fresh data dir and the shared models unless they are set.
  explicit InProcessServer(RuntimeOptions options, std::vector<std::string> api_keys = {}) {
    namespace fs = std::filesystem;
    std::string tmpl = (fs::temp_directory_path() / "dormouse-inproc-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data()) ? tmpl : "";
    if (options.data_dir.empty()) options.data_dir = dir_ + "/data";
    if (options.models_dir.empty()) options.models_dir = std::string(DM_SHARED_DIR) + "/models";
    if (options.context.n_ctx == 0) options.context.n_ctx = 1024;
    if (options.threads == 0) options.threads = 2;
    options.start_timer = false;
    rt_ = Runtime::CreateOrError(options).value();
    ctx_.service = &rt_->service();
    ctx_.manager = &rt_->manager();
    ctx_.loader = &rt_->loader();
    ctx_.snapshots = &rt_->snapshots();
    ctx_.probe = &rt_->probe();
    ctx_.events = &rt_->events();
    ctx_.settings = &rt_->settings();
    ctx_.app_db = &rt_->app_db();
    api::HttpOptions ho;
    ho.port = 0;
    ho.api_keys = std::move(api_keys);
    ho.threads = 8;
    server_ = std::make_unique<api::HttpServer>(ho, &ctx_);
    port_ = server_->Bind().value();
    thread_ = std::thread([this] { server_->Serve(); });
  }
  ~InProcessServer() {
    server_->Stop();
    thread_.join();
    server_.reset();
    rt_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // A client whose reads fail after `timeout_seconds`: a regression that blocks shows up
  // as a failed request, not a hung suite.
  httplib::Client Client(int timeout_seconds = 30) const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(timeout_seconds, 0);
    c.set_connection_timeout(5, 0);
    return c;
  }
  Runtime& runtime() { return *rt_; }
  int port() const { return port_; }

 private:
  std::string dir_;
  std::unique_ptr<Runtime> rt_;
  api::ApiContext ctx_;
  std::unique_ptr<api::HttpServer> server_;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace dormouse::testing
