// Rebalance with state (issue 10): three `cxpulse run` processes in one
// group. A callback is promised on a partition of process X, due a little
// later; X leaves (SIGTERM) before it is due. The partition's new owner must
// report the missed callback at its due time, exactly once: the pending
// deadline moved with the partition, through the changelog.
//
// Event times follow the wall clock here, and a steady trickle of other
// traffic on the partition keeps its watermark moving past the due time
// (the idle timeout is short as well). Every wait is on the daemons'
// /metrics or the findings topic, with a deadline.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/strings.h"
#include "common/time.h"
#include "cx/v1/finding.pb.h"
#include "kafka/client.h"
#include "support/daemon_process.h"
#include "support/durability_config.h"
#include "support/embedded_cluster.h"
#include "support/events.h"
#include "support/kafka_reader.h"
#include "support/metrics_text.h"
#include "support/temp_dir.h"

namespace cxpulse {
namespace {

using namespace std::chrono_literals;
using testing::RunningDaemon;
using testing::SampleLine;
using Clock = std::chrono::steady_clock;

constexpr int kPartitions = 6;
const std::string kGroup = "rebalance";
// Long enough for X to drain and leave and the group to settle before it.
constexpr Micros kDueIn = 25 * kMicrosPerSecond;

Micros WallNow() { return ToMicros(std::chrono::system_clock::now()); }

// A member's watermark of `partition` (wall clock less the delay it
// exports, refreshed each second), if it has one.
std::optional<Micros> WatermarkOf(const std::vector<SampleLine>& samples, int partition) {
  for (const SampleLine& s : samples) {
    if (s.name == "cxpulse_watermark_delay_seconds" && s.labels.count("partition") &&
        s.labels.at("partition") == std::to_string(partition)) {
      return WallNow() - static_cast<Micros>(s.value * kMicrosPerSecond);
    }
  }
  return std::nullopt;
}

class RebalanceStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = testing::StartCluster({{"cx.interactions", kPartitions},
                                      {"cx.findings", 1},
                                      {"cx.deadletter", 1},
                                      {testing::ChangelogTopic(kGroup), kPartitions}});
    ASSERT_NE(cluster_, nullptr);
    auto producer = Producer::Create({{"bootstrap.servers", cluster_->bootstrap_servers()}});
    ASSERT_TRUE(producer.ok());
    producer_ = *std::move(producer);
    config_ = dir_.Write("cxpulse.yaml",
                         Cat("kafka:\n  brokers: ", cluster_->bootstrap_servers(), "\n  group_id: ", kGroup,
                             "\n  properties: {session.timeout.ms: 6000}\n", "rules: ", CXPULSE_RULES_DIR,
                             "\nadmin: {address: 127.0.0.1:0}\n"
                             "engine:\n  allowed_lateness: 1s\n"
                             "  idle_partition_timeout: 1s\n"
                             "  commit_interval: 200ms\n",
                             testing::DeliveryLine(testing::Delivery::kExactlyOnce)));
  }
  void TearDown() override { StopTraffic(); }

  RunningDaemon Start(const std::string& name) {
    RunningDaemon d = testing::StartDaemon({CXPULSE_BINARY, "run", "--config", config_, "--shards", "2"},
                                           dir_.path() + "/" + name + ".log");
    EXPECT_NE(d.port, 0) << d.process->Output();
    return d;
  }

  // Waits until `members` hold every partition between them, each some.
  static bool Settled(const std::vector<const RunningDaemon*>& members) {
    for (const auto deadline = Clock::now() + 60s; Clock::now() < deadline; std::this_thread::sleep_for(200ms)) {
      size_t held = 0;
      bool each = true;
      for (const RunningDaemon* m : members) {
        const size_t n = testing::AssignedPartitions(m->Scrape()).size();
        held += n;
        each = each && n > 0;
      }
      if (each && held == kPartitions) return true;
    }
    return false;
  }

