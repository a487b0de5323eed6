#include "engine/attention_split.h"

#include <cassert>
#include <cmath>

#include "engine/kernel_target.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace dormouse {
namespace {

constexpr size_t kChunks = kMaxKeyChunks;
// Query rows per task of the multi-row kernels (AttendLanesF16, AttendRowsF16): a vector of
// them for the lane kernel with AVX-512.
constexpr int kTaskRows = 16;
static_assert(kTaskRows <= kMaxAttentionRows);
constexpr int64_t kSerialMerge = 32 * 1024;  // multiply-adds

int64_t FirstVisible(const LayerAttention& l, int64_t pos) {
  // llama.cpp masks key p0 for query p1 when p1 - p0 >= n_swa.
  return l.window > 0 ? std::max<int64_t>(0, pos - l.window + 1) : 0;
}

// What a query row's key costs next to a matmul's multiply-add (ThreadPool::RunSized):
// the score, the exp and the accumulate of head_dim elements, over head_dim.
constexpr int64_t kAttentionStep = 4;

// The work of n query tokens at positions [pos0, pos0 + n), in those units.
int64_t Work(const LayerAttention& l, int64_t pos0, int64_t n) {
  const int64_t keys = l.window > 0 ? std::min(l.window, pos0 + n) : pos0 + (n + 1) / 2;
  return n * l.n_head * keys * l.head_dim * kAttentionStep;
}

// The arguments of one query row (q: its head) of KV head kvh over keys [begin, end).
AttentionArgs RowArgs(const LayerAttention& l, const float* q, int64_t kvh, int64_t begin,
                      int64_t end, SoftmaxStats* stats) {
  return {.q = q,
          .k_base = l.k_base,
          .v_base = l.v_base,
          .row_bytes = l.row_bytes,
          .offset = kvh * l.head_dim,
          .n_keys = end,
          .head_dim = l.head_dim,
          .scale = l.scale,
          .first_key = begin,
          .ring = l.ring,
          .softcap = l.softcap,
          .stats = stats};
}

// Attention of query heads [h0, h0 + m) (sharing KV head kvh) over keys [begin, end).
void AttendHeads(const LayerAttention& l, const float* q, int64_t h0, int m, int64_t begin,
                 int64_t end, const AttentionScratch& scratch, float* const* outs,
                 SoftmaxStats* const* stats) {
  const int64_t kvh = h0 / (l.n_head / l.n_head_kv);
  AttentionArgs args[kMaxGroupHeads];
  for (int i = 0; i < m; ++i) {
    args[i] = RowArgs(l, q + (h0 + i) * l.head_dim, kvh, begin, end,
                      stats == nullptr ? nullptr : stats[i]);
  }
  AttendGroup(args, m, l.f16, scratch, outs);
}

}  // namespace

KeyChunks SplitKeys(int64_t first_key, int64_t n_keys) {
  const int64_t len = std::max<int64_t>(0, n_keys - first_key);
  KeyChunks kc{.first = first_key, .end = n_keys, .size = len, .n = 1};
  if (len <= kKeyChunk) return kc;
  const int64_t want = std::min<int64_t>(kMaxKeyChunks, (len + kKeyChunk - 1) / kKeyChunk);
  // Whole 64-key blocks (the grouped kernel's block), as even as that allows.
  kc.size = ((len + want - 1) / want + 63) / 64 * 64;
  kc.n = static_cast<int>((len + kc.size - 1) / kc.size);
  return kc;
}

