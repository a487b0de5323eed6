// Sampling is on the decode loop's path, so the filters avoid full sorts: top-k keeps a
// k-element heap in one pass over the vocabulary, and min-p (a logit threshold) runs
// before any sort. Top-p and min-p both keep a head of the best-first order computed
// over the same (post-top-k, temperature 1) distribution, so applying them in
// llama.cpp's order equals keeping the shorter of the two heads.
//
// Reproducibility: candidates are ordered by (logit descending, id ascending), a strict
// total order, so the kept set and its order do not depend on the standard library;
// the uniform draw is built from mt19937_64's bits by us rather than by
// std::uniform_real_distribution, whose algorithm is implementation-defined.
#include "engine/sampler.h"

#include <algorithm>
#include <cassert>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

namespace dormouse {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// NaN (a broken model) must not reach comparisons that need a strict weak order, and
// +inf would make exp(l - max) NaN; neither changes which finite token is best.
inline float Sanitize(float v) { return std::isnan(v) ? kNegInf : std::min(v, FLT_MAX); }

// The candidate order: higher logit first, then lower id (a strict total order). A
// lambda rather than a function so the std algorithms inline it.
constexpr auto Better = [](const auto& a, const auto& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
};

// Max of p[0, kBlock) ignoring NaN: kLanes independent lanes and a tree reduction,
// without branches, so the compiler emits vector max instructions.
constexpr int32_t kBlock = 64;
constexpr int32_t kLanes = 8;
inline float BlockMax(const float* p) {
  float lanes[kLanes];
  for (float& m : lanes) m = kNegInf;
  for (int32_t i = 0; i < kBlock; i += kLanes) {
    for (int32_t j = 0; j < kLanes; ++j) lanes[j] = p[i + j] > lanes[j] ? p[i + j] : lanes[j];
  }
  for (int32_t width = kLanes / 2; width >= 1; width /= 2) {
    for (int32_t j = 0; j < width; ++j) {
      lanes[j] = lanes[j + width] > lanes[j] ? lanes[j + width] : lanes[j];
    }
  }
  return lanes[0];
}

uint64_t RandomSeed() {
  try {
    std::random_device device;
    return (uint64_t{device()} << 32) | device();
  } catch (...) {  // no entropy source: the clock is random enough for sampling
    return static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
}

}  // namespace

Status Sampler::Validate(const SamplerParams& p) {
  if (!std::isfinite(p.temperature)) {
    return Status::Errorf("temperature must be a finite number (<= 0 means greedy), got {}",
                          p.temperature);
  }
  if (p.top_k < 0) return Status::Errorf("top_k must be >= 0 (0 turns it off), got {}", p.top_k);
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
    return Status::Errorf("top_p must be in (0, 1] (1 turns it off), got {}", p.top_p);
  }
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) {
    return Status::Errorf("min_p must be in [0, 1] (0 turns it off), got {}", p.min_p);
  }
  if (!(p.repeat_penalty > 0.0f && std::isfinite(p.repeat_penalty))) {
    return Status::Errorf(
        "repeat_penalty must be a positive finite number (1 turns it off), got {}",
        p.repeat_penalty);
  }
  if (p.repeat_last_n < 0 || p.repeat_last_n > kMaxRepeatLastN) {
    return Status::Errorf("repeat_last_n must be in [0, {}] (0 turns the penalty off), got {}",
                          kMaxRepeatLastN, p.repeat_last_n);
  }
  return Status::Ok();
}

Sampler::Sampler(const SamplerParams& params, int32_t n_vocab)
    : params_(params),
      n_vocab_(n_vocab),
      seed_(params.seed == SamplerParams::kRandomSeed ? RandomSeed() : params.seed),
      rng_(seed_) {
  assert(Validate(params).ok() && "validate sampler params at the request boundary");
  assert(n_vocab > 0);
  // Keep release builds memory-safe even with unvalidated params.
  params_.repeat_last_n = std::clamp(params_.repeat_last_n, 0, kMaxRepeatLastN);
  params_.top_k = std::max(params_.top_k, 0);
  candidates_.resize(n_vocab_);
  weights_.resize(n_vocab_);
  if (params_.repeat_penalty != 1.0f && params_.repeat_last_n > 0) {
    penalized_.resize(n_vocab_);
    penalty_done_.assign(n_vocab_, 0);
    history_.resize(params_.repeat_last_n);
  }
}

