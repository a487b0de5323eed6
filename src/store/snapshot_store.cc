#include "store/snapshot_store.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "store/snapshot_delta.h"

namespace dormouse {
namespace {

namespace fs = std::filesystem;
constexpr const char* kExtension = ".dmkv";
constexpr const char* kJournalExtension = ".dmkj";

double ToUnixSeconds(fs::file_time_type t) {
  auto sys = std::chrono::file_clock::to_sys(t);
  return std::chrono::duration<double>(sys.time_since_epoch()).count();
}

// Temporaries are named ".<final name>.tmp-<pid>-<random>" (AtomicFileSink).
bool IsAbandonedTemporary(const std::string& name) {
  size_t at = name.rfind(".tmp-");
  if (name.empty() || name[0] != '.' || at == std::string::npos) return false;
  long pid = std::strtol(name.c_str() + at + 5, nullptr, 10);
  return pid <= 0 || (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH);
}

// The checksum a full snapshot ends with (its last 8 bytes): what journal records name.
StatusOr<uint64_t> BaseChecksum(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return Status::Errorf("{}: cannot open", path);
  const std::streamoff size = in.tellg();
  if (size < static_cast<std::streamoff>(sizeof(uint64_t))) {
    return Status::Errorf("{}: too short for a snapshot", path);
  }
  uint64_t c = 0;
  in.seekg(size - static_cast<std::streamoff>(sizeof c));
  in.read(reinterpret_cast<char*>(&c), sizeof c);
  if (!in) return Status::Errorf("{}: cannot read its checksum", path);
  return c;
}

// Reads the journal at `path` record by record, handing each body to `use` (which returns
// an error to stop there). Returns the byte length of the records that were used, and in
// *note why the journal ended early ("" when every record was used). Errors only for a
// failure `use` marks fatal (*fatal).
uint64_t ReplayJournal(const std::string& path,
                       const std::function<Status(std::span<const uint8_t>, bool*)>& use,
                       std::string* note, Status* fatal) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return 0;
  StatusOr<std::unique_ptr<FileSource>> src = FileSource::OpenOrError(path);
  if (!src.ok()) {
    *note = src.status().message();
    return 0;
  }
  uint64_t good = 0;
  while ((*src)->remaining() > 0) {
    StatusOr<std::vector<uint8_t>> body = ReadDeltaRecord(**src);
    if (!body.ok()) {
      *note = body.status().message();
      break;
    }
    bool is_fatal = false;
    if (Status s = use(*body, &is_fatal); !s.ok()) {
      *note = s.message();
      if (is_fatal) *fatal = s;
      break;
    }
    good = (*src)->bytes_read();
  }
  return good;
}

}  // namespace

StatusOr<std::unique_ptr<SnapshotStore>> SnapshotStore::OpenOrError(const std::string& dir,
                                                                    uint64_t budget_bytes) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::Errorf("{}: cannot create snapshot directory: {}", dir, ec.message());
  std::unique_ptr<SnapshotStore> s(new SnapshotStore(dir, budget_bytes));
  s->RemoveAbandonedTemporaries();
  return s;
}

uint64_t SnapshotStore::DefaultBudgetFor(uint64_t filesystem_bytes) {
  return std::min<uint64_t>(2ull << 30, filesystem_bytes / 20);
}

StatusOr<uint64_t> SnapshotStore::DefaultBudget(const std::string& dir) {
  fs::path p = fs::absolute(fs::path(dir));
  while (!fs::exists(p) && p.has_parent_path() && p.parent_path() != p) p = p.parent_path();
  struct statvfs st;
  if (::statvfs(p.c_str(), &st) != 0) {
    return Status::Errorf("{}: cannot read the filesystem size: {}", p.string(),
                          std::strerror(errno));
  }
  return DefaultBudgetFor(static_cast<uint64_t>(st.f_blocks) * st.f_frsize);
}

Status SnapshotStore::CheckKey(const std::string& key) {
  if (key.empty() || key.size() > 64)
    return Status::Errorf("snapshot key '{}' has a bad length", key);
  for (char c : key) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') {
      return Status::Errorf("snapshot key '{}' may hold only letters, digits, '_' and '-'", key);
    }
  }
  return Status::Ok();
}

