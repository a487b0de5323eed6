// `dormouse bench [MODEL] [-p 512] [-n 128] [-t N] [-r 5] [-d 0] [--target T] [--bandwidth]
// [--json]`: prefill and decode throughput like llama-bench's pp/tg tests (fresh context each
// repetition, one warm-up run first, token ids drawn from the vocabulary). `--bandwidth`
// measures the memory read bandwidth, alone or before a model's runs (then with the decode
// roofline: tokens/s <= bandwidth / bytes of weights read per token, and decode against
// read-only passes over the weights interleaved with it token by token).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/commands.h"
#include "cli/common.h"
#include "engine/kernel_target.h"
#include "engine/kernels.h"

namespace dormouse::cli {
namespace {

struct BenchOptions {
  std::string model;
  int n_prompt = 512;
  int n_gen = 128;
  int threads = 0;
  int reps = 5;
  int depth = 0;       // tokens already in the context when timing starts (llama-bench -d)
  std::string target;  // kernel target ceiling; "" keeps DORMOUSE_TARGET or the CPU's best
  bool bandwidth = false;
  bool json = false;
};

struct Stats {
  double mean = 0, stddev = 0, best = 0, median = 0;
};

Stats Summarize(const std::vector<double>& v) {
  Stats s;
  if (v.empty()) return s;
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  s.best = *std::max_element(v.begin(), v.end());
  std::vector<double> sorted = v;
  std::sort(sorted.begin(), sorted.end());
  const size_t m = sorted.size() / 2;
  s.median = sorted.size() % 2 ? sorted[m] : (sorted[m - 1] + sorted[m]) / 2;
  if (v.size() > 1) {
    double acc = 0;
    for (double x : v) acc += (x - s.mean) * (x - s.mean);
    s.stddev = std::sqrt(acc / static_cast<double>(v.size() - 1));
  }
  return s;
}

// Memory read bandwidth in bytes/s, best of `reps`: every thread streams its share of a
// buffer far larger than the caches with the engine's StreamRead (one load stream, no
// writes, the decode kernels' loads and prefetch). A loop without software prefetch read
// 30-33 GB/s on this machine kind where decode itself streamed 38 and this loop reads ~50.
double MeasureReadBandwidth(ThreadPool& pool, int reps) {
  constexpr size_t kBytes = size_t{1} << 30;
  std::vector<uint64_t> buf(kBytes / sizeof(uint64_t), 1);  // written: backed by real pages
  std::vector<uint64_t> sink(static_cast<size_t>(pool.size()));
  double best = 0;
  for (int r = 0; r <= reps + 1; ++r) {  // two warm-ups: the first pass still writes back
    auto t0 = std::chrono::steady_clock::now();
    pool.Run([&](int i, int n) {
      auto [b, e] = ThreadPool::Share(static_cast<int64_t>(buf.size()), i, n, 1024);
      sink[i] = StreamRead(buf.data() + b, (e - b) * 8);
    });
    std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
    if (r > 1) best = std::max(best, static_cast<double>(kBytes) / dt.count());
  }
  // Every word is 1: another sum means the loop did not read what it was given.
  uint64_t total = 0;
  for (uint64_t v : sink) total += v;
  return total == buf.size() ? best : 0;
}

// One read of the model's own mapped weights as decode reads them, but only reading (every
// thread streams its share of each matrix with StreamRead): bytes/s. It reads the file's
// pages, as decode does, where the bandwidth loop reads a buffer of its own, so this is what
// decode could reach if it did nothing but read.
double ReadWeightsOnce(const std::vector<const Weight*>& mats, ThreadPool& pool) {
  uint64_t bytes = 0;
  for (const Weight* w : mats) bytes += static_cast<uint64_t>(w->rows) * w->row_bytes;
  std::vector<uint64_t> sink(static_cast<size_t>(pool.size()));
  auto t0 = std::chrono::steady_clock::now();
  pool.Run([&](int i, int n) {
    for (const Weight* w : mats) {
      const int64_t size = w->rows * static_cast<int64_t>(w->row_bytes);
      auto [b, e] = ThreadPool::Share(size / 64, i, n);  // whole lines; a tail < 64 B skipped
      sink[i] += StreamRead(static_cast<const uint8_t*>(w->data) + 64 * b, 64 * (e - b));
    }
  });
  std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
  return static_cast<double>(bytes) / dt.count();
}

// ReadWeightsOnce's bytes/s, best of `reps` after a warm-up read.
double MeasureWeightsBandwidth(const Model& m, ThreadPool& pool, int reps) {
  const std::vector<const Weight*> mats = m.MatMulWeights();
  double best = 0;
  for (int r = 0; r <= reps; ++r) {
    const double v = ReadWeightsOnce(mats, pool);
    if (r > 0) best = std::max(best, v);
  }
  return best;
}

// Bytes of weights one decoded token reads: every matrix once, and of the token embedding
// only one row unless it doubles as the output matrix.
uint64_t DecodeBytesPerToken(const Model& m) {
  const Weight& e = m.token_embd();
  const uint64_t embd = static_cast<uint64_t>(e.rows) * e.row_bytes;
  return m.weight_bytes() - (m.tied_output() ? 0 : embd - e.row_bytes);
}

// Tokens/s of one prefill of `tokens` after the first `depth` positions.
StatusOr<double> TimePrefill(InferenceContext& ctx, const std::vector<int32_t>& tokens,
                             int64_t depth) {
  ctx.Truncate(depth);
  auto t0 = std::chrono::steady_clock::now();
  DM_RETURN_IF_ERROR(ctx.Eval(tokens));
  std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
  return static_cast<double>(tokens.size()) / dt.count();
}

struct Timings {
  Stats pp, tg;
  // With a probe: decode against read-only passes over the weights interleaved with it
  // token by token, so that both meet the same moments of a shared machine, whose
  // bandwidth drifts by 30% within minutes: the read time over the decode time of each
  // repetition (best and median), and the decode tokens/s of those repetitions.
  Stats paired, tg_paired;
};

// Seconds of decoding `tokens` one at a time after the first `depth` positions, calling
// `between` (untimed) after each token.
StatusOr<double> DecodeSeconds(InferenceContext& ctx, const std::vector<int32_t>& tokens,
                               int64_t depth, const std::function<void()>& between) {
  ctx.Truncate(depth);
  std::chrono::duration<double> total{0};
  for (int32_t t : tokens) {
    int32_t one[] = {t};
    auto t0 = std::chrono::steady_clock::now();
    DM_RETURN_IF_ERROR(ctx.Eval(one));
    total += std::chrono::steady_clock::now() - t0;
    if (between) between();
  }
  return total.count();
}

// pp and tg repetitions on `e`, after one warm-up run. `probe`, when set, returns the
// seconds a read-only pass over one token's weights takes (as decode reads them); the
// paired repetitions follow the others.
StatusOr<Timings> TimeModel(Engine& e, const BenchOptions& o,
                            const std::function<double()>& probe = nullptr) {
  std::mt19937 rng(42);
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(e.ctx->n_vocab() - 1));
  auto random_tokens = [&](int n) {
    std::vector<int32_t> v(static_cast<size_t>(n));
    for (auto& t : v) t = pick(rng);
    return v;
  };
  std::vector<int32_t> prompt = random_tokens(o.n_prompt), gen = random_tokens(o.n_gen);
  if (o.depth > 0) {  // the context every repetition starts from; not timed
    DM_RETURN_IF_ERROR(e.ctx->Eval(random_tokens(o.depth)));
  }
  std::vector<double> pp, tg, paired, tg_paired;
  for (int r = 0; r <= o.reps; ++r) {  // r == 0 is the warm-up
    if (o.n_prompt > 0) {
      DM_ASSIGN_OR_RETURN(double v, TimePrefill(*e.ctx, prompt, o.depth));
      if (r > 0) pp.push_back(v);
    }
    if (o.n_gen > 0) {
      DM_ASSIGN_OR_RETURN(double s, DecodeSeconds(*e.ctx, gen, o.depth, nullptr));
      if (r > 0) tg.push_back(static_cast<double>(gen.size()) / s);
    }
  }
  for (int r = 0; probe && o.n_gen > 0 && r < o.reps; ++r) {
    double read = 0;
    DM_ASSIGN_OR_RETURN(double s, DecodeSeconds(*e.ctx, gen, o.depth, [&] { read += probe(); }));
    paired.push_back(read / s);
    tg_paired.push_back(static_cast<double>(gen.size()) / s);
  }
  Timings t;
  t.pp = Summarize(pp);
  t.tg = Summarize(tg);
  t.paired = Summarize(paired);
  t.tg_paired = Summarize(tg_paired);
  return t;
}

// What one run measured; bandwidth and roofline are 0 when not measured.
struct Report {
  std::string model;
  int threads = 0;
  Timings t;
  double bandwidth = 0;                 // bytes/s
  double weights_bandwidth = 0;         // bytes/s, reading the model's weights only
  uint64_t bytes_per_token = 0;         // decode
  ThreadPool::Counters pool;            // over the whole bench
  std::optional<uint64_t> cache_bytes;  // the last-level cache, when sysfs tells
  // Decode's weights fit in the last-level cache: the DRAM roofline does not bound it.
  bool WeightsFitInCache() const {
    return bytes_per_token > 0 && cache_bytes && bytes_per_token <= *cache_bytes;
  }
  double Roofline() const { return bytes_per_token ? bandwidth / bytes_per_token : 0; }
  double ReadOnlyDecode() const {
    return bytes_per_token ? weights_bandwidth / bytes_per_token : 0;
  }
};

void PrintJson(const BenchOptions& o, const Report& r) {
  nlohmann::json j = {{"threads", r.threads}, {"kernels", KernelTargetName()}, {"reps", o.reps}};
  if (r.bandwidth > 0) j["bandwidth_gbs"] = r.bandwidth / 1e9;
  if (!r.model.empty()) {
    j.update({{"model", r.model},
              {"n_prompt", o.n_prompt},
              {"n_gen", o.n_gen},
              {"depth", o.depth},
              {"pp_tps", r.t.pp.mean},
              {"pp_tps_stddev", r.t.pp.stddev},
              {"pp_tps_best", r.t.pp.best},
              {"tg_tps", r.t.tg.mean},
              {"tg_tps_stddev", r.t.tg.stddev},
              {"tg_tps_best", r.t.tg.best},
              {"decode_bytes_per_token", r.bytes_per_token}});
  }
  if (r.Roofline() > 0) j["roofline_tps"] = r.Roofline();
  if (r.cache_bytes) j["last_level_cache_bytes"] = *r.cache_bytes;
  if (r.bytes_per_token > 0 && r.cache_bytes) j["weights_fit_in_cache"] = r.WeightsFitInCache();
  if (r.weights_bandwidth > 0) {
    j["weights_bandwidth_gbs"] = r.weights_bandwidth / 1e9;
    j["read_only_decode_tps"] = r.ReadOnlyDecode();
  }
  if (r.t.paired.best > 0) {
    j["tg_of_read_only_paired_best"] = r.t.paired.best;
    j["tg_of_read_only_paired_median"] = r.t.paired.median;
    j["tg_paired_tps"] = r.t.tg_paired.mean;
  }
  if (r.pool.runs > 0) {
    j["pool"] = {{"runs", r.pool.runs},
                 {"wakeups", r.pool.wakeups},
                 {"shares_taken_over", r.pool.shares_taken_over}};
  }
  std::cout << j.dump(2) << "\n";
}

void PrintText(const BenchOptions& o, const Report& r) {
  std::cout << fmt::format("{}threads: {}  kernels: {}  reps: {}\n",
                           r.model.empty() ? "" : "model: " + r.model + "  ",
                           DescribeThreads(o.threads), KernelTargetName(), o.reps);
  if (r.bandwidth > 0) {
    std::cout << fmt::format(
        "read bandwidth {:8.1f} GB/s (streaming read of a 1 GiB buffer, best)\n",
        r.bandwidth / 1e9);
  }
  if (r.weights_bandwidth > 0) {
    std::cout << fmt::format(
        "weights read {:8.1f} GB/s (the model's mapped weights, read only, as decode reads them)\n",
        r.weights_bandwidth / 1e9);
  }
  if (r.model.empty()) return;
  const Stats &p = r.t.pp, &g = r.t.tg;
  if (o.n_prompt > 0) {
    std::cout << fmt::format("pp{:<5} {:10.2f} ± {:.2f} tokens/s (best {:.2f})\n", o.n_prompt,
                             p.mean, p.stddev, p.best);
  }
  if (o.n_gen > 0) {
    std::cout << fmt::format("tg{:<5} {:10.2f} ± {:.2f} tokens/s (best {:.2f}){}\n", o.n_gen,
                             g.mean, g.stddev, g.best,
                             o.depth ? fmt::format(" @ depth {}", o.depth) : "");
  }
  if (o.n_gen > 0 && r.Roofline() > 0) {
    std::cout << fmt::format(
        "roofline {:8.2f} tokens/s ({:.1f} MB of weights per token); best tg at {:.2f} of it\n",
        r.Roofline(), static_cast<double>(r.bytes_per_token) / 1e6, g.best / r.Roofline());
  }
  if (o.n_gen > 0 && r.ReadOnlyDecode() > 0) {
    std::cout << fmt::format(
        "read-only {:7.2f} tokens/s (weights read, nothing computed); best tg at "
        "{:.2f} of it\n",
        r.ReadOnlyDecode(), g.best / r.ReadOnlyDecode());
  }
  if (r.t.paired.best > 0) {
    std::cout << fmt::format(
        "paired   tg at {:.2f} of read-only passes interleaved with it token by token "
        "(median of {}; best {:.2f}; tg {:.2f} tokens/s between them)\n",
        r.t.paired.median, o.reps, r.t.paired.best, r.t.tg_paired.mean);
  }
  if (o.n_gen > 0 && r.Roofline() > 0 && r.WeightsFitInCache()) {
    std::cout << fmt::format(
        "cache    the {:.1f} MB of weights per token fit in the {} MiB last-level cache: "
        "decode may beat the roofline, and read-only and paired measure the cache, not memory\n",
        static_cast<double>(r.bytes_per_token) / 1e6, *r.cache_bytes >> 20);
  }
  if (r.pool.runs > 0) {
    // Shares a worker missed (it lost its core) and wake-ups: what a busy machine costs.
    const double shares = static_cast<double>(r.pool.runs) * (r.threads - 1);
    std::cout << fmt::format(
        "pool     {} parallel runs; the caller ran {:.1f}% of the workers' shares; {} "
        "wake-ups\n",
        r.pool.runs, 100.0 * static_cast<double>(r.pool.shares_taken_over) / shares,
        r.pool.wakeups);
  }
}

int Bench(const BenchOptions& o) {
  if (o.model.empty() && !o.bandwidth)
    return Fail(Status::Error("bench needs a model file or --bandwidth"));
  if (!o.target.empty()) {
    if (Status s = RestrictKernelTarget(o.target); !s.ok()) return Fail(s);
  }
  Report r;
  if (o.model.empty()) {
    ThreadPool pool(ResolveThreadCount(o.threads));
    r.threads = pool.size();
    r.bandwidth = MeasureReadBandwidth(pool, o.reps);
  } else {
    ContextParams cp;
    cp.n_ctx = o.depth + std::max(o.n_prompt, o.n_gen) + 1;
    StatusOr<Engine> loaded = LoadEngine(o.model, o.threads, cp);
    if (!loaded.ok()) return Fail(loaded.status());
    r.model = o.model.substr(o.model.find_last_of('/') + 1);
    r.threads = loaded->pool->size();
    if (o.bandwidth) {
      r.bandwidth = MeasureReadBandwidth(*loaded->pool, o.reps);
      r.weights_bandwidth = MeasureWeightsBandwidth(*loaded->model, *loaded->pool, o.reps);
    }
    r.bytes_per_token = DecodeBytesPerToken(*loaded->model);
    r.cache_bytes = LastLevelCacheBytes();
    std::function<double()> probe;
    if (o.bandwidth) {
      // The seconds a read of one token's weights takes.
      probe = [&, mats = loaded->model->MatMulWeights()] {
        return static_cast<double>(r.bytes_per_token) / ReadWeightsOnce(mats, *loaded->pool);
      };
    }
    StatusOr<Timings> t = TimeModel(*loaded, o, probe);
    if (!t.ok()) return Fail(t.status());
    r.t = *t;
    r.pool = loaded->pool->counters();
  }
  o.json ? PrintJson(o, r) : PrintText(o, r);
  return 0;
}

}  // namespace

void AddBenchCommand(CLI::App& app, Action* action) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure prefill and decode tokens/s");
  cmd->add_option("model", o->model, "GGUF model file");
  cmd->add_option("-p,--n-prompt", o->n_prompt, "Prompt tokens (pp test)")
      ->check(CLI::Range(0, 1 << 16));
  cmd->add_option("-n,--n-gen", o->n_gen, "Generated tokens (tg test)")
      ->check(CLI::Range(0, 1 << 16));
  cmd->add_option("-t,--threads", o->threads, "Threads (default: one per physical core available)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("-r,--repetitions", o->reps, "Repetitions")->check(CLI::Range(1, 1000));
  cmd->add_option("-d,--depth", o->depth, "Tokens already in the context (llama-bench -d)")
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--target", o->target,
                  fmt::format("Kernel target or lower: {} (default: $DORMOUSE_TARGET, else the "
                              "CPU's best)",
                              kKernelTargetNames));
  cmd->add_flag("--bandwidth", o->bandwidth,
                "Measure the memory read bandwidth (alone, or before the model's runs: then the "
                "decode roofline is printed too)");
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([o, action] { *action = [o] { return Bench(*o); }; });
}

}  // namespace dormouse::cli
