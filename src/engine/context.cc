#include "engine/context.h"

#include <algorithm>
#include <cmath>

#include "engine/attention.h"
#include "engine/gelu.h"
#include "engine/kernels.h"
#include "engine/quants.h"
#include "engine/rope.h"

namespace dormouse {
namespace {

constexpr int kMaxGroup = 3;

int64_t MaxPreparedRowBytes(const Model& m) {
  int64_t best = 0;
  for (const Weight* w : m.MatMulWeights()) {
    best = std::max<int64_t>(best, static_cast<int64_t>(PreparedRowBytes(w->type, w->cols)));
  }
  return (best + 63) / 64 * 64;
}

}  // namespace

StatusOr<InferenceContext> InferenceContext::CreateOrError(const Model& model, ContextParams params,
                                                           ThreadPool* pool) {
  const ModelConfig& c = model.config();
  const int64_t n_ctx = ContextSize(model, params);
  if (n_ctx > (int64_t{1} << 22)) return Status::Errorf("context size {} is too large", n_ctx);
  if (params.n_ubatch < 1 || params.n_ubatch > 8192) {
    return Status::Errorf("micro-batch size {} is outside [1, 8192]", params.n_ubatch);
  }
  const int64_t n_ubatch = std::min(params.n_ubatch, n_ctx);
  DM_ASSIGN_OR_RETURN(KvCache kv, KvCache::CreateOrError(c, n_ctx, n_ubatch, params.kv_type));
  return InferenceContext(model, std::move(kv), pool, n_ubatch);
}

InferenceContext::InferenceContext(const Model& model, KvCache kv, ThreadPool* pool,
                                   int64_t n_ubatch)
    : model_(&model),
      pool_(pool),
      kv_(std::move(kv)),
      kv_usage_(model.kv_usage_counter()),
      n_ubatch_(n_ubatch),
      dealer_(pool->size()) {
  const ModelConfig& c = model.config();
  n_vocab_ = c.n_vocab;
  size_t b = static_cast<size_t>(n_ubatch);
  int64_t wide = std::max({c.n_embd, c.q_dim(), c.n_ff});
  x_.resize(b * c.n_embd);
  xn_.resize(b * wide);
  q_.resize(b * c.q_dim());
  k_.resize(b * c.kv_dim());
  v_.resize(b * c.kv_dim());
  attn_.resize(b * c.q_dim());
  gate_.resize(b * c.n_ff);
  up_.resize(b * c.n_ff);
  attn_ws_ = AttentionWorkspace(pool->size(), c.n_head, c.head_dim);
  // Global layers' table, then (with SWA) the local layers' table.
  const size_t tables = c.HasSwa() ? 2 : 1;
  rope_cos_.resize(tables * b * (c.rope_dim / 2));
  rope_sin_.resize(tables * b * (c.rope_dim / 2));
  prepared_stride_ = static_cast<size_t>(MaxPreparedRowBytes(model));
  prepared_.resize(kMaxGroup * b * prepared_stride_);
  logits_.resize(n_vocab_);
}

Status InferenceContext::Eval(std::span<const int32_t> tokens, bool all_logits) {
  if (tokens.empty()) return Status::Error("no tokens to evaluate");
  for (int32_t t : tokens) {
    if (t < 0 || t >= n_vocab_) {
      return Status::Errorf("token id {} is outside the vocabulary [0, {})", t, n_vocab_);
    }
  }
  int64_t n = static_cast<int64_t>(tokens.size());
  if (n_past_ + n > kv_.n_ctx()) {
    return Status::Errorf("context is full: {} cached + {} new tokens exceed the context size {}",
                          n_past_, n, kv_.n_ctx());
  }
  logits_.resize(static_cast<size_t>((all_logits ? n : 1) * n_vocab_));
  for (int64_t start = 0; start < n; start += n_ubatch_) {
    int64_t len = std::min(n_ubatch_, n - start);
    bool last_chunk = start + len == n;
    float* out =
        all_logits ? logits_.data() + start * n_vocab_ : (last_chunk ? logits_.data() : nullptr);
    EvalChunk(tokens.data() + start, len, out, all_logits);
  }
  UpdateKvUsage();
  return Status::Ok();
}

InferenceContext::KvUsage& InferenceContext::KvUsage::operator=(KvUsage&& o) noexcept {
  if (this != &o) {
    Set(0);
    counter_ = std::move(o.counter_);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

void InferenceContext::KvUsage::Set(uint64_t bytes) {
  if (counter_ && bytes != bytes_) {
    counter_->fetch_add(static_cast<int64_t>(bytes) - static_cast<int64_t>(bytes_));
  }
  bytes_ = bytes;
}

Status InferenceContext::AdoptRestoredRows(int64_t n, int64_t swa_floor) {
  if (n < 0 || n > kv_.n_ctx()) {
    return Status::Errorf("cannot restore {} positions into a context of {}", n, kv_.n_ctx());
  }
  const ModelConfig& c = model_->config();
  for (int64_t l = 0; l < kv_.n_layer(); ++l) {
    if (c.IsSwa(l) && (swa_floor > WindowStart(l, n) || n - swa_floor > kv_.rows(l))) {
      return Status::Errorf("restored rows from position {} do not fit layer {}'s window",
                            swa_floor, l);
    }
  }
  kv_committed_ = std::max(kv_committed_, n_past_);
  n_past_ = n;
  swa_floor_ = c.HasSwa() ? swa_floor : 0;
  UpdateKvUsage();
  return Status::Ok();
}

int64_t InferenceContext::SnapshotStart(int64_t layer, int64_t n) const {
  if (!model_->config().IsSwa(layer)) return 0;
  return std::max(swa_floor_, n - kv_.rows(layer));
}

int64_t InferenceContext::WindowStart(int64_t layer, int64_t n) const {
  const ModelConfig& c = model_->config();
  return c.IsSwa(layer) ? std::max<int64_t>(0, n - c.n_swa + 1) : 0;
}

void InferenceContext::Truncate(int64_t n) {
  n = std::clamp<int64_t>(n, 0, n_past_);
  const ModelConfig& c = model_->config();
  for (int64_t l = 0; l < kv_.n_layer() && n > 0 && n < n_past_; ++l) {
    if (c.IsSwa(l) && WindowStart(l, n) < swa_floor_) n = 0;  // the ring overwrote that window
  }
  kv_committed_ = std::max(kv_committed_, n_past_);
  n_past_ = n;
  if (n == 0) swa_floor_ = 0;
}

void InferenceContext::ReleaseUnusedKv() {
  if (kv_committed_ <= n_past_) return;
  kv_.Release(n_past_);
  kv_committed_ = n_past_;
  UpdateKvUsage();
}

void InferenceContext::EvalChunk(const int32_t* tokens, int64_t n, float* logits_out,
                                 bool all_logits) {
  const ModelConfig& c = model_->config();
  const Weight& embd = model_->token_embd();
  for (int64_t t = 0; t < n; ++t) {
    DequantizeRow(embd.type, embd.Row(tokens[t]), &x_[t * c.n_embd], c.n_embd);
  }
  if (c.traits.scale_embd) {
    const float scale = std::sqrt(static_cast<float>(c.n_embd));
    for (int64_t i = 0; i < n * c.n_embd; ++i) x_[i] *= scale;
  }
  ComputeRopeTables(n);
  for (int64_t il = 0; il < c.n_layer; ++il) Layer(il, n);
  n_past_ += n;
  for (int64_t l = 0; l < kv_.n_layer(); ++l) {
    if (kv_.is_ring(l)) swa_floor_ = std::max(swa_floor_, n_past_ - kv_.rows(l));
  }
  if (logits_out == nullptr) return;
  // Only the rows whose logits are wanted go through the output matrix.
  int64_t first = all_logits ? 0 : n - 1;
  int64_t rows = n - first;
  for (int64_t t = first; t < n; ++t) {
    RmsNorm(&x_[t * c.n_embd], model_->output_norm().data(), c.rms_eps, c.n_embd,
            &xn_[(t - first) * c.n_embd]);
  }
  MatMulJob job{&model_->output(), logits_out, n_vocab_};
  MatMulGroup(xn_.data(), c.n_embd, rows, {&job, 1});
  if (c.final_softcap > 0.0f) {  // as llama.cpp's graph: scale, tanh, scale
    const float cap = c.final_softcap, inv = 1.0f / cap;
    for (int64_t i = 0; i < rows * n_vocab_; ++i) {
      logits_out[i] = std::tanh(logits_out[i] * inv) * cap;
    }
  }
}

void InferenceContext::ComputeRopeTables(int64_t n) {
  const ModelConfig& c = model_->config();
  const int64_t half = c.rope_dim / 2;
  const float* factors = model_->RopeFactors(kv_.n_ctx());
  for (int swa = 0; swa < (c.HasSwa() ? 2 : 1); ++swa) {
    const RopeParams p = RopeParams::For(c, swa == 1, factors);
    const size_t table = static_cast<size_t>(swa) * n_ubatch_ * half;
    for (int64_t t = 0; t < n; ++t) {
      RopeTable(p, n_past_ + t, &rope_cos_[table + t * half], &rope_sin_[table + t * half]);
    }
  }
}

void InferenceContext::MatMulGroup(const float* in, int64_t in_stride, int64_t n,
                                   std::span<const MatMulJob> jobs) {
  const void* acts[kMaxGroup];
  int64_t total_rows = 0;
  for (size_t j = 0; j < jobs.size(); ++j) {
    // Weights whose types take the same prepared input (e.g. Q4_K and Q6_K) share one copy.
    acts[j] = nullptr;
    for (size_t p = 0; p < j && acts[j] == nullptr; ++p) {
      if (SamePreparedActivations(jobs[p].w->type, jobs[j].w->type)) acts[j] = acts[p];
    }
    total_rows += jobs[j].w->rows;
    if (acts[j] != nullptr) continue;
    uint8_t* dst = prepared_.data() + j * n_ubatch_ * prepared_stride_;
    acts[j] = dst;
    const Weight& w = *jobs[j].w;
    // Rows are packed at their own size: the stride MatMulRows expects.
    size_t row_bytes = PreparedRowBytes(w.type, w.cols);
    auto prepare = [&](int i, int nt) {
      auto [b, e] = ThreadPool::Share(n, i, nt);
      for (int64_t t = b; t < e; ++t) {
        PrepareActivations(w.type, in + t * in_stride, w.cols, dst + t * row_bytes);
      }
    };
    pool_->RunSized(n * w.cols, prepare);
  }
  // One parallel pass over the concatenated rows of every weight in the group. Large
  // passes are dealt in 16-row units so that the threads finish together
  // (base/work_dealer.h): the 1B decode lost 8% to one thread waiting for the other. Small
  // ones (a tiny model's matrices, in cache) keep a static split: the dealer's few
  // cross-core claims cost them more than the balance gains (2% of qwen2-20m's decode).
  // A row's result depends on neither.
  constexpr int64_t kGranule = 16;
  constexpr int64_t kMinDealtBytes = 1 << 20;
  const int64_t pass_bytes =
      total_rows * static_cast<int64_t>(RowBytes(jobs[0].w->type, jobs[0].w->cols)) * n;
  auto rows = [&](int64_t b, int64_t e) {
    int64_t base = 0;
    for (size_t j = 0; j < jobs.size(); ++j) {
      const Weight& w = *jobs[j].w;
      int64_t lo = std::max(b, base), hi = std::min(e, base + w.rows);
      if (lo < hi) {
        MatMulRows(w.type, w.data, w.cols, lo - base, hi - base, acts[j], n, jobs[j].out,
                   jobs[j].out_stride);
      }
      base += w.rows;
    }
  };
  const int64_t work = total_rows * jobs[0].w->cols * n;
  if (work < ThreadPool::kMinParallelWork || pool_->size() == 1) {
    rows(0, total_rows);
    return;
  }
  if (pass_bytes < kMinDealtBytes) {
    pool_->Run([&](int i, int nt) {
      auto [b, e] = ThreadPool::Share(total_rows, i, nt, kGranule);
      rows(b, e);
    });
    return;
  }
  dealer_.Reset((total_rows + kGranule - 1) / kGranule, pool_->size());
  pool_->Run([&](int i, int) {
    for (int64_t b, e; dealer_.Next(i, &b, &e);) {
      rows(b * kGranule, std::min(e * kGranule, total_rows));
    }
  });
}

}  // namespace dormouse

namespace dormouse {

void InferenceContext::Layer(int64_t il, int64_t n) {
  const ModelConfig& c = model_->config();
  const LayerWeights& l = model_->layers()[il];
  const int64_t d = c.n_embd;
  // Runs fn(t) for every token row (`width` elements each): on the pool when that pays.
  auto for_rows = [&](int64_t width, auto&& fn) {
    auto body = [&](int i, int nt) {
      auto [b, e] = ThreadPool::Share(n, i, nt);
      for (int64_t t = b; t < e; ++t) fn(t);
    };
    pool_->RunSized(n * width, body);
  };
  // RMSNorm of every row of `in` into `out` (may alias).
  auto norm_rows = [&](const std::vector<float>& w, const float* in, float* out) {
    for_rows(d, [&](int64_t t) { RmsNorm(&in[t * d], w.data(), c.rms_eps, d, &out[t * d]); });
  };
  // x += branch, normalized first by `post` when the architecture has post norms.
  auto add_branch = [&](const std::vector<float>& post) {
    for_rows(d, [&](int64_t t) {
      float* br = &xn_[t * d];
      if (!post.empty()) RmsNorm(br, post.data(), c.rms_eps, d, br);
      float* x = &x_[t * d];
      for (int64_t i = 0; i < d; ++i) x[i] += br[i];
    });
  };

  norm_rows(l.attn_norm, x_.data(), xn_.data());
  const MatMulJob qkv[] = {{&l.wq, q_.data(), c.q_dim()},
                           {&l.wk, k_.data(), c.kv_dim()},
                           {&l.wv, v_.data(), c.kv_dim()}};
  MatMulGroup(xn_.data(), d, n, qkv);
  RopeQK(il, n);
  StoreKV(il, n);
  Attention(il, n);
  const MatMulJob wo[] = {{&l.wo, xn_.data(), d}};
  MatMulGroup(attn_.data(), c.q_dim(), n, wo);
  add_branch(l.post_attn_norm);

  norm_rows(l.ffn_norm, x_.data(), xn_.data());
  const MatMulJob gate_up[] = {{&l.w_gate, gate_.data(), c.n_ff}, {&l.w_up, up_.data(), c.n_ff}};
  MatMulGroup(xn_.data(), d, n, gate_up);
  for_rows(c.n_ff, [&](int64_t t) {
    float* g = &gate_[t * c.n_ff];
    const float* u = &up_[t * c.n_ff];
    if (c.traits.ffn == FfnActivation::kGelu) {
      GeluGate(g, u, c.n_ff, g);
    } else {
      SwiGlu(g, u, c.n_ff, g);
    }
  });
  const MatMulJob down[] = {{&l.w_down, xn_.data(), d}};
  MatMulGroup(gate_.data(), c.n_ff, n, down);
  add_branch(l.post_ffn_norm);
}

namespace {

// Rotates the first 2*half dims of one head in place.
void RotateHead(float* x, const float* cs, const float* sn, int64_t half, RopeLayout layout) {
  for (int64_t i = 0; i < half; ++i) {
    int64_t a = layout == RopeLayout::kNormal ? 2 * i : i;
    int64_t b = layout == RopeLayout::kNormal ? 2 * i + 1 : i + half;
    float x0 = x[a], x1 = x[b];
    x[a] = x0 * cs[i] - x1 * sn[i];
    x[b] = x0 * sn[i] + x1 * cs[i];
  }
}

void AddBias(float* rows, const std::vector<float>& bias, int64_t n, int64_t dim) {
  if (bias.empty()) return;
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t i = 0; i < dim; ++i) rows[t * dim + i] += bias[i];
  }
}

}  // namespace

void InferenceContext::RopeQK(int64_t il, int64_t n) {
  const ModelConfig& c = model_->config();
  const LayerWeights& l = model_->layers()[il];
  AddBias(q_.data(), l.bq, n, c.q_dim());
  AddBias(k_.data(), l.bk, n, c.kv_dim());
  AddBias(v_.data(), l.bv, n, c.kv_dim());
  const int64_t hd = c.head_dim, half = c.rope_dim / 2;
  const size_t table = c.IsSwa(il) ? static_cast<size_t>(n_ubatch_ * half) : 0;
  auto body = [&](int i, int nt) {
    auto [b, e] = ThreadPool::Share(n, i, nt);
    for (int64_t t = b; t < e; ++t) {
      const float* cs = &rope_cos_[table + t * half];
      const float* sn = &rope_sin_[table + t * half];
      for (int64_t h = 0; h < c.n_head; ++h) {
        float* head = &q_[t * c.q_dim() + h * hd];
        if (!l.q_norm.empty()) RmsNorm(head, l.q_norm.data(), c.rms_eps, hd, head);
        RotateHead(head, cs, sn, half, c.traits.rope);
        if (c.traits.scale_q) {
          for (int64_t j = 0; j < hd; ++j) head[j] *= c.attn_scale;
        }
      }
      for (int64_t h = 0; h < c.n_head_kv; ++h) {
        float* head = &k_[t * c.kv_dim() + h * hd];
        if (!l.k_norm.empty()) RmsNorm(head, l.k_norm.data(), c.rms_eps, hd, head);
        RotateHead(head, cs, sn, half, c.traits.rope);
      }
    }
  };
  pool_->RunSized(n * (c.n_head + c.n_head_kv) * hd, body);
}

void InferenceContext::StoreKV(int64_t il, int64_t n) {
  const int64_t kv_dim = kv_.kv_dim();
  auto body = [&](int i, int nt) {
    auto [b, e] = ThreadPool::Share(n, i, nt);
    for (int64_t t = b; t < e; ++t) {
      const int64_t pos = n_past_ + t;
      if (kv_.type() == KvType::kF16) {
        ConvertF32ToF16(&k_[t * kv_dim], reinterpret_cast<uint16_t*>(kv_.KRow(il, pos)), kv_dim);
        ConvertF32ToF16(&v_[t * kv_dim], reinterpret_cast<uint16_t*>(kv_.VRow(il, pos)), kv_dim);
      } else {
        std::copy_n(&k_[t * kv_dim], kv_dim, reinterpret_cast<float*>(kv_.KRow(il, pos)));
        std::copy_n(&v_[t * kv_dim], kv_dim, reinterpret_cast<float*>(kv_.VRow(il, pos)));
      }
    }
  };
  // Rows of a ring (sliding window) never collide within one chunk: n <= n_ubatch <= ring.
  pool_->RunSized(2 * n * kv_dim, body);
}

void InferenceContext::Attention(int64_t il, int64_t n) {
  const ModelConfig& c = model_->config();
  // ggml_flash_attn_ext divides its scale by the soft-cap; q may already be scaled.
  float scale = c.traits.scale_q ? 1.0f : c.attn_scale;
  if (c.attn_softcap > 0.0f) scale /= c.attn_softcap;
  const LayerAttention layer{.k_base = kv_.KBase(il),
                             .v_base = kv_.VBase(il),
                             .row_bytes = kv_.row_bytes(),
                             .n_head = c.n_head,
                             .n_head_kv = c.n_head_kv,
                             .head_dim = c.head_dim,
                             .scale = scale,
                             .softcap = c.attn_softcap,
                             .window = c.IsSwa(il) ? c.n_swa : 0,
                             .ring = kv_.is_ring(il) ? kv_.rows(il) : 0,
                             .f16 = kv_.type() == KvType::kF16};
  attn_ws_.Run(*pool_, layer, q_.data(), c.q_dim(), n_past_, n, attn_.data(), c.q_dim());
}

}  // namespace dormouse
