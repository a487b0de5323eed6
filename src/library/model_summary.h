// What `dormouse list` shows of a GGUF file: architecture, quantization, parameter count
// and whether dormouse can run it. Read from the header alone (a few MiB read with
// pread, never a mapping of a multi-GiB file) and cached per file version (size + mtime),
// so listing a store of large models stays cheap.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "base/status.h"

namespace dormouse {

class GgufFile;

struct ModelSummary {
  std::string arch;   // general.architecture; "" when the header is unreadable
  std::string quant;  // "Q4_K_M" (general.file_type), else the dominant tensor type
  uint64_t parameters = 0;
  bool supported = false;  // the engine accepts the architecture, shapes and tensor types
  std::string problem;     // why not, when !supported
};

// llama.cpp's file type numbers (general.file_type) -> "Q4_K_M"; "" when unknown.
std::string FileTypeName(int64_t file_type);
// The summary of a parsed header (tensor data not needed).
ModelSummary SummarizeGguf(const GgufFile& g);
// Reads the header of `path` (growing the read until it parses); errors name the file.
StatusOr<GgufFile> ReadGgufHeader(const std::string& path);

class SummaryCache {
 public:
  // Never fails: an unreadable file is a summary with supported == false and a problem.
  ModelSummary Get(const std::string& path);

 private:
  struct Entry {
    int64_t size = 0, mtime_ns = 0;
    ModelSummary summary;
  };
  std::mutex mu_;
  std::map<std::string, Entry> entries_;
};

}  // namespace dormouse
