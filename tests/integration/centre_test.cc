// Centre-wide rules as an operator sees them: the real `cxpulse run` against
// a mock Kafka cluster this test process hosts. A rule keyed by reason must
// count the whole topic, not one partition's share: a surge of 20 contacts
// in 15 minutes spread over 8 partitions fires the same finding as on 1
// (and as `cxpulse replay` of the same events). With two processes in one
// group, only the one holding partition 0 runs the centre stage, the
// finding is produced once, and when that process leaves the other takes
// the stage over without producing it again. A reload reaches it too, and
// its first start begins where the group is.
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/strings.h"
#include "cx/v1/finding.pb.h"
#include "kafka/client.h"
#include "support/child_process.h"
#include "support/daemon_process.h"
#include "support/command.h"
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

constexpr Micros kHour = 60 * kMinute;
// reason_surge's windows are 15 minutes from the epoch: start on an hour.
constexpr Micros kStart = kT0 / kHour * kHour;
constexpr Micros kFiresAt = kStart + 6 * kHour + 9 * kMinute + 30 * kMicrosPerSecond;

cx::v1::InteractionEvent Inbound(const std::string& id, Micros at, const std::string& customer,
                                 const std::string& reason) {
  auto e = testing::Event(id, at, customer, reason);
  e.mutable_contact_started()->set_direction(cx::v1::DIRECTION_INBOUND);
  return e;
}

// The traffic, in time order: outage contacts about once an hour for six
// hours (reason_surge's baseline), other reasons among them, then 20 outage
// contacts 30 s apart: the 19th, with the last hourly one, is 20 in the
// window, three times the baseline (fires at 6h9m30s, as the shipped rule
// test has it). Each event is its own customer's, keyed by customer_id, so
// on 8 partitions the surge is spread over all of them.
std::vector<cx::v1::InteractionEvent> Surge() {
  std::vector<cx::v1::InteractionEvent> events;
  for (int h = 0; h <= 6; ++h) {
    events.push_back(Inbound(Cat("b", h), kStart + h * kHour, Cat("cb", h), "outage"));
    if (h == 6) break;  // the last hourly one is the surge's first
    events.push_back(Inbound(Cat("n", h), kStart + h * kHour + 10 * kMinute, Cat("cn", h), "billing_dispute"));
  }
  for (int k = 1; k <= 20; ++k) {
    events.push_back(Inbound(Cat("s", k), kStart + 6 * kHour + k * 30 * kMicrosPerSecond, Cat("cs", k), "outage"));
  }
  return events;
}

class CentreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = EmbeddedCluster::Start(1);
    ASSERT_TRUE(cluster.ok()) << Message(cluster.status());
    cluster_ = *std::move(cluster);
    auto producer = Producer::Create({{"bootstrap.servers", cluster_->bootstrap_servers()}});
    ASSERT_TRUE(producer.ok());
    producer_ = *std::move(producer);
  }

  // Topics "<name>.in" (with `partitions`), "<name>.findings", "<name>.dead";
  // a config reading them in group `name`.
  std::string Setup(const std::string& name, int partitions, const std::string& rules = CXPULSE_RULES_DIR) {
    EXPECT_TRUE(cluster_->CreateTopic(name + ".in", partitions).ok());
    EXPECT_TRUE(cluster_->CreateTopic(name + ".findings", 1).ok());
    EXPECT_TRUE(cluster_->CreateTopic(name + ".dead", 1).ok());
    EXPECT_TRUE(cluster_->CreateTopic(name + "-changelog", partitions).ok());
    return dir_.Write(name + ".yaml",
                      Cat("kafka:\n  brokers: ", cluster_->bootstrap_servers(), "\n  group_id: ", name,
                          "\n  topics: {input: ", name, ".in, findings: ", name, ".findings, dead_letter: ", name,
                          ".dead}\n  properties: {session.timeout.ms: 6000}\nrules: ", rules,
                          "\nadmin: {address: 127.0.0.1:0}\n"
                          // Event time alone moves the watermarks: no idle advance.
                          "engine: {allowed_lateness: 1s, idle_partition_timeout: 1h, commit_interval: 200ms}\n"));
  }

  // The surge keyed by customer; then one later event on every partition,
  // so that every partition's watermark passes the surge.
  void SendSurge(const std::string& name, int partitions) {
    for (const auto& e : Surge()) {
      ASSERT_TRUE(producer_->Produce(name + ".in", RD_KAFKA_PARTITION_UA, e.customer_id(), e.SerializeAsString()).ok());
    }
    for (int p = 0; p < partitions; ++p) {
      const auto e = Inbound(Cat("t", p), kStart + 8 * kHour, Cat("ct", p), "other");
      ASSERT_TRUE(producer_->Produce(name + ".in", p, e.customer_id(), e.SerializeAsString()).ok());
    }
    ASSERT_TRUE(producer_->Flush(10'000).ok());
  }

  struct Member {
    std::unique_ptr<testing::ChildProcess> process;
    int port = 0;
  };
  Member Start(const std::string& config, const std::string& log) {
    Member m{std::make_unique<testing::ChildProcess>(
        std::vector<std::string>{CXPULSE_BINARY, "run", "--config", config, "--shards", "2"}, dir_.path() + "/" + log)};
    m.port = testing::AdminPort(*m.process);
    EXPECT_NE(m.port, 0) << m.process->Output();
    return m;
  }
  static std::string Metrics(const Member& m) { return testing::HttpGet(m.port, "/metrics").body; }
  // Partitions a member holds: one lag series per assigned partition.
  static int Partitions(const std::string& metrics) {
    int n = 0;
    std::istringstream in(metrics);
    for (std::string line; std::getline(in, line);) n += line.rfind("cxpulse_consumer_lag_messages{", 0) == 0;
    return n;
  }
  static double Active(const std::string& metrics) {
    return testing::Sample(metrics, "cxpulse_centre_active").value_or(-1);
  }

  std::vector<cx::v1::Finding> Findings(const std::string& name, const std::string& rule = "reason_surge") {
    std::vector<cx::v1::Finding> out;
    for (const auto& r : testing::ReadTopic(cluster_->bootstrap_servers(), name + ".findings", 1)) {
      cx::v1::Finding f;
      EXPECT_TRUE(f.ParseFromString(r.value));
      if (f.rule() == rule) out.push_back(f);
    }
    return out;
  }
  // Waits until the member says its centre stage has released the surge
  // (its watermark past the finding) and the finding is on the topic.
  bool WaitForSurgeFinding(const Member& m, const std::string& name) {
    for (auto deadline = std::chrono::steady_clock::now() + 60s; std::chrono::steady_clock::now() < deadline;) {
      const std::string metrics = Metrics(m);
      const double wm = testing::Sample(metrics, "cxpulse_centre_watermark_timestamp_seconds").value_or(0);
      if (wm * kMicrosPerSecond > static_cast<double>(kFiresAt) &&
          testing::Sample(metrics, "cxpulse_findings_total", {{"rule", "reason_surge"}}).value_or(0) >= 1 &&
          !Findings(name).empty()) {
        return true;
      }
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }
  // Runs one daemon over the surge on a topic of `partitions`; its findings.
  std::vector<cx::v1::Finding> RunOnce(const std::string& name, int partitions) {
    const std::string config = Setup(name, partitions);
    SendSurge(name, partitions);
    Member m = Start(config, name + ".log");
    EXPECT_TRUE(WaitForSurgeFinding(m, name)) << Metrics(m) << m.process->Output();
    const std::string metrics = Metrics(m);
    EXPECT_EQ(Active(metrics), 1.0);
    EXPECT_EQ(testing::Sample(metrics, "cxpulse_centre_late_events_total"), 0.0);
    // Every event of the surge went through the centre stage's one engine.
    // (The last events, one per partition, are still held: no watermark is past them.)
    EXPECT_EQ(testing::Sample(metrics, "cxpulse_rule_evaluations_total", {{"rule", "reason_surge"}}),
              static_cast<double>(Surge().size()));
    EXPECT_EQ(testing::Sample(metrics, "cxpulse_centre_buffered_events"), static_cast<double>(partitions));
    // Exactly once (the default): the stage commits its findings, snapshot
    // and offsets in transactions of its own, one per commit interval.
    bool committed = false;
    for (auto deadline = std::chrono::steady_clock::now() + 10s; !committed && std::chrono::steady_clock::now() < deadline;
         std::this_thread::sleep_for(100ms)) {
      committed = testing::Sample(Metrics(m), "cxpulse_centre_transactions_total").value_or(0) >= 1;
    }
    EXPECT_TRUE(committed) << Metrics(m);
    m.process->Signal(SIGTERM);
    EXPECT_EQ(m.process->Wait(30s), 0) << m.process->Output();
    return Findings(name);
  }

  testing::TempDir dir_;
  std::unique_ptr<EmbeddedCluster> cluster_;
  std::unique_ptr<Producer> producer_;
};

TEST_F(CentreTest, ASurgeSpreadOverEightPartitionsFiresAsOnOneAndAsInReplay) {
  const std::vector<cx::v1::Finding> one = RunOnce("one", 1);
  const std::vector<cx::v1::Finding> eight = RunOnce("eight", 8);
  ASSERT_EQ(one.size(), 1u);
  ASSERT_EQ(eight.size(), 1u);
  EXPECT_EQ(one[0].key(0).field(), "reason");
  EXPECT_EQ(one[0].key(0).value(), "outage");
  EXPECT_EQ(ToMicros(one[0].fired_at()), kFiresAt);
  EXPECT_TRUE(one[0].summary().starts_with("outage contacts surging: 20 in 15m against a baseline of "))
      << one[0].summary();
  // The same finding, to the byte: rule, key, fired_at, window, evidence, id.
  EXPECT_EQ(eight[0].DebugString(), one[0].DebugString());

  // `cxpulse replay` of the same events gives it too.
  std::ofstream jsonl(dir_.path() + "/surge.jsonl");
  for (const auto& e : Surge()) {
    std::string line;
    ASSERT_TRUE(google::protobuf::util::MessageToJsonString(e, &line).ok());
    jsonl << line << "\n";
  }
  jsonl.close();
  const auto replay = testing::Cxpulse(dir_, {"replay", "--rules", CXPULSE_RULES_DIR, "--input",
                                              dir_.path() + "/surge.jsonl", "--output", dir_.path() + "/found.jsonl",
                                              "--allowed-lateness", "1s"});
  ASSERT_EQ(replay.code, 0) << replay.output;
  std::vector<cx::v1::Finding> replayed;
  for (const auto& f : testing::ReadJsonLines<cx::v1::Finding>(dir_.path() + "/found.jsonl")) {
    if (f.rule() == "reason_surge") replayed.push_back(f);
  }
  ASSERT_EQ(replayed.size(), 1u);
  EXPECT_EQ(replayed[0].DebugString(), one[0].DebugString());
}

TEST_F(CentreTest, InAGroupOnlyTheHolderOfPartitionZeroRunsItAndTheFindingComesOnce) {
  const std::string config = Setup("pair", 8);
  Member a = Start(config, "a.log"), b = Start(config, "b.log");
  // The group settles: each member holds some of the 8 partitions, and
  // exactly one, the holder of partition 0, runs the centre stage.
  Member* holder = nullptr;
  Member* other = nullptr;
  for (auto deadline = std::chrono::steady_clock::now() + 60s; std::chrono::steady_clock::now() < deadline;) {
    const std::string ma = Metrics(a), mb = Metrics(b);
    if (Partitions(ma) > 0 && Partitions(mb) > 0 && Partitions(ma) + Partitions(mb) == 8 &&
        Active(ma) + Active(mb) == 1.0) {
      const bool a_holds = testing::Sample(ma, "cxpulse_consumer_lag_messages", {{"partition", "0"}}).has_value();
      holder = a_holds ? &a : &b;
      other = a_holds ? &b : &a;
      EXPECT_EQ(Active(a_holds ? ma : mb), 1.0);
      break;
    }
    std::this_thread::sleep_for(200ms);
  }
  ASSERT_NE(holder, nullptr) << a.process->Output() << b.process->Output();

  SendSurge("pair", 8);
  ASSERT_TRUE(WaitForSurgeFinding(*holder, "pair")) << Metrics(*holder) << holder->process->Output();
  EXPECT_EQ(Active(Metrics(*other)), 0.0);
  EXPECT_EQ(testing::Sample(Metrics(*other), "cxpulse_findings_total", {{"rule", "reason_surge"}}), 0.0);

  // The holder leaves: the other takes partition 0 and the centre stage,
  // which reads on from what the first committed, so the surge is not
  // found again.
  holder->process->Signal(SIGTERM);
  ASSERT_EQ(holder->process->Wait(30s), 0) << holder->process->Output();
  bool taken_over = false;
  for (auto deadline = std::chrono::steady_clock::now() + 60s;
       !taken_over && std::chrono::steady_clock::now() < deadline;) {
    const std::string m = Metrics(*other);
    taken_over = Partitions(m) == 8 && Active(m) == 1.0 &&
                 testing::Sample(m, "cxpulse_centre_watermark_timestamp_seconds").value_or(0) > 0;
    if (!taken_over) std::this_thread::sleep_for(200ms);
  }
  ASSERT_TRUE(taken_over) << Metrics(*other) << other->process->Output();
  other->process->Signal(SIGTERM);
  ASSERT_EQ(other->process->Wait(30s), 0) << other->process->Output();

  const std::vector<cx::v1::Finding> found = Findings("pair");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].key(0).value(), "outage");
  EXPECT_EQ(ToMicros(found[0].fired_at()), kFiresAt);
  // The centre stage committed its progress under its own group: up to the
  // last events, still held (one per partition, after the surge).
  const auto committed = testing::CommittedOffsets(cluster_->bootstrap_servers(), "pair.centre", "pair.in", 8);
  ASSERT_EQ(committed.size(), 8u);
  int64_t total = 0;
  for (int64_t o : committed) total += std::max<int64_t>(0, o);
  EXPECT_EQ(total, static_cast<int64_t>(Surge().size()));
}

