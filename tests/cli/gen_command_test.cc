// `cxpulse gen` and `cxpulse mock-kafka` as a script or a benchmark runs them: the real
// binary as a child process, its files read back, its topic read back with librdkafka
// and with kcat.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "common/strings.h"
#include "common/time.h"
#include "cx/v1/event.pb.h"
#include "support/child_process.h"
#include "support/command.h"
#include "support/event_files.h"
#include "support/events.h"
#include "support/kafka_reader.h"
#include "support/temp_dir.h"

namespace cxpulse {
namespace {

using namespace std::chrono_literals;
using testing::CommandRun;
using testing::Cxpulse;
using testing::kMinute;
using testing::kT0;
using testing::ReadEvents;
using testing::ReadFile;
using testing::ReadLines;
using testing::RunProgram;

// A fixed simulated start, so runs with the same seed are byte-for-byte the same.
const std::string kStart = FormatTime(kT0);

TEST(GenCommandTest, JsonLinesHoldOneCompleteEventEachAndTheSameSeedRepeatsThem) {
  testing::TempDir dir;
  const std::string a = dir.path() + "/a.jsonl", b = dir.path() + "/b.jsonl", c = dir.path() + "/c.jsonl";
  for (const auto& [file, seed] : {std::pair{a, "3"}, std::pair{b, "3"}, std::pair{c, "4"}}) {
    const CommandRun r = Cxpulse(
        dir, {"gen", "--output", file, "--format", "jsonl", "--events", "1000", "--seed", seed, "--start", kStart});
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("gen: 1000 events, "), std::string::npos) << r.output;
  }

  const std::vector<cx::v1::InteractionEvent> events = ReadEvents(a);
  ASSERT_EQ(events.size(), 1000u);
  std::set<std::string> customers;
  for (const auto& e : events) {
    EXPECT_NE(e.body_case(), cx::v1::InteractionEvent::BODY_NOT_SET) << e.ShortDebugString();
    EXPECT_FALSE(e.customer_id().empty()) << e.ShortDebugString();
    EXPECT_GE(ToMicros(e.occurred_at()), kT0);
    customers.insert(e.customer_id());
  }
  EXPECT_GT(customers.size(), 100u);  // traffic from many customers, not one
  EXPECT_EQ(ReadFile(a), ReadFile(b));
  EXPECT_NE(ReadFile(a), ReadFile(c));
}

TEST(GenCommandTest, DelimitedProtobufToAFileAndJsonLinesToStdout) {
  testing::TempDir dir;
  const std::string file = dir.path() + "/events.pb";
  ASSERT_EQ(Cxpulse(dir, {"gen", "--output", file, "--format", "proto", "--events", "50", "--start", kStart}).code, 0);
  const std::vector<cx::v1::InteractionEvent> events = ReadEvents(file);
  ASSERT_EQ(events.size(), 50u);
  for (const auto& e : events) EXPECT_FALSE(e.customer_id().empty());

  // Stdout carries only events; the summary goes to stderr (the test sees both).
  const CommandRun r = Cxpulse(dir, {"gen", "--output", "-", "--events", "20", "--start", kStart});
  ASSERT_EQ(r.code, 0) << r.output;
  int json_lines = 0;
  for (const std::string& line : ReadLines(dir.path() + "/out.txt")) json_lines += line.starts_with("{\"eventId\"");
  EXPECT_EQ(json_lines, 20) << r.output;
}

std::string FindKcat() {
  for (const char* p : {"/usr/bin/kcat", "/usr/local/bin/kcat", "/usr/bin/kafkacat"}) {
    if (std::filesystem::exists(p)) return p;
  }
  return "";
}

TEST(GenCommandTest, ProducesKeyedEventsToAMockKafkaThatKcatReadsToo) {
  testing::TempDir dir;
  testing::ChildProcess kafka({CXPULSE_BINARY, "mock-kafka", "--topic", "cx.interactions:4"},
                              dir.path() + "/mock-kafka.log");
  ASSERT_TRUE(kafka.started());
  // The bootstrap servers are the first line on stdout.
  const std::optional<std::string> bootstrap =
      kafka.WaitFor(R"((?:^|\n)([A-Za-z0-9.\-]+:\d+(?:,[A-Za-z0-9.\-]+:\d+)*)\n)", 30s);
  ASSERT_TRUE(bootstrap) << kafka.Output();

  const CommandRun gen = Cxpulse(dir, {"gen", "--brokers", *bootstrap, "--events", "5000", "--seed", "9"});
  ASSERT_EQ(gen.code, 0) << gen.output;
  EXPECT_NE(gen.output.find("gen: 5000 events, "), std::string::npos) << gen.output;

  const std::vector<testing::Record> records = testing::ReadTopic(*bootstrap, "cx.interactions", 4);
  ASSERT_EQ(records.size(), 5000u);
  std::set<int32_t> partitions;
  for (const testing::Record& r : records) {
    cx::v1::InteractionEvent e;
    ASSERT_TRUE(e.ParseFromString(r.value));
    ASSERT_EQ(r.key, e.customer_id());
    partitions.insert(r.partition);
  }
  EXPECT_EQ(partitions.size(), 4u);  // keyed by customer, spread over every partition

  const std::string kcat = FindKcat();
  ASSERT_FALSE(kcat.empty()) << "kcat not found: deploy/install-deps.sh installs it";
  const CommandRun read = RunProgram(
      dir, kcat, {"-C", "-b", *bootstrap, "-t", "cx.interactions", "-o", "beginning", "-e", "-q", "-f", "%k\n"});
  ASSERT_EQ(read.code, 0) << read.output;
  const std::vector<std::string> keys = ReadLines(dir.path() + "/out.txt");
  EXPECT_EQ(keys.size(), 5000u);
  for (const std::string& key : keys) {
    ASSERT_TRUE(key.starts_with("c")) << key;
  }

  kafka.Signal(SIGTERM);
  EXPECT_EQ(kafka.Wait(30s), 0) << kafka.Output();
}

TEST(GenCommandTest, UndeliveredEventsExitOne) {
  testing::TempDir dir;
  // Nothing listens on port 1: every message times out.
  const CommandRun r = Cxpulse(
      dir, {"gen", "--brokers", "127.0.0.1:1", "--events", "10", "--kafka-property", "message.timeout.ms=1000"});
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("10 of 10 events were not delivered to cx.interactions at 127.0.0.1:1"), std::string::npos)
      << r.output;
}

