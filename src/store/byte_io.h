// Sinks and sources for the store's binary formats. One writer serves "measure", "to
// memory" and "to file" (../shared/STYLE.md, principle 7): the snapshot code writes to a
// ByteSink and does not know which. Every sink and source keeps a running XXH3-64 of
// the bytes that passed, so formats can end with a checksum without a second pass.
#pragma once

#include <xxhash.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"

namespace dormouse {

class ByteSink {
 public:
  ByteSink();
  virtual ~ByteSink();
  ByteSink(const ByteSink&) = delete;
  ByteSink& operator=(const ByteSink&) = delete;

  Status Write(const void* data, size_t n);
  template <typename T>
  Status Put(const T& v) {
    return Write(&v, sizeof v);
  }
  uint64_t bytes_written() const { return bytes_; }
  uint64_t digest() const { return XXH3_64bits_digest(hash_); }

 protected:
  virtual Status WriteImpl(const void* data, size_t n) = 0;

 private:
  XXH3_state_t* hash_;
  uint64_t bytes_ = 0;
};

// Counts bytes only: the size a snapshot would have.
class MeasureSink : public ByteSink {
 protected:
  Status WriteImpl(const void*, size_t) override { return Status::Ok(); }
};

class MemorySink : public ByteSink {
 public:
  const std::vector<uint8_t>& bytes() const { return out_; }
  std::vector<uint8_t> Take() { return std::move(out_); }

 protected:
  Status WriteImpl(const void* data, size_t n) override;

 private:
  std::vector<uint8_t> out_;
};

// Writes `final_path` atomically: bytes go to a temporary file in the same directory;
// Commit() fsyncs it, renames it over final_path and fsyncs the directory, so a crash at
// any moment leaves either the old file or the new one, never a torn file. Destroying
// an uncommitted writer removes the temporary file.
class AtomicFileSink : public ByteSink {
 public:
  static StatusOr<std::unique_ptr<AtomicFileSink>> CreateOrError(const std::string& final_path);
  ~AtomicFileSink() override;
  Status Commit();
  const std::string& temp_path() const { return temp_path_; }

 protected:
  Status WriteImpl(const void* data, size_t n) override;

 private:
  AtomicFileSink() = default;
  Status Flush();
  int fd_ = -1;
  std::string final_path_, temp_path_;
  std::vector<uint8_t> buffer_;
  bool committed_ = false;
};

// Appends `bytes` to the file at `path` (created if missing) and syncs it to disk (and
// the directory, when the file is new), so the bytes survive a crash once this returns.
// A crash during the call can leave a torn tail, which readers must detect.
Status AppendToFileDurably(const std::string& path, const void* bytes, size_t n);

// Cuts the file at `path` to `size` bytes (a torn tail found by a reader).
Status TruncateFile(const std::string& path, uint64_t size);

class ByteSource {
 public:
  ByteSource();
  virtual ~ByteSource();
  ByteSource(const ByteSource&) = delete;
  ByteSource& operator=(const ByteSource&) = delete;

  // Reads exactly n bytes or fails with "truncated" naming `what`.
  Status Read(void* data, size_t n, const char* what);
  template <typename T>
  Status Get(T* v, const char* what) {
    return Read(v, sizeof *v, what);
  }
  uint64_t bytes_read() const { return bytes_; }
  uint64_t digest() const { return XXH3_64bits_digest(hash_); }
  // Bytes left in the source, for bounding lengths read from it.
  virtual uint64_t remaining() const = 0;

 protected:
  // Reads up to n bytes; returns how many (0 at the end).
  virtual StatusOr<size_t> ReadSome(void* data, size_t n) = 0;

 private:
  XXH3_state_t* hash_;
  uint64_t bytes_ = 0;
};

class MemorySource : public ByteSource {
 public:
  MemorySource(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint64_t remaining() const override { return size_ - pos_; }

 protected:
  StatusOr<size_t> ReadSome(void* data, size_t n) override;

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

class FileSource : public ByteSource {
 public:
  static StatusOr<std::unique_ptr<FileSource>> OpenOrError(const std::string& path);
  ~FileSource() override;
  uint64_t remaining() const override { return size_ - pos_; }
  uint64_t size() const { return size_; }

 protected:
  StatusOr<size_t> ReadSome(void* data, size_t n) override;

 private:
  FileSource() = default;
  int fd_ = -1;
  std::string path_;
  uint64_t size_ = 0, pos_ = 0;
};

}  // namespace dormouse
