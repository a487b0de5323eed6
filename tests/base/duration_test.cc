#include "base/duration.h"

#include <gtest/gtest.h>

namespace dormouse {
namespace {

TEST(DurationTest, ParsesOllamaStyleDurations) {
  EXPECT_EQ(ParseDuration("30s").value(), Millis(30000));
  EXPECT_EQ(ParseDuration("5m").value(), Millis(300000));
  EXPECT_EQ(ParseDuration("1h").value(), Millis(3600000));
  EXPECT_EQ(ParseDuration("1h30m").value(), Millis(5400000));
  EXPECT_EQ(ParseDuration("250ms").value(), Millis(250));
  EXPECT_EQ(ParseDuration("1.5h").value(), Millis(5400000));
  EXPECT_EQ(ParseDuration("300").value(), Millis(300000));
  EXPECT_EQ(ParseDuration("0").value(), Millis(0));
  EXPECT_EQ(ParseDuration("-1").value(), Millis(-1000));
  EXPECT_EQ(ParseDuration("-1m").value(), Millis(-60000));
}

TEST(DurationTest, RefusesGarbageWithTheText) {
  for (const char* bad : {"", "abc", "5x", "1h30", "--5", "5m-3s", "1e400", "nan", "inf", " 5s"}) {
    StatusOr<Millis> d = ParseDuration(bad);
    EXPECT_FALSE(d.ok()) << bad;
    if (!d.ok()) {
      EXPECT_NE(d.status().message().find("is not a duration"), std::string::npos);
    }
  }
}

TEST(DurationTest, Formats) {
  EXPECT_EQ(FormatDuration(Millis(250)), "250ms");
  EXPECT_EQ(FormatDuration(Millis(252000)), "4m12s");
  EXPECT_EQ(FormatDuration(Millis(7200000)), "2h0m0s");
  EXPECT_EQ(FormatDuration(Millis(-5000)), "-5s");
}

}  // namespace
}  // namespace dormouse
