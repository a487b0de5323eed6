#include "library/model_summary.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "engine/gguf.h"
#include "engine/model_config.h"

namespace dormouse {
namespace {

constexpr uint64_t kFirstRead = uint64_t{4} << 20;
// Headers hold the vocabulary (a few MiB for 150k tokens); none needs more than this.
constexpr uint64_t kMaxHeader = uint64_t{256} << 20;

// Up to `n` bytes from offset 0; fewer only at the end of the file.
Status ReadPrefix(int fd, uint64_t n, std::vector<uint8_t>* out, const std::string& path) {
  out->resize(n);
  uint64_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, out->data() + got, n - got, static_cast<off_t>(got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::Errorf("{}: read: {}", path, std::strerror(errno));
    if (r == 0) break;
    got += static_cast<uint64_t>(r);
  }
  out->resize(got);
  return Status::Ok();
}

// The parser's words for "ran past the end" and for counts too large for the bytes left.
bool NeedsMoreBytes(const Status& s) {
  return s.message().find("past the end") != std::string::npos ||
         s.message().find("impossible for a") != std::string::npos;
}

}  // namespace

std::string FileTypeName(int64_t t) {
  static const std::map<int64_t, const char*> kNames = {
      {0, "F32"},      {1, "F16"},      {2, "Q4_0"},    {3, "Q4_1"},    {7, "Q8_0"},
      {8, "Q5_0"},     {9, "Q5_1"},     {10, "Q2_K"},   {11, "Q3_K_S"}, {12, "Q3_K_M"},
      {13, "Q3_K_L"},  {14, "Q4_K_S"},  {15, "Q4_K_M"}, {16, "Q5_K_S"}, {17, "Q5_K_M"},
      {18, "Q6_K"},    {19, "IQ2_XXS"}, {20, "IQ2_XS"}, {21, "Q2_K_S"}, {22, "IQ3_XS"},
      {23, "IQ3_XXS"}, {24, "IQ1_S"},   {25, "IQ4_NL"}, {26, "IQ3_S"},  {27, "IQ3_M"},
      {28, "IQ2_S"},   {29, "IQ2_M"},   {30, "IQ4_XS"}, {31, "IQ1_M"},  {32, "BF16"},
      {36, "TQ1_0"},   {37, "TQ2_0"}};
  auto it = kNames.find(t);
  return it == kNames.end() ? "" : it->second;
}

ModelSummary SummarizeGguf(const GgufFile& g) {
  ModelSummary s;
  auto arch = g.GetString("general.architecture");
  if (arch.ok() && *arch) s.arch = **arch;
  std::map<std::string, uint64_t> bytes_by_type;
  for (const GgufTensorInfo& t : g.tensors()) {
    s.parameters += t.n_elements;
    bytes_by_type[TypeName(t.type)] += t.n_bytes;
  }
  auto ftype = g.GetInt("general.file_type");
  if (ftype.ok() && *ftype) s.quant = FileTypeName(**ftype);
  if (s.quant.empty()) {
    uint64_t best = 0;
    for (const auto& [name, b] : bytes_by_type) {
      if (b > best) best = b, s.quant = name;
    }
  }
  const GgufTensorInfo* embd = g.FindTensor("token_embd.weight");
  if (embd == nullptr || embd->dims.size() != 2) {
    s.problem = "missing or malformed token_embd.weight";
    return s;
  }
  StatusOr<ModelConfig> c = ModelConfig::FromGguf(g, embd->dims[1]);
  s.supported = c.ok();
  if (!c.ok()) s.problem = c.status().message();
  return s;
}

StatusOr<GgufFile> ReadGgufHeader(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Errorf("{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return Status::Errorf("{}: cannot stat", path);
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  std::vector<uint8_t> buf;
  StatusOr<GgufFile> g = Status::Errorf("{}: empty file", path);
  for (uint64_t n = kFirstRead;; n *= 2) {
    Status r = ReadPrefix(fd, std::min(n, size), &buf, path);
    if (!r.ok()) {
      g = r;
      break;
    }
    g = GgufFile::ParseHeaderOrError(buf.data(), buf.size(), size, path);
    // Only a header running past the bytes read is worth a longer read; any other error
    // is in the file itself.
    if (g.ok() || buf.size() >= size || n >= kMaxHeader || !NeedsMoreBytes(g.status())) break;
  }
  ::close(fd);
  return g;
}

ModelSummary SummaryCache::Get(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    ModelSummary s;
    s.problem = "cannot stat " + path;
    return s;
  }
  const int64_t mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(path);
    if (it != entries_.end() && it->second.size == st.st_size && it->second.mtime_ns == mtime_ns) {
      return it->second.summary;
    }
  }
  ModelSummary s;
  StatusOr<GgufFile> g = ReadGgufHeader(path);
  if (g.ok()) {
    s = SummarizeGguf(*g);
  } else {
    s.problem = g.status().message();
  }
  std::lock_guard<std::mutex> lock(mu_);
  entries_[path] = {st.st_size, mtime_ns, s};
  return s;
}

}  // namespace dormouse
