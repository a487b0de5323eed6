// Microbenchmarks of MatMulRows (Google Benchmark; not part of `make test`).
//   Decode: 1 token, weights streamed from DRAM (a rotating set of copies larger than the
//           L3), split over threads in multiples of 16 rows as the engine does: GB/s of weights.
//   Prefill: 512 tokens: GFLOP/s (2 * rows * cols * tokens per call).
// Run: [DORMOUSE_TARGET=avx2] kernels_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "base/thread_pool.h"
#include "engine/kernel_target.h"
#include "engine/kernels.h"
#include "engine/quants.h"

namespace dormouse {
namespace {

constexpr size_t kStreamBytes = size_t{192} << 20;  // beyond any L3 the copies may share

struct Setup {
  GgmlType type;
  int64_t rows, cols, tokens;
  size_t matrix_bytes = 0;
  int copies = 1;
  std::vector<uint8_t> weights;  // `copies` identical matrices back to back
  std::vector<uint8_t> act;
  std::vector<float> out;

  Setup(GgmlType t, int64_t r, int64_t c, int64_t tok, bool stream)
      : type(t), rows(r), cols(c), tokens(tok) {
    matrix_bytes = RowBytes(t, c) * static_cast<size_t>(r);
    copies = stream ? static_cast<int>(std::max<size_t>(1, kStreamBytes / matrix_bytes)) : 1;
    weights.resize(matrix_bytes * copies);
    std::mt19937 rng(1);
    std::normal_distribution<float> g(0.0f, 0.05f);
    std::vector<float> x(static_cast<size_t>(c));
    for (int64_t i = 0; i < r; ++i) {
      for (float& v : x) v = g(rng);
      QuantizeRow(t, x.data(), weights.data() + i * RowBytes(t, c), c);
    }
    for (int k = 1; k < copies; ++k) {
      std::memcpy(weights.data() + k * matrix_bytes, weights.data(), matrix_bytes);
    }
    const size_t arow = PreparedRowBytes(t, c);
    act.resize(arow * static_cast<size_t>(tok));
    for (int64_t i = 0; i < tok; ++i) {
      for (float& v : x) v = g(rng) * 20.0f;
      PrepareActivations(t, x.data(), c, act.data() + i * arow);
    }
    out.resize(static_cast<size_t>(r * tok));
  }

  void Run(ThreadPool& pool, int copy) {
    const uint8_t* w = weights.data() + static_cast<size_t>(copy) * matrix_bytes;
    pool.Run([&](int i, int nt) {
      auto [b, e] = ThreadPool::Share(rows, i, nt, 16);
      MatMulRows(type, w, cols, b, e, act.data(), tokens, out.data(), rows);
    });
  }
};

void BM_Decode(benchmark::State& state) {
  auto type = static_cast<GgmlType>(state.range(0));
  Setup s(type, state.range(1), state.range(2), 1, true);
  ThreadPool pool(static_cast<int>(state.range(3)));
  int copy = 0;
  for (auto _ : state) {
    s.Run(pool, copy);
    copy = copy + 1 == s.copies ? 0 : copy + 1;
  }
  state.counters["GB/s"] = benchmark::Counter(
      static_cast<double>(s.matrix_bytes) * static_cast<double>(state.iterations()) / 1e9,
      benchmark::Counter::kIsRate);
  state.SetLabel(std::string(TypeName(type)) + " " + KernelTargetName());
}

void BM_Prefill(benchmark::State& state) {
  auto type = static_cast<GgmlType>(state.range(0));
  Setup s(type, state.range(1), state.range(2), state.range(4), false);
  ThreadPool pool(static_cast<int>(state.range(3)));
  for (auto _ : state) s.Run(pool, 0);
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * static_cast<double>(s.rows * s.cols * s.tokens) *
                             static_cast<double>(state.iterations()) / 1e9,
                         benchmark::Counter::kIsRate);
  state.SetLabel(std::string(TypeName(type)) + " " + KernelTargetName());
}

void DecodeArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"type", "rows", "cols", "threads"});
  for (GgmlType t : {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_K, GgmlType::kQ6_K,
                     GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kIQ4_NL,
                     GgmlType::kIQ4_XS, GgmlType::kQ2_K, GgmlType::kQ3_K, GgmlType::kQ5_K}) {
    for (auto [r, c] :
         {std::pair{512, 512}, {1536, 512}, {512, 1536}, {1024, 1024}, {1536, 1536}}) {
      for (int threads : {1, 2}) b->Args({static_cast<int64_t>(t), r, c, threads});
    }
  }
  b->UseRealTime();
}

void PrefillArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"type", "rows", "cols", "threads", "tokens"});
  for (GgmlType t :
       {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_K, GgmlType::kQ6_K, GgmlType::kF32,
        GgmlType::kF16, GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kIQ4_NL,
        GgmlType::kIQ4_XS, GgmlType::kQ2_K, GgmlType::kQ3_K, GgmlType::kQ5_K}) {
    for (auto [r, c] : {std::pair{512, 512}, {1536, 512}, {512, 1536}}) {
      for (int threads : {1, 2}) b->Args({static_cast<int64_t>(t), r, c, threads, 512});
    }
  }
  for (int64_t tok : {2, 4, 8, 16, 32}) {
    b->Args({static_cast<int64_t>(GgmlType::kQ8_0), 1536, 512, 1, tok});
    b->Args({static_cast<int64_t>(GgmlType::kQ4_K), 1536, 512, 1, tok});
  }
  b->UseRealTime();
}

// Dispatch overhead of one empty Run (moved here from a unit test that only printed it).
void BM_ThreadPoolEmptyRun(benchmark::State& state) {
  ThreadPool pool(static_cast<int>(state.range(0)));
  for (auto _ : state) pool.Run([](int, int) {});
}

BENCHMARK(BM_ThreadPoolEmptyRun)->Arg(2)->Arg(4)->UseRealTime();
BENCHMARK(BM_Decode)->Apply(DecodeArgs);
BENCHMARK(BM_Prefill)->Apply(PrefillArgs);

}  // namespace
}  // namespace dormouse

// DORMOUSE_TARGET=avx2 measures the AVX2 kernels on an AVX-512 machine.
int main(int argc, char** argv) {
  if (dormouse::Status s = dormouse::RestrictKernelTargetFromEnvironment(); !s.ok()) {
    std::fprintf(stderr, "error: %s\n", s.message().c_str());
    return 1;
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
