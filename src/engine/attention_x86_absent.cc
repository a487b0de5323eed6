// The x86-only attention variants (attention_avx2.cc, attention_avx512.cc,
// attention_rows_avx2.cc, attention_rows_avx512.cc) on other CPUs (ARM): never available,
// so dispatch (kernel_target.cc, AllowAvx*Attention) never calls them and their tests skip.
// Should a call come anyway, it gets the portable path or a "not handled" answer.
#if !defined(__x86_64__)
#include <cmath>

#include "engine/attention.h"

namespace dormouse::attention_internal {

bool HaveAvx512() { return false; }
bool HaveAvx2() { return false; }
void AttendF16Avx512(const AttentionArgs& a, const AttentionScratch& s, float* out) {
  AttendF16Portable(a, s, out);
}
bool AttendGroupF16Avx512(const AttentionArgs*, int, const AttentionScratch&, float* const*) {
  return false;
}
bool AttendRowsF16Avx512(const AttentionArgs*, int, float* const*) { return false; }
bool AttendGroupF16Avx2(const AttentionArgs*, int, const AttentionScratch&, float* const*) {
  return false;
}
bool AttendRowsF16Avx2(const AttentionArgs*, int, float* const*) { return false; }
void ExpBatchAvx512(const float* x, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = std::exp(x[i]);
}
void ExpBatchAvx2(const float* x, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = std::exp(x[i]);
}

}  // namespace dormouse::attention_internal
#endif  // !defined(__x86_64__)
