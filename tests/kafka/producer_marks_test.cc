// Producer delivery marks (kafka/client.h), which the shards' checkpoints
// rely on: an offset is committable only once every finding produced before
// its mark has its delivery report.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "common/strings.h"
#include "kafka/client.h"

namespace cxpulse {
namespace {

class ProducerMarksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = EmbeddedCluster::Start(1);
    ASSERT_TRUE(cluster.ok()) << Message(cluster.status());
    cluster_ = *std::move(cluster);
    ASSERT_TRUE(cluster_->CreateTopic("a", 1).ok());
    ASSERT_TRUE(cluster_->CreateTopic("b", 1).ok());
  }
  std::unique_ptr<Producer> NewProducer(KafkaProperties extra = {}) {
    extra["bootstrap.servers"] = cluster_->bootstrap_servers();
    auto p = Producer::Create(extra);
    EXPECT_TRUE(p.ok()) << Message(p.status());
    return p.ok() ? *std::move(p) : nullptr;
  }
  std::unique_ptr<EmbeddedCluster> cluster_;
};

TEST_F(ProducerMarksTest, AMarkIsDeliveredOnceEveryMessageBeforeItIs) {
  auto producer = NewProducer({{"linger.ms", "200"}});  // still in flight right after Produce
  ASSERT_NE(producer, nullptr);
  const uint64_t empty = producer->Mark();
  EXPECT_TRUE(producer->DeliveredThrough(empty));  // nothing was produced under it

  ASSERT_TRUE(producer->Produce("a", 0, "k", "v1").ok());
  ASSERT_TRUE(producer->Produce("a", 0, "k", "v2").ok());
  const uint64_t first = producer->Mark();
  ASSERT_TRUE(producer->Produce("a", 0, "k", "v3").ok());
  const uint64_t second = producer->Mark();
  EXPECT_GT(second, first);
  producer->Poll();
  EXPECT_FALSE(producer->DeliveredThrough(first));
  EXPECT_FALSE(producer->DeliveredThrough(second));

  ASSERT_TRUE(producer->Flush(10'000).ok());
  EXPECT_TRUE(producer->DeliveredThrough(first));
  EXPECT_TRUE(producer->DeliveredThrough(second));
  EXPECT_EQ(producer->delivery_failures(), 0u);
}

TEST_F(ProducerMarksTest, ALaterMarkWaitsForAnEarlierMessageDeliveredLast) {
  auto producer = NewProducer({{"linger.ms", "0"}, {"topic.metadata.refresh.fast.interval.ms", "50"}});
  ASSERT_NE(producer, nullptr);
  // Topic a has no leader: its message waits while b's is delivered.
  ASSERT_EQ(rd_kafka_mock_partition_set_leader(cluster_->mock(), "a", 0, -1), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_TRUE(producer->Produce("a", 0, "k", "early").ok());
  const uint64_t first = producer->Mark();
  ASSERT_TRUE(producer->Produce("b", 0, "k", "late").ok());
  const uint64_t second = producer->Mark();
  // Wait for b's message alone to be delivered.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (rd_kafka_outq_len(producer->handle()) > 1 && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_poll(producer->handle(), 10);
  }
  ASSERT_EQ(rd_kafka_outq_len(producer->handle()), 1);
  EXPECT_FALSE(producer->DeliveredThrough(first));
  EXPECT_FALSE(producer->DeliveredThrough(second));  // delivered after an undelivered one

  ASSERT_EQ(rd_kafka_mock_partition_set_leader(cluster_->mock(), "a", 0, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_TRUE(producer->Flush(10'000).ok());
  EXPECT_TRUE(producer->DeliveredThrough(second));
  EXPECT_EQ(producer->delivery_failures(), 0u);
}

TEST_F(ProducerMarksTest, AFailedMessageIsCountedAndReleasesItsMark) {
  auto producer = NewProducer({{"linger.ms", "0"}});
  ASSERT_NE(producer, nullptr);
  // The broker refuses the write (not retriable).
  rd_kafka_mock_push_request_errors(cluster_->mock(), 0 /* Produce */, 1, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
  ASSERT_TRUE(producer->Produce("a", 0, "k", "refused").ok());
  const uint64_t mark = producer->Mark();
  ASSERT_TRUE(producer->Flush(10'000).ok());
  // Delivered means "has its report": the caller checks the failure count.
  EXPECT_TRUE(producer->DeliveredThrough(mark));
  EXPECT_EQ(producer->delivery_failures(), 1u);
}

}  // namespace
}  // namespace cxpulse
