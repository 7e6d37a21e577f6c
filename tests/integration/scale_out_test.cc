// Scale-out as an operator does it: several `cxpulse run` processes in one
// consumer group on one (mock) Kafka cluster. Kafka splits the partitions;
// when a process leaves, its partitions move to the others. Every event must
// be processed exactly once across the group, and the findings must be right.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>

#include "common/strings.h"
#include "cx/v1/finding.pb.h"
#include "kafka/client.h"
#include "support/child_process.h"
#include "support/daemon_process.h"
#include "support/events.h"
#include "support/http_get.h"
#include "support/kafka_reader.h"
#include "support/metrics_text.h"
#include "support/temp_dir.h"

namespace cxpulse {
namespace {

using namespace std::chrono_literals;
using testing::kMinute;
using testing::kT0;

constexpr int kPartitions = 12;
constexpr int kCustomers = 300;

class GroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = EmbeddedCluster::Start(1);
    ASSERT_TRUE(cluster.ok());
    cluster_ = *std::move(cluster);
    ASSERT_TRUE(cluster_->CreateTopic("cx.interactions", kPartitions).ok());
    ASSERT_TRUE(cluster_->CreateTopic("cx.findings", 1).ok());
    ASSERT_TRUE(cluster_->CreateTopic("cx.deadletter", 1).ok());
    ASSERT_TRUE(cluster_->CreateTopic("scale-changelog", kPartitions).ok());
    auto producer = Producer::Create({{"bootstrap.servers", cluster_->bootstrap_servers()}});
    ASSERT_TRUE(producer.ok());
    producer_ = *std::move(producer);
    config_ = dir_.Write("cxpulse.yaml", Cat("kafka:\n  brokers: ", cluster_->bootstrap_servers(),
                                             "\n  group_id: scale\n  properties: {session.timeout.ms: 6000}\n"
                                             "rules: ", CXPULSE_RULES_DIR, "\nadmin: {address: 127.0.0.1:0}\n"
                                             "engine: {allowed_lateness: 1h, idle_partition_timeout: 1h, "
                                             "commit_interval: 200ms}\n"));
  }

  // Event i of customer c: an `ended` contact about billing, a minute apart.
  void SendEnded(int from, int to) {
    for (int i = from; i < to; ++i) {
      for (int c = 0; c < kCustomers; ++c) {
        const auto e = testing::Ended(Cat("e", c, "-", i), kT0 + i * kMinute, Cat("c", c));
        ASSERT_TRUE(producer_->Produce("cx.interactions", RD_KAFKA_PARTITION_UA, e.customer_id(),
                                       e.SerializeAsString()).ok());
      }
    }
    ASSERT_TRUE(producer_->Flush(10'000).ok());
  }

  struct Member {
    std::unique_ptr<testing::ChildProcess> process;
    int port = 0;
  };
  Member Start(const std::string& name, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {CXPULSE_BINARY, "run", "--config", config_, "--shards", "2"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    Member m{std::make_unique<testing::ChildProcess>(argv, dir_.path() + "/" + name + ".log")};
    m.port = testing::AdminPort(*m.process);
    EXPECT_NE(m.port, 0) << m.process->Output();
    return m;
  }
  // Partitions a member holds: one lag series per assigned partition.
  static int Partitions(const Member& m) {
    const std::string text = testing::HttpGet(m.port, "/metrics").body;
    int n = 0;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) n += line.rfind("cxpulse_consumer_lag_messages{", 0) == 0;
    return n;
  }
  bool WaitForPartitions(const std::vector<Member*>& members, int want) {
    for (auto deadline = std::chrono::steady_clock::now() + 60s; std::chrono::steady_clock::now() < deadline;) {
      int sum = 0;
      bool all = true;
      for (const Member* m : members) {
        const int n = Partitions(*m);
        sum += n;
        all = all && n > 0;
      }
      if (all && sum == want) return true;
      std::this_thread::sleep_for(200ms);
    }
    return false;
  }
  // Offsets the group has committed, summed over partitions.
  int64_t Committed() {
    const auto offsets = testing::CommittedOffsets(cluster_->bootstrap_servers(), "scale", "cx.interactions", kPartitions);
    if (offsets.empty()) return -1;
    int64_t committed = 0;
    for (int64_t o : offsets) committed += std::max<int64_t>(0, o);
    return committed;
  }
  bool WaitForCommitted(int64_t want) {
    for (auto deadline = std::chrono::steady_clock::now() + 60s; std::chrono::steady_clock::now() < deadline;) {
      if (Committed() == want) return true;
      std::this_thread::sleep_for(200ms);
    }
    return false;
  }
  // Every finding, by customer. With `same_ids`, a customer's duplicates
  // (redelivery) must carry the same finding_id.
  std::map<std::string, cx::v1::Finding> FindingsByCustomer(bool same_ids = true) {
    std::map<std::string, cx::v1::Finding> by_customer;
    for (const auto& r : testing::ReadTopic(cluster_->bootstrap_servers(), "cx.findings", 1)) {
      cx::v1::Finding f;
      EXPECT_TRUE(f.ParseFromString(r.value));
      EXPECT_EQ(f.rule(), "repeat_contact");
      auto [it, inserted] = by_customer.emplace(f.key(0).value(), f);
      if (!inserted && same_ids) {
        EXPECT_EQ(it->second.finding_id(), f.finding_id()) << "two different findings for " << it->first;
      }
    }
    return by_customer;
  }
  static double Consumed(const Member& m) {
    const std::string text = testing::HttpGet(m.port, "/metrics").body;
    double total = 0;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("cxpulse_events_consumed_total{", 0) == 0) total += std::stod(line.substr(line.rfind(' ') + 1));
    }
    return total;
  }
  bool WaitForTotal(const std::vector<Member*>& members, double want, double already = 0) {
    for (auto deadline = std::chrono::steady_clock::now() + 60s; std::chrono::steady_clock::now() < deadline;) {
      double sum = already;
      for (const Member* m : members) sum += Consumed(*m);
      if (sum == want) return true;
      std::this_thread::sleep_for(200ms);
    }
    return false;
  }

