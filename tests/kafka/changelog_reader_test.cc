// ChangelogReader (daemon/changelog.h) against the mock cluster: what a
// restore takes from a partition's log. Through the last position record the
// latest value of each key, tombstones erasing; after it, nothing (a
// checkpoint cut short); the centre stage's records as they come.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "common/strings.h"
#include "daemon/changelog.h"

namespace cxpulse {
namespace {

constexpr Micros kTimeout = 30 * kMicrosPerSecond;

class ChangelogReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = EmbeddedCluster::Start(1);
    ASSERT_TRUE(cluster.ok()) << Message(cluster.status());
    cluster_ = *std::move(cluster);
    ASSERT_TRUE(cluster_->CreateTopic("log", 3).ok());
    auto producer = Producer::Create({{"bootstrap.servers", cluster_->bootstrap_servers()}});
    ASSERT_TRUE(producer.ok()) << Message(producer.status());
    producer_ = *std::move(producer);
  }
  void Put(int32_t p, std::string_view key, std::string_view value) {
    ASSERT_TRUE(producer_->Produce("log", p, key, value).ok());
  }
  void Erase(int32_t p, std::string_view key) { ASSERT_TRUE(producer_->Produce("log", p, key, std::string_view()).ok()); }
  void Position(int32_t p, int64_t next) { Put(p, kPositionKey, EncodePosition(next)); }

  std::map<int32_t, RestoredState> Read(const std::vector<int32_t>& partitions) {
    EXPECT_TRUE(producer_->Flush(10'000).ok());
    auto reader = ChangelogReader::Create(
        {{"bootstrap.servers", cluster_->bootstrap_servers()}, {"group.id", "never-joined"}}, "log", false);
    EXPECT_TRUE(reader.ok()) << Message(reader.status());
    if (!reader.ok()) return {};
    auto read = (*reader)->Read(partitions, kTimeout);
    EXPECT_TRUE(read.ok()) << Message(read.status());
    return read.ok() ? *std::move(read) : std::map<int32_t, RestoredState>{};
  }
  static std::map<std::string, std::string> Records(const RestoredState& s) {
    std::map<std::string, std::string> out;
    for (const auto& [k, v] : s.records) out.emplace(k, v);
    return out;
  }

  std::unique_ptr<EmbeddedCluster> cluster_;
  std::unique_ptr<Producer> producer_;
};

TEST_F(ChangelogReaderTest, TakesTheLatestValueOfEachKeyThroughTheLastPositionRecord) {
  Put(0, "ea", "1");
  Put(0, "eb", "2");
  Position(0, 10);
  Put(0, "ea", "3");   // supersedes 1
  Erase(0, "eb");      // erases 2
  Put(0, "ec", "");    // an empty value is a value, not a tombstone
  Position(0, 20);
  Put(0, "ea", "4");   // a checkpoint cut short: not taken
  Put(0, "ed", "5");
  std::map<int32_t, RestoredState> read = Read({0});
  ASSERT_EQ(read.count(0), 1u);
  const RestoredState& s = read[0];
  EXPECT_EQ(Records(s), (std::map<std::string, std::string>{
                            {"ea", "3"}, {"ec", ""}, {std::string(kPositionKey), EncodePosition(20)}}));
  EXPECT_EQ(s.records_read, 9u);
  EXPECT_EQ(s.incomplete, 2u);
  EXPECT_EQ(s.bytes_read, 39u);  // keys and values: 3 + 3 + 10 + 3 + 2 + 2 + 10 + 3 + 3
}

TEST_F(ChangelogReaderTest, TakesTheCentreStagesRecordsAsTheyCome) {
  Put(0, "c-snapshot", "old");
  Position(0, 1);
  Put(0, "c-snapshot", "new");  // after the last position record, yet taken: it is whole in itself
  Put(0, "c-other", "x");
  Erase(0, "c-other");
  std::map<int32_t, RestoredState> read = Read({0});
  EXPECT_EQ(Records(read[0]), (std::map<std::string, std::string>{{"c-snapshot", "new"},
                                                                  {std::string(kPositionKey), EncodePosition(1)}}));
  EXPECT_EQ(read[0].incomplete, 0u);
}

TEST_F(ChangelogReaderTest, ReadsPartitionsSideBySideInBatchesAndAnEmptyOneAsNothing) {
  // More records than one batch of the reader takes, interleaved over two partitions.
  constexpr int kKeys = 10'000;
  for (int i = 0; i < kKeys; ++i) {
    Put(0, Cat("e", i), Cat("zero-", i));
    Put(2, Cat("e", i), Cat("two-", i));
    if (i % 1000 == 999) producer_->Poll();
  }
  Position(0, kKeys);
  Position(2, kKeys);
  std::map<int32_t, RestoredState> read = Read({0, 1, 2});
  ASSERT_EQ(read.size(), 3u);
  EXPECT_EQ(read[1].records_read, 0u);
  EXPECT_TRUE(read[1].records.empty());
  for (int32_t p : {0, 2}) {
    const RestoredState& s = read[p];
    EXPECT_EQ(s.records_read, kKeys + 1u);
    ASSERT_EQ(s.records.size(), kKeys + 1u);
    for (int i : {0, kKeys / 2, kKeys - 1}) {
      const auto it = s.records.find(Cat("e", i));
      ASSERT_NE(it, s.records.end());
      EXPECT_EQ(it->second, Cat(p == 0 ? "zero-" : "two-", i));
    }
  }
}

}  // namespace
}  // namespace cxpulse
