// Flash-decoding: attention split along the keys gives attention (held to the scalar
// reference and to a double-precision softmax), and its bits depend on the position only,
// not on the thread count nor on prefill vs decode; on the CPU's best attention target and
// restricted to AVX2 (its own row and grouped kernels).
#include "engine/attention_split.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "engine/kernel_target.h"
#include "engine/quants.h"

namespace dormouse {
namespace {

// body() with the CPU's best kernels, then restricted to AVX2 when the CPU has it.
template <class F>
void ForEachAttentionTarget(F body) {
  for (const char* target : {"", "avx2"}) {
    if (!RestrictKernelTarget(target).ok()) continue;
    SCOPED_TRACE(std::string("target ") + (*target == 0 ? "best" : target));
    body();
  }
  ASSERT_TRUE(RestrictKernelTarget("").ok());
}

TEST(AttentionSplitTest, ChunksCoverTheKeysAndDependOnTheRangeOnly) {
  EXPECT_EQ(SplitKeys(0, 1).n, 1);
  EXPECT_EQ(SplitKeys(0, kKeyChunk).n, 1);
  EXPECT_EQ(SplitKeys(10, 10 + kKeyChunk).n, 1);
  EXPECT_EQ(SplitKeys(0, kKeyChunk + 1).n, 2);
  for (int64_t first : {int64_t{0}, int64_t{3}, int64_t{4000}}) {
    for (int64_t len : {1, 255, 256, 257, 1000, 4096, 8193, 131072, 1 << 22}) {
      const KeyChunks kc = SplitKeys(first, first + len);
      ASSERT_GE(kc.n, 1);
      ASSERT_LE(kc.n, kMaxKeyChunks);
      EXPECT_EQ(kc.Begin(0), first);
      EXPECT_EQ(kc.End(kc.n - 1), first + len);
      for (int c = 0; c < kc.n; ++c) {
        EXPECT_LT(kc.Begin(c), kc.End(c)) << "empty chunk " << c << " of " << len;
        if (c > 0) {
          EXPECT_EQ(kc.Begin(c), kc.End(c - 1));
        }
      }
    }
  }
}

// The merge gives the bits of its definition (attention_split.h), written plainly here: on
// every target (the vector FMA path and libm's fmaf), for head sizes with and without a
// tail of fewer than 8, with chunk maxima far apart (weights that underflow to 0).
TEST(AttentionSplitTest, MergeChunksIsItsDefinitionOnEveryTarget) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (const char* target : {"", "avx2", "sse4", "scalar"}) {
    if (!RestrictKernelTarget(target).ok()) continue;
    SCOPED_TRACE(std::string("target ") + target);
    for (int64_t hd : {1, 7, 8, 13, 64, 80, 128}) {
      for (int n = 2; n <= kMaxKeyChunks; ++n) {
        std::vector<std::vector<float>> parts(n, std::vector<float>(hd));
        std::vector<const float*> ptrs;
        std::vector<SoftmaxStats> stats;
        for (int c = 0; c < n; ++c) {
          for (float& x : parts[c]) x = nd(rng);
          ptrs.push_back(parts[c].data());
          stats.push_back({.max = c == 1 ? -200.0f : nd(rng), .sum = 1.0f + std::abs(nd(rng))});
        }
        float m = -INFINITY, total = 0.0f, w[kMaxKeyChunks];
        for (int c = 0; c < n; ++c) m = std::max(m, stats[c].max);
        for (int c = 0; c < n; ++c) total += w[c] = stats[c].sum * std::exp(stats[c].max - m);
        std::vector<float> want(hd), got(hd);
        for (int64_t d = 0; d < hd; ++d) {
          float acc = 0.0f;
          for (int c = 0; c < n; ++c) acc = std::fma(w[c], parts[c][d], acc);
          want[d] = acc * (1.0f / total);
        }
        MergeChunks(ptrs.data(), stats.data(), n, hd, got.data());
        ASSERT_EQ(std::memcmp(got.data(), want.data(), hd * sizeof(float)), 0)
            << "hd " << hd << " chunks " << n;
      }
    }
  }
  ASSERT_TRUE(RestrictKernelTarget("").ok());
}

// A layer's cache: n_keys rows of n_head_kv heads, and queries for `tokens` positions.
struct Layer {
  int64_t n_head, n_head_kv, hd, n_keys;
  std::vector<uint16_t> k16, v16;
  std::vector<float> k32, v32, q;  // q: (tokens, n_head * hd)

