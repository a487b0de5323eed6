// Durations as users write them, like Ollama's keep_alive: "30s", "5m", "1h30m", "250ms",
// "1.5h", a bare number of seconds ("300", "-1"), and negatives ("-1m": forever, to the
// keep-alive policy). Anything else is an error naming the text.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "base/status.h"

namespace dormouse {

using Millis = std::chrono::milliseconds;

StatusOr<Millis> ParseDuration(std::string_view text);
// "4m12s", "250ms", "2h0m0s": for messages.
std::string FormatDuration(Millis d);

}  // namespace dormouse
