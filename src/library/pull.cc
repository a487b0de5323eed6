// Downloading one model file: lock, resume, verify, install.
#include "library/pull.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include "library/library.h"
#include "library/pull_internal.h"

namespace dormouse {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr uint64_t kProgressEvery = 1u << 20;

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
    EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr);
  }
  void Update(const void* d, size_t n) { EVP_DigestUpdate(ctx_.get(), d, n); }
  std::string HexDigest() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_.get(), md, &n);
    std::string out;
    for (unsigned int i = 0; i < n; ++i) out += fmt::format("{:02x}", md[i]);
    return out;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx_;
};

// The partial file of one download, locked for as long as this object lives.
class PartialFile {
 public:
  static StatusOr<std::unique_ptr<PartialFile>> OpenLocked(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return Status::Errorf("cannot create {}: {}", path, std::strerror(errno));
    while (::flock(fd, LOCK_EX) != 0) {  // another pull of this model: wait for it
      if (errno != EINTR) {
        ::close(fd);
        return Status::Errorf("cannot lock {}: {}", path, std::strerror(errno));
      }
    }
    return std::unique_ptr<PartialFile>(new PartialFile(fd, path));
  }
  ~PartialFile() { ::close(fd_); }
  int fd() const { return fd_; }
  uint64_t Size() const {
    struct stat st {};
    return ::fstat(fd_, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  }
  // Whether the path still names the file we hold (a finished pull renamed it away).
  bool StillAtPath() const {
    struct stat a {
    }, b{};
    return ::fstat(fd_, &a) == 0 && ::stat(path_.c_str(), &b) == 0 && a.st_ino == b.st_ino &&
           a.st_dev == b.st_dev;
  }
  void Remove() {
    if (StillAtPath()) ::unlink(path_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  PartialFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  std::string path_;
};

Status WriteAll(int fd, const char* d, size_t n, uint64_t* written, uint64_t fail_after,
                const std::string& path) {
  while (n > 0) {
    size_t chunk = n;
    if (*written + chunk > fail_after) chunk = fail_after > *written ? fail_after - *written : 0;
    ssize_t w = chunk == 0 ? (errno = ENOSPC, -1) : ::write(fd, d, chunk);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return Status::Errorf("writing {}: {}", path, std::strerror(errno));
    d += w;
    n -= static_cast<size_t>(w);
    *written += static_cast<uint64_t>(w);
  }
  return Status::Ok();
}

StatusOr<std::string> Sha256Fd(int fd, const std::string& path) {
  Sha256 h;
  std::vector<char> buf(1 << 20);
  for (off_t off = 0;;) {
    ssize_t r = ::pread(fd, buf.data(), buf.size(), off);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::Errorf("reading {}: {}", path, std::strerror(errno));
    if (r == 0) break;
    h.Update(buf.data(), static_cast<size_t>(r));
    off += r;
  }
  return h.HexDigest();
}

Status WriteRecord(const std::string& path, const json& record) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << record.dump(2) << "\n";
    if (!out.flush()) return Status::Errorf("cannot write {}", tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::Errorf("cannot rename {}: {}", tmp, std::strerror(errno));
  }
  return Status::Ok();
}

std::string RecordedSha256(const std::string& model_path) {
  std::ifstream in(PullRecordPath(model_path));
  json j = json::parse(in, nullptr, false);
  return j.is_object() && j.contains("sha256") && j["sha256"].is_string()
             ? j["sha256"].get<std::string>()
             : "-";
}

struct Transfer {
  const PullBlob& blob;
  const PullOptions& o;
  PartialFile& file;
  std::string digest;  // for progress lines
  uint64_t received = 0;
};

// Streams the rest of the blob into the partial file. Keeps the partial on a broken
// transfer (the next pull resumes it); removes it on a write error (a full disk).
Status Receive(Transfer& t, HttpFetcher& http) {
  uint64_t offset = t.file.Size();
  if (t.blob.size > 0 && offset >= t.blob.size) {
    if (offset == t.blob.size) return Status::Ok();
    offset = 0;  // longer than the blob: not a prefix of it
    if (::ftruncate(t.file.fd(), 0) != 0)
      return Status::Errorf("cannot truncate {}", t.file.path());
  }
  Status write_error;
  uint64_t written = 0, last_report = 0, at = offset;
  bool first = true;
  auto sink = [&](int status, const char* d, size_t n) {
    if (t.o.cancel != nullptr && t.o.cancel->load()) return false;
    if (first && status == 200 && offset > 0) {
      // The server ignored the range and sends everything: start over.
      if (::ftruncate(t.file.fd(), 0) != 0 || ::lseek(t.file.fd(), 0, SEEK_SET) != 0) {
        write_error = Status::Errorf("cannot truncate {}", t.file.path());
        return false;
      }
      at = 0;
    }
    first = false;
    write_error = WriteAll(t.file.fd(), d, n, &written, t.o.fail_writes_after, t.file.path());
    if (!write_error.ok()) return false;
    t.received += n;
    at += n;
    if (t.o.on_progress && (at - last_report >= kProgressEvery || at == t.blob.size)) {
      last_report = at;
      t.o.on_progress({"pulling " + t.digest.substr(7, 12), t.digest, t.blob.size, at});
    }
    return true;
  };
  if (::lseek(t.file.fd(), static_cast<off_t>(offset), SEEK_SET) < 0) {
    return Status::Errorf("cannot seek {}", t.file.path());
  }
  StatusOr<HttpReply> r = http.Stream(t.blob.url, offset, sink);
  if (!write_error.ok()) {
    t.file.Remove();
    return Status::Errorf("{} (the partial download was removed)", write_error.message());
  }
  if (t.o.cancel != nullptr && t.o.cancel->load()) {
    return Status::Errorf("the pull was cancelled after {} bytes; pull again to resume", at);
  }
  if (!r.ok()) {
    return Status::Errorf("the download broke off after {} bytes ({}); pull again to resume", at,
                          r.status().message());
  }
  if (r->status == 416 && offset > 0) {  // the partial already holds everything
    return Status::Ok();
  }
  if (r->status != 200 && r->status != 206)
    return Status::Errorf("{}: HTTP {}", t.blob.url, r->status);
  return Status::Ok();
}

StatusOr<PullResult> Install(const PullPlan& plan, const PullOptions& o, HttpFetcher& http) {
  PullResult result;
  result.name = plan.name;
  result.path = (fs::path(o.models_dir) / ModelFileName(plan.name)).string();
  DM_ASSIGN_OR_RETURN(std::unique_ptr<PartialFile> file,
                      PartialFile::OpenLocked(result.path + ".partial"));
  const std::string recorded = RecordedSha256(result.path);
  if (fs::exists(result.path) &&
      (recorded == plan.model.sha256 || (plan.model.sha256.empty() && recorded != "-"))) {
    // Another pull finished while we waited (or the model was already here).
    if (file->Size() == 0) file->Remove();
    result.already_present = true;
    return result;
  }
  Transfer t{plan.model, o, *file, "sha256:" + plan.model.sha256};
  if (plan.model.sha256.empty()) t.digest = "sha256:unknown";
  Status s = Receive(t, http);
  result.downloaded = t.received;
  if (!s.ok()) return s;
  if (o.on_progress) o.on_progress({"verifying sha256 digest", "", 0, 0});
  DM_ASSIGN_OR_RETURN(std::string got, Sha256Fd(file->fd(), file->path()));
  if (!plan.model.sha256.empty() && got != plan.model.sha256) {
    file->Remove();
    return Status::Errorf(
        "sha256 mismatch for {}: the source publishes {}, the download is {}; it was removed",
        plan.name, plan.model.sha256, got);
  }
  if (plan.model.size > 0 && file->Size() != plan.model.size) {
    file->Remove();
    return Status::Errorf("{}: got {} bytes, expected {}; it was removed", plan.name, file->Size(),
                          plan.model.size);
  }
  if (::fsync(file->fd()) != 0)
    return Status::Errorf("fsync {}: {}", file->path(), std::strerror(errno));
  if (o.on_progress) o.on_progress({"writing manifest", "", 0, 0});
  json record = plan.record;
  record["name"] = plan.name;
  record["url"] = plan.model.url;
  record["sha256"] = got;
  record["size"] = file->Size();
  DM_RETURN_IF_ERROR(WriteRecord(PullRecordPath(result.path), record));
  if (std::rename(file->path().c_str(), result.path.c_str()) != 0) {
    return Status::Errorf("cannot rename {} into place: {}", file->path(), std::strerror(errno));
  }
  return result;
}

}  // namespace

std::string Sha256Hex(std::string_view bytes) {
  Sha256 h;
  h.Update(bytes.data(), bytes.size());
  return h.HexDigest();
}

StatusOr<std::string> Sha256File(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Errorf("cannot open {}: {}", path, std::strerror(errno));
  StatusOr<std::string> h = Sha256Fd(fd, path);
  ::close(fd);
  return h;
}

StatusOr<PullResult> Pull(const std::string& spec_text, const PullOptions& o) {
  if (o.models_dir.empty()) return Status::Error("no models directory to pull into");
  DM_ASSIGN_OR_RETURN(PullSpec spec, ParsePullSpec(spec_text));
  std::error_code ec;
  fs::create_directories(o.models_dir, ec);
  if (ec) return Status::Errorf("cannot create {}: {}", o.models_dir, ec.message());
  const std::string dest = (fs::path(o.models_dir) / ModelFileName(spec.name)).string();
  if (o.on_progress) o.on_progress({"pulling manifest", "", 0, 0});
  HttpFetcher http(o.extra_ca_file);
  DM_ASSIGN_OR_RETURN(PullPlan plan, ResolvePullPlan(spec, o, http));
  if (plan.model.sha256.empty() && o.on_warning) {
    o.on_warning(plan.model.url + " publishes no sha256: the download cannot be verified");
  }
  if (o.fit_check && plan.model.size > 0 && !fs::exists(dest)) {
    std::string warning = o.fit_check(plan.model.size);
    if (!warning.empty() && o.on_warning) o.on_warning(warning);
  }
  DM_ASSIGN_OR_RETURN(PullResult r, Install(plan, o, http));
  if (o.on_progress) o.on_progress({"success", "", 0, 0});
  return r;
}

}  // namespace dormouse