void Sampler::Accept(int32_t token) {
  assert(token >= 0 && token < n_vocab_);
  if (history_.empty() || token < 0 || token >= n_vocab_) return;
  history_[history_next_] = token;
  history_next_ = (history_next_ + 1) % static_cast<int32_t>(history_.size());
  history_size_ = std::min(history_size_ + 1, static_cast<int32_t>(history_.size()));
}

void Sampler::Reset() {
  history_size_ = 0;
  history_next_ = 0;
  rng_.seed(seed_);
}

std::string Sampler::SaveState() const {
  std::ostringstream out;
  out << "sampler1 " << seed_ << ' ' << history_.size() << ' ' << history_size_ << ' '
      << history_next_;
  for (int32_t t : history_) out << ' ' << t;
  out << ' ' << rng_;
  return out.str();
}

Status Sampler::LoadState(const std::string& state) {
  std::istringstream in(state);
  std::string tag;
  uint64_t seed = 0;
  size_t capacity = 0;
  int32_t size = 0, next = 0;
  in >> tag >> seed >> capacity >> size >> next;
  if (!in || tag != "sampler1") return Status::Error("sampler state: unknown format");
  if (capacity != history_.size() || size < 0 || size > static_cast<int32_t>(capacity) ||
      next < 0 || (capacity > 0 && next >= static_cast<int32_t>(capacity))) {
    return Status::Error("sampler state: made with other repetition-penalty settings");
  }
  std::vector<int32_t> history(capacity);
  for (int32_t& t : history) {
    in >> t;
    if (!in || t < 0 || t >= n_vocab_) return Status::Error("sampler state: bad history token");
  }
  std::mt19937_64 rng;
  in >> rng;
  if (!in) return Status::Error("sampler state: bad generator state");
  seed_ = seed;
  history_ = std::move(history);
  history_size_ = size;
  history_next_ = next;
  rng_ = rng;
  return Status::Ok();
}

int32_t Sampler::Sample(const float* logits) {
  const float* l = ApplyRepeatPenalty(logits);
  if (!(params_.temperature > 0.0f)) return Argmax(l);

  int32_t n;
  double sum_exp = 0.0;  // over every token top-k kept: top-p's normalizer
  if (params_.top_k > 0 && params_.top_k < n_vocab_) {
    n = SelectTopK(l);
    const float max_logit = candidates_[0].logit;
    if (max_logit == kNegInf) return Argmax(l);  // no token has a finite logit
    if (params_.top_p < 1.0f) {
      for (int32_t i = 0; i < n; ++i) sum_exp += std::exp(double{candidates_[i].logit} - max_logit);
    }
    if (params_.min_p > 0.0f) {
      const float threshold = max_logit + std::log(params_.min_p);
      int32_t kept = 1;
      while (kept < n && candidates_[kept].logit >= threshold) ++kept;
      n = kept;
    }
  } else {
    n = SelectAllAboveMinP(l, &sum_exp);
    if (n == 0) return Argmax(l);
  }
  n = ApplyTopP(n, sum_exp);
  return candidates_[Draw(n)].id;
}

const float* Sampler::ApplyRepeatPenalty(const float* logits) {
  if (history_size_ == 0) return logits;
  std::memcpy(penalized_.data(), logits, sizeof(float) * n_vocab_);
  const float penalty = params_.repeat_penalty;
  for (int32_t i = 0; i < history_size_; ++i) {
    const int32_t t = history_[i];
    if (penalty_done_[t]) continue;  // a token repeated in the window is penalized once
    penalty_done_[t] = 1;
    float& v = penalized_[t];
    v = v > 0.0f ? v / penalty : v * penalty;
  }
  for (int32_t i = 0; i < history_size_; ++i) penalty_done_[history_[i]] = 0;
  return penalized_.data();
}

int32_t Sampler::Argmax(const float* logits) const {
  // Two passes keep the greedy path cheap: a max with independent lanes (no loop-carried
  // branch), then the first index holding it, so ties go to the lowest id.
  constexpr int kLanes = 8;
  float lane_max[kLanes];
  for (float& m : lane_max) m = kNegInf;
  int32_t t = 0;
  for (; t + kLanes <= n_vocab_; t += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      // False for NaN, so NaN never becomes the max.
      lane_max[j] = logits[t + j] > lane_max[j] ? logits[t + j] : lane_max[j];
    }
  }
  float max_logit = kNegInf;
  for (; t < n_vocab_; ++t) max_logit = logits[t] > max_logit ? logits[t] : max_logit;
  for (float m : lane_max) max_logit = std::max(max_logit, m);
  if (max_logit == kNegInf) return 0;  // no finite logit
  t = 0;
  while (logits[t] != max_logit) ++t;
  return t;
}