  // Other traffic on `partition`, stamped with the wall clock, a few events a
  // second, from a thread with a producer of its own, until StopTraffic.
  void StartTraffic(int partition) {
    traffic_ = std::thread([this, partition] {
      auto producer = Producer::Create({{"bootstrap.servers", cluster_->bootstrap_servers()}});
      if (!producer.ok()) return;
      for (int i = 0; !stop_traffic_.load(); ++i) {
        const auto e = testing::Sentiment(Cat("other-", i), WallNow(), Cat("other-customer-", i % 7));
        (void)(*producer)->Produce("cx.interactions", partition, e.customer_id(), e.SerializeAsString());
        (*producer)->Poll();
        std::this_thread::sleep_for(200ms);  // the traffic's pace, not a wait for anything
      }
      (void)(*producer)->Flush(10'000);
    });
  }
  void StopTraffic() {
    stop_traffic_.store(true);
    if (traffic_.joinable()) traffic_.join();
  }

  testing::TempDir dir_;
  std::unique_ptr<EmbeddedCluster> cluster_;
  std::unique_ptr<Producer> producer_;
  std::string config_;
  std::thread traffic_;
  std::atomic<bool> stop_traffic_{false};
};

TEST_F(RebalanceStateTest, AMissedCallbackPromisedBeforeItsPartitionMovedIsReportedByTheNewOwnerOnce) {
  std::vector<RunningDaemon> members;
  for (const char* name : {"a", "b", "c"}) members.push_back(Start(name));
  ASSERT_TRUE(Settled({&members[0], &members[1], &members[2]})) << members[2].process->Output();

  // X: a member without partition 0 (the centre stage's, which would move too);
  // the promise goes to the lowest partition it holds.
  size_t x = 0;
  int partition = -1;
  for (size_t i = 0; i < members.size() && partition < 0; ++i) {
    const std::set<int> held = testing::AssignedPartitions(members[i].Scrape());
    if (!held.empty() && held.count(0) == 0) {
      x = i;
      partition = *held.begin();
    }
  }
  ASSERT_GE(partition, 0);
  StartTraffic(partition);

  // Two promises: one due in a few seconds, that X itself must report
  // (the control: traffic moves the watermark, a finding is read back), and
  // the one that is pending when X leaves.
  const Micros requested = WallNow();
  const Micros due = requested + kDueIn;
  const Micros control_due = requested + 3 * kMicrosPerSecond;
  for (const auto& promise : {testing::CallbackRequested("control-1", requested, "control", control_due),
                              testing::CallbackRequested("promise-1", requested, "promised", due)}) {
    ASSERT_TRUE(
        producer_->Produce("cx.interactions", partition, promise.customer_id(), promise.SerializeAsString()).ok());
  }
  ASSERT_TRUE(producer_->Flush(10'000).ok());
  const std::map<std::string, std::string> requests = {{"type", "callback_requested"}, {"channel", "voice"}};
  const std::map<std::string, std::string> missed_rule = {{"rule", "callback_missed"}};
  bool ready = false;
  std::string metrics;
  for (const auto deadline = Clock::now() + 30s; !ready && Clock::now() < deadline;
       std::this_thread::sleep_for(100ms)) {
    metrics = testing::HttpGet(members[x].port, "/metrics").body;
    ready = testing::Sample(metrics, "cxpulse_events_consumed_total", requests) == 2.0 &&
            testing::Sample(metrics, "cxpulse_findings_total", missed_rule) == 1.0;
  }
  ASSERT_TRUE(ready) << "X did not read both promises and report the control's:\n"
                     << metrics << members[x].process->Output();

  // X leaves well before the callback is due.
  members[x].process->Signal(SIGTERM);
  ASSERT_EQ(members[x].process->Wait(30s), 0) << members[x].process->Output();
  ASSERT_LT(WallNow(), due - 5 * kMicrosPerSecond) << "X took too long to leave for the test to mean anything";
  std::vector<const RunningDaemon*> rest;
  for (size_t i = 0; i < members.size(); ++i) {
    if (i != x) rest.push_back(&members[i]);
  }
  ASSERT_TRUE(Settled(rest)) << rest[0]->process->Output();
  const RunningDaemon* owner = nullptr;
  for (const RunningDaemon* m : rest) {
    if (testing::AssignedPartitions(m->Scrape()).count(partition)) owner = m;
  }
  ASSERT_NE(owner, nullptr);

  // The new owner's watermark of the partition passes the due time.
  std::optional<Micros> watermark;
  for (const auto deadline = Clock::now() + std::chrono::microseconds(kDueIn) + 60s;
       Clock::now() < deadline && !(watermark && *watermark > due + 2 * kMicrosPerSecond);
       std::this_thread::sleep_for(200ms)) {
    watermark = WatermarkOf(owner->Scrape(), partition);
  }
  ASSERT_TRUE(watermark && *watermark > due + 2 * kMicrosPerSecond)
      << "the new owner's watermark of partition " << partition << " never passed the due time "
      << FormatTime(due) << ":\n" << owner->process->Output();
  const double reread = testing::Sample(testing::HttpGet(owner->port, "/metrics").body,
                                        "cxpulse_events_consumed_total", requests).value_or(0);
  StopTraffic();
  for (const RunningDaemon* m : rest) m->process->Signal(SIGTERM);
  for (const RunningDaemon* m : rest) EXPECT_EQ(m->process->Wait(30s), 0) << m->process->Output();

  // Exactly one callback_missed for each promise, the moved one fired at its due time.
  std::map<std::string, std::vector<cx::v1::Finding>> missed;
  for (const testing::Record& r : testing::ReadTopic(cluster_->bootstrap_servers(), "cx.findings", 1)) {
    cx::v1::Finding f;
    ASSERT_TRUE(f.ParseFromString(r.value));
    if (f.rule() == "callback_missed" && f.key_size() == 1) missed[f.key(0).value()].push_back(f);
  }
  std::printf("partition %d moved from member %zu; the new owner re-read %.0f promise(s); "
              "callback_missed findings: control %zu, moved promise %zu\n",
              partition, x, reread, missed["control"].size(), missed["promised"].size());
  ASSERT_EQ(missed["control"].size(), 1u) << "X's own finding, before it left";
  const std::vector<cx::v1::Finding>& moved = missed["promised"];
  ASSERT_EQ(moved.size(), 1u) << "the new owner (which re-read the promises " << reread
                              << " times) did not report the missed callback exactly once";
  EXPECT_EQ(ToMicros(moved[0].fired_at()), due);
  EXPECT_EQ(std::vector<std::string>(moved[0].evidence_event_ids().begin(), moved[0].evidence_event_ids().end()),
            std::vector<std::string>{"promise-1"});
}

}  // namespace
}  // namespace cxpulse
