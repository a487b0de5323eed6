#include "engine/ggml_types.h"

#include <fmt/format.h>

namespace dormouse {

std::optional<GgmlTypeTraits> TraitsOf(uint32_t raw_type) {
  switch (static_cast<GgmlType>(raw_type)) {
    case GgmlType::kF32: return GgmlTypeTraits{"F32", 1, 4};
    case GgmlType::kF16: return GgmlTypeTraits{"F16", 1, 2};
    case GgmlType::kBF16: return GgmlTypeTraits{"BF16", 1, 2};
    // Q8_0: f16 scale + 32 x int8.
    case GgmlType::kQ8_0: return GgmlTypeTraits{"Q8_0", 32, 34};
    // Q4_0: f16 scale + 16 bytes of 32 nibbles.
    case GgmlType::kQ4_0: return GgmlTypeTraits{"Q4_0", 32, 18};
    // Q4_K: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles.
    case GgmlType::kQ4_K: return GgmlTypeTraits{"Q4_K", 256, 144};
    // Q6_K: 128 bytes low nibbles, 64 bytes high 2 bits, 16 int8 scales, f16 d.
    case GgmlType::kQ6_K: return GgmlTypeTraits{"Q6_K", 256, 210};
  }
  return std::nullopt;
}

std::string TypeName(uint32_t raw_type) {
  if (auto t = TraitsOf(raw_type)) return t->name;
  static const char* const kKnown[] = {
      "F32",  "F16",  "Q4_0",    "Q4_1",    "Q4_2",    "Q4_3",   "Q5_0",    "Q5_1",
      "Q8_0", "Q8_1", "Q2_K",    "Q3_K",    "Q4_K",    "Q5_K",   "Q6_K",    "Q8_K",
      "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS",
      "I8",   "I16",  "I32",     "I64",     "F64",     "IQ1_M",  "BF16",    "Q4_0_4_4",
      "Q4_0_4_8", "Q4_0_8_8", "TQ1_0", "TQ2_0",
      "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8", "MXFP4"};
  if (raw_type < sizeof(kKnown) / sizeof(kKnown[0])) {
    return fmt::format("type {} ({})", raw_type, kKnown[raw_type]);
  }
  return fmt::format("type {} (unknown)", raw_type);
}

const char* SupportedTypeList() { return "F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K"; }

}  // namespace dormouse