// Leaves the top_k best candidates in candidates_[0, top_k), best first.
int32_t Sampler::SelectTopK(const float* logits) {
  const int32_t k = params_.top_k;
  Candidate* heap = candidates_.data();
  for (int32_t t = 0; t < k; ++t) heap[t] = {Sanitize(logits[t]), t};
  // With Better as "less", the heap's front is the worst of the k kept so far.
  std::make_heap(heap, heap + k, Better);
  auto offer = [&](int32_t t) {
    if (!(logits[t] >= heap[0].logit)) return;  // the common case, and NaN
    const Candidate c{Sanitize(logits[t]), t};
    if (!Better(c, heap[0])) return;
    std::pop_heap(heap, heap + k, Better);
    heap[k - 1] = c;
    std::push_heap(heap, heap + k, Better);
  };
  int32_t t = k;
  // Once the heap holds good tokens most blocks hold none better: skip them whole.
  for (; t + kBlock <= n_vocab_; t += kBlock) {
    if (!(BlockMax(logits + t) >= heap[0].logit)) continue;
    for (int32_t j = 0; j < kBlock; ++j) offer(t + j);
  }
  for (; t < n_vocab_; ++t) offer(t);
  std::sort_heap(heap, heap + k, Better);
  return k;
}

// Without top-k: keeps the tokens min-p keeps, sorted best first only if top-p needs the
// order. Sets *sum_exp over the whole vocabulary (top-p's normalizer). Returns 0 when no
// token has a finite logit.
int32_t Sampler::SelectAllAboveMinP(const float* logits, double* sum_exp) {
  float max_logit = kNegInf;
  for (int32_t t = 0; t < n_vocab_; ++t) max_logit = std::max(max_logit, Sanitize(logits[t]));
  if (max_logit == kNegInf) return 0;
  const float threshold = params_.min_p > 0.0f ? max_logit + std::log(params_.min_p) : kNegInf;
  const bool need_order = params_.top_p < 1.0f;
  double sum = 0.0;
  int32_t n = 0;
  for (int32_t t = 0; t < n_vocab_; ++t) {
    const float v = Sanitize(logits[t]);
    if (need_order) sum += std::exp(double{v} - max_logit);
    if (v >= threshold) candidates_[n++] = {v, t};
  }
  *sum_exp = sum;
  // Draw() needs the best candidate first (its logit is the softmax shift).
  if (need_order) {
    std::sort(candidates_.begin(), candidates_.begin() + n, Better);
  } else {
    auto best = std::min_element(candidates_.begin(), candidates_.begin() + n, Better);
    std::iter_swap(candidates_.begin(), best);
  }
  return n;
}

// Keeps the smallest head of candidates_[0, n) whose probability reaches top_p.
int32_t Sampler::ApplyTopP(int32_t n, double sum_exp) const {
  if (params_.top_p >= 1.0f) return n;
  const double max_logit = candidates_[0].logit;
  const double target = double{params_.top_p} * sum_exp;
  double cumulative = 0.0;
  for (int32_t i = 0; i < n; ++i) {
    cumulative += std::exp(double{candidates_[i].logit} - max_logit);
    if (cumulative >= target) return i + 1;
  }
  return n;
}

// Softmax of candidates_[0, n) at the temperature, then one draw; returns the index.
int32_t Sampler::Draw(int32_t n) {
  const double max_logit = candidates_[0].logit;
  const double inv_temperature = 1.0 / double{params_.temperature};
  double sum = 0.0;
  for (int32_t i = 0; i < n; ++i) {
    weights_[i] = std::exp((double{candidates_[i].logit} - max_logit) * inv_temperature);
    sum += weights_[i];
  }
  const double target = NextUniform() * sum;
  double cumulative = 0.0;
  int32_t last_positive = 0;
  for (int32_t i = 0; i < n; ++i) {
    if (weights_[i] <= 0.0) continue;
    cumulative += weights_[i];
    last_positive = i;
    if (target < cumulative) return i;
  }
  return last_positive;  // target rounded up to sum
}

// Uniform in [0, 1) from the top 53 bits: the same double on every platform.
double Sampler::NextUniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

}  // namespace dormouse