TEST_F(CentreTest, AReloadReachesTheCentreStage) {
  const std::string rules = dir_.path() + "/reload-rules";
  std::filesystem::create_directory(rules);
  const std::string complaint =
      "  - {name: complaint, family: escalation, kind: match, on: complaint, key: customer_id, severity: critical}\n";
  std::ofstream(rules + "/r.yaml") << "rules:\n" << complaint;
  Member m = Start(Setup("reload", 2, rules), "reload.log");
  for (auto deadline = std::chrono::steady_clock::now() + 30s;
       Active(Metrics(m)) != 1.0 && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(Active(Metrics(m)), 1.0) << m.process->Output();

  // A centre-wide rule added while it runs.
  std::ofstream(rules + "/r.yaml") << "rules:\n"
                                   << complaint
                                   << "  - {name: slow_answer, family: gap, kind: match, on: answered, "
                                      "where: answered.wait > 60s, key: queue, severity: warning}\n";
  ASSERT_EQ(testing::HttpRequest("POST", m.port, "/-/reload").status, 200) << m.process->Output();
  EXPECT_NE(testing::HttpGet(m.port, "/rules").body.find(R"("name":"slow_answer","version")"), std::string::npos);
  EXPECT_NE(testing::HttpGet(m.port, "/rules").body.find(R"("scope":"centre")"), std::string::npos);

  auto answered = testing::Event("slow", kStart, "c1");
  answered.mutable_answered()->mutable_wait()->set_seconds(90);
  ASSERT_TRUE(producer_->Produce("reload.in", 0, answered.customer_id(), answered.SerializeAsString()).ok());
  for (int p = 0; p < 2; ++p) {  // every partition's watermark past it
    const auto later = Inbound(Cat("t", p), kStart + kHour, Cat("ct", p), "other");
    ASSERT_TRUE(producer_->Produce("reload.in", p, later.customer_id(), later.SerializeAsString()).ok());
  }
  ASSERT_TRUE(producer_->Flush(10'000).ok());
  std::vector<cx::v1::Finding> found;
  for (auto deadline = std::chrono::steady_clock::now() + 30s;
       found.empty() && std::chrono::steady_clock::now() < deadline;) {
    found = Findings("reload", "slow_answer");
    if (found.empty()) std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(found.size(), 1u) << Metrics(m) << m.process->Output();
  EXPECT_EQ(found[0].key(0).value(), "billing");
  EXPECT_EQ(testing::Sample(Metrics(m), "cxpulse_rule_evaluations_total", {{"rule", "slow_answer"}}), 1.0);
  m.process->Signal(SIGTERM);
  EXPECT_EQ(m.process->Wait(30s), 0) << m.process->Output();
}

// The first start of a centre stage (no offsets of its own yet) on a topic
// the group has read for a while: it starts where the group is, so the
// topic's retained history does not fire its centre findings again.
TEST_F(CentreTest, WithoutOffsetsOfItsOwnItStartsWhereTheGroupIs) {
  const std::string config = Setup("resume", 2);
  auto slow = [](const std::string& id, Micros at, const std::string& queue) {
    auto e = testing::Event(id, at, "c-" + id);
    e.set_queue(queue);
    e.mutable_answered()->mutable_wait()->set_seconds(200);  // over answer_time_over_target's 120 s
    return e;
  };
  for (int p = 0; p < 2; ++p) {  // what the group has processed already
    for (int i = 0; i < 2; ++i) {
      const auto e = slow(Cat("old", p, i), kStart + i * kMinute, "sales");
      ASSERT_TRUE(producer_->Produce("resume.in", p, e.customer_id(), e.SerializeAsString()).ok());
    }
  }
  ASSERT_TRUE(producer_->Flush(10'000).ok());
  {
    auto conf = NewKafkaConf({{"bootstrap.servers", cluster_->bootstrap_servers()}, {"group.id", "resume"}});
    ASSERT_TRUE(conf.ok());
    auto group = NewKafkaClient(RD_KAFKA_CONSUMER, *conf);
    ASSERT_TRUE(group.ok());
    PartitionList offsets(rd_kafka_topic_partition_list_new(2));
    for (int p = 0; p < 2; ++p) rd_kafka_topic_partition_list_add(offsets.get(), "resume.in", p)->offset = 2;
    ASSERT_EQ(rd_kafka_commit(group->get(), offsets.get(), 0), RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  const auto fresh = slow("new", kStart + kHour, "support");
  ASSERT_TRUE(producer_->Produce("resume.in", 1, fresh.customer_id(), fresh.SerializeAsString()).ok());
  for (int p = 0; p < 2; ++p) {
    const auto later = Inbound(Cat("t", p), kStart + 2 * kHour, Cat("ct", p), "other");
    ASSERT_TRUE(producer_->Produce("resume.in", p, later.customer_id(), later.SerializeAsString()).ok());
  }
  ASSERT_TRUE(producer_->Flush(10'000).ok());

  Member m = Start(config, "resume.log");
  std::vector<cx::v1::Finding> found;
  for (auto deadline = std::chrono::steady_clock::now() + 30s;
       found.empty() && std::chrono::steady_clock::now() < deadline;) {
    found = Findings("resume", "answer_time_over_target");
    if (found.empty()) std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(found.size(), 1u) << Metrics(m) << m.process->Output();
  EXPECT_EQ(found[0].key(0).value(), "support");  // not the old "sales" ones
  EXPECT_EQ(testing::Sample(Metrics(m), "cxpulse_rule_evaluations_total", {{"rule", "answer_time_over_target"}}), 1.0);
  EXPECT_NE(m.process->Output().find("2 from group resume's"), std::string::npos) << m.process->Output();
  m.process->Signal(SIGTERM);
  EXPECT_EQ(m.process->Wait(30s), 0) << m.process->Output();
  // Its own offsets now: the next start reads on from there.
  const auto own = testing::CommittedOffsets(cluster_->bootstrap_servers(), "resume.centre", "resume.in", 2);
  EXPECT_EQ(own, (std::vector<int64_t>{2, 3}));  // up to the last events, still held
}

}  // namespace
}  // namespace cxpulse
