#include "base/duration.h"

#include <cctype>
#include <cmath>
#include <cstdlib>

namespace dormouse {

StatusOr<Millis> ParseDuration(std::string_view text) {
  auto bad = [&] {
    return Status::Errorf("'{}' is not a duration (examples: 30s, 5m, 1h, 300, -1)", text);
  };
  std::string s(text);
  if (s.empty() || s.size() > 64) return bad();
  size_t i = 0;
  bool negative = false;
  if (s[i] == '-' || s[i] == '+') negative = s[i++] == '-';
  double total_ms = 0;
  bool any = false;
  while (i < s.size()) {
    const char* begin = s.c_str() + i;
    char* end = nullptr;
    double v = std::strtod(begin, &end);
    if (end == begin || !std::isfinite(v) || v < 0) return bad();
    if (!std::isdigit(static_cast<unsigned char>(*begin)) && *begin != '.') return bad();
    i += static_cast<size_t>(end - begin);
    double unit = 1000;  // a bare number means seconds
    if (s.compare(i, 2, "ms") == 0) {
      unit = 1, i += 2;
    } else if (i < s.size() && s[i] == 's') {
      unit = 1000, i += 1;
    } else if (i < s.size() && s[i] == 'm') {
      unit = 60e3, i += 1;
    } else if (i < s.size() && s[i] == 'h') {
      unit = 3600e3, i += 1;
    } else if (i < s.size()) {
      return bad();
    } else if (any) {
      return bad();  // "1h30" is ambiguous
    }
    total_ms += v * unit;
    any = true;
  }
  if (!any || total_ms > 1e15) return bad();
  return Millis(static_cast<int64_t>(std::llround(negative ? -total_ms : total_ms)));
}

std::string FormatDuration(Millis d) {
  int64_t ms = d.count();
  std::string sign = ms < 0 ? "-" : "";
  ms = std::llabs(ms);
  if (ms < 1000) return sign + fmt::format("{}ms", ms);
  int64_t s = ms / 1000, h = s / 3600, m = (s / 60) % 60;
  s %= 60;
  if (h > 0) return sign + fmt::format("{}h{}m{}s", h, m, s);
  if (m > 0) return sign + fmt::format("{}m{}s", m, s);
  return sign + fmt::format("{}s", s);
}

}  // namespace dormouse
