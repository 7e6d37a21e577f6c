// Broker faults: the mock cluster's fault injection (librdkafka's
// rdkafka_mock.h) against a running `cxpulse run`. One test per fault. Each
// produces a known stream of sentiment events while the fault is injected,
// held for a set time and cleared; the daemon must either keep running or
// stop with exit 3 and a "stopped: ..." line (then the test restarts it, as a
// supervisor would); once the fault has cleared it processes everything, and
// a read_committed reader of the findings topic sees exactly one finding_id
// per event: none missing, none extra.
//
// The rules are one `match` rule on every sentiment event, keyed by its
// contact (unique per event), no cooldown: one finding per event, whose
// evidence names it. So the expected finding set is the events' ids, and a
// finding_id is expected iff its evidence is one produced event and no other
// finding_id names the same event.
//
// Doubles (a finding_id read more than once) are counted apart. librdkafka
// 2.0.2's mock shows the records of aborted transactions to read_committed
// readers (support/transaction_probe.h), so after an abort -- which in
// exactly_once mode always comes with an exit 3 and a restart -- doubles are
// expected on the mock and reported, not failed; where the daemon neither
// restarted nor aborted, any double fails the test.
//
// The cluster runs in this process (3 brokers, ids 1..3) so that the test can
// inject faults; the daemon is a child process. Waits are on the daemon's
// /metrics or the findings topic, with deadlines.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
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
#include "support/supervised_daemon.h"
#include "support/temp_dir.h"

namespace cxpulse {
namespace {

using namespace std::chrono_literals;
using testing::Delivery;
using Clock = std::chrono::steady_clock;

const std::string kInput = "cx.interactions";
const std::string kFindings = "cx.findings";
const std::string kDeadLetter = "cx.deadletter";
const std::string kGroup = "faults";
constexpr int kBrokers = 3;

// Kafka protocol API keys, as librdkafka's RD_KAFKAP_* name them (its
// rdkafka_protocol.h is not installed; the numbers are the protocol's).
constexpr int16_t RD_KAFKAP_Produce = 0;
constexpr int16_t RD_KAFKAP_Fetch = 1;
constexpr int16_t RD_KAFKAP_OffsetCommit = 8;
constexpr int16_t RD_KAFKAP_AddOffsetsToTxn = 25;
constexpr int16_t RD_KAFKAP_EndTxn = 26;

constexpr const char* kRules = R"(rules:
  - name: every_sentiment
    family: escalation
    kind: match
    on: sentiment
    key: [contact_id]
    severity: info
    summary: "sentiment on {contact_id}"
)";

// The daemon's resident memory in bytes (VmRSS), 0 if it is gone.
int64_t ResidentBytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("VmRSS:")) return std::stoll(line.substr(6)) * 1024;  // "VmRSS:  1234 kB"
  }
  return 0;
}

struct FindingCount {
  size_t missing = 0, extra = 0, doubled = 0, distinct = 0;
  std::string examples;  // a few of what is missing or extra
};

struct Scenario {
  int events = 2000;
  int input_partitions = 4;
  int finding_partitions = 2;
  Delivery delivery = Delivery::kExactlyOnce;
  std::chrono::milliseconds produce_over = 4000ms;  // the live stream's pace
  std::chrono::seconds finish_within = 60s;         // after the fault has cleared
  // How late an event may arrive behind its partition's newest (engine.allowed_lateness).
  std::string allowed_lateness = "1s";
};

class BrokerFaultsTest : public ::testing::Test {
 protected:
  void Prepare(const Scenario& s) {
    scenario_ = s;
    cluster_ = testing::StartCluster({{kInput, s.input_partitions},
                                      {kFindings, s.finding_partitions},
                                      {kDeadLetter, 1},
                                      {testing::ChangelogTopic(kGroup), s.input_partitions}},
                                     kBrokers);
    ASSERT_NE(cluster_, nullptr);
    std::filesystem::create_directories(dir_.path() + "/rules");
    dir_.Write("rules/faults.yaml", kRules);
    const std::string config = dir_.Write(
        "cxpulse.yaml",
        Cat("kafka:\n  brokers: ", cluster_->bootstrap_servers(), "\n  group_id: ", kGroup,
            "\n  topics: {input: ", kInput, ", findings: ", kFindings, ", dead_letter: ", kDeadLetter,
            "}\n  properties: {session.timeout.ms: 6000, heartbeat.interval.ms: 500}\n", "rules: ", dir_.path(),
            "/rules\nadmin: {address: 127.0.0.1:0}\n",
            "engine:\n  allowed_lateness: ", s.allowed_lateness, "\n  idle_partition_timeout: 1s\n  commit_interval: 200ms\n",
            testing::DeliveryLine(s.delivery)));
    daemon_ = std::make_unique<testing::SupervisedDaemon>(
        std::vector<std::string>{CXPULSE_BINARY, "run", "--config", config, "--shards", "2"}, dir_.path() + "/run");
    for (int i = 0; i < s.events; ++i) event_ids_.insert(Cat("e", i));
  }