  testing::TempDir dir_;
  std::unique_ptr<EmbeddedCluster> cluster_;
  std::unique_ptr<Producer> producer_;
  std::string config_;
};

TEST_F(GroupTest, ThreeProcessesSplitThePartitionsAndALeaverHandsThemOnExactlyOnce) {
  Member a = Start("a"), b = Start("b"), c = Start("c");
  // The group settles with each member holding some of the 12 partitions.
  ASSERT_TRUE(WaitForPartitions({&a, &b, &c}, kPartitions)) << c.process->Output();

  // Three contacts each: every customer's repeat_contact fires once.
  SendEnded(0, 3);
  ASSERT_TRUE(WaitForTotal({&a, &b, &c}, 3.0 * kCustomers)) << a.process->Output() << b.process->Output();
  // Each process did a share of the work.
  EXPECT_GT(Consumed(a), 0);
  EXPECT_GT(Consumed(b), 0);
  EXPECT_GT(Consumed(c), 0);

  // A quiet hand-over: everything processed is committed before c leaves.
  ASSERT_TRUE(WaitForCommitted(3 * kCustomers));
  // c leaves; what it consumed is final, its partitions move to a and b.
  const double by_c = Consumed(c);
  c.process->Signal(SIGTERM);
  ASSERT_EQ(c.process->Wait(30s), 0) << c.process->Output();
  // Its partitions move: a and b hold all 12 once the group settles again.
  ASSERT_TRUE(WaitForPartitions({&a, &b}, kPartitions)) << a.process->Output();

  // Two more contacts each: within the cooldown where state stayed; too few
  // for a new finding where a partition moved and its state started empty.
  SendEnded(3, 5);
  ASSERT_TRUE(WaitForTotal({&a, &b}, 5.0 * kCustomers, by_c))
      << "a+b+c consumed " << Consumed(a) + Consumed(b) + by_c << " of " << 5 * kCustomers << "\nA:\n"
      << a.process->Output() << "\nB:\n" << b.process->Output() << "\nC:\n" << c.process->Output();

  a.process->Signal(SIGTERM);
  b.process->Signal(SIGTERM);
  EXPECT_EQ(a.process->Wait(30s), 0) << a.process->Output();
  EXPECT_EQ(b.process->Wait(30s), 0) << b.process->Output();
  EXPECT_NE(a.process->Output().find("revoked"), std::string::npos);

  // Exactly one finding per customer, with the first three contacts as evidence.
  const auto records = testing::ReadTopic(cluster_->bootstrap_servers(), "cx.findings", 1);
  EXPECT_EQ(records.size(), static_cast<size_t>(kCustomers));
  const auto by_customer = FindingsByCustomer();
  ASSERT_EQ(by_customer.size(), static_cast<size_t>(kCustomers));
  for (const auto& [customer, f] : by_customer) {
    const std::string n = customer.substr(1);
    EXPECT_EQ(std::vector<std::string>(f.evidence_event_ids().begin(), f.evidence_event_ids().end()),
              (std::vector<std::string>{"e" + n + "-0", "e" + n + "-1", "e" + n + "-2"}));
  }
}

