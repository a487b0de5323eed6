// Between pull.cc (download, verify, install) and pull_sources.cc (what to download).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "library/http_fetch.h"
#include "library/pull.h"

namespace dormouse {

// One file to download.
struct PullBlob {
  std::string url;
  std::string sha256;  // lower-case hex; "" when the source publishes none
  uint64_t size = 0;   // 0 = unknown
};

struct PullPlan {
  std::string name;
  PullBlob model;
  nlohmann::json record;  // kept beside the model: source, url, template, params
};

// Resolves a spec into the file to fetch (network: manifests, file lists, HEAD).
StatusOr<PullPlan> ResolvePullPlan(const PullSpec& spec, const PullOptions& o, HttpFetcher& http);

std::string Sha256Hex(std::string_view bytes);

// A 64-hex-digit sha256 from an ETag-like header value ("W/\"<hex>\""), else "".
std::string Sha256FromEtag(std::string value);

}  // namespace dormouse