namespace {

// out[d] = (the sum over chunks of w[c] * partial[c][d], fused, in chunk order) * inv.
void WeightedSum(const float* const* partial, const float* w, int n, float inv, int64_t d,
                 int64_t hd, float* out) {
  for (; d < hd; ++d) {
    float acc = 0.0f;
    for (int c = 0; c < n; ++c) acc = std::fma(w[c], partial[c][d], acc);
    out[d] = acc * inv;
  }
}

#if defined(__x86_64__)
// Without a target that has FMA, std::fma is a call to libm's fmaf per element (1.4% of a
// decode at depth). A fused multiply-add rounds once however it runs: the same bits.
__attribute__((target("avx2,fma"))) void WeightedSumFma(const float* const* partial, const float* w,
                                                        int n, float inv, int64_t hd, float* out) {
  int64_t d = 0;
  for (; d + 8 <= hd; d += 8) {
    __m256 acc = _mm256_setzero_ps();
    for (int c = 0; c < n; ++c) {
      acc = _mm256_fmadd_ps(_mm256_set1_ps(w[c]), _mm256_loadu_ps(partial[c] + d), acc);
    }
    _mm256_storeu_ps(out + d, _mm256_mul_ps(acc, _mm256_set1_ps(inv)));
  }
  WeightedSum(partial, w, n, inv, d, hd, out);
}
#endif

}  // namespace

void MergeChunks(const float* const* partial, const SoftmaxStats* stats, int n, int64_t hd,
                 float* out) {
  float m = -INFINITY;
  for (int c = 0; c < n; ++c) m = std::max(m, stats[c].max);
  float w[kMaxKeyChunks];
  float total = 0.0f;
  for (int c = 0; c < n; ++c) {
    w[c] = stats[c].sum * std::exp(stats[c].max - m);
    total += w[c];
  }
  const float inv = total > 0.0f ? 1.0f / total : 0.0f;
#if defined(__x86_64__)
  if (AllowAvx2Attention()) return WeightedSumFma(partial, w, n, inv, hd, out);
#endif
  WeightedSum(partial, w, n, inv, 0, hd, out);
}

AttentionWorkspace::AttentionWorkspace(int n_threads, int64_t n_head, int64_t head_dim)
    : n_head_(n_head), head_dim_(head_dim), n_threads_(n_threads) {
  const size_t nt = static_cast<size_t>(n_threads), hd = static_cast<size_t>(head_dim);
  const size_t nh = static_cast<size_t>(n_head);
  // Whether a multi-row kernel takes these heads depends on the target dispatch picks, which
  // may change later: room for its rows whenever one might.
  const bool rows_kernel = head_dim <= 16 || AttentionRowsHeadDim(head_dim);
  thread_rows_ = rows_kernel ? std::max(kTaskRows, kMaxGroupHeads) : kMaxGroupHeads;
  const size_t rows = static_cast<size_t>(thread_rows_);
  f16_.resize(nt * (kMaxGroupHeads + 1) * hd);
  f32_.resize(nt * hd);
  thread_partial_.resize(nt * rows * kChunks * hd);
  thread_stats_.resize(nt * rows * kChunks);
  partial_.resize(nh * kChunks * hd);
  stats_.resize(nh * kChunks);
}

AttentionWorkspace::Thread AttentionWorkspace::ForThread(int i) {
  assert(i < n_threads_);
  const size_t t = static_cast<size_t>(i), hd = static_cast<size_t>(head_dim_);
  uint16_t* h16 = &f16_[t * (kMaxGroupHeads + 1) * hd];
  const size_t rows = static_cast<size_t>(thread_rows_);
  return {{h16, h16 + kMaxGroupHeads * hd, &f32_[t * hd]},
          &thread_partial_[t * rows * kChunks * hd],
          &thread_stats_[t * rows * kChunks]};
}

void AttentionWorkspace::Run(ThreadPool& pool, const LayerAttention& l, const float* q,
                             int64_t q_stride, int64_t pos0, int64_t n, float* out,
                             int64_t out_stride) {
  if (n == 1) {
    const KeyChunks kc = SplitKeys(FirstVisible(l, pos0), pos0 + 1);
    if (kc.n > 1) return SplitDecode(pool, l, kc, q, out);
  }
  Tokens(pool, l, q, q_stride, pos0, n, out, out_stride);
}