// A member leaving while events flow: its partitions, with their state, move
// to the others. Nothing may be lost: every offset committed, every
// customer's finding made.
TEST_F(GroupTest, ALeaverUnderLoadLosesNothing) {
  Member a = Start("a"), b = Start("b"), c = Start("c");
  ASSERT_TRUE(WaitForPartitions({&a, &b, &c}, kPartitions));
  std::thread load([&] { SendEnded(0, 5); });
  std::this_thread::sleep_for(50ms);
  c.process->Signal(SIGTERM);  // leaves while events are flowing
  load.join();
  ASSERT_EQ(c.process->Wait(30s), 0) << c.process->Output();
  ASSERT_TRUE(WaitForPartitions({&a, &b}, kPartitions));

  // Nothing is skipped: a and b catch up until every offset is committed.
  EXPECT_TRUE(WaitForCommitted(5 * kCustomers)) << Committed();
  a.process->Signal(SIGTERM);
  b.process->Signal(SIGTERM);
  EXPECT_EQ(a.process->Wait(30s), 0) << a.process->Output();
  EXPECT_EQ(b.process->Wait(30s), 0) << b.process->Output();
  EXPECT_EQ(FindingsByCustomer(/*same_ids=*/false).size(), static_cast<size_t>(kCustomers));
}

TEST_F(GroupTest, ExitWhenIdleStopsOnceEveryPartitionIsAtItsEnd) {
  SendEnded(0, 4);
  testing::ChildProcess run({CXPULSE_BINARY, "run", "--config", config_, "--exit-when-idle"},
                            dir_.path() + "/idle.log");
  EXPECT_EQ(run.Wait(60s), 0) << run.Output();
  EXPECT_NE(run.Output().find("every assigned partition is at its end"), std::string::npos) << run.Output();
  // Everything was committed: each partition's committed offset is its end.
  const auto offsets = testing::CommittedOffsets(cluster_->bootstrap_servers(), "scale", "cx.interactions", kPartitions);
  ASSERT_EQ(offsets.size(), static_cast<size_t>(kPartitions));
  auto conf = NewKafkaConf({{"bootstrap.servers", cluster_->bootstrap_servers()}});
  ASSERT_TRUE(conf.ok());
  auto probe = NewKafkaClient(RD_KAFKA_CONSUMER, *conf);
  ASSERT_TRUE(probe.ok());
  int64_t committed = 0;
  for (int p = 0; p < kPartitions; ++p) {
    int64_t low = 0, high = 0;
    ASSERT_EQ(rd_kafka_query_watermark_offsets(probe->get(), "cx.interactions", p, &low, &high, 10'000),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    if (high > 0) {
      EXPECT_EQ(offsets[static_cast<size_t>(p)], high) << "partition " << p;
    }
    committed += std::max<int64_t>(0, offsets[static_cast<size_t>(p)]);
  }
  EXPECT_EQ(committed, 4 * kCustomers);
  EXPECT_EQ(testing::ReadTopic(cluster_->bootstrap_servers(), "cx.findings", 1).size(), static_cast<size_t>(kCustomers));
}

}  // namespace
}  // namespace cxpulse
