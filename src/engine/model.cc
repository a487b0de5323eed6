#include "engine/model.h"

#include <cmath>

#include "engine/quants.h"

namespace dormouse {
namespace {

std::string Shape(const std::vector<int64_t>& dims) {
  std::string s = "(";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + ")";
}

// Binds tensor `name` as a (cols, rows) matrix. Optional tensors may be absent.
class Binder {
 public:
  explicit Binder(const GgufFile& g) : g_(g) {}

  StatusOr<Weight> Matrix(const std::string& name, int64_t cols, int64_t rows) const {
    const GgufTensorInfo* t = g_.FindTensor(name);
    if (t == nullptr) return Status::Errorf("missing tensor '{}'", name);
    std::vector<int64_t> want = {cols, rows};
    if (t->dims != want) {
      return Status::Errorf("tensor '{}' has shape {}, expected {}", name, Shape(t->dims),
                            Shape(want));
    }
    Weight w;
    w.data = t->data;
    w.type = t->type;
    w.cols = cols;
    w.rows = rows;
    w.row_bytes = t->n_bytes / static_cast<uint64_t>(rows);
    return w;
  }

  // A 1-D tensor of length n, converted to F32.
  StatusOr<std::vector<float>> Vector(const std::string& name, int64_t n) const {
    const GgufTensorInfo* t = g_.FindTensor(name);
    if (t == nullptr) return Status::Errorf("missing tensor '{}'", name);
    if (t->dims != std::vector<int64_t>{n}) {
      return Status::Errorf("tensor '{}' has shape {}, expected ({})", name, Shape(t->dims), n);
    }
    std::vector<float> out(static_cast<size_t>(n));
    DequantizeRow(t->type, t->data, out.data(), n);
    for (float v : out) {
      if (!std::isfinite(v)) return Status::Errorf("tensor '{}' holds a non-finite value", name);
    }
    return out;
  }

  bool Has(const std::string& name) const { return g_.FindTensor(name) != nullptr; }

