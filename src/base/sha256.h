// SHA-256 (FIPS 180-4), for what must not be stored in the clear: the server keeps a
// session's owner as the hash of the API key that created it, never the key.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace dormouse {

std::array<uint8_t, 32> Sha256(std::string_view data);
// Lowercase hex of Sha256(data): 64 characters.
std::string Sha256Hex(std::string_view data);

}  // namespace dormouse
