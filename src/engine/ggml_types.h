// Tensor element types as numbered in GGUF (ggml's enum), with their block geometry.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace dormouse {

enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kIQ4_NL = 20,
  kIQ4_XS = 23,
  kBF16 = 30,
};

struct GgmlTypeTraits {
  const char* name;
  uint32_t block_elems;  // elements per block (1 for float types)
  uint32_t block_bytes;  // bytes per block
};

// Traits of a supported type, or nullopt for any other raw id (unsupported or unknown).
std::optional<GgmlTypeTraits> TraitsOf(uint32_t raw_type);
inline GgmlTypeTraits TraitsOf(GgmlType t) { return *TraitsOf(static_cast<uint32_t>(t)); }

// Name for messages: "Q4_K", or "type 23 (IQ4_XS)" / "type 999 (unknown)".
std::string TypeName(uint32_t raw_type);
inline std::string TypeName(GgmlType t) { return TypeName(static_cast<uint32_t>(t)); }

// "F32, F16, BF16, Q8_0, Q4_0, ...": for error messages about unsupported types.
const char* SupportedTypeList();

}  // namespace dormouse
