#include "common/time.h"

#include <gtest/gtest.h>

namespace cxpulse {
namespace {

TEST(DurationTest, ParsesUnitsAndSums) {
  EXPECT_EQ(*ParseDuration("500ms"), 500'000);
  EXPECT_EQ(*ParseDuration("90s"), 90 * kMicrosPerSecond);
  EXPECT_EQ(*ParseDuration("15m"), 900 * kMicrosPerSecond);
  EXPECT_EQ(*ParseDuration("7d"), 7 * 86400 * kMicrosPerSecond);
  EXPECT_EQ(*ParseDuration("1h30m"), 5400 * kMicrosPerSecond);
}

TEST(DurationTest, RefusesWhatIsNotADuration) {
  for (const char* bad : {"", "10", "s", "5 m", "-3s", "1.5h", "3y"}) {
    EXPECT_FALSE(ParseDuration(bad).ok()) << bad;
  }
}

TEST(DurationTest, FormatsTheShortestForm) {
  EXPECT_EQ(FormatDuration(5400 * kMicrosPerSecond), "1h30m");
  EXPECT_EQ(FormatDuration(7 * 86400 * kMicrosPerSecond), "7d");
  EXPECT_EQ(FormatDuration(1500), "1ms500us");
  EXPECT_EQ(FormatDuration(0), "0s");
}

TEST(TimeTest, FormatsRfc3339) {
  EXPECT_EQ(FormatTime(1'790'000'000LL * kMicrosPerSecond), "2026-09-21T14:13:20Z");
}

}  // namespace
}  // namespace cxpulse
