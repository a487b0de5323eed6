// HTTPS for pulls: cpp-httplib over OpenSSL with certificate verification on (the system
// store, which honours SSL_CERT_FILE / SSL_CERT_DIR). Redirects are followed here, hop by
// hop, because the first hop carries what a later one loses (Hugging Face's
// X-Linked-Etag). Plain http:// is refused except to a loopback address.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "base/status.h"

namespace dormouse {

struct Url {
  std::string scheme;  // "https" or "http"
  std::string host;
  int port = 0;
  std::string target;  // path and query, starting with '/'
  std::string Origin() const;
  std::string ToString() const { return Origin() + target; }
};
StatusOr<Url> ParseUrl(const std::string& text);
// `location` (absolute, or a path) seen from `base`.
StatusOr<Url> ResolveUrl(const Url& base, const std::string& location);

// Header names lower-cased.
using HeaderMap = std::map<std::string, std::string>;

struct HttpReply {
  int status = 0;
  HeaderMap headers;        // the last hop's
  HeaderMap first_headers;  // the first hop's (a redirect's X-Linked-* headers)
  std::string body;         // Get only
  Url url;                  // where the reply came from, after redirects
};

class HttpFetcher {
 public:
  // `extra_ca_file` (tests only): a CA file trusted in addition to the system store.
  explicit HttpFetcher(std::string extra_ca_file = "") : extra_ca_(std::move(extra_ca_file)) {}

  StatusOr<HttpReply> Head(const std::string& url, const HeaderMap& headers = {});
  // A small document (a manifest, a file list); refuses bodies over `max_bytes`.
  StatusOr<HttpReply> Get(const std::string& url, const HeaderMap& headers = {},
                          uint64_t max_bytes = 16u << 20);
  // Streams the body from byte `offset` (HTTP Range when > 0) to `sink`, which returns
  // false to stop. `status` says whether the server honoured the range (206) or sends
  // the whole body (200). An error when the transfer breaks off.
  using Sink = std::function<bool(int status, const char* data, size_t n)>;
  StatusOr<HttpReply> Stream(const std::string& url, uint64_t offset, const Sink& sink);

 private:
  enum class Method { kHead, kGet };
  StatusOr<HttpReply> Fetch(Method m, const std::string& url, const HeaderMap& headers,
                            const Sink* sink, uint64_t max_bytes);
  std::string extra_ca_;
};

}  // namespace dormouse
