// What a pull spec names, and where its bytes and checksum come from.
#include <algorithm>
#include <cstdlib>

#include "library/pull.h"
#include "library/pull_internal.h"

namespace dormouse {
namespace {

using nlohmann::json;

const char* kManifestAccept = "application/vnd.docker.distribution.manifest.v2+json";

std::string Upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), ::toupper);
  return s;
}

bool IsNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
}

// "org/repo" or "model" path segments: no "..", nothing that could leave a directory.
bool ValidSegments(const std::string& s, size_t min_parts, size_t max_parts) {
  size_t parts = 0, start = 0;
  while (true) {
    size_t end = s.find('/', start);
    std::string seg = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (seg.empty() || seg == "." || seg == ".." ||
        !std::all_of(seg.begin(), seg.end(), IsNameChar))
      return false;
    ++parts;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return parts >= min_parts && parts <= max_parts;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

StatusOr<PullSpec> ParseHf(const std::string& spec, const std::string& rest) {
  PullSpec p;
  std::string path = rest;
  if (EndsWith(Upper(path), ".GGUF")) {
    size_t second = path.find('/', path.find('/') + 1);
    if (second == std::string::npos)
      return Status::Errorf("'{}': expected hf.co/ORG/REPO/FILE.gguf", spec);
    p.kind = PullKind::kHuggingFaceFile;
    p.repo = path.substr(0, second);
    p.file = path.substr(second + 1);
    if (!ValidSegments(p.file, 1, 8)) return Status::Errorf("'{}': bad file path", spec);
    p.name = "hf.co/" + path;
  } else {
    p.kind = PullKind::kHuggingFace;
    size_t colon = path.find(':');
    if (colon != std::string::npos) {
      p.tag = path.substr(colon + 1);
      path.resize(colon);
    }
    p.repo = path;
    if (!p.tag.empty() && !std::all_of(p.tag.begin(), p.tag.end(), IsNameChar)) {
      return Status::Errorf("'{}': bad quant tag '{}'", spec, p.tag);
    }
    p.name = "hf.co/" + p.repo + ":" + (p.tag.empty() ? "latest" : p.tag);
  }
  if (!ValidSegments(p.repo, 2, 2)) return Status::Errorf("'{}': expected hf.co/ORG/REPO", spec);
  return p;
}

StatusOr<PullSpec> ParseUrlSpec(const std::string& spec) {
  PullSpec p;
  p.kind = PullKind::kUrl;
  p.url = spec;
  if (size_t h = spec.find("#sha256="); h != std::string::npos) {
    p.sha256 = Sha256FromEtag(spec.substr(h + 8));
    if (p.sha256.empty()) return Status::Errorf("'{}': #sha256= needs 64 hex digits", spec);
    p.url = spec.substr(0, h);
  }
  DM_ASSIGN_OR_RETURN(Url u, ParseUrl(p.url));
  std::string last = u.target.substr(0, u.target.find('?'));
  last = last.substr(last.rfind('/') + 1);
  if (EndsWith(Upper(last), ".GGUF")) last.resize(last.size() - 5);
  std::string name;
  for (char c : last) name += IsNameChar(c) ? c : '_';
  if (name.empty() || name[0] == '.') return Status::Errorf("'{}': the URL names no file", spec);
  p.name = name;
  return p;
}

StatusOr<std::vector<std::string>> HfRepoFiles(const PullSpec& s, const PullOptions& o,
                                               HttpFetcher& http) {
  const std::string url = o.endpoints.huggingface + "/api/models/" + s.repo;
  DM_ASSIGN_OR_RETURN(HttpReply r, http.Get(url));
  if (r.status == 401 || r.status == 404) {
    return Status::Errorf("hf.co/{}: no such repository (or it needs a login)", s.repo);
  }
  if (r.status != 200) return Status::Errorf("{}: HTTP {}", url, r.status);
  json j = json::parse(r.body, nullptr, false);
  std::vector<std::string> files;
  if (j.is_object() && j.contains("siblings") && j["siblings"].is_array()) {
    for (const json& f : j["siblings"]) {
      if (f.is_object() && f.contains("rfilename") && f["rfilename"].is_string())
        files.push_back(f["rfilename"].get<std::string>());
    }
  }
  return files;
}

// HEAD of a resolve URL: the LFS sha256 and size sit on the redirect (X-Linked-*).
StatusOr<PullBlob> HeadBlob(const std::string& url, HttpFetcher& http) {
  DM_ASSIGN_OR_RETURN(HttpReply r, http.Head(url));
  if (r.status == 404) return Status::Errorf("{}: not found", url);
  if (r.status != 200) return Status::Errorf("{}: HTTP {}", url, r.status);
  PullBlob b;
  b.url = url;
  for (const HeaderMap* h : {&r.first_headers, &r.headers}) {
    for (const char* key : {"x-linked-etag", "etag"}) {
      if (b.sha256.empty() && h->count(key)) b.sha256 = Sha256FromEtag(h->at(key));
    }
    for (const char* key : {"x-linked-size", "content-length"}) {
      if (b.size == 0 && h->count(key)) b.size = std::strtoull(h->at(key).c_str(), nullptr, 10);
    }
  }
  return b;
}

StatusOr<PullPlan> ResolveHf(const PullSpec& s, const PullOptions& o, HttpFetcher& http) {
  PullPlan plan;
  plan.name = s.name;
  std::string file = s.file;
  if (s.kind == PullKind::kHuggingFace) {
    DM_ASSIGN_OR_RETURN(std::vector<std::string> files, HfRepoFiles(s, o, http));
    StatusOr<std::string> picked = PickHfFile(files, s.tag);
    if (!picked.ok()) return picked.status().WithContext("hf.co/" + s.repo);
    file = *picked;
  }
  const std::string url = o.endpoints.huggingface + "/" + s.repo + "/resolve/main/" + file;
  DM_ASSIGN_OR_RETURN(plan.model, HeadBlob(url, http));
  if (plan.model.sha256.empty()) {
    return Status::Errorf("{}: Hugging Face published no sha256 (X-Linked-Etag) for it", url);
  }
  plan.record = {{"source", "huggingface"}, {"repo", s.repo}, {"file", file}};
  return plan;
}

// GET of a small registry blob (template, params), checked against its digest.
StatusOr<std::string> RegistryText(const std::string& base, const json& layer, HttpFetcher& http) {
  std::string digest = layer.value("digest", "");
  DM_ASSIGN_OR_RETURN(HttpReply r, http.Get(base + "/blobs/" + digest, {}, 1 << 20));
  if (r.status != 200) return Status::Errorf("{}/blobs/{}: HTTP {}", base, digest, r.status);
  if ("sha256:" + Sha256Hex(r.body) != digest) {
    return Status::Errorf("{}/blobs/{}: the content does not match its digest", base, digest);
  }
  return r.body;
}

StatusOr<PullPlan> ResolveRegistry(const PullSpec& s, const PullOptions& o, HttpFetcher& http) {
  const std::string base = o.endpoints.registry + "/v2/" + s.repo;
  const std::string url = base + "/manifests/" + s.tag;
  DM_ASSIGN_OR_RETURN(HttpReply r, http.Get(url, {{"Accept", kManifestAccept}}));
  if (r.status == 404) return Status::Errorf("'{}' is not in the registry ({})", s.name, url);
  if (r.status != 200) return Status::Errorf("{}: HTTP {}", url, r.status);
  json m = json::parse(r.body, nullptr, false);
  if (!m.is_object() || !m.contains("layers") || !m["layers"].is_array()) {
    return Status::Errorf("{}: not a manifest", url);
  }
  PullPlan plan;
  plan.name = s.name;
  plan.record = {{"source", "ollama-registry"}, {"manifest", url}};
  for (const json& layer : m["layers"]) {
    if (!layer.is_object()) continue;
    const std::string type = layer.value("mediaType", "");
    const std::string digest = layer.value("digest", "");
    if (digest.rfind("sha256:", 0) != 0 || Sha256FromEtag(digest.substr(7)).empty()) continue;
    if (type == "application/vnd.ollama.image.model") {
      plan.model.url = base + "/blobs/" + digest;
      plan.model.sha256 = digest.substr(7);
      plan.model.size = layer.value("size", uint64_t{0});
    } else if (type == "application/vnd.ollama.image.template" ||
               type == "application/vnd.ollama.image.params" ||
               type == "application/vnd.ollama.image.system") {
      DM_ASSIGN_OR_RETURN(std::string text, RegistryText(base, layer, http));
      std::string key = type.substr(type.rfind('.') + 1);
      if (key == "params") {
        plan.record[key] = json::parse(text, nullptr, false);
      } else {
        plan.record[key] = text;
      }
    }
  }
  if (plan.model.url.empty()) return Status::Errorf("{}: the manifest has no model layer", url);
  return plan;
}

}  // namespace

PullEndpoints PullEndpoints::FromEnvironment() {
  PullEndpoints e;
  if (const char* hf = std::getenv("HF_ENDPOINT"); hf && *hf) e.huggingface = hf;
  if (const char* reg = std::getenv("DORMOUSE_REGISTRY"); reg && *reg) e.registry = reg;
  for (std::string* s : {&e.huggingface, &e.registry}) {
    while (!s->empty() && s->back() == '/') s->pop_back();
  }
  return e;
}

std::string Sha256FromEtag(std::string v) {
  if (v.rfind("W/", 0) == 0) v = v.substr(2);
  v.erase(std::remove(v.begin(), v.end(), '"'), v.end());
  std::transform(v.begin(), v.end(), v.begin(), ::tolower);
  if (v.size() != 64 || !std::all_of(v.begin(), v.end(), ::isxdigit)) return "";
  return v;
}

StatusOr<PullSpec> ParsePullSpec(const std::string& spec) {
  if (spec.empty() || spec.size() > 2048) return Status::Error("give a model to pull");
  if (spec.find("://") != std::string::npos) return ParseUrlSpec(spec);
  for (const char* prefix : {"hf.co/", "huggingface.co/"}) {
    if (spec.rfind(prefix, 0) == 0) return ParseHf(spec, spec.substr(std::string(prefix).size()));
  }
  PullSpec p;
  p.kind = PullKind::kRegistry;
  std::string path = spec;
  size_t colon = path.find(':');
  p.tag = colon == std::string::npos ? "latest" : path.substr(colon + 1);
  if (colon != std::string::npos) path.resize(colon);
  if (!ValidSegments(path, 1, 2) || p.tag.empty() ||
      !std::all_of(p.tag.begin(), p.tag.end(), IsNameChar)) {
    return Status::Errorf(
        "'{}' is not a model name (NAME[:TAG], hf.co/ORG/REPO[:QUANT], "
        "hf.co/ORG/REPO/FILE.gguf or an https:// URL)",
        spec);
  }
  p.repo = path.find('/') == std::string::npos ? "library/" + path : path;
  p.name = path + ":" + p.tag;
  return p;
}

StatusOr<std::string> PickHfFile(const std::vector<std::string>& files, const std::string& tag) {
  std::vector<std::string> ggufs;
  for (const std::string& f : files) {
    const std::string u = Upper(f);
    if (!EndsWith(u, ".GGUF") || u.find("MMPROJ") != std::string::npos) continue;
    ggufs.push_back(f);
  }
  if (ggufs.empty()) return Status::Error("the repository has no GGUF file");
  std::sort(ggufs.begin(), ggufs.end());
  auto carries = [](const std::string& f, const std::string& t) {
    const std::string u = Upper(f), q = Upper(t);
    for (size_t at = u.find(q); at != std::string::npos; at = u.find(q, at + 1)) {
      const char before = at == 0 ? '/' : u[at - 1];
      const char after = at + q.size() < u.size() ? u[at + q.size()] : '.';
      if (!std::isalnum(static_cast<unsigned char>(before)) &&
          !std::isalnum(static_cast<unsigned char>(after)) && after != '_') {
        return true;
      }
    }
    return false;
  };
  std::vector<std::string> wanted = tag.empty() || tag == "latest"
                                        ? std::vector<std::string>{"Q4_K_M", "Q8_0"}
                                        : std::vector<std::string>{tag};
  for (const std::string& t : wanted) {
    for (const std::string& f : ggufs) {
      if (!carries(f, t)) continue;
      if (Upper(f).find("-OF-0") != std::string::npos) {
        return Status::Errorf("{} is split into parts, which dormouse cannot load yet", f);
      }
      return f;
    }
  }
  if (tag.empty() || tag == "latest") return ggufs.front();
  std::string list;
  for (const std::string& f : ggufs) list += (list.empty() ? "" : ", ") + f;
  return Status::Errorf("no GGUF file for quant '{}' (files: {})", tag, list);
}

StatusOr<PullPlan> ResolvePullPlan(const PullSpec& s, const PullOptions& o, HttpFetcher& http) {
  switch (s.kind) {
    case PullKind::kHuggingFace:
    case PullKind::kHuggingFaceFile:
      return ResolveHf(s, o, http);
    case PullKind::kRegistry:
      return ResolveRegistry(s, o, http);
    case PullKind::kUrl: {
      PullPlan plan;
      plan.name = s.name;
      DM_ASSIGN_OR_RETURN(plan.model, HeadBlob(s.url, http));
      if (!s.sha256.empty()) plan.model.sha256 = s.sha256;
      plan.record = {{"source", "url"}};
      return plan;
    }
  }
  return Status::Error("unknown pull kind");
}

}  // namespace dormouse
