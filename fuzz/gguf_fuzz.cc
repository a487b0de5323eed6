// libFuzzer target for the GGUF reader: any byte string must parse or fail cleanly.
// Build: cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DDORMOUSE_FUZZ=ON
// Run:   ./build-fuzz/gguf_fuzz -max_total_time=60 ../shared/models/stories260K.gguf
#include <cstddef>
#include <cstdint>

#include "engine/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto g = dormouse::GgufFile::ParseBytesOrError(data, size, "fuzz.gguf");
  if (g.ok()) {
    // Touch every tensor's bytes: the reader promised they lie inside the input.
    volatile uint8_t sink = 0;
    for (const auto& t : g->tensors()) {
      if (t.n_bytes > 0) sink = sink ^ t.data[0] ^ t.data[t.n_bytes - 1];
    }
  }
  return 0;
}