TEST(GenCommandTest, UsageErrorsExitTwo) {
  testing::TempDir dir;
  EXPECT_EQ(Cxpulse(dir, {"gen", "--events", "10"}).code, 2);  // no destination
  EXPECT_EQ(Cxpulse(dir, {"gen", "--output", "-", "--brokers", "127.0.0.1:9092"}).code, 2);
  const CommandRun r = Cxpulse(dir, {"gen", "--output", "-", "--incident", "agents-lost:night_shift:1m:5m"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("unknown queue \"night_shift\""), std::string::npos) << r.output;
  EXPECT_EQ(Cxpulse(dir, {"mock-kafka", "--topic", "cx.interactions"}).code, 2);  // no partition count
}

// Events of `path` in [from, to) of simulated time.
std::vector<cx::v1::InteractionEvent> InWindow(const std::string& path, Micros from, Micros to) {
  std::vector<cx::v1::InteractionEvent> out;
  for (auto& e : ReadEvents(path)) {
    const Micros at = ToMicros(e.occurred_at());
    if (at >= from && at < to) out.push_back(std::move(e));
  }
  return out;
}

TEST(GenCommandTest, ASurgeRaisesItsReasonInItsWindow) {
  testing::TempDir dir;
  const std::string quiet = dir.path() + "/quiet.jsonl", surge = dir.path() + "/surge.jsonl";
  const std::vector<std::string> common = {"--duration", "5m", "--rate", "20", "--seed", "5", "--start", kStart};
  std::vector<std::string> args = {"gen", "--output", quiet};
  args.insert(args.end(), common.begin(), common.end());
  ASSERT_EQ(Cxpulse(dir, args).code, 0);
  args[2] = surge;
  args.insert(args.end(), {"--incident", "surge:outage:2m:3m:20"});
  ASSERT_EQ(Cxpulse(dir, args).code, 0);

  // Contacts about outages started during the surge: ~ 20/s * 8/94 * 180s = 300 without,
  // 3600 more with it.
  const auto outages = [](const std::string& path) {
    int n = 0;
    for (const auto& e : InWindow(path, kT0 + 2 * kMinute, kT0 + 5 * kMinute)) {
      n += e.reason() == "outage" && e.has_contact_started();
    }
    return n;
  };
  const int without = outages(quiet), with = outages(surge);
  EXPECT_GT(without, 150);
  EXPECT_LT(without, 500);
  EXPECT_GT(with - without, 3000);
  EXPECT_LT(with - without, 4200);
  // And the run stops at --duration.
  EXPECT_TRUE(InWindow(surge, kT0 + 5 * kMinute + 1, INT64_MAX).empty());
}

TEST(GenCommandTest, LosingAgentsMakesThatQueueWaitLongerAndAbandonMore) {
  testing::TempDir dir;
  // Delimited protobuf: a large run, and much faster to read back than JSON.
  const std::string normal = dir.path() + "/normal.pb", short_staffed = dir.path() + "/short.pb";
  const std::vector<std::string> common = {"--duration", "25m", "--rate", "30", "--seed", "5", "--start", kStart};
  std::vector<std::string> args = {"gen", "--output", normal, "--format", "proto"};
  args.insert(args.end(), common.begin(), common.end());
  ASSERT_EQ(Cxpulse(dir, args).code, 0);
  args[2] = short_staffed;
  args.insert(args.end(), {"--incident", "agents-lost:billing:5m:15m:0.25"});
  ASSERT_EQ(Cxpulse(dir, args).code, 0);

  struct QueueStats {
    int answered = 0;
    int abandoned = 0;
    double mean_wait_s = 0;  // voice: other channels' waits run past the window
  };
  const auto stats = [](const std::string& path, const std::string& queue) {
    QueueStats s;
    double waits = 0;
    for (const auto& e : InWindow(path, kT0 + 5 * kMinute, kT0 + 20 * kMinute)) {
      if (e.queue() != queue) continue;
      if (e.has_answered() && e.channel() == cx::v1::CHANNEL_VOICE) {
        ++s.answered;
        waits += static_cast<double>(ToMicros(e.answered().wait())) / kMicrosPerSecond;
      }
      s.abandoned += e.has_abandoned();
    }
    s.mean_wait_s = s.answered > 0 ? waits / s.answered : 0;
    return s;
  };
  const QueueStats before = stats(normal, "billing"), during = stats(short_staffed, "billing");
  ASSERT_GT(before.answered, 200);
  EXPECT_GT(during.mean_wait_s, 2 * before.mean_wait_s) << before.mean_wait_s << "s vs " << during.mean_wait_s;
  EXPECT_GT(during.abandoned, 2 * before.abandoned) << before.abandoned << " vs " << during.abandoned;
  // Other queues keep their staff.
  const QueueStats sales_before = stats(normal, "sales"), sales_during = stats(short_staffed, "sales");
  EXPECT_LT(sales_during.mean_wait_s, 1.5 * sales_before.mean_wait_s);
}

}  // namespace
}  // namespace cxpulse
