#include "engine/ggml_types.h"

#include <fmt/format.h>

namespace dormouse {

std::optional<GgmlTypeTraits> TraitsOf(uint32_t raw_type) {
  switch (static_cast<GgmlType>(raw_type)) {
    case GgmlType::kF32:
      return GgmlTypeTraits{"F32", 1, 4};
    case GgmlType::kF16:
      return GgmlTypeTraits{"F16", 1, 2};
    case GgmlType::kBF16:
      return GgmlTypeTraits{"BF16", 1, 2};
    // Q8_0: f16 scale + 32 x int8.
    case GgmlType::kQ8_0:
      return GgmlTypeTraits{"Q8_0", 32, 34};
    // Q4_0: f16 scale + 16 bytes of 32 nibbles.
    case GgmlType::kQ4_0:
      return GgmlTypeTraits{"Q4_0", 32, 18};
    // Q4_K: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles.
    case GgmlType::kQ4_K:
      return GgmlTypeTraits{"Q4_K", 256, 144};
    // Q6_K: 128 bytes low nibbles, 64 bytes high 2 bits, 16 int8 scales, f16 d.
    case GgmlType::kQ6_K:
      return GgmlTypeTraits{"Q6_K", 256, 210};
    // Q4_1: f16 d, f16 m, 16 bytes of nibbles.
    case GgmlType::kQ4_1:
      return GgmlTypeTraits{"Q4_1", 32, 20};
    // Q5_0: f16 d, 4 bytes of 5th bits, 16 bytes of nibbles.
    case GgmlType::kQ5_0:
      return GgmlTypeTraits{"Q5_0", 32, 22};
    // Q5_1: f16 d, f16 m, 4 bytes of 5th bits, 16 bytes of nibbles.
    case GgmlType::kQ5_1:
      return GgmlTypeTraits{"Q5_1", 32, 24};
    // IQ4_NL: f16 d, 16 bytes of nibbles indexing a 16-level table.
    case GgmlType::kIQ4_NL:
      return GgmlTypeTraits{"IQ4_NL", 32, 18};
    // IQ4_XS: f16 d, 2 + 4 bytes of 6-bit sub-block scales, 128 bytes of nibbles.
    case GgmlType::kIQ4_XS:
      return GgmlTypeTraits{"IQ4_XS", 256, 136};
    // Q2_K: 16 bytes of 4-bit scales/mins, 64 bytes of 2-bit quants, f16 d, f16 dmin.
    case GgmlType::kQ2_K:
      return GgmlTypeTraits{"Q2_K", 256, 84};
    // Q3_K: 32 bytes high bits, 64 bytes low 2 bits, 12 bytes of 6-bit scales, f16 d.
    case GgmlType::kQ3_K:
      return GgmlTypeTraits{"Q3_K", 256, 110};
    // Q5_K: f16 d, f16 dmin, 12 bytes of scales/mins, 32 bytes high bits, 128 bytes nibbles.
    case GgmlType::kQ5_K:
      return GgmlTypeTraits{"Q5_K", 256, 176};
  }
  return std::nullopt;
}

std::string TypeName(uint32_t raw_type) {
  if (auto t = TraitsOf(raw_type)) return t->name;
  static const char* const kKnown[] = {
      "F32",   "F16",        "Q4_0",       "Q4_1",       "Q4_2",     "Q4_3",     "Q5_0",
      "Q5_1",  "Q8_0",       "Q8_1",       "Q2_K",       "Q3_K",     "Q4_K",     "Q5_K",
      "Q6_K",  "Q8_K",       "IQ2_XXS",    "IQ2_XS",     "IQ3_XXS",  "IQ1_S",    "IQ4_NL",
      "IQ3_S", "IQ2_S",      "IQ4_XS",     "I8",         "I16",      "I32",      "I64",
      "F64",   "IQ1_M",      "BF16",       "Q4_0_4_4",   "Q4_0_4_8", "Q4_0_8_8", "TQ1_0",
      "TQ2_0", "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8", "MXFP4"};
  if (raw_type < sizeof(kKnown) / sizeof(kKnown[0])) {
    return fmt::format("type {} ({})", raw_type, kKnown[raw_type]);
  }
  return fmt::format("type {} (unknown)", raw_type);
}

const char* SupportedTypeList() {
  return "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, "
         "IQ4_XS";
}

}  // namespace dormouse