  Layer(int64_t nh, int64_t nkv, int64_t head_dim, int64_t keys, int64_t tokens, uint32_t seed)
      : n_head(nh), n_head_kv(nkv), hd(head_dim), n_keys(keys) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.5f);
    const size_t cells = static_cast<size_t>(keys * nkv * hd);
    for (size_t i = 0; i < cells; ++i) {
      k32.push_back(F16ToF32(F32ToF16(nd(rng))));
      v32.push_back(F16ToF32(F32ToF16(nd(rng))));
      k16.push_back(F32ToF16(k32.back()));
      v16.push_back(F32ToF16(v32.back()));
    }
    q.resize(static_cast<size_t>(tokens * nh * hd));
    for (float& x : q) x = nd(rng);
  }
  LayerAttention Attn(bool f16) const {
    const size_t elem = f16 ? 2 : 4;
    return {.k_base = f16 ? reinterpret_cast<const uint8_t*>(k16.data())
                          : reinterpret_cast<const uint8_t*>(k32.data()),
            .v_base = f16 ? reinterpret_cast<const uint8_t*>(v16.data())
                          : reinterpret_cast<const uint8_t*>(v32.data()),
            .row_bytes = static_cast<size_t>(n_head_kv * hd) * elem,
            .n_head = n_head,
            .n_head_kv = n_head_kv,
            .head_dim = hd,
            .scale = 1.0f / std::sqrt(static_cast<float>(hd)),
            .f16 = f16};
  }
  // Head h of query t (at position pos) attending to keys [0, pos], in double.
  std::vector<double> Exact(int64_t t, int64_t h, int64_t pos) const {
    const int64_t kvh = h / (n_head / n_head_kv), row = n_head_kv * hd;
    const float* qh = &q[static_cast<size_t>((t * n_head + h) * hd)];
    std::vector<double> s(pos + 1), out(hd, 0.0);
    double mx = -1e300, sum = 0;
    for (int64_t j = 0; j <= pos; ++j) {
      double d = 0;
      for (int64_t i = 0; i < hd; ++i) d += double(qh[i]) * k32[j * row + kvh * hd + i];
      s[j] = d / std::sqrt(double(hd));
      mx = std::max(mx, s[j]);
    }
    for (int64_t j = 0; j <= pos; ++j) sum += s[j] = std::exp(s[j] - mx);
    for (int64_t j = 0; j <= pos; ++j) {
      for (int64_t i = 0; i < hd; ++i) out[i] += s[j] / sum * v32[j * row + kvh * hd + i];
    }
    return out;
  }
};

std::vector<float> Decode(const Layer& L, bool f16, int threads) {
  ThreadPool pool(threads);
  AttentionWorkspace ws(threads, L.n_head, L.hd);
  std::vector<float> out(static_cast<size_t>(L.n_head * L.hd));
  const int64_t stride = L.n_head * L.hd;
  ws.Run(pool, L.Attn(f16), L.q.data(), stride, L.n_keys - 1, 1, out.data(), stride);
  return out;
}

