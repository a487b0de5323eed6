// The check that holds a kernel of many attention rows (AttendRowsF16's, AttendLanesF16) to
// the scalar reference, row by row: shared by attention_rows_test.cc and
// attention_lanes_test.cc.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "engine/attention.h"

namespace dormouse::attention_test {

using RowsKernel = bool (*)(const AttentionArgs*, int, float* const*);

// How a row's softmax max is held to the reference's: bit for bit, or as a float (where
// +0 and -0 are equal).
enum class Max { kBits, kValue };

// Runs `attend` (as a RowsKernel) on all of `args` (rows of one head_dim, each with its
// stats) and expects every row's output and softmax sum to have AttendF16Reference's bits,
// and its max as `max` says.
template <class Kernel>
void ExpectReferenceBits(const Kernel& attend, const std::vector<AttentionArgs>& args,
                         const std::string& what, Max max) {
  const int n = static_cast<int>(args.size());
  const size_t hd = static_cast<size_t>(args[0].head_dim);
  std::vector<float> got(n * hd, -1.0f), want(hd);
  std::vector<float*> outs;
  for (int i = 0; i < n; ++i) outs.push_back(&got[i * hd]);
  ASSERT_TRUE(attend(args.data(), n, outs.data())) << what;
  std::vector<uint16_t> q16(hd), acc16(hd);
  std::vector<float> acc32(hd);
  for (int i = 0; i < n; ++i) {
    const SoftmaxStats got_stats = *args[i].stats;
    SoftmaxStats want_stats;
    AttentionArgs a = args[i];
    a.stats = &want_stats;
    attention_internal::AttendF16Reference(a, {q16.data(), acc16.data(), acc32.data()},
                                           want.data());
    ASSERT_EQ(std::memcmp(want.data(), outs[i], hd * sizeof(float)), 0)
        << what << " hd " << hd << " row " << i << " of " << n << " keys [" << a.first_key << ", "
        << a.n_keys << ") " << want[0] << " vs " << outs[i][0];
    if (max == Max::kBits) {
      ASSERT_EQ(std::memcmp(&want_stats.max, &got_stats.max, sizeof(float)), 0)
          << what << " hd " << hd << " row " << i << " max " << want_stats.max << " vs "
          << got_stats.max;
    } else {
      ASSERT_EQ(want_stats.max, got_stats.max) << what << " hd " << hd << " row " << i;
    }
    ASSERT_EQ(std::memcmp(&want_stats.sum, &got_stats.sum, sizeof(float)), 0)
        << what << " hd " << hd << " row " << i;
  }
}

}  // namespace dormouse::attention_test