std::string SnapshotStore::PathFor(const std::string& key) const {
  return (fs::path(dir_) / (key + kExtension)).string();
}

std::string SnapshotStore::JournalPathFor(const std::string& key) const {
  return (fs::path(dir_) / (key + kJournalExtension)).string();
}

StatusOr<SnapshotSaveResult> SnapshotStore::Save(
    const std::string& key, const ModelFingerprint& fingerprint, const InferenceContext& ctx,
    std::span<const int32_t> tokens, std::string_view extra, const SnapshotWriteOptions& options) {
  DM_RETURN_IF_ERROR(CheckKey(key));
  auto t0 = std::chrono::steady_clock::now();
  const std::string path = PathFor(key);
  DM_ASSIGN_OR_RETURN(std::unique_ptr<AtomicFileSink> sink, AtomicFileSink::CreateOrError(path));
  DM_RETURN_IF_ERROR(WriteSnapshot(fingerprint, ctx, tokens, extra, options, *sink));
  DM_RETURN_IF_ERROR(sink->Commit());
  // The journal belonged to the old base (its records name the old checksum, so a crash
  // before this removal cannot apply them to the new one).
  std::error_code ec;
  fs::remove(JournalPathFor(key), ec);
  SnapshotSaveResult r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.info.key = key;
  r.info.path = path;
  r.info.bytes = sink->bytes_written();
  r.info.last_used = ToUnixSeconds(fs::file_time_type::clock::now());
  r.evicted = EnforceBudget(key);
  return r;
}

StatusOr<SnapshotSaveResult> SnapshotStore::Append(const std::string& key,
                                                   const InferenceContext& ctx,
                                                   std::span<const int32_t> tokens, int64_t from,
                                                   std::string_view extra,
                                                   const SnapshotWriteOptions& options) {
  DM_RETURN_IF_ERROR(CheckKey(key));
  auto t0 = std::chrono::steady_clock::now();
  const std::string path = PathFor(key);
  DM_ASSIGN_OR_RETURN(uint64_t base, BaseChecksum(path));
  DM_ASSIGN_OR_RETURN(std::vector<uint8_t> record,
                      EncodeSnapshotDelta(base, ctx, tokens, from, extra, options));
  const std::string journal = JournalPathFor(key);
  DM_RETURN_IF_ERROR(AppendToFileDurably(journal, record.data(), record.size()));
  std::error_code ec;
  fs::last_write_time(path, fs::file_time_type::clock::now(), ec);  // LRU: used now
  SnapshotSaveResult r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.info.key = key;
  r.info.path = journal;
  r.info.bytes = record.size();
  r.info.last_used = ToUnixSeconds(fs::file_time_type::clock::now());
  r.evicted = EnforceBudget(key);
  return r;
}

StatusOr<SnapshotHeader> SnapshotStore::Restore(const std::string& key,
                                                const ModelFingerprint& expected,
                                                InferenceContext& ctx) {
  ctx.Truncate(0);
  DM_RETURN_IF_ERROR(CheckKey(key));
  const std::string path = PathFor(key);
  DM_ASSIGN_OR_RETURN(std::unique_ptr<FileSource> src, FileSource::OpenOrError(path));
  StatusOr<SnapshotHeader> h = RestoreSnapshot(*src, expected, ctx);
  if (!h.ok()) return h.status().WithContext(path);
  StatusOr<uint64_t> base_or = BaseChecksum(path);
  if (!base_or.ok()) {
    ctx.Truncate(0);
    return base_or.status();
  }
  const uint64_t base = *base_or;
  const std::string journal = JournalPathFor(key);
  Status fatal = Status::Ok();
  const uint64_t good = ReplayJournal(
      journal,
      [&](std::span<const uint8_t> body, bool* is_fatal) -> Status {
        DM_ASSIGN_OR_RETURN(SnapshotDelta d, ApplySnapshotDelta(body, base, ctx, is_fatal));
        h->tokens.insert(h->tokens.end(), d.tokens.begin(), d.tokens.end());
        h->extra = std::move(d.extra);
        h->journal_records++;
        return Status::Ok();
      },
      &h->journal_note, &fatal);
  if (!fatal.ok()) {
    ctx.Truncate(0);
    return fatal.WithContext(journal);
  }
  if (!h->journal_note.empty()) (void)TruncateFile(journal, good);  // cut the torn tail
  std::error_code ec;
  fs::last_write_time(path, fs::file_time_type::clock::now(), ec);  // LRU: used now
  return h;
}

