// Turns a logits vector into the next token: repetition penalty, top-k, top-p, min-p,
// temperature, then a draw, in llama.cpp's order and with its CLI defaults. The draw uses
// our own fully specified PRNG path, so a seed gives the same tokens on every machine.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "base/status.h"

namespace dormouse {

struct SamplerParams {
  // Means "pick a seed at random"; Sampler::seed() then reports the one picked.
  static constexpr uint64_t kRandomSeed = ~uint64_t{0};

  float temperature = 0.8f;     // <= 0: greedy (argmax after the repetition penalty)
  int32_t top_k = 40;           // keep the k most likely tokens; 0 = off
  float top_p = 0.95f;          // keep the smallest head with probability >= top_p; 1 = off
  float min_p = 0.05f;          // drop tokens with p < min_p * p(most likely); 0 = off
  float repeat_penalty = 1.0f;  // 1 = off; > 1 discourages repeats, < 1 encourages them
  int32_t repeat_last_n = 64;   // how many accepted tokens the penalty looks at; 0 = off
  uint64_t seed = kRandomSeed;
};

class Sampler {
 public:
  // Largest repeat_last_n Validate accepts; the history buffer is allocated up front.
  static constexpr int32_t kMaxRepeatLastN = 1 << 20;

  // Checks values a request can carry; the message names the parameter and its range.
  static Status Validate(const SamplerParams& params);

  // `params` must have passed Validate (asserted); n_vocab > 0. Allocates every buffer
  // Sample() needs, so sampling itself never allocates.
  Sampler(const SamplerParams& params, int32_t n_vocab);

  // Picks the next token from logits[0, n_vocab). NaN logits count as -inf. Does not
  // record the token: call Accept() for every token that enters the context.
  int32_t Sample(const float* logits);

  // Records a token (prompt or generated) for the repetition penalty.
  void Accept(int32_t token);

  // Forgets the history and restarts the random sequence from seed().
  void Reset();

  // The random generator's position and the penalty history as text, so a conversation
  // restored from a snapshot draws exactly the tokens it would have drawn without the
  // eject. LoadState accepts only what SaveState of a sampler with the same params wrote.
  std::string SaveState() const;
  Status LoadState(const std::string& state);

  const SamplerParams& params() const { return params_; }
  // The seed in use: params.seed, or the random one picked for kRandomSeed.
  uint64_t seed() const { return seed_; }

 private:
  struct Candidate {
    float logit;
    int32_t id;
  };

  const float* ApplyRepeatPenalty(const float* logits);
  int32_t Argmax(const float* logits) const;
  int32_t SelectTopK(const float* logits);
  int32_t SelectAllAboveMinP(const float* logits, double* sum_exp);
  int32_t ApplyTopP(int32_t n, double sum_exp) const;
  int32_t Draw(int32_t n);
  double NextUniform();

  SamplerParams params_;
  int32_t n_vocab_;
  uint64_t seed_;
  std::mt19937_64 rng_;

  std::vector<Candidate> candidates_;  // (n_vocab): the surviving tokens, best first
  std::vector<float> penalized_;       // (n_vocab): logits after the repetition penalty
  std::vector<uint8_t> penalty_done_;  // (n_vocab): penalize each distinct token once
  std::vector<double> weights_;        // (n_vocab): unnormalized probabilities to draw from

  std::vector<int32_t> history_;  // ring of the last repeat_last_n accepted tokens
  int32_t history_size_ = 0;
  int32_t history_next_ = 0;
};

}  // namespace dormouse