  void TearDown() override {
    if (producing_.joinable()) producing_.join();
  }

  rd_kafka_mock_cluster_t* mock() const { return cluster_->mock(); }

  // Events i in [from, to), stamped with the wall clock as a live centre's
  // are, paced over `over` (the stream's pace, not a wait for anything), by
  // an idempotent producer: its own retries under the fault must not double
  // an event. It reconnects to a broker that is back within 500 ms: with
  // librdkafka's default (a backoff doubling up to 10 s) the records it held
  // through an outage reach the broker seconds after the broker is back and
  // has said the partition is at its end, later than the 1 s allowed here,
  // and late they are (README, "Broker faults").
  void ProduceEvents(int from, int to, std::chrono::milliseconds over) {
    auto producer = Producer::Create({{"bootstrap.servers", cluster_->bootstrap_servers()},
                                      {"enable.idempotence", "true"},
                                      {"reconnect.backoff.max.ms", "500"},
                                      {"queue.buffering.max.messages", "1000000"}});
    if (!producer.ok()) {
      produce_problem_ = std::string(producer.status().message());
      return;
    }
    const auto start = Clock::now();
    for (int i = from; i < to; ++i) {
      const auto e = testing::Sentiment(Cat("e", i), ToMicros(std::chrono::system_clock::now()), Cat("customer-", i % 97));
      if (!(*producer)->Produce(kInput, i % scenario_.input_partitions, e.customer_id(), e.SerializeAsString()).ok()) {
        produce_problem_ = "produce failed";
        return;
      }
      if (i % 100 == 0) {
        (*producer)->Poll();
        std::this_thread::sleep_until(start + over * (i - from) / std::max(1, to - from));
      }
    }
    if (!(*producer)->Flush(120'000).ok() || (*producer)->delivery_failures() > 0) {
      produce_problem_.assign("events not delivered");
    }
  }
  void ProduceLive(int from, int to, std::chrono::milliseconds over) {
    producing_ = std::thread([this, from, to, over] { ProduceEvents(from, to, over); });
  }

  // What the daemon says of its progress: per-partition lag and consumed
  // events, transactions, pauses, findings; for a failure's message.
  std::string Progress() const {
    std::string out;
    for (const testing::SampleLine& m : daemon_->current().Scrape()) {
      if (m.name != "cxpulse_consumer_lag_messages" && m.name != "cxpulse_events_consumed_total" &&
          m.name != "cxpulse_transactions_total" && m.name != "cxpulse_shards_paused" &&
          m.name != "cxpulse_findings_total" && m.name != "cxpulse_backpressure_pauses_total" &&
          m.name != "cxpulse_late_events_total" && m.name != "cxpulse_dead_letters_total") {
        continue;
      }
      if (m.value == 0) continue;
      Append(&out, "  ", m.name);
      for (const auto& [k, v] : m.labels) Append(&out, " ", k, "=", v);
      Append(&out, " ", m.value, "\n");
    }
    return out;
  }

  double Metric(const std::string& name) const { return testing::SumOf(daemon_->current().Scrape(), name); }

  // Waits (restarting the daemon whenever it exits) until `done`; false at the deadline.
  bool Supervise(const std::function<bool()>& done, std::chrono::seconds within) {
    for (const auto deadline = Clock::now() + within; Clock::now() < deadline; std::this_thread::sleep_for(250ms)) {
      if (!daemon_->Check()) {
        ADD_FAILURE() << "a restart did not come up: " << daemon_->current().process->Output();
        return false;
      }
      if (done()) return true;
    }
    return false;
  }

  // Holds a fault for `hold` (a set duration: this is the one sleep that is
  // not a wait for a condition), restarting the daemon if it exits meanwhile.
  void HoldFault(std::chrono::milliseconds hold) {
    const auto until = Clock::now() + hold;
    while (Clock::now() < until) {
      ASSERT_TRUE(daemon_->Check()) << daemon_->current().process->Output();
      std::this_thread::sleep_for(std::min<Clock::duration>(100ms, until - Clock::now()));
    }
  }

  // Every finding in the topic, counted against the produced events.
  FindingCount CountFindings(std::chrono::seconds timeout = 20s) const {
    FindingCount c;
    std::map<std::string, int> reads;                 // finding_id -> times read
    std::map<std::string, std::set<std::string>> by;  // event id -> finding_ids naming it
    for (const testing::Record& r :
         testing::ReadTopic(cluster_->bootstrap_servers(), kFindings, scenario_.finding_partitions, timeout)) {
      cx::v1::Finding f;
      if (!f.ParseFromString(r.value) || f.evidence_event_ids_size() != 1) {
        ++c.extra;
        continue;
      }
      if (++reads[f.finding_id()] == 1) by[f.evidence_event_ids(0)].insert(f.finding_id());
    }
    for (const auto& [id, n] : reads) c.doubled += n > 1;
    c.distinct = reads.size();
    for (const std::string& e : event_ids_) {
      if (by.count(e) == 0 && ++c.missing <= 5) Append(&c.examples, " missing:", e);
    }
    for (const auto& [e, ids] : by) {
      const size_t unexpected = event_ids_.count(e) == 0 ? ids.size() : ids.size() - 1;
      if (unexpected > 0 && (c.extra += unexpected) <= 5) Append(&c.examples, " extra:", e);
    }
    return c;
  }

  // The common shape: start, stream, fault, clear, finish, compare.
  void RunWithFault(const std::function<void()>& inject, std::chrono::milliseconds hold,
                    const std::function<void()>& clear) {
    const auto started = Clock::now();
    ASSERT_TRUE(daemon_->Start()) << daemon_->current().process->Output();
    ASSERT_TRUE(Supervise([&] { return testing::AssignedPartitions(daemon_->current().Scrape()).size() ==
                                       static_cast<size_t>(scenario_.input_partitions); },
                          60s))
        << "never assigned every partition: " << daemon_->current().process->Output();
    ProduceLive(0, scenario_.events, scenario_.produce_over);
    ASSERT_TRUE(Supervise([&] { return Metric("cxpulse_events_consumed_total") > 0; }, 30s))
        << "consumed nothing: " << daemon_->current().process->Output();
    inject();
    HoldFault(hold);
    clear();
    producing_.join();
    ASSERT_EQ(produce_problem_, "");
    const auto cleared = Clock::now();
    FindingCount c;
    const bool finished = Supervise(
        [&] {
          c = CountFindings(5s);
          return c.missing == 0;
        },
        scenario_.finish_within);
    const double after_clear = std::chrono::duration<double>(Clock::now() - cleared).count();
    const std::string progress = Progress();
    const int code = daemon_->Stop(60s);
    c = CountFindings();
    Report(c, after_clear, std::chrono::duration<double>(Clock::now() - started).count());
    EXPECT_TRUE(finished) << "not everything processed within " << scenario_.finish_within.count()
                          << " s of the fault clearing;" << c.examples << "\nmetrics then:\n" << progress
                          << EarlierLogs() << "log:\n" << daemon_->current().process->Output();
    EXPECT_EQ(code, 0) << "after the fault, SIGTERM: " << daemon_->current().process->Output();
    ExpectExactlyTheEvents(c);
  }

  // What each run that exited printed, for a failure's message.
  std::string EarlierLogs() const {
    std::string out;
    for (size_t i = 0; i < daemon_->exits().size(); ++i) {
      Append(&out, "log of run ", i + 1, " (exit ", daemon_->exits()[i].code, "):\n", daemon_->exits()[i].log);
    }
    return out;
  }

  void Report(const FindingCount& c, double after_clear, double total) {
    std::printf("%zu events: %zu finding ids, %zu missing, %zu extra, %zu doubled; %zu exit(s)", event_ids_.size(),
                c.distinct, c.missing, c.extra, c.doubled, daemon_->exits().size());
    for (const auto& e : daemon_->exits()) std::printf(" [code %d: %s]", e.code, e.reason.c_str());
    std::printf("; everything in %.1f s after the fault cleared, %.1f s in all\n", after_clear, total);
    // Dead letters by reason, and the first of each (its source and error).
    std::map<std::string, std::pair<int, std::string>> dead;
    for (const testing::Record& r : testing::ReadTopic(cluster_->bootstrap_servers(), kDeadLetter, 1, 10s)) {
      auto header = [&](const std::string& name) { return r.headers.count(name) ? r.headers.at(name) : "-"; };
      auto& [n, first] = dead[header("cxpulse.reason")];
      if (n++ == 0) first = Cat(header("cxpulse.source"), ": ", header("cxpulse.error"));
    }
    for (const auto& [reason, d] : dead) std::printf("dead letters: %d %s (first: %s)\n", d.first, reason.c_str(), d.second.c_str());
    RecordProperty("missing", static_cast<int>(c.missing));
    RecordProperty("extra", static_cast<int>(c.extra));
    RecordProperty("doubled", static_cast<int>(c.doubled));
    RecordProperty("exits", static_cast<int>(daemon_->exits().size()));
  }

  // None missing, none extra; each exit an exit 3 with its reason; doubles
  // fail only where nothing restarted (see the header).
  void ExpectExactlyTheEvents(const FindingCount& c) {
    EXPECT_EQ(c.missing, 0u) << c.examples;
    EXPECT_EQ(c.extra, 0u) << c.examples;
    for (const auto& e : daemon_->exits()) {
      EXPECT_EQ(e.code, 3) << e.reason;
      EXPECT_TRUE(e.reason.starts_with("stopped: ")) << e.reason;
    }
    if (daemon_->exits().empty()) {
      EXPECT_EQ(c.doubled, 0u) << "read twice without any restart or abort";
    } else if (c.doubled > 0) {
      std::printf("%zu doubled after a restart: expected on the 2.0.2 mock (aborted transactions visible)\n",
                  c.doubled);
    }
  }

  Scenario scenario_;
  testing::TempDir dir_;
  std::unique_ptr<EmbeddedCluster> cluster_;
  std::unique_ptr<testing::SupervisedDaemon> daemon_;
  std::set<std::string> event_ids_;
  std::thread producing_;
  std::string produce_problem_;
};

// Broker 2 down for 4 s while events stamped with the wall clock are
// produced: the events of the partitions it leads, read once it is back, must
// not be late. Defects this found, each fixed: the consumer's statistics said
// "fetched to the end" while records still waited in the shard's queue (an
// answer now counts only once the shard has read through the offset it
// names, and only from a leader up for two fetch waits); an end of partition
// read late, after a commit had held the shard up, let the idle clock run
// past the records behind it (WatermarkTest.AnEndReadLateDoesNotMakeTheRecordsBehindItLate);
// and librdkafka's reconnect backoff (doubling up to 10 s) outlasted a 10 s
// transaction (cxpulse now defaults reconnect.backoff.max.ms to 1 s).
TEST_F(BrokerFaultsTest, BrokerDownThenUp) {
  Scenario s;
  s.delivery = Delivery::kAtLeastOnce;
  Prepare(s);
  RunWithFault([&] { rd_kafka_mock_broker_set_down(mock(), 2); }, 4000ms,
               [&] { rd_kafka_mock_broker_set_up(mock(), 2); });
}

// The same with exactly once. Where the outage still times out a
// transaction (exit 3), the 2.0.2 mock shows the aborted transaction's
// changelog records to the restart's read_committed restore, so the restored
// state can be ahead of the findings and some go missing; a real cluster
// hides aborted records (support/transaction_probe.h).
TEST_F(BrokerFaultsTest, BrokerDownThenUpExactlyOnce) {
  Prepare({});
  RunWithFault([&] { rd_kafka_mock_broker_set_down(mock(), 2); }, 4000ms,
               [&] { rd_kafka_mock_broker_set_up(mock(), 2); });
}

TEST_F(BrokerFaultsTest, ProduceRequestErrors) {
  Prepare({});
  RunWithFault(
      [&] {
        rd_kafka_mock_push_request_errors(mock(), RD_KAFKAP_Produce, 6, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                          RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                          RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                          RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE);
      },
      2000ms, [] {});
}

TEST_F(BrokerFaultsTest, FetchErrors) {
  Prepare({});
  RunWithFault(
      [&] {
        rd_kafka_mock_push_request_errors(mock(), RD_KAFKAP_Fetch, 6, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                          RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
                                          RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                          RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
      },
      2000ms, [] {});
}

// With exactly_once the consumer also commits the offsets each transaction
// committed (rd_kafka_commit), so OffsetCommit errors reach it in both modes.
TEST_F(BrokerFaultsTest, OffsetCommitErrors) {
  Prepare({});
  RunWithFault(
      [&] {
        rd_kafka_mock_push_request_errors(mock(), RD_KAFKAP_OffsetCommit, 5, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
                                          RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                          RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
                                          RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE);
      },
      2000ms, [] {});
}

// Retriable coordinator errors on both, and one abortable error
// (GROUP_AUTHORIZATION_FAILED on AddOffsetsToTxn: librdkafka makes the
// transaction abortable; the shard aborts it and stops with exit 3).
TEST_F(BrokerFaultsTest, AddOffsetsToTxnAndEndTxnErrors) {
  Prepare({});
  RunWithFault(
      [&] {
        rd_kafka_mock_push_request_errors(mock(), RD_KAFKAP_AddOffsetsToTxn, 3,
                                          RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
                                          RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED);
        rd_kafka_mock_push_request_errors(mock(), RD_KAFKAP_EndTxn, 3, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
                                          RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
                                          RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS);
      },
      3000ms, [] {});
}

// The group's coordinator moves twice. The shards' transactional ids are
// random per process (pipeline.cc: group, a random instance, the shard), so
// no test can name them to rd_kafka_mock_coordinator_set; the mock hashes an
// unnamed key to a broker. So a shard's transaction coordinator moves only in
// BrokerDownThenUp (when the broker taken down is the one it hashed to).
TEST_F(BrokerFaultsTest, GroupCoordinatorMoves) {
  Prepare({});
  RunWithFault([&] { rd_kafka_mock_coordinator_set(mock(), "group", kGroup.c_str(), 2); }, 2000ms,
               [&] { rd_kafka_mock_coordinator_set(mock(), "group", kGroup.c_str(), 3); });
}

// The centre stage's transactional id is named (`<group_id>-centre`, one
// per group), so its transaction coordinator can be moved, twice, while it
// commits every interval; the shards' ids are random, so theirs cannot.
TEST_F(BrokerFaultsTest, TheCentreStagesTransactionCoordinatorMoves) {
  Prepare({});
  const std::string id = kGroup + "-centre";
  RunWithFault([&] { rd_kafka_mock_coordinator_set(mock(), "transaction", id.c_str(), 2); }, 2000ms,
               [&] { rd_kafka_mock_coordinator_set(mock(), "transaction", id.c_str(), 3); });
}

TEST_F(BrokerFaultsTest, PartitionLeadersMove) {
  Prepare({});
  const auto move_all = [&](int shift) {
    for (int p = 0; p < scenario_.input_partitions; ++p) {
      rd_kafka_mock_partition_set_leader(mock(), kInput.c_str(), p, 1 + (p + shift) % kBrokers);
      rd_kafka_mock_partition_set_leader(mock(), testing::ChangelogTopic(kGroup).c_str(), p,
                                         1 + (p + shift + 1) % kBrokers);
    }
    for (int p = 0; p < scenario_.finding_partitions; ++p) {
      rd_kafka_mock_partition_set_leader(mock(), kFindings.c_str(), p, 1 + (p + shift + 2) % kBrokers);
    }
  };
  RunWithFault([&] { move_all(1); }, 2000ms, [&] { move_all(2); });
}

// An event reaches the daemon 600 ms or more after it was stamped (a round
// trip to produce it, one to fetch it), more under load: beyond a 1 s
// lateness it is late by definition, which is not what this test is about.
TEST_F(BrokerFaultsTest, BrokerRoundTripTime) {
  Scenario s;
  s.allowed_lateness = "10s";
  Prepare(s);
  RunWithFault(
      [&] {
        for (int b = 1; b <= kBrokers; ++b) rd_kafka_mock_broker_set_rtt(mock(), b, 300);
      },
      4000ms,
      [&] {
        for (int b = 1; b <= kBrokers; ++b) rd_kafka_mock_broker_set_rtt(mock(), b, 0);
      });
}

// Backpressure: the findings partitions have no leader while 150k events
// (each a finding) are read, so each shard's producer holds more than its
// 50,000-message pause threshold; the shards pause their partitions, and
// resume once the leaders are back. at_least_once, so that a shard does not
// block in a transaction's commit instead. 150k events over 6 input and 4
// findings partitions: at most 37.5k a partition, below the mock's 100k.
//
// Memory bound, 1 GB: each shard's producer holds at most about 50k
// findings (~0.5 KB each, ~25 MB) plus a fetched batch before it pauses, and
// the consumer's prefetch is bounded by librdkafka's queued.max.messages.kbytes
// (64 MB per partition, 6 partitions: ~400 MB worst case). Unbounded
// buffering of 150k findings and their events would not pass it by itself,
// but a daemon that never paused would keep growing with the input.
TEST_F(BrokerFaultsTest, BackpressurePausesWhileFindingsHaveNoLeader) {
  Scenario s;
  s.events = 150'000;
  s.input_partitions = 6;
  s.finding_partitions = 4;
  s.delivery = Delivery::kAtLeastOnce;
  s.finish_within = 150s;
  Prepare(s);
  const auto started = Clock::now();
  ProduceEvents(0, s.events, 0ms);  // up front, as fast as it goes
  ASSERT_EQ(produce_problem_, "");
  for (int p = 0; p < s.finding_partitions; ++p) rd_kafka_mock_partition_set_leader(mock(), kFindings.c_str(), p, -1);
  ASSERT_TRUE(daemon_->Start()) << daemon_->current().process->Output();

  int64_t peak = 0;
  const auto rss = [&] {
    peak = std::max(peak, ResidentBytes(daemon_->current().process->pid()));
    return true;
  };
  const bool paused = Supervise([&] { return rss() && Metric("cxpulse_shards_paused") >= 1; }, 90s);
  const double pauses = Metric("cxpulse_backpressure_pauses_total");
  // Holds the fault a set time while paused: memory must stay bounded meanwhile.
  for (const auto until = Clock::now() + 3s; Clock::now() < until; std::this_thread::sleep_for(100ms)) rss();
  for (int p = 0; p < s.finding_partitions; ++p) {
    rd_kafka_mock_partition_set_leader(mock(), kFindings.c_str(), p, 1 + p % kBrokers);
  }
  EXPECT_TRUE(paused) << "no shard paused; log:\n" << daemon_->current().process->Output();
  EXPECT_GT(pauses, 0);
  const auto cleared = Clock::now();
  const bool resumed = Supervise(
      [&] {
        rss();
        const auto m = daemon_->current().Scrape();
        return testing::SumOf(m, "cxpulse_shards_paused") == 0 &&
               testing::SumOf(m, "cxpulse_findings_total") >= s.events &&
               testing::AssignedPartitions(m).size() == static_cast<size_t>(s.input_partitions) &&
               testing::SumOf(m, "cxpulse_consumer_lag_messages") == 0;
      },
      s.finish_within);
  EXPECT_TRUE(resumed) << "did not resume and finish; log:\n" << daemon_->current().process->Output();
  const double after_clear = std::chrono::duration<double>(Clock::now() - cleared).count();
  const int code = daemon_->Stop(60s);
  const FindingCount c = CountFindings(120s);
  std::printf("backpressure: paused=%d, pauses_total=%.0f, peak VmRSS %.1f MB\n", paused ? 1 : 0, pauses,
              static_cast<double>(peak) / (1 << 20));
  Report(c, after_clear, std::chrono::duration<double>(Clock::now() - started).count());
  RecordProperty("peak_rss_mb", static_cast<int>(peak >> 20));
  EXPECT_LT(peak, int64_t{1} << 30) << "resident memory while the findings had no leader";
  EXPECT_EQ(code, 0) << daemon_->current().process->Output();
  // at_least_once allows doubles by design (finding_id is there to drop them);
  // with no restart there should be none, and ExpectExactlyTheEvents says so.
  ExpectExactlyTheEvents(c);
}

}  // namespace
}  // namespace cxpulse
