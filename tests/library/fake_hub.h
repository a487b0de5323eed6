// A loopback HTTPS server standing in for Hugging Face (file list, resolve redirects with
// X-Linked-Etag / X-Linked-Size, a CDN honouring Range) and the Ollama registry (manifest
// and blob endpoints), serving models from ../shared/models. Its self-signed certificate
// is generated per test run; tests trust it explicitly (PullOptions::extra_ca_file, or
// SSL_CERT_FILE for the binary).
#pragma once

#include <httplib.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "library/pull.h"

namespace dormouse::testing_util {

// Writes a self-signed certificate for 127.0.0.1 / localhost and its key (PEM).
inline bool WriteSelfSignedCert(const std::string& cert_path, const std::string& key_path) {
  EVP_PKEY* pkey = EVP_EC_gen("P-256");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, pkey);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("dormouse test"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost"},
                            std::pair{NID_basic_constraints, "critical,CA:TRUE"},
                            std::pair{NID_key_usage, "critical,digitalSignature,keyCertSign"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(x, pkey, EVP_sha256());
  bool ok = false;
  if (FILE* f = std::fopen(cert_path.c_str(), "w")) {
    ok = PEM_write_X509(f, x) == 1;
    std::fclose(f);
  }
  if (FILE* f = std::fopen(key_path.c_str(), "w")) {
    ok = ok && PEM_write_PrivateKey(f, pkey, nullptr, nullptr, 0, nullptr, nullptr) == 1;
    std::fclose(f);
  }
  X509_free(x);
  EVP_PKEY_free(pkey);
  return ok;
}

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class FakeHub {
 public:
  // `model` is served as every GGUF file of the fake repos and as the registry's blob.
  FakeHub(const std::string& dir, const std::string& model_path)
      : cert_(dir + "/hub-cert.pem"), key_(dir + "/hub-key.pem") {
    WriteSelfSignedCert(cert_, key_);
    model_ = ReadAll(model_path);
    sha_ = Sha256File(model_path).value();
    server_ = std::make_unique<httplib::SSLServer>(cert_.c_str(), key_.c_str());
    Routes();
    port_ = server_->bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_->listen_after_bind(); });
  }
  ~FakeHub() {
    Release();
    server_->stop();
    thread_.join();
  }

  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_); }
  const std::string& cert() const { return cert_; }
  const std::string& sha() const { return sha_; }
  uint64_t model_size() const { return model_.size(); }
  PullEndpoints endpoints() const { return {url(), url()}; }

  // Observations.
  std::atomic<uint64_t> bytes_served{0};
  std::atomic<int> model_gets{0};  // GETs of model bytes (each a download or a resume)
  std::atomic<int> resolves{0};    // HEADs and manifest GETs (a pull's first step)
  std::vector<std::string> ranges() {
    std::lock_guard<std::mutex> l(mu_);
    return ranges_;
  }
  // Knobs.
  std::atomic<uint64_t> cut_after{UINT64_MAX};  // break the next transfer after N bytes
  std::atomic<bool> publish_wrong_sha{false};
  // Model bytes wait until this many resolves happened (two pulls racing), or Release().
  void HoldUntilResolves(int n) { hold_until_ = n; }
  void Release() {
    std::lock_guard<std::mutex> l(mu_);
    hold_until_ = 0;
    cv_.notify_all();
  }

 private:
  std::string PublishedSha() const { return publish_wrong_sha ? std::string(64, '0') : sha_; }
  void CountResolve() {
    ++resolves;
    std::lock_guard<std::mutex> l(mu_);
    cv_.notify_all();
  }

  void ServeModel(const httplib::Request& req, httplib::Response& res) {
    res.set_header("ETag", "\"" + sha_ + "\"");
    if (req.method == "HEAD") {
      res.set_header("Content-Length", std::to_string(model_.size()));
      return;
    }
    ++model_gets;
    {
      std::unique_lock<std::mutex> l(mu_);
      ranges_.push_back(req.get_header_value("Range"));
      cv_.wait(l, [&] { return hold_until_ == 0 || resolves >= hold_until_; });
    }
    const uint64_t cut = cut_after.exchange(UINT64_MAX);
    res.set_content_provider(model_.size(), "application/octet-stream",
                             [this, cut, sent = uint64_t{0}](size_t offset, size_t length,
                                                             httplib::DataSink& sink) mutable {
                               size_t n = std::min<size_t>(length, 64 << 10);
                               if (sent + n > cut) n = cut - sent;
                               if (n == 0) return false;  // the connection breaks off
                               sink.write(model_.data() + offset, n);
                               sent += n;
                               bytes_served += n;
                               return true;
                             });
  }

  void Routes() {
    using Req = const httplib::Request&;
    using Res = httplib::Response&;
    // Hugging Face: the repo's files, then resolve -> CDN.
    server_->Get("/api/models/org/tiny-GGUF", [this](Req, Res res) {
      CountResolve();
      nlohmann::json siblings = nlohmann::json::array();
      for (const char* f : {"README.md", "mmproj-tiny-f16.gguf", "tiny-Q4_K_M.gguf",
                            "tiny-Q8_0.gguf", "tiny-Q4_K_S.gguf"}) {
        siblings.push_back({{"rfilename", f}});
      }
      res.set_content(nlohmann::json{{"siblings", siblings}}.dump(), "application/json");
    });
    server_->Get(R"(/org/tiny-GGUF/resolve/main/([\w.-]+\.gguf))", [this](Req req, Res res) {
      if (req.method == "HEAD") CountResolve();
      res.status = 302;
      res.set_header("Location", "/cdn/" + sha_);
      res.set_header("X-Linked-Etag", "\"" + PublishedSha() + "\"");
      res.set_header("X-Linked-Size", std::to_string(model_.size()));
    });
    server_->Get(R"(/cdn/([0-9a-f]{64}))", [this](Req req, Res res) { ServeModel(req, res); });
    server_->Get("/files/stories.gguf", [this](Req req, Res res) {
      if (req.method == "HEAD") CountResolve();
      ServeModel(req, res);
    });
    // The Ollama registry: manifest, then blobs (the model's redirects to the CDN).
    server_->Get("/v2/library/stories/manifests/260k", [this](Req, Res res) {
      CountResolve();
      nlohmann::json m = {{"schemaVersion", 2},
                          {"mediaType", "application/vnd.docker.distribution.manifest.v2+json"},
                          {"layers",
                           {{{"mediaType", "application/vnd.ollama.image.model"},
                             {"digest", "sha256:" + PublishedSha()},
                             {"size", model_.size()}},
                            {{"mediaType", "application/vnd.ollama.image.template"},
                             {"digest", "sha256:" + Sha256Hex(kTemplate)},
                             {"size", std::string(kTemplate).size()}},
                            {{"mediaType", "application/vnd.ollama.image.params"},
                             {"digest", "sha256:" + Sha256Hex(kParams)},
                             {"size", std::string(kParams).size()}}}}};
      res.set_content(m.dump(), "application/vnd.docker.distribution.manifest.v2+json");
    });
    server_->Get(R"(/v2/library/stories/blobs/sha256:([0-9a-f]{64}))", [this](Req req, Res res) {
      const std::string hex = req.matches[1];
      if (hex == Sha256Hex(kTemplate)) return res.set_content(kTemplate, "text/plain");
      if (hex == Sha256Hex(kParams)) return res.set_content(kParams, "application/json");
      res.status = 307;
      res.set_header("Location", url() + "/cdn/" + sha_);
    });
  }

  static std::string Sha256Hex(const std::string& s) {
    unsigned char md[32];
    unsigned int n = 0;
    EVP_Digest(s.data(), s.size(), md, &n, EVP_sha256(), nullptr);
    std::string out;
    char buf[3];
    for (unsigned i = 0; i < n; ++i) {
      std::snprintf(buf, sizeof buf, "%02x", md[i]);
      out += buf;
    }
    return out;
  }
  static constexpr const char* kTemplate = "{{ .Prompt }}";
  static constexpr const char* kParams = R"({"stop":["</s>"]})";

  std::string cert_, key_, model_, sha_;
  std::unique_ptr<httplib::SSLServer> server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> ranges_;
  int hold_until_ = 0;
};

}  // namespace dormouse::testing_util