void AttentionWorkspace::Tokens(ThreadPool& pool, const LayerAttention& l, const float* q,
                                int64_t q_stride, int64_t pos0, int64_t n, float* out,
                                int64_t out_stride) {
  if (AttentionLanesFit(l.head_dim, l.f16, l.softcap)) {
    return TokenRows(pool, l, q, q_stride, pos0, n, out, out_stride, true);
  }
  if (AttentionRowsFit(l.head_dim, l.f16)) {
    return TokenRows(pool, l, q, q_stride, pos0, n, out, out_stride, false);
  }
  const int64_t hd = l.head_dim, group = l.n_head / l.n_head_kv;
  pool.RunSized(Work(l, pos0, n), [&](int ti, int nt) {
    const Thread th = ForThread(ti);
    // A task is one token's query heads that share a KV head. Strided, not contiguous:
    // under the causal mask later tokens attend to more keys, so contiguous halves would
    // leave one thread with three quarters of the work.
    for (int64_t task = ti; task < n * l.n_head_kv; task += nt) {
      const int64_t t = task / l.n_head_kv, kvh = task % l.n_head_kv, pos = pos0 + t;
      const KeyChunks kc = SplitKeys(FirstVisible(l, pos), pos + 1);
      const float* qt = q + t * q_stride;
      float* ot = out + t * out_stride;
      for (int64_t h0 = kvh * group; h0 < (kvh + 1) * group; h0 += kMaxGroupHeads) {
        const int m = static_cast<int>(std::min<int64_t>(kMaxGroupHeads, (kvh + 1) * group - h0));
        float* outs[kMaxGroupHeads];
        SoftmaxStats* stats[kMaxGroupHeads];
        for (int c = 0; c < kc.n; ++c) {
          for (int i = 0; i < m; ++i) {
            const size_t slot = static_cast<size_t>(i) * kChunks + static_cast<size_t>(c);
            outs[i] = kc.n == 1 ? ot + (h0 + i) * hd : th.partial + slot * hd;
            stats[i] = th.stats + slot;
          }
          AttendHeads(l, qt, h0, m, kc.Begin(c), kc.End(c), th.scratch, outs, stats);
        }
        if (kc.n == 1) continue;
        for (int i = 0; i < m; ++i) {
          const float* parts[kMaxKeyChunks];
          for (int c = 0; c < kc.n; ++c) parts[c] = th.partial + (i * kChunks + c) * hd;
          MergeChunks(parts, th.stats + i * kChunks, kc.n, hd, ot + (h0 + i) * hd);
        }
      }
    }
  });
}