StatusOr<SnapshotHeader> SnapshotStore::ReadHeader(const std::string& key) const {
  DM_RETURN_IF_ERROR(CheckKey(key));
  const std::string path = PathFor(key);
  DM_ASSIGN_OR_RETURN(std::unique_ptr<FileSource> src, FileSource::OpenOrError(path));
  StatusOr<SnapshotHeader> h = ReadSnapshotHeader(*src);
  if (!h.ok()) return h.status().WithContext(path);
  StatusOr<uint64_t> base = BaseChecksum(path);
  if (!base.ok()) return base.status();
  Status fatal = Status::Ok();
  ReplayJournal(
      JournalPathFor(key),
      [&](std::span<const uint8_t> body, bool*) -> Status {
        DM_ASSIGN_OR_RETURN(SnapshotDelta d, ParseSnapshotDelta(body));
        if (d.base_checksum != *base || d.from != static_cast<int64_t>(h->tokens.size())) {
          return Status::Error("journal record out of sequence");
        }
        h->tokens.insert(h->tokens.end(), d.tokens.begin(), d.tokens.end());
        h->extra = std::move(d.extra);
        h->journal_records++;
        return Status::Ok();
      },
      &h->journal_note, &fatal);
  return h;
}

bool SnapshotStore::Exists(const std::string& key) const {
  std::error_code ec;
  return CheckKey(key).ok() && fs::is_regular_file(PathFor(key), ec);
}

Status SnapshotStore::Remove(const std::string& key) {
  DM_RETURN_IF_ERROR(CheckKey(key));
  std::error_code ec;
  fs::remove(JournalPathFor(key), ec);
  if (ec) return Status::Errorf("{}: cannot remove: {}", JournalPathFor(key), ec.message());
  fs::remove(PathFor(key), ec);
  if (ec) return Status::Errorf("{}: cannot remove: {}", PathFor(key), ec.message());
  return Status::Ok();
}

std::vector<SnapshotInfo> SnapshotStore::List() const {
  std::vector<SnapshotInfo> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string name = e.path().filename().string();
    if (e.path().extension() != kExtension || name[0] == '.') continue;
    SnapshotInfo i;
    i.key = e.path().stem().string();
    i.path = e.path().string();
    std::error_code ec2;
    i.bytes = e.file_size(ec2);
    i.last_used = ToUnixSeconds(e.last_write_time(ec2));
    if (ec2) continue;
    std::error_code ec3;
    const uint64_t journal = fs::file_size(JournalPathFor(i.key), ec3);
    if (!ec3) i.bytes += journal;
    out.push_back(std::move(i));
  }
  std::sort(out.begin(), out.end(), [](const SnapshotInfo& a, const SnapshotInfo& b) {
    return a.last_used > b.last_used || (a.last_used == b.last_used && a.key < b.key);
  });
  return out;
}

uint64_t SnapshotStore::TotalBytes() const {
  uint64_t total = 0;
  for (const SnapshotInfo& i : List()) total += i.bytes;
  return total;
}

std::vector<std::string> SnapshotStore::EnforceBudget(const std::string& keep) {
  std::vector<std::string> evicted;
  if (budget_bytes_ == 0) return evicted;
  std::vector<SnapshotInfo> all = List();
  uint64_t total = 0;
  for (const SnapshotInfo& i : all) total += i.bytes;
  for (auto it = all.rbegin(); it != all.rend() && total > budget_bytes_; ++it) {
    if (it->key == keep) continue;
    std::error_code ec;
    if (fs::remove(it->path, ec)) {
      fs::remove(JournalPathFor(it->key), ec);
      total -= it->bytes;
      evicted.push_back(it->key);
    }
  }
  return evicted;
}

void SnapshotStore::RemoveAbandonedTemporaries() {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const bool orphan_journal = e.path().extension() == kJournalExtension &&
                                !fs::exists(PathFor(e.path().stem().string()), ec);
    if (orphan_journal || IsAbandonedTemporary(e.path().filename().string())) {
      std::error_code ec2;
      fs::remove(e.path(), ec2);
    }
  }
}

}  // namespace dormouse