 private:
  const GgufFile& g_;
};

std::string Blk(int64_t i, const char* suffix) { return "blk." + std::to_string(i) + "." + suffix; }

StatusOr<LayerWeights> BindLayer(const Binder& b, const ModelConfig& c, int64_t i) {
  LayerWeights l;
  DM_ASSIGN_OR_RETURN(l.attn_norm, b.Vector(Blk(i, "attn_norm.weight"), c.n_embd));
  if (c.traits.fused_qkv) {
    DM_ASSIGN_OR_RETURN(Weight qkv,
                        b.Matrix(Blk(i, "attn_qkv.weight"), c.n_embd, c.q_dim() + 2 * c.kv_dim()));
    l.wq = qkv.Rows(0, c.q_dim());
    l.wk = qkv.Rows(c.q_dim(), c.kv_dim());
    l.wv = qkv.Rows(c.q_dim() + c.kv_dim(), c.kv_dim());
  } else {
    DM_ASSIGN_OR_RETURN(l.wq, b.Matrix(Blk(i, "attn_q.weight"), c.n_embd, c.q_dim()));
    DM_ASSIGN_OR_RETURN(l.wk, b.Matrix(Blk(i, "attn_k.weight"), c.n_embd, c.kv_dim()));
    DM_ASSIGN_OR_RETURN(l.wv, b.Matrix(Blk(i, "attn_v.weight"), c.n_embd, c.kv_dim()));
  }
  DM_ASSIGN_OR_RETURN(l.wo, b.Matrix(Blk(i, "attn_output.weight"), c.q_dim(), c.n_embd));
  if (c.traits.qkv_bias) {
    DM_ASSIGN_OR_RETURN(l.bq, b.Vector(Blk(i, "attn_q.bias"), c.q_dim()));
    DM_ASSIGN_OR_RETURN(l.bk, b.Vector(Blk(i, "attn_k.bias"), c.kv_dim()));
    DM_ASSIGN_OR_RETURN(l.bv, b.Vector(Blk(i, "attn_v.bias"), c.kv_dim()));
  }
  if (c.traits.qk_norm) {
    DM_ASSIGN_OR_RETURN(l.q_norm, b.Vector(Blk(i, "attn_q_norm.weight"), c.head_dim));
    DM_ASSIGN_OR_RETURN(l.k_norm, b.Vector(Blk(i, "attn_k_norm.weight"), c.head_dim));
  }
  DM_ASSIGN_OR_RETURN(l.ffn_norm, b.Vector(Blk(i, "ffn_norm.weight"), c.n_embd));
  if (c.traits.post_norms) {
    DM_ASSIGN_OR_RETURN(l.post_attn_norm, b.Vector(Blk(i, "post_attention_norm.weight"), c.n_embd));
    DM_ASSIGN_OR_RETURN(l.post_ffn_norm, b.Vector(Blk(i, "post_ffw_norm.weight"), c.n_embd));
  }
  if (c.traits.fused_gate_up) {
    DM_ASSIGN_OR_RETURN(Weight gate_up, b.Matrix(Blk(i, "ffn_up.weight"), c.n_embd, 2 * c.n_ff));
    l.w_gate = gate_up.Rows(0, c.n_ff);
    l.w_up = gate_up.Rows(c.n_ff, c.n_ff);
  } else {
    DM_ASSIGN_OR_RETURN(l.w_gate, b.Matrix(Blk(i, "ffn_gate.weight"), c.n_embd, c.n_ff));
    DM_ASSIGN_OR_RETURN(l.w_up, b.Matrix(Blk(i, "ffn_up.weight"), c.n_embd, c.n_ff));
  }
  DM_ASSIGN_OR_RETURN(l.w_down, b.Matrix(Blk(i, "ffn_down.weight"), c.n_ff, c.n_embd));
  return l;
}

}  // namespace

std::vector<const Weight*> Model::MatMulWeights() const {
  std::vector<const Weight*> out;
  out.reserve(layers_.size() * 7 + 1);
  for (const LayerWeights& l : layers_) {
    for (const Weight* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      out.push_back(w);
    }
  }
  out.push_back(&output_);
  return out;
}

const float* Model::RopeFactors(int64_t n_ctx) const {
  if (!rope_freqs_.empty()) return rope_freqs_.data();
  const std::vector<float>& f = n_ctx > config_.rope_scaling.n_ctx_orig ? rope_long_ : rope_short_;
  return f.empty() ? nullptr : f.data();
}

StatusOr<Model> Model::LoadOrError(const std::string& path) {
  DM_ASSIGN_OR_RETURN(GgufFile gguf, GgufFile::OpenOrError(path));
  return FromGguf(std::move(gguf));
}

StatusOr<Model> Model::FromGguf(GgufFile gguf) {
  Model m;
  m.gguf_ = std::move(gguf);
  Status s = m.BindTensors();
  if (!s.ok()) return s.WithContext(m.gguf_.path());
  return m;
}

Status Model::BindTensors() {
  for (const GgufTensorInfo& t : gguf_.tensors()) {
    if (!t.known_type) {
      return Status::Errorf("tensor '{}' has unsupported type {} (supported: {})", t.name,
                            TypeName(t.raw_type), SupportedTypeList());
    }
  }
  const GgufTensorInfo* embd = gguf_.FindTensor("token_embd.weight");
  if (embd == nullptr) {
    return Status::Error(gguf_.tensors().empty()
                             ? "the file has no tensors (a vocabulary-only GGUF?)"
                             : "missing tensor 'token_embd.weight'");
  }
  if (embd->dims.size() != 2) return Status::Error("token_embd.weight is not 2-D");
  DM_ASSIGN_OR_RETURN(config_, ModelConfig::FromGguf(gguf_, embd->dims[1]));
  const ModelConfig& c = config_;
  Binder b(gguf_);
  DM_ASSIGN_OR_RETURN(token_embd_, b.Matrix("token_embd.weight", c.n_embd, c.n_vocab));
  DM_ASSIGN_OR_RETURN(output_norm_, b.Vector("output_norm.weight", c.n_embd));
  tied_output_ = !b.Has("output.weight");
  if (tied_output_) {
    output_ = token_embd_;
  } else {
    DM_ASSIGN_OR_RETURN(output_, b.Matrix("output.weight", c.n_embd, c.n_vocab));
  }
  const std::pair<const char*, std::vector<float>*> factors[] = {
      {"rope_freqs.weight", &rope_freqs_},
      {"rope_factors_long.weight", &rope_long_},
      {"rope_factors_short.weight", &rope_short_}};
  for (const auto& [name, out] : factors) {
    if (!b.Has(name)) continue;
    DM_ASSIGN_OR_RETURN(*out, b.Vector(name, c.rope_dim / 2));
  }
  layers_.clear();
  for (int64_t i = 0; i < c.n_layer; ++i) {
    DM_ASSIGN_OR_RETURN(LayerWeights l, BindLayer(b, c, i));
    layers_.push_back(std::move(l));
  }
  weight_bytes_ = 0;
  for (const GgufTensorInfo& t : gguf_.tensors()) weight_bytes_ += t.n_bytes;
  return Status::Ok();
}

}  // namespace dormouse
