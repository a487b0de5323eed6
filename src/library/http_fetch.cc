#include "library/http_fetch.h"

#include <httplib.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <memory>

namespace dormouse {
namespace {

constexpr int kMaxRedirects = 10;

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), ::tolower);
  return s;
}

HeaderMap LowerHeaders(const httplib::Headers& h) {
  HeaderMap out;
  for (const auto& [k, v] : h) out.emplace(Lower(k), v);
  return out;
}

bool IsRedirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

Status CheckScheme(const Url& u) {
  if (u.scheme == "https" || (u.scheme == "http" && IsLoopback(u.host))) return Status::Ok();
  return Status::Errorf("{}: only https:// is allowed (http:// only to a loopback address)",
                        u.ToString());
}

std::string DescribeError(const httplib::Result& r, const httplib::Client& c, const Url& u) {
  if (r.error() == httplib::Error::SSLServerVerification) {
    long v = c.get_openssl_verify_result();
    return fmt::format("{}: the server's TLS certificate is not trusted ({})", u.Origin(),
                       X509_verify_cert_error_string(v));
  }
  return fmt::format("{}: {}", u.ToString(), httplib::to_string(r.error()));
}

Status Configure(httplib::Client& client, const Url& u, const std::string& extra_ca) {
  client.set_connection_timeout(15);
  client.set_read_timeout(60);
  client.set_decompress(false);  // byte ranges of the stored file, never re-encoded
  if (u.scheme != "https") return Status::Ok();
  client.enable_server_certificate_verification(true);
  if (extra_ca.empty()) return Status::Ok();
  X509_STORE* store = X509_STORE_new();  // the client's TLS context takes ownership
  X509_STORE_set_default_paths(store);
  if (X509_STORE_load_file(store, extra_ca.c_str()) != 1) {
    X509_STORE_free(store);
    return Status::Errorf("cannot load the CA file {}", extra_ca);
  }
  client.set_ca_cert_store(store);
  return Status::Ok();
}

}  // namespace

std::string Url::Origin() const {
  const bool default_port = (scheme == "https" && port == 443) || (scheme == "http" && port == 80);
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return scheme + "://" + h + (default_port ? "" : ":" + std::to_string(port));
}

StatusOr<Url> ParseUrl(const std::string& text) {
  Url u;
  size_t sep = text.find("://");
  if (sep == std::string::npos) return Status::Errorf("'{}' is not a URL", text);
  u.scheme = Lower(text.substr(0, sep));
  if (u.scheme != "https" && u.scheme != "http") {
    return Status::Errorf("'{}': unsupported scheme '{}'", text, u.scheme);
  }
  std::string rest = text.substr(sep + 3);
  size_t slash = rest.find_first_of("/?#");
  std::string authority = rest.substr(0, slash);
  u.target = slash == std::string::npos ? "/" : rest.substr(slash);
  if (u.target[0] != '/') u.target = "/" + u.target;
  if (size_t hash = u.target.find('#'); hash != std::string::npos) u.target.resize(hash);
  if (authority.find('@') != std::string::npos) {
    return Status::Errorf("'{}': credentials in URLs are not supported", text);
  }
  std::string port;
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string::npos) return Status::Errorf("'{}': bad IPv6 address", text);
    u.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':')
      port = authority.substr(close + 2);
  } else {
    size_t colon = authority.rfind(':');
    u.host = authority.substr(0, colon);
    if (colon != std::string::npos) port = authority.substr(colon + 1);
  }
  if (u.host.empty()) return Status::Errorf("'{}' has no host", text);
  u.port = u.scheme == "https" ? 443 : 80;
  if (!port.empty()) {
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit) ||
        std::stoi(port) < 1 || std::stoi(port) > 65535) {
      return Status::Errorf("'{}': bad port '{}'", text, port);
    }
    u.port = std::stoi(port);
  }
  return u;
}

StatusOr<Url> ResolveUrl(const Url& base, const std::string& location) {
  if (location.find("://") != std::string::npos) return ParseUrl(location);
  if (location.empty() || location[0] != '/') {
    return Status::Errorf("{}: unsupported redirect target '{}'", base.ToString(), location);
  }
  Url u = base;
  u.target = location;
  return u;
}

StatusOr<HttpReply> HttpFetcher::Head(const std::string& url, const HeaderMap& headers) {
  return Fetch(Method::kHead, url, headers, nullptr, 0);
}

StatusOr<HttpReply> HttpFetcher::Get(const std::string& url, const HeaderMap& headers,
                                     uint64_t max_bytes) {
  return Fetch(Method::kGet, url, headers, nullptr, max_bytes);
}

StatusOr<HttpReply> HttpFetcher::Stream(const std::string& url, uint64_t offset, const Sink& sink) {
  HeaderMap h;
  if (offset > 0) h["Range"] = fmt::format("bytes={}-", offset);
  return Fetch(Method::kGet, url, h, &sink, 0);
}

StatusOr<HttpReply> HttpFetcher::Fetch(Method m, const std::string& url, const HeaderMap& headers,
                                       const Sink* sink, uint64_t max_bytes) {
  DM_ASSIGN_OR_RETURN(Url u, ParseUrl(url));
  HttpReply reply;
  for (int hop = 0; hop <= kMaxRedirects; ++hop) {
    DM_RETURN_IF_ERROR(CheckScheme(u));
    httplib::Client client(u.Origin());
    DM_RETURN_IF_ERROR(Configure(client, u, extra_ca_));
    httplib::Headers h(headers.begin(), headers.end());
    h.emplace("User-Agent", "dormouse");
    int status = 0;
    HeaderMap got;
    std::string body;
    bool too_big = false;
    httplib::Result r = m == Method::kHead
                            ? client.Head(u.target.c_str(), h)
                            : client.Get(
                                  u.target.c_str(), h,
                                  [&](const httplib::Response& res) {
                                    status = res.status;
                                    got = LowerHeaders(res.headers);
                                    return true;
                                  },
                                  [&](const char* d, size_t n) {
                                    if (sink != nullptr && status >= 200 && status < 300)
                                      return (*sink)(status, d, n);
                                    if (body.size() + n > std::max<uint64_t>(max_bytes, 64 << 10)) {
                                      too_big = true;
                                      return false;
                                    }
                                    body.append(d, n);
                                    return true;
                                  });
    if (too_big) return Status::Errorf("{}: the reply is larger than expected", u.ToString());
    if (!r) return Status::Error(DescribeError(r, client, u));
    if (m == Method::kHead) {
      status = r->status;
      got = LowerHeaders(r->headers);
    }
    if (hop == 0) reply.first_headers = got;
    if (IsRedirect(status) && got.count("location")) {
      DM_ASSIGN_OR_RETURN(u, ResolveUrl(u, got["location"]));
      continue;
    }
    reply.status = status;
    reply.headers = std::move(got);
    reply.body = std::move(body);
    reply.url = u;
    return reply;
  }
  return Status::Errorf("{}: more than {} redirects", url, kMaxRedirects);
}

}  // namespace dormouse