TEST(AttentionSplitTest, DecodeIsAttentionWithTheSameBitsOnAnyThreadCount) {
  ForEachAttentionTarget([] {
    struct Shape {
      int64_t n_head, n_head_kv, hd;
    };
    for (Shape sh : {Shape{4, 4, 64}, Shape{8, 2, 32}, Shape{8, 1, 128}, Shape{12, 2, 80},
                     Shape{2, 1, 8}, Shape{32, 8, 128}}) {  // the last: a parallel merge
      for (int64_t n_keys : {1, 200, 512, 513, 1000, 3000}) {
        const Layer L(sh.n_head, sh.n_head_kv, sh.hd, n_keys, 1,
                      static_cast<uint32_t>(sh.hd * 31 + sh.n_head_kv * 7 + n_keys));
        for (bool f16 : {true, false}) {
          const std::vector<float> one = Decode(L, f16, 1);
          for (int threads : {2, 3, 4}) {
            ASSERT_EQ(Decode(L, f16, threads), one)
                << "hd " << sh.hd << " keys " << n_keys << " threads " << threads;
          }
          for (int64_t h = 0; h < L.n_head; ++h) {
            // Within one chunk: exactly the single-pass kernel.
            std::vector<uint16_t> q16(kMaxGroupHeads * L.hd), acc16(L.hd);
            std::vector<float> acc32(L.hd), ref(L.hd);
            const LayerAttention la = L.Attn(f16);
            AttentionArgs a{.q = &L.q[h * L.hd],
                            .k_base = la.k_base,
                            .v_base = la.v_base,
                            .row_bytes = la.row_bytes,
                            .offset = h / (L.n_head / L.n_head_kv) * L.hd,
                            .n_keys = n_keys,
                            .head_dim = L.hd,
                            .scale = la.scale};
            AttendHead(a, f16, {q16.data(), acc16.data(), acc32.data()}, ref.data());
            if (n_keys <= kKeyChunk) {
              ASSERT_EQ(std::memcmp(ref.data(), &one[h * L.hd], L.hd * sizeof(float)), 0);
            }
            const std::vector<double> exact = L.Exact(0, h, n_keys - 1);
            for (int64_t i = 0; i < L.hd; ++i) {
              const double tol = f16 ? 0.02 + 0.01 * std::abs(exact[i]) : 1e-4;
              ASSERT_NEAR(one[h * L.hd + i], exact[i], tol)
                  << "hd " << sh.hd << " keys " << n_keys << " head " << h << " f16 " << f16;
              ASSERT_NEAR(one[h * L.hd + i], ref[i], tol);
            }
          }
        }
      }
    }
  });
}

// A prefill of positions [pos0, pos0 + n) gives each token the bits a decode at its
// position gives, with a sliding window too, with tiny heads (the lane kernel) and with
// head_dim 64, 96, 128 and 256 (the row kernel): rows of several tokens per task, some of them
// split into key chunks and some not, with chunk sizes that change between tokens.
TEST(AttentionSplitTest, PrefillAndDecodeGiveTheSameBits) {
  ForEachAttentionTarget([] {
    struct Shape {
      int64_t n_head, n_head_kv, hd;
      float softcap = 0.0f;
    };
    const int64_t n = 40;
    // The last three: gemma3 1B; phi-3 mini; gemma2's soft-cap.
    for (Shape sh :
         {Shape{8, 2, 64}, Shape{8, 1, 128}, Shape{34, 2, 64}, Shape{8, 4, 8}, Shape{6, 2, 4},
          Shape{34, 1, 16}, Shape{4, 1, 256}, Shape{4, 4, 96}, Shape{8, 4, 64, 2.0f}}) {
      for (int64_t n_keys : {700, 530, 1060}) {
        const int64_t pos0 = n_keys - n;
        const Layer L(sh.n_head, sh.n_head_kv, sh.hd, n_keys, n, 77);
        for (int64_t window : {int64_t{0}, int64_t{300}, int64_t{600}}) {
          for (int threads : {1, 3}) {
            ThreadPool pool(threads);
            AttentionWorkspace ws(threads, L.n_head, L.hd);
            LayerAttention la = L.Attn(true);
            la.window = window;
            la.softcap = sh.softcap;
            const int64_t stride = L.n_head * L.hd;
            std::vector<float> batch(static_cast<size_t>(n * stride));
            std::vector<float> one(static_cast<size_t>(stride));
            ws.Run(pool, la, L.q.data(), stride, pos0, n, batch.data(), stride);
            for (int64_t t = 0; t < n; ++t) {
              ws.Run(pool, la, &L.q[t * stride], stride, pos0 + t, 1, one.data(), stride);
              ASSERT_EQ(std::memcmp(one.data(), &batch[t * stride], stride * sizeof(float)), 0)
                  << "hd " << sh.hd << " heads " << sh.n_head << " keys " << n_keys << " token "
                  << t << " window " << window << " threads " << threads;
            }
            if (window == 0 && sh.softcap == 0.0f) {  // and it is attention
              for (int64_t h = 0; h < L.n_head; h += 5) {
                const std::vector<double> exact = L.Exact(n - 1, h, n_keys - 1);
                for (int64_t i = 0; i < L.hd; ++i) {
                  ASSERT_NEAR(batch[(n - 1) * stride + h * L.hd + i], exact[i],
                              0.02 + 0.01 * std::abs(exact[i]));
                }
              }
            }
          }
        }
      }
    }
  });
}

}  // namespace
}  // namespace dormouse
