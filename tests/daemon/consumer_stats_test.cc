#include "daemon/consumer_stats.h"

#include <gtest/gtest.h>

namespace cxpulse {
namespace {

// A consumer's statistics as librdkafka 2.0 writes them, cut to the fields read.
std::string Stats(int64_t rxidle, const char* state, int64_t next_offset, int64_t up_for = 60'000'000) {
  return R"({"ts": 10000000, "brokers": {
    "127.0.0.1:9092/1": {"nodeid": 1, "state": ")" + std::string(state) + R"(", "rxidle": )" +
         std::to_string(rxidle) + R"(, "stateage": )" + std::to_string(up_for) + R"(},
    "GroupCoordinator": {"nodeid": -1, "state": "UP", "rxidle": 0}},
  "topics": {"in": {"partitions": {
    "0": {"leader": 1, "fetch_state": "active", "next_offset": )" + std::to_string(next_offset) +
         R"(, "hi_offset": 7},
    "1": {"leader": 1, "fetch_state": "offset-query", "next_offset": 7, "hi_offset": 7},
    "-1": {"leader": -1, "fetch_state": "none", "next_offset": 0, "hi_offset": -1}}}}})";
}

// Taken at monotonic 10 s, read at monotonic 10.5 s, wall 1000 s.
constexpr StatsClock kClock{1000 * kMicrosPerSecond, 10'500'000};
constexpr Micros kFetchWait = 500'000;

TEST(ConsumerStatsTest, APartitionFetchedToItsEndIsHeardWhenItsLeaderLastAnswered) {
  // Taken at wall 999.5 s, last receive 0.2 s before, less the fetch wait.
  const auto heard = HeardFromStats(Stats(200'000, "UP", 7), "in", kClock, kFetchWait);
  ASSERT_EQ(heard.size(), 1u);  // partition 1 is not fetching, -1 is librdkafka's own
  EXPECT_EQ(heard[0].partition, 0);
  EXPECT_EQ(heard[0].at, 999'500'000 - 200'000 - kFetchWait);
  EXPECT_EQ(heard[0].through, 7);  // the fetcher's next offset
}

TEST(ConsumerStatsTest, ABehindOrSilentOrDownLeaderIsNotHeard) {
  EXPECT_TRUE(HeardFromStats(Stats(200'000, "UP", 6), "in", kClock, kFetchWait).empty()) << "behind";
  EXPECT_TRUE(HeardFromStats(Stats(-1, "UP", 7), "in", kClock, kFetchWait).empty()) << "never received";
  EXPECT_TRUE(HeardFromStats(Stats(200'000, "DOWN", 7), "in", kClock, kFetchWait).empty()) << "down";
  EXPECT_TRUE(HeardFromStats(Stats(200'000, "UP", 7), "other", kClock, kFetchWait).empty()) << "another topic";
  EXPECT_TRUE(HeardFromStats("{not json", "in", kClock, kFetchWait).empty());
}

// Defect (broker_faults_test): just back from an outage, the leader's
// partitions still carried the high watermarks of before it, so a partition
// looked read to its end, and the whole outage counted as idle time: the
// events produced meanwhile turned late. Until a fetch has surely answered
// since (two fetch waits and a stats interval), it is not heard.
TEST(ConsumerStatsTest, ALeaderJustBackIsNotHeardUntilAFetchHasAnswered) {
  EXPECT_TRUE(HeardFromStats(Stats(200'000, "UP", 7, 1'500'000), "in", kClock, kFetchWait).empty());
  EXPECT_EQ(HeardFromStats(Stats(200'000, "UP", 7, 2'500'000), "in", kClock, kFetchWait).size(), 1u);
}

}  // namespace
}  // namespace cxpulse
