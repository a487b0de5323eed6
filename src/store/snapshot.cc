#include "store/snapshot.h"

#include <zstd.h>

#include <cstring>

#include "store/snapshot_internal.h"

namespace dormouse {
namespace {

constexpr char kMagic[8] = {'D', 'M', 'K', 'V', 'S', 'N', 'A', 'P'};
constexpr uint32_t kFlagCompressed = 1;
constexpr uint32_t kCodecRaw = 0;
constexpr uint32_t kCodecZstd = 1;
constexpr uint64_t kMaxArch = 64;
constexpr uint64_t kMaxExtra = 64ull << 20;
constexpr int64_t kMaxTokens = int64_t{1} << 24;

Status WriteFingerprint(const ModelFingerprint& f, ByteSink& out) {
  const uint16_t len = static_cast<uint16_t>(std::min<size_t>(f.arch.size(), kMaxArch));
  DM_RETURN_IF_ERROR(out.Put(len));
  DM_RETURN_IF_ERROR(out.Write(f.arch.data(), len));
  for (int64_t v :
       {f.n_vocab, f.n_embd, f.n_layer, f.n_ff, f.n_head, f.n_head_kv, f.head_dim, f.rope_dim}) {
    DM_RETURN_IF_ERROR(out.Put(v));
  }
  DM_RETURN_IF_ERROR(out.Put(f.layout_hash));
  DM_RETURN_IF_ERROR(out.Put(f.content_hash.lo));
  return out.Put(f.content_hash.hi);
}

Status ReadFingerprint(ByteSource& in, ModelFingerprint* f) {
  uint16_t len = 0;
  DM_RETURN_IF_ERROR(in.Get(&len, "architecture length"));
  if (len > kMaxArch) return Status::Errorf("architecture name of {} bytes is too long", len);
  f->arch.resize(len);
  DM_RETURN_IF_ERROR(in.Read(f->arch.data(), len, "architecture"));
  for (int64_t* v : {&f->n_vocab, &f->n_embd, &f->n_layer, &f->n_ff, &f->n_head, &f->n_head_kv,
                     &f->head_dim, &f->rope_dim}) {
    DM_RETURN_IF_ERROR(in.Get(v, "model shape"));
  }
  DM_RETURN_IF_ERROR(in.Get(&f->layout_hash, "layout hash"));
  DM_RETURN_IF_ERROR(in.Get(&f->content_hash.lo, "content hash"));
  return in.Get(&f->content_hash.hi, "content hash");
}

}  // namespace

namespace snapshot_internal {

// One K or V span: raw, or zstd when compression was asked for and saves space.
Status WriteChunk(std::span<const uint8_t> raw, const SnapshotWriteOptions& o,
                  std::vector<uint8_t>& scratch, ByteSink& out) {
  uint32_t codec = kCodecRaw;
  std::span<const uint8_t> stored = raw;
  if (o.compress && !raw.empty()) {
    scratch.resize(ZSTD_compressBound(raw.size()));
    size_t n = ZSTD_compress(scratch.data(), scratch.size(), raw.data(), raw.size(), o.zstd_level);
    if (ZSTD_isError(n)) return Status::Errorf("zstd: {}", ZSTD_getErrorName(n));
    if (n < raw.size()) {
      codec = kCodecZstd;
      stored = {scratch.data(), n};
    }
  }
  DM_RETURN_IF_ERROR(out.Put(uint64_t{raw.size()}));
  DM_RETURN_IF_ERROR(out.Put(uint64_t{stored.size()}));
  DM_RETURN_IF_ERROR(out.Put(codec));
  return out.Write(stored.data(), stored.size());
}

Status ReadChunk(ByteSource& in, std::span<uint8_t> dst, std::vector<uint8_t>& scratch) {
  uint64_t raw_len = 0, stored_len = 0;
  uint32_t codec = 0;
  DM_RETURN_IF_ERROR(in.Get(&raw_len, "chunk length"));
  DM_RETURN_IF_ERROR(in.Get(&stored_len, "chunk stored length"));
  DM_RETURN_IF_ERROR(in.Get(&codec, "chunk codec"));
  if (raw_len != dst.size()) {
    return Status::Errorf("a KV chunk holds {} bytes, expected {}", raw_len, dst.size());
  }
  if (stored_len > in.remaining()) return Status::Error("truncated: a KV chunk runs past the end");
  if (codec == kCodecRaw) {
    if (stored_len != raw_len) return Status::Error("a raw KV chunk has inconsistent lengths");
    return in.Read(dst.data(), dst.size(), "KV rows");
  }
  if (codec != kCodecZstd) return Status::Errorf("unknown chunk codec {}", codec);
  scratch.resize(stored_len);
  DM_RETURN_IF_ERROR(in.Read(scratch.data(), stored_len, "compressed KV rows"));
  size_t n = ZSTD_decompress(dst.data(), dst.size(), scratch.data(), stored_len);
  if (ZSTD_isError(n)) return Status::Errorf("zstd: {}", ZSTD_getErrorName(n));
  if (n != dst.size()) return Status::Error("a compressed KV chunk decompresses to the wrong size");
  return Status::Ok();
}

// One layer's K or V rows of positions [first, end): written from one span, or gathered
// where a sliding-window ring wraps.
Status WriteRows(const KvCache::Spans& spans, const SnapshotWriteOptions& o,
                 std::vector<uint8_t>& gather, std::vector<uint8_t>& scratch, ByteSink& out) {
  if (spans[1].empty()) return WriteChunk(spans[0], o, scratch, out);
  gather.assign(spans[0].begin(), spans[0].end());
  gather.insert(gather.end(), spans[1].begin(), spans[1].end());
  return WriteChunk(gather, o, scratch, out);
}

// Reads a chunk of `skip` + the spans' bytes, keeping the last ones (a smaller ring keeps
// fewer of the stored positions).
Status ReadRows(ByteSource& in, size_t skip, const KvCache::Spans& spans,
                std::vector<uint8_t>& gather, std::vector<uint8_t>& scratch) {
  if (skip == 0 && spans[1].empty()) return ReadChunk(in, spans[0], scratch);
  gather.resize(skip + spans[0].size() + spans[1].size());
  DM_RETURN_IF_ERROR(ReadChunk(in, gather, scratch));
  std::memcpy(spans[0].data(), gather.data() + skip, spans[0].size());
  std::memcpy(spans[1].data(), gather.data() + skip + spans[0].size(), spans[1].size());
  return Status::Ok();
}

}  // namespace snapshot_internal

namespace {

using snapshot_internal::ReadRows;
using snapshot_internal::WriteRows;

// The header must describe the loaded model and context exactly.
Status CheckCompatible(const SnapshotHeader& h, const ModelFingerprint& expected,
                       const InferenceContext& ctx) {
  std::string why = expected.Mismatch(h.fingerprint);
  if (!why.empty()) return Status::Error("snapshot does not match the loaded model: " + why);
  const KvCache& kv = ctx.kv();
  if (h.kv_type != kv.type()) {
    return Status::Errorf("snapshot holds a {} KV cache; this context uses {}",
                          KvTypeName(h.kv_type), KvTypeName(kv.type()));
  }
  if (h.kv_layout != kKvLayoutRowsPerLayer) {
    return Status::Errorf("unknown KV layout {} in the snapshot", h.kv_layout);
  }
  if (h.n_layer != kv.n_layer() || h.kv_dim != kv.kv_dim()) {
    return Status::Errorf("snapshot KV shape ({} layers x {}) differs from the model's ({} x {})",
                          h.n_layer, h.kv_dim, kv.n_layer(), kv.kv_dim());
  }
  const int64_t n = static_cast<int64_t>(h.tokens.size());
  if (h.version == kSnapshotVersionNoWindows) {
    for (int64_t l = 0; l < kv.n_layer(); ++l) {
      if (ctx.WindowStart(l, n) > 0 || kv.is_ring(l)) {
        return Status::Error(
            "snapshot version 1 predates the sliding-window KV cache this model uses");
      }
    }
  }
  if (n > ctx.n_ctx()) {
    return Status::Errorf("snapshot holds {} tokens; the context holds only {}", n, ctx.n_ctx());
  }
  for (int32_t t : h.tokens) {
    if (t < 0 || t >= ctx.n_vocab()) return Status::Errorf("snapshot holds token id {}", t);
  }
  return Status::Ok();
}

Status ReadRowsAndVerify(ByteSource& src, uint32_t version, InferenceContext& ctx, int64_t n) {
  KvCache& kv = ctx.kv();
  std::vector<uint8_t> scratch, gather;
  int64_t floor = 0;
  for (int64_t l = 0; l < kv.n_layer(); ++l) {
    const bool swa = ctx.model().config().IsSwa(l);
    int64_t first = 0;
    if (version != kSnapshotVersionNoWindows) DM_RETURN_IF_ERROR(src.Get(&first, "first position"));
    // A global layer stores every position; a sliding-window layer at least its window.
    if (first < 0 || (!swa && first != 0) || first > ctx.WindowStart(l, n)) {
      return Status::Errorf(
          "layer {} of the snapshot starts at position {}, which this model's "
          "cache cannot use",
          l, first);
    }
    const int64_t keep = std::max(first, n - kv.rows(l));  // what this context's ring holds
    if (swa) floor = std::max(floor, keep);
    const size_t skip = static_cast<size_t>(keep - first) * kv.row_bytes();
    DM_RETURN_IF_ERROR(ReadRows(src, skip, kv.KSpans(l, keep, n), gather, scratch));
    DM_RETURN_IF_ERROR(ReadRows(src, skip, kv.VSpans(l, keep, n), gather, scratch));
  }
  const uint64_t computed = src.digest();
  uint64_t stored = 0;
  DM_RETURN_IF_ERROR(src.Get(&stored, "checksum"));
  if (stored != computed) {
    return Status::Errorf("checksum mismatch (stored {:016x}, computed {:016x}): corrupt file",
                          stored, computed);
  }
  if (src.remaining() != 0)
    return Status::Errorf("{} stray bytes after the checksum", src.remaining());
  return ctx.AdoptRestoredRows(n, floor);
}

}  // namespace

Status WriteSnapshot(const ModelFingerprint& fingerprint, const InferenceContext& ctx,
                     std::span<const int32_t> tokens, std::string_view extra,
                     const SnapshotWriteOptions& options, ByteSink& out) {
  const KvCache& kv = ctx.kv();
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n > ctx.n_past()) {
    return Status::Errorf("cannot snapshot {} tokens: only {} are computed", n, ctx.n_past());
  }
  if (extra.size() > kMaxExtra) return Status::Error("snapshot extra data is too large");
  const bool windows = options.version != kSnapshotVersionNoWindows;
  if (options.version != kSnapshotVersion && windows) {
    return Status::Errorf("cannot write snapshot version {}", options.version);
  }
  for (int64_t l = 0; l < kv.n_layer(); ++l) {
    const int64_t first = ctx.WindowStart(l, n);
    if (ctx.model().config().IsSwa(l) && first < ctx.swa_floor()) {
      return Status::Errorf("cannot snapshot {} tokens: the sliding window has moved past them", n);
    }
    if (!windows && (first > 0 || kv.is_ring(l))) {
      return Status::Error("snapshot version 1 cannot hold a sliding-window KV cache");
    }
  }
  DM_RETURN_IF_ERROR(out.Write(kMagic, sizeof kMagic));
  DM_RETURN_IF_ERROR(out.Put(options.version));
  DM_RETURN_IF_ERROR(out.Put(options.compress ? kFlagCompressed : uint32_t{0}));
  DM_RETURN_IF_ERROR(WriteFingerprint(fingerprint, out));
  DM_RETURN_IF_ERROR(out.Put(int64_t{ctx.n_ctx()}));
  DM_RETURN_IF_ERROR(out.Put(static_cast<uint32_t>(kv.type())));
  DM_RETURN_IF_ERROR(out.Put(kKvLayoutRowsPerLayer));
  DM_RETURN_IF_ERROR(out.Put(int64_t{kv.n_layer()}));
  DM_RETURN_IF_ERROR(out.Put(int64_t{kv.kv_dim()}));
  DM_RETURN_IF_ERROR(out.Put(n));
  DM_RETURN_IF_ERROR(out.Put(static_cast<uint32_t>(extra.size())));
  DM_RETURN_IF_ERROR(out.Write(extra.data(), extra.size()));
  DM_RETURN_IF_ERROR(out.Write(tokens.data(), tokens.size_bytes()));
  std::vector<uint8_t> scratch, gather;
  for (int64_t l = 0; l < kv.n_layer(); ++l) {
    const int64_t first = ctx.SnapshotStart(l, n);
    if (windows) DM_RETURN_IF_ERROR(out.Put(first));
    DM_RETURN_IF_ERROR(WriteRows(kv.KSpans(l, first, n), options, gather, scratch, out));
    DM_RETURN_IF_ERROR(WriteRows(kv.VSpans(l, first, n), options, gather, scratch, out));
  }
  return out.Put(out.digest());
}