void AttentionWorkspace::TokenRows(ThreadPool& pool, const LayerAttention& l, const float* q,
                                   int64_t q_stride, int64_t pos0, int64_t n, float* out,
                                   int64_t out_stride, bool lanes) {
  const int64_t hd = l.head_dim, group = l.n_head / l.n_head_kv;
  // A task is up to kTaskRows query rows of one KV head: consecutive tokens' heads, whose
  // key ranges (nearly) coincide. Many heads per KV head: a token's heads in sets.
  const int64_t head_sets = (group + kTaskRows - 1) / kTaskRows;
  const int64_t set_size = std::min<int64_t>(group, kTaskRows);
  const int64_t per_task = std::max<int64_t>(1, kTaskRows / group);  // tokens
  const int64_t blocks = (n + per_task - 1) / per_task;
  const int64_t tasks = blocks * l.n_head_kv * head_sets;
  pool.RunSized(Work(l, pos0, n), [&](int ti, int nt) {
    const Thread th = ForThread(ti);
    for (int64_t task = ti; task < tasks; task += nt) {
      const int64_t t0 = task / (l.n_head_kv * head_sets) * per_task;
      const int64_t kvh = task / head_sets % l.n_head_kv;
      const int64_t h0 = kvh * group + task % head_sets * set_size;
      const int64_t h1 = std::min(h0 + set_size, (kvh + 1) * group);
      const int64_t t1 = std::min(n, t0 + per_task);
      // Row r: token t0 + r / heads, head h0 + r % heads.
      const int64_t heads = h1 - h0;
      const int rows = static_cast<int>((t1 - t0) * heads);
      KeyChunks kc[kTaskRows];
      int max_chunks = 0;
      for (int r = 0; r < rows; ++r) {
        const int64_t pos = pos0 + t0 + r / heads;
        kc[r] = SplitKeys(FirstVisible(l, pos), pos + 1);
        max_chunks = std::max(max_chunks, kc[r].n);
      }
      auto row_out = [&](int r) {
        return out + (t0 + r / heads) * out_stride + (h0 + r % heads) * hd;
      };
      for (int c = 0; c < max_chunks; ++c) {
        AttentionArgs args[kTaskRows];
        float* outs[kTaskRows];
        int m = 0;
        for (int r = 0; r < rows; ++r) {
          if (kc[r].n <= c) continue;
          const size_t slot = static_cast<size_t>(r) * kChunks + static_cast<size_t>(c);
          const float* qr = q + (t0 + r / heads) * q_stride + (h0 + r % heads) * hd;
          args[m] = RowArgs(l, qr, kvh, kc[r].Begin(c), kc[r].End(c), th.stats + slot);
          outs[m++] = kc[r].n == 1 ? row_out(r) : th.partial + slot * hd;
        }
        if (lanes) {
          const bool ok = AttendLanesF16(args, m, outs);
          assert(ok);
          (void)ok;
          continue;
        }
        // The row kernel takes rows that start at the same key: runs of them (a change of
        // chunk size between consecutive tokens starts a new run).
        for (int i = 0; i < m;) {
          int e = i + 1;
          while (e < m && args[e].first_key == args[i].first_key) ++e;
          const bool ok = AttendRowsF16(args + i, e - i, outs + i);
          assert(ok);
          (void)ok;
          i = e;
        }
      }
      for (int r = 0; r < rows; ++r) {
        if (kc[r].n == 1) continue;
        const float* parts[kMaxKeyChunks];
        for (int c = 0; c < kc[r].n; ++c) parts[c] = th.partial + (r * kChunks + c) * hd;
        MergeChunks(parts, th.stats + r * kChunks, kc[r].n, hd, row_out(r));
      }
    }
  });
}

void AttentionWorkspace::SplitDecode(ThreadPool& pool, const LayerAttention& l, const KeyChunks& kc,
                                     const float* q, float* out) {
  const int64_t hd = l.head_dim, group = l.n_head / l.n_head_kv;
  pool.RunSized(l.n_head * (kc.end - kc.first) * hd * kAttentionStep, [&](int ti, int nt) {
    const Thread th = ForThread(ti);
    for (int64_t task = ti; task < kc.n * l.n_head_kv; task += nt) {
      const int c = static_cast<int>(task / l.n_head_kv);
      const int64_t kvh = task % l.n_head_kv;
      for (int64_t h0 = kvh * group; h0 < (kvh + 1) * group; h0 += kMaxGroupHeads) {
        const int m = static_cast<int>(std::min<int64_t>(kMaxGroupHeads, (kvh + 1) * group - h0));
        float* outs[kMaxGroupHeads];
        SoftmaxStats* stats[kMaxGroupHeads];
        for (int i = 0; i < m; ++i) {
          const size_t slot = static_cast<size_t>(h0 + i) * kChunks + static_cast<size_t>(c);
          outs[i] = &partial_[slot * hd];
          stats[i] = &stats_[slot];
        }
        AttendHeads(l, q, h0, m, kc.Begin(c), kc.End(c), th.scratch, outs, stats);
      }
    }
  });
  auto merge = [&](int ti, int nt) {
    for (int64_t h = ti; h < l.n_head; h += nt) {
      const float* parts[kMaxKeyChunks];
      for (int c = 0; c < kc.n; ++c) parts[c] = &partial_[(h * kChunks + c) * hd];
      MergeChunks(parts, &stats_[h * kChunks], kc.n, hd, out + h * hd);
    }
  };
  // A small merge costs less than waking the pool again (the bits are the same).
  if (l.n_head * kc.n * hd <= kSerialMerge) {
    merge(0, 1);
  } else {
    pool.Run(merge);
  }
}

}  // namespace dormouse
