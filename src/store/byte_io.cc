#include "store/byte_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

namespace dormouse {
namespace {

constexpr size_t kSinkBuffer = 1 << 20;

std::string Errno() { return std::strerror(errno); }

// Writes all of [data, data + n) to fd, retrying short writes and EINTR.
Status WriteAll(int fd, const uint8_t* data, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::Errorf("{}: write failed: {}", path, Errno());
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

Status FsyncDirectoryOf(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::Errorf("{}: cannot open directory to sync: {}", dir, Errno());
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Status::Errorf("{}: fsync of directory failed: {}", dir, std::strerror(err));
  return Status::Ok();
}

}  // namespace

Status AppendToFileDurably(const std::string& path, const void* bytes, size_t n) {
  const bool existed = std::filesystem::exists(path);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Errorf("{}: cannot open for append: {}", path, Errno());
  Status s = WriteAll(fd, static_cast<const uint8_t*>(bytes), n, path);
  if (s.ok() && ::fdatasync(fd) != 0) s = Status::Errorf("{}: fdatasync failed: {}", path, Errno());
  ::close(fd);
  if (s.ok() && !existed) s = FsyncDirectoryOf(path);
  return s;
}

Status TruncateFile(const std::string& path, uint64_t size) {
  if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0) {
    return Status::Errorf("{}: cannot truncate to {} bytes: {}", path, size, Errno());
  }
  return Status::Ok();
}

ByteSink::ByteSink() : hash_(XXH3_createState()) { XXH3_64bits_reset(hash_); }
ByteSink::~ByteSink() { XXH3_freeState(hash_); }

Status ByteSink::Write(const void* data, size_t n) {
  if (n == 0) return Status::Ok();
  XXH3_64bits_update(hash_, data, n);
  bytes_ += n;
  return WriteImpl(data, n);
}

Status MemorySink::WriteImpl(const void* data, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  out_.insert(out_.end(), p, p + n);
  return Status::Ok();
}

StatusOr<std::unique_ptr<AtomicFileSink>> AtomicFileSink::CreateOrError(
    const std::string& final_path) {
  std::unique_ptr<AtomicFileSink> s(new AtomicFileSink());
  s->final_path_ = final_path;
  std::filesystem::path p(final_path);
  std::random_device rd;
  // A dot name that the snapshot store recognises as an abandoned temporary.
  s->temp_path_ =
      (p.parent_path() / fmt::format(".{}.tmp-{}-{:08x}", p.filename().string(), ::getpid(), rd()))
          .string();
  s->fd_ = ::open(s->temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (s->fd_ < 0) return Status::Errorf("{}: cannot create: {}", s->temp_path_, Errno());
  s->buffer_.reserve(kSinkBuffer);
  return s;
}

AtomicFileSink::~AtomicFileSink() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_path_.c_str());
}

Status AtomicFileSink::WriteImpl(const void* data, size_t n) {
  if (committed_ || fd_ < 0) return Status::Errorf("{}: write after commit", final_path_);
  if (buffer_.size() + n > kSinkBuffer) DM_RETURN_IF_ERROR(Flush());
  if (n >= kSinkBuffer) return WriteAll(fd_, static_cast<const uint8_t*>(data), n, temp_path_);
  const uint8_t* p = static_cast<const uint8_t*>(data);
  buffer_.insert(buffer_.end(), p, p + n);
  return Status::Ok();
}

Status AtomicFileSink::Flush() {
  Status s = WriteAll(fd_, buffer_.data(), buffer_.size(), temp_path_);
  buffer_.clear();
  return s;
}

Status AtomicFileSink::Commit() {
  if (committed_ || fd_ < 0) return Status::Errorf("{}: committed twice", final_path_);
  DM_RETURN_IF_ERROR(Flush());
  if (::fsync(fd_) != 0) return Status::Errorf("{}: fsync failed: {}", temp_path_, Errno());
  ::close(fd_);
  fd_ = -1;
  if (::rename(temp_path_.c_str(), final_path_.c_str()) != 0) {
    return Status::Errorf("cannot rename {} to {}: {}", temp_path_, final_path_, Errno());
  }
  committed_ = true;
  return FsyncDirectoryOf(final_path_);
}

ByteSource::ByteSource() : hash_(XXH3_createState()) { XXH3_64bits_reset(hash_); }
ByteSource::~ByteSource() { XXH3_freeState(hash_); }

Status ByteSource::Read(void* data, size_t n, const char* what) {
  if (n == 0) return Status::Ok();
  uint8_t* p = static_cast<uint8_t*>(data);
  size_t done = 0;
  while (done < n) {
    DM_ASSIGN_OR_RETURN(size_t got, ReadSome(p + done, n - done));
    if (got == 0) return Status::Errorf("truncated: {} ends after {} bytes", what, bytes_ + done);
    done += got;
  }
  XXH3_64bits_update(hash_, data, n);
  bytes_ += n;
  return Status::Ok();
}

StatusOr<size_t> MemorySource::ReadSome(void* data, size_t n) {
  size_t k = std::min(n, size_ - pos_);
  if (k == 0) return k;  // also: data_ may be null for an empty source
  std::memcpy(data, data_ + pos_, k);
  pos_ += k;
  return k;
}

StatusOr<std::unique_ptr<FileSource>> FileSource::OpenOrError(const std::string& path) {
  std::unique_ptr<FileSource> s(new FileSource());
  s->path_ = path;
  s->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (s->fd_ < 0) return Status::Errorf("{}: cannot open: {}", path, Errno());
  struct stat st;
  if (::fstat(s->fd_, &st) != 0) return Status::Errorf("{}: cannot stat: {}", path, Errno());
  if (!S_ISREG(st.st_mode)) return Status::Errorf("{}: not a regular file", path);
  s->size_ = static_cast<uint64_t>(st.st_size);
  return s;
}

FileSource::~FileSource() {
  if (fd_ >= 0) ::close(fd_);
}

StatusOr<size_t> FileSource::ReadSome(void* data, size_t n) {
  for (;;) {
    ssize_t r = ::read(fd_, data, n);
    if (r >= 0) {
      pos_ += static_cast<uint64_t>(r);
      return static_cast<size_t>(r);
    }
    if (errno != EINTR) return Status::Errorf("{}: read failed: {}", path_, Errno());
  }
}

}  // namespace dormouse