StatusOr<SnapshotHeader> ReadSnapshotHeader(ByteSource& in) {
  SnapshotHeader h;
  char magic[sizeof kMagic];
  DM_RETURN_IF_ERROR(in.Read(magic, sizeof magic, "magic"));
  if (std::memcmp(magic, kMagic, sizeof kMagic) != 0) {
    return Status::Error("not a dormouse KV snapshot (bad magic)");
  }
  DM_RETURN_IF_ERROR(in.Get(&h.version, "version"));
  if (h.version != kSnapshotVersion && h.version != kSnapshotVersionNoWindows) {
    return Status::Errorf("unsupported snapshot version {} (supported: {}, {})", h.version,
                          kSnapshotVersionNoWindows, kSnapshotVersion);
  }
  DM_RETURN_IF_ERROR(in.Get(&h.flags, "flags"));
  if ((h.flags & ~kFlagCompressed) != 0) return Status::Errorf("unknown flags {:#x}", h.flags);
  DM_RETURN_IF_ERROR(ReadFingerprint(in, &h.fingerprint));
  uint32_t kv_type = 0;
  DM_RETURN_IF_ERROR(in.Get(&h.n_ctx, "context size"));
  DM_RETURN_IF_ERROR(in.Get(&kv_type, "KV type"));
  if (kv_type != static_cast<uint32_t>(KvType::kF16) &&
      kv_type != static_cast<uint32_t>(KvType::kF32)) {
    return Status::Errorf("unknown KV type {}", kv_type);
  }
  h.kv_type = static_cast<KvType>(kv_type);
  DM_RETURN_IF_ERROR(in.Get(&h.kv_layout, "KV layout"));
  DM_RETURN_IF_ERROR(in.Get(&h.n_layer, "layer count"));
  DM_RETURN_IF_ERROR(in.Get(&h.kv_dim, "KV width"));
  int64_t n_tokens = 0;
  DM_RETURN_IF_ERROR(in.Get(&n_tokens, "token count"));
  if (n_tokens < 0 || n_tokens > kMaxTokens ||
      static_cast<uint64_t>(n_tokens) * 4 > in.remaining()) {
    return Status::Errorf("token count {} is impossible for this file", n_tokens);
  }
  uint32_t extra_len = 0;
  DM_RETURN_IF_ERROR(in.Get(&extra_len, "extra length"));
  if (extra_len > kMaxExtra || extra_len > in.remaining()) {
    return Status::Errorf("extra data of {} bytes is impossible for this file", extra_len);
  }
  h.extra.resize(extra_len);
  DM_RETURN_IF_ERROR(in.Read(h.extra.data(), extra_len, "extra data"));
  h.tokens.resize(static_cast<size_t>(n_tokens));
  DM_RETURN_IF_ERROR(in.Read(h.tokens.data(), h.tokens.size() * 4, "tokens"));
  return h;
}

StatusOr<SnapshotHeader> RestoreSnapshot(ByteSource& src, const ModelFingerprint& expected,
                                         InferenceContext& ctx) {
  ctx.Truncate(0);
  DM_ASSIGN_OR_RETURN(SnapshotHeader h, ReadSnapshotHeader(src));
  DM_RETURN_IF_ERROR(CheckCompatible(h, expected, ctx));
  Status s = ReadRowsAndVerify(src, h.version, ctx, static_cast<int64_t>(h.tokens.size()));
  if (!s.ok()) {
    ctx.Truncate(0);  // rows may be half-written: nothing in the cache is valid
    return s;
  }
  return h;
}

}  // namespace dormouse
