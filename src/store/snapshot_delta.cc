#include "store/snapshot_delta.h"

#include <cstring>

#include "store/snapshot_internal.h"

namespace dormouse {
namespace {

using snapshot_internal::ReadRows;
using snapshot_internal::WriteRows;

constexpr char kDeltaMagic[8] = {'D', 'M', 'K', 'V', 'D', 'L', 'T', '1'};
constexpr uint64_t kMaxExtra = 64ull << 20;
constexpr int64_t kMaxTokens = int64_t{1} << 24;

// The header part of a body; `in` is left at the first layer's rows.
StatusOr<SnapshotDelta> ParseHeader(ByteSource& in) {
  char magic[sizeof kDeltaMagic];
  DM_RETURN_IF_ERROR(in.Read(magic, sizeof magic, "journal record magic"));
  if (std::memcmp(magic, kDeltaMagic, sizeof magic) != 0) {
    return Status::Error("not a dormouse snapshot journal record (bad magic)");
  }
  SnapshotDelta d;
  DM_RETURN_IF_ERROR(in.Get(&d.base_checksum, "base checksum"));
  DM_RETURN_IF_ERROR(in.Get(&d.from, "first position"));
  DM_RETURN_IF_ERROR(in.Get(&d.n, "position count"));
  if (d.from < 0 || d.n <= d.from || d.n > kMaxTokens ||
      static_cast<uint64_t>(d.n - d.from) * 4 > in.remaining()) {
    return Status::Errorf("journal record positions [{}, {}) are impossible", d.from, d.n);
  }
  uint32_t extra_len = 0;
  DM_RETURN_IF_ERROR(in.Get(&extra_len, "extra length"));
  if (extra_len > kMaxExtra || extra_len > in.remaining()) {
    return Status::Errorf("journal record extra data of {} bytes is impossible", extra_len);
  }
  d.extra.resize(extra_len);
  DM_RETURN_IF_ERROR(in.Read(d.extra.data(), extra_len, "extra data"));
  d.tokens.resize(static_cast<size_t>(d.n - d.from));
  DM_RETURN_IF_ERROR(in.Read(d.tokens.data(), d.tokens.size() * 4, "tokens"));
  return d;
}

}  // namespace

StatusOr<std::vector<uint8_t>> EncodeSnapshotDelta(uint64_t base_checksum,
                                                   const InferenceContext& ctx,
                                                   std::span<const int32_t> tokens, int64_t from,
                                                   std::string_view extra,
                                                   const SnapshotWriteOptions& options) {
  const KvCache& kv = ctx.kv();
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (from < 0 || n <= from || n > ctx.n_past()) {
    return Status::Errorf("cannot journal positions [{}, {}) of a context holding {}", from, n,
                          ctx.n_past());
  }
  if (extra.size() > kMaxExtra) return Status::Error("snapshot extra data is too large");
  MemorySink body;
  DM_RETURN_IF_ERROR(body.Write(kDeltaMagic, sizeof kDeltaMagic));
  DM_RETURN_IF_ERROR(body.Put(base_checksum));
  DM_RETURN_IF_ERROR(body.Put(from));
  DM_RETURN_IF_ERROR(body.Put(n));
  DM_RETURN_IF_ERROR(body.Put(static_cast<uint32_t>(extra.size())));
  DM_RETURN_IF_ERROR(body.Write(extra.data(), extra.size()));
  DM_RETURN_IF_ERROR(body.Write(tokens.data() + from, static_cast<size_t>(n - from) * 4));
  std::vector<uint8_t> scratch, gather;
  for (int64_t l = 0; l < kv.n_layer(); ++l) {
    if (ctx.model().config().IsSwa(l) && ctx.WindowStart(l, n) < ctx.swa_floor()) {
      return Status::Errorf("cannot journal {} tokens: the sliding window has moved past them", n);
    }
    const int64_t first = std::max(from, ctx.SnapshotStart(l, n));
    DM_RETURN_IF_ERROR(body.Put(first));
    DM_RETURN_IF_ERROR(WriteRows(kv.KSpans(l, first, n), options, gather, scratch, body));
    DM_RETURN_IF_ERROR(WriteRows(kv.VSpans(l, first, n), options, gather, scratch, body));
  }
  const uint64_t checksum = body.digest();
  std::vector<uint8_t> body_bytes = body.Take();
  MemorySink record;
  DM_RETURN_IF_ERROR(record.Put(uint64_t{body_bytes.size()}));
  DM_RETURN_IF_ERROR(record.Write(body_bytes.data(), body_bytes.size()));
  DM_RETURN_IF_ERROR(record.Put(checksum));
  return record.Take();
}

StatusOr<std::vector<uint8_t>> ReadDeltaRecord(ByteSource& in) {
  uint64_t len = 0;
  DM_RETURN_IF_ERROR(in.Get(&len, "journal record length"));
  if (len > in.remaining() || in.remaining() - len < sizeof(uint64_t)) {
    return Status::Errorf("journal record of {} bytes runs past the end (torn)", len);
  }
  std::vector<uint8_t> body(static_cast<size_t>(len));
  DM_RETURN_IF_ERROR(in.Read(body.data(), body.size(), "journal record"));
  uint64_t stored = 0;
  DM_RETURN_IF_ERROR(in.Get(&stored, "journal record checksum"));
  const uint64_t computed = XXH3_64bits(body.data(), body.size());
  if (stored != computed) {
    return Status::Errorf("journal record checksum mismatch (stored {:016x}, computed {:016x})",
                          stored, computed);
  }
  return body;
}

StatusOr<SnapshotDelta> ParseSnapshotDelta(std::span<const uint8_t> body) {
  MemorySource in(body.data(), body.size());
  return ParseHeader(in);
}

StatusOr<SnapshotDelta> ApplySnapshotDelta(std::span<const uint8_t> body, uint64_t base_checksum,
                                           InferenceContext& ctx, bool* touched) {
  *touched = false;
  MemorySource in(body.data(), body.size());
  DM_ASSIGN_OR_RETURN(SnapshotDelta d, ParseHeader(in));
  if (d.base_checksum != base_checksum) {
    return Status::Error("journal record belongs to an older snapshot");
  }
  if (d.from != ctx.n_past()) {
    return Status::Errorf("journal record starts at position {}; the context holds {}", d.from,
                          ctx.n_past());
  }
  if (d.n > ctx.n_ctx()) {
    return Status::Errorf("journal record reaches {} tokens; the context holds only {}", d.n,
                          ctx.n_ctx());
  }
  for (int32_t t : d.tokens) {
    if (t < 0 || t >= ctx.n_vocab()) return Status::Errorf("journal record holds token id {}", t);
  }
  KvCache& kv = ctx.kv();
  std::vector<uint8_t> scratch, gather;
  int64_t floor = ctx.swa_floor();
  for (int64_t l = 0; l < kv.n_layer(); ++l) {
    const bool swa = ctx.model().config().IsSwa(l);
    int64_t first = 0;
    DM_RETURN_IF_ERROR(in.Get(&first, "first position"));
    // A global layer continues exactly where the context ends; a sliding-window layer
    // may skip what falls out of its window.
    if (first < d.from || (!swa && first != d.from) ||
        (first > d.from && first > ctx.WindowStart(l, d.n))) {
      return Status::Errorf("layer {} of the journal record starts at position {}", l, first);
    }
    const int64_t keep = std::max(first, d.n - kv.rows(l));
    // The ring then holds [keep, n), and below `first` what it held before, unless the
    // record skipped positions (it starts above `from`) or the ring wrapped over them.
    if (swa) floor = std::max(floor, first > d.from ? keep : d.n - kv.rows(l));
    const size_t skip = static_cast<size_t>(keep - first) * kv.row_bytes();
    *touched = true;
    DM_RETURN_IF_ERROR(ReadRows(in, skip, kv.KSpans(l, keep, d.n), gather, scratch));
    DM_RETURN_IF_ERROR(ReadRows(in, skip, kv.VSpans(l, keep, d.n), gather, scratch));
  }
  if (in.remaining() != 0)
    return Status::Errorf("{} stray bytes in a journal record", in.remaining());
  DM_RETURN_IF_ERROR(ctx.AdoptRestoredRows(d.n, floor));
  return d;
}

}  // namespace dormouse
