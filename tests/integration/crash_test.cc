// Crash test (issue 10): a seeded stream of generated contact-centre traffic
// (`cxpulse gen`), read by `cxpulse run` once without interruption and once
// killed with SIGKILL at random points and restarted until it has read
// everything. What a read_committed consumer of the findings topic sees, and
// the KPIs after the last restart, must be those of the uninterrupted run. A
// variant stops it with SIGTERM instead: then, also, nothing is read twice.
//
// The mock cluster runs as a child process (`cxpulse mock-kafka`) and
// outlives every daemon the test kills. librdkafka 2.0.2's mock shows the
// messages of aborted and open transactions to read_committed readers and
// does not store offsets sent in a transaction (probed at start:
// support/transaction_probe.h). So findings are compared as sets of
// finding_id (none missing, none extra: always asserted), and a finding_id
// read more often than in the uninterrupted run counts as doubled: a failure
// in exactly_once mode on a cluster that hides aborted transactions and
// stores their offsets, reported otherwise. at_least_once allows doubles by
// design (finding_id is there to drop them downstream). A graceful stop
// leaves no transaction open, so the SIGTERM variant fails on any double.
//
// The stream is generated to a file first, then produced while the daemons
// run, spread over 40 s: a live topic, so that the daemon commits as it goes
// and a kill lands mid-stream behind a commit (read all at once, the whole
// stream is consumed before the first commit, ~1 s in, and every restart
// would begin from the start). A kill comes once the run has consumed a
// seeded number of events and committed something (the group's offsets or
// the changelog moved). Waits are on what the daemon's /metrics shows
// (events consumed, each partition's watermark at its last event, lag 0,
// the centre stage's watermark) or the cluster's offsets, with deadlines.
//
// Scale: CXPULSE_CRASH_EVENTS (default 200000), CXPULSE_CRASH_KILLS (5),
// CXPULSE_CRASH_SEED (1); tests/crash_long.sh runs 1M events and 10 kills.
// The input topic gets 16 partitions, more for larger streams, so that none
// passes the mock's limits (100k messages, 5 MB); the test checks it did not.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <iomanip>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/strings.h"
#include "common/time.h"
#include "cx/v1/event.pb.h"
#include "cx/v1/finding.pb.h"
#include "kafka/client.h"
#include "support/command.h"
#include "support/daemon_process.h"
#include "support/durability_config.h"
#include "support/event_files.h"
#include "support/kafka_reader.h"
#include "support/metrics_text.h"
#include "support/mock_kafka_process.h"
#include "support/temp_dir.h"
#include "support/transaction_probe.h"

namespace cxpulse {
namespace {

using namespace std::chrono_literals;
using testing::Delivery;
using testing::RunningDaemon;
using testing::SampleLine;
using Clock = std::chrono::steady_clock;

const std::string kInput = "cx.interactions";
const std::string kProbeTopic = "transaction-probe";
constexpr int kFindingPartitions = 4;
constexpr Micros kLateness = 30 * kMicrosPerSecond;
constexpr auto kProduceOver = 40s;
// A fixed simulated start well before today, so every event is in the past
// and the same seed gives the same stream.
constexpr const char* kStart = "2026-09-21T06:00:00Z";

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

struct Scale {
  int events = EnvInt("CXPULSE_CRASH_EVENTS", 200'000);
  int kills = EnvInt("CXPULSE_CRASH_KILLS", 5);
  int seed = EnvInt("CXPULSE_CRASH_SEED", 1);
  // About 12.5k events (3 MB) a partition at most.
  int partitions = std::max(16, (events + 12'499) / 12'500);
};

std::string FindingsTopic(const std::string& group) { return group + "-findings"; }
std::string DeadLetterTopic(const std::string& group) { return group + "-deadletter"; }

// Block style, so that the durability lines go where they belong. No idle
// advance (1h): event time alone moves every clock, so findings depend on the
// stream only. The centre stage may hold the whole stream: never released
// early, whatever the order partitions are fetched in.
std::string DaemonConfig(const std::string& brokers, const std::string& group, int events,
                         testing::Delivery delivery) {
  return Cat("kafka:\n  brokers: ", brokers, "\n  group_id: ", group, "\n  topics: {input: ", kInput,
             ", findings: ", FindingsTopic(group), ", dead_letter: ", DeadLetterTopic(group),
             "}\n  properties: {session.timeout.ms: 6000, heartbeat.interval.ms: 500}\n",
             "rules: ", CXPULSE_RULES_DIR, "\nadmin: {address: 127.0.0.1:0}\n",
             "engine:\n  allowed_lateness: 30s\n  idle_partition_timeout: 1h\n  commit_interval: 200ms\n",
             "  centre_max_held_events: ", std::max(events + 1000, 262'144), "\n", testing::DeliveryLine(delivery));
}

// What a run left: findings by id as a read_committed consumer reads them,
// and every KPI series after its last restart had caught up.
struct Outcome {
  std::map<std::string, int> reads;         // finding_id -> times read
  std::map<std::string, std::string> what;  // finding_id -> rule, key, time
  std::map<std::string, double> kpis;       // series -> value
  double consumed = 0;                      // by its last process
  std::string problems;                     // what went wrong running it, not comparing it
};

std::string SeriesName(const SampleLine& s) {
  std::string out = s.name + "{";
  for (const auto& [k, v] : s.labels) Append(&out, out.back() == '{' ? "" : ",", k, "=", v);
  return out + "}";
}

std::string Describe(const cx::v1::Finding& f) {
  std::string out = f.rule() + "[";
  for (int i = 0; i < f.key_size(); ++i) Append(&out, i > 0 ? "," : "", f.key(i).value());
  return Cat(out, "] at ", FormatTime(ToMicros(f.fired_at())));
}

// Every finding in both, as sets of finding_id; what one has and the other
// has not, by rule and the first few of each. Empty when the sets are equal.
std::string CompareFindingSets(const Outcome& got, const Outcome& want, size_t* missing, size_t* extra) {
  std::vector<std::string> only_want, only_got;
  for (const auto& [id, n] : want.reads) {
    if (got.reads.count(id) == 0) only_want.push_back(id);
  }
  for (const auto& [id, n] : got.reads) {
    if (want.reads.count(id) == 0) only_got.push_back(id);
  }
  *missing = only_want.size();
  *extra = only_got.size();
  if (only_want.empty() && only_got.empty()) return "";
  std::ostringstream out;
  const auto list = [&out](const char* title, const std::vector<std::string>& ids, const Outcome& from) {
    std::map<std::string, int> by_rule;
    for (const std::string& id : ids) ++by_rule[from.what.at(id).substr(0, from.what.at(id).find('['))];
    out << "  " << ids.size() << " " << title << ":";
    for (const auto& [rule, n] : by_rule) out << " " << rule << "=" << n;
    out << "\n";
    for (size_t i = 0; i < ids.size() && i < 15; ++i) out << "    " << from.what.at(ids[i]) << " (" << ids[i] << ")\n";
  };
  out << "findings differ from the uninterrupted run's (by finding_id, as sets)\n";
  list("missing", only_want, want);
  list("extra", only_got, got);
  return out.str();
}

// finding_ids read more often than in the uninterrupted run.
std::string Doubles(const Outcome& got, const Outcome& want, size_t* doubled) {
  std::map<std::string, int> by_rule;
  std::vector<std::string> ids;
  for (const auto& [id, n] : got.reads) {
    const auto w = want.reads.find(id);
    if (n <= (w == want.reads.end() ? 1 : w->second)) continue;
    ids.push_back(id);
    ++by_rule[got.what.at(id).substr(0, got.what.at(id).find('['))];
  }
  *doubled = ids.size();
  if (ids.empty()) return "";
  std::ostringstream out;
  out << ids.size() << " finding_ids read more often than in the uninterrupted run:";
  for (const auto& [rule, n] : by_rule) out << " " << rule << "=" << n;
  out << "\n";
  for (size_t i = 0; i < ids.size() && i < 10; ++i) {
    out << "    " << got.what.at(ids[i]) << " x" << got.reads.at(ids[i]) << "\n";
  }
  return out.str();
}

// Sums of seconds may differ in their last bits with the order they were
// added in; counts are exact either way.
bool SameKpi(double a, double b) { return std::abs(a - b) <= 1e-9 * std::max(std::abs(a), std::abs(b)); }

std::string CompareKpis(const Outcome& got, const Outcome& want) {
  std::vector<std::string> lines;
  std::set<std::string> names;
  for (const auto& [n, v] : got.kpis) names.insert(n);
  for (const auto& [n, v] : want.kpis) names.insert(n);
  for (const std::string& n : names) {
    const auto g = got.kpis.find(n), w = want.kpis.find(n);
    if (g != got.kpis.end() && w != want.kpis.end() && SameKpi(g->second, w->second)) continue;
    std::ostringstream l;
    l << std::setprecision(12) << "    " << n << ": after restarts "
      << (g == got.kpis.end() ? "absent" : std::to_string(g->second)) << ", uninterrupted "
      << (w == want.kpis.end() ? "absent" : std::to_string(w->second));
    lines.push_back(l.str());
  }
  if (lines.empty()) return "";
  std::ostringstream out;
  out << lines.size() << " of " << want.kpis.size() << " KPI series differ from the uninterrupted run's\n";
  for (size_t i = 0; i < lines.size() && i < 25; ++i) out << lines[i] << "\n";
  return out.str();
}

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<std::string> topics = {Cat(kInput, ":", scale_.partitions), kProbeTopic + ":1"};
    for (const char* group : {"uninterrupted", "killed", "stopped"}) {
      topics.push_back(Cat(FindingsTopic(group), ":", kFindingPartitions));
      topics.push_back(Cat(DeadLetterTopic(group), ":1"));
      topics.push_back(Cat(testing::ChangelogTopic(group), ":", scale_.partitions));
    }
    mock_ = std::make_unique<testing::MockKafkaProcess>(topics, dir_.path() + "/mock-kafka.log");
    ASSERT_FALSE(mock_->bootstrap().empty()) << mock_->Output();

    // About 8 simulated hours at 200k events: long enough for reason_surge's
    // 6 h baseline, with a surge and a staffing drop to fire the centre-wide rules.
    const auto started = Clock::now();
    const std::string file = dir_.path() + "/events.pb";
    const testing::CommandRun gen = testing::RunProgram(
        dir_, CXPULSE_BINARY,
        {"gen", "--output", file, "--format", "proto", "--events", std::to_string(scale_.events), "--seed",
         std::to_string(scale_.seed), "--start", kStart, "--rate", "1.2", "--customers", "20000",
         "--time-compression", "3", "--incident", "surge:outage:22800s:25m:0.5", "--incident",
         "agents-lost:billing:3h:1h:0.2"},
        600s);
    ASSERT_EQ(gen.code, 0) << gen.output;
    events_ = testing::ReadEvents(file);
    ASSERT_EQ(events_.size(), static_cast<size_t>(scale_.events));
    std::promise<std::string> produced;
    produced_ = produced.get_future().share();
    live_ = std::thread([this, p = std::move(produced)]() mutable { p.set_value(ProduceLive()); });
    transactions_ = testing::ProbeTransactions(mock_->bootstrap(), kProbeTopic);
    std::printf("stream: %d events over %d partitions (seed %d), generated in %.1f s; transactions: %s%s%s\n",
                scale_.events, scale_.partitions, scale_.seed,
                std::chrono::duration<double>(Clock::now() - started).count(),
                transactions_.hides_aborted ? "aborted ones hidden" : "aborted ones VISIBLE to read_committed",
                transactions_.stores_offsets ? ", offsets stored" : ", offsets sent in them NOT stored",
                transactions_.problem.empty() ? "" : (" (" + transactions_.problem + ")").c_str());
  }

  void TearDown() override {
    stop_producing_.store(true);
    if (live_.joinable()) live_.join();
  }

  // Produces the stream to the input topic at an even pace over
  // kProduceOver (keyed by customer, librdkafka's partitioner, as `gen`
  // does); then checks all of it is there and notes each partition's last
  // event time. Returns what went wrong. Its own thread.
  std::string ProduceLive() {
    auto producer = Producer::Create({{"bootstrap.servers", mock_->bootstrap()}});
    if (!producer.ok()) return std::string(producer.status().message());
    const auto start = Clock::now();
    const double per_second = scale_.events / std::chrono::duration<double>(kProduceOver).count();
    for (size_t i = 0; i < events_.size() && !stop_producing_.load(); ++i) {
      const auto& e = events_[i];
      if (!(*producer)->Produce(kInput, RD_KAFKA_PARTITION_UA, e.customer_id(), e.SerializeAsString()).ok()) {
        return "produce failed";
      }
      if (i % 500 == 0) {
        (*producer)->Poll();
        // The stream's pace, not a wait for anything.
        std::this_thread::sleep_until(start + std::chrono::duration_cast<Clock::duration>(
                                                  std::chrono::duration<double>(static_cast<double>(i) / per_second)));
      }
    }
    if (!(*producer)->Flush(60'000).ok() || (*producer)->delivery_failures() > 0) return "events not delivered";

    // The whole stream is there: nothing dropped by the mock's limits.
    const auto ranges = testing::OffsetRanges(mock_->bootstrap(), kInput, scale_.partitions);
    if (ranges.size() != static_cast<size_t>(scale_.partitions)) return "no offsets for the input topic";
    int64_t total = 0;
    for (int p = 0; p < scale_.partitions; ++p) {
      if (ranges[static_cast<size_t>(p)].low != 0) return Cat("the mock dropped messages of partition ", p);
      if (ranges[static_cast<size_t>(p)].high == 0) return Cat("partition ", p, " is empty");
      total += ranges[static_cast<size_t>(p)].high;
    }
    if (total != scale_.events) return Cat(total, " events in the topic, not ", scale_.events);
    last_event_.assign(static_cast<size_t>(scale_.partitions), 0);
    for (const testing::Record& r : testing::ReadTopic(mock_->bootstrap(), kInput, scale_.partitions, 300s)) {
      cx::v1::InteractionEvent e;
      if (!e.ParseFromString(r.value)) return "an input record that does not parse";
      Micros& last = last_event_[static_cast<size_t>(r.partition)];
      last = std::max(last, ToMicros(e.occurred_at()));
    }
    return "";
  }

  // Committed progress of `group`: its input offsets and its changelog's end
  // offsets, summed. It grows whenever a run commits, in either delivery mode.
  int64_t Progress(const std::string& group) const {
    int64_t sum = 0;
    for (int64_t o : testing::CommittedOffsets(mock_->bootstrap(), group, kInput, scale_.partitions)) {
      sum += std::max<int64_t>(0, o);
    }
    for (const auto& r : testing::OffsetRanges(mock_->bootstrap(), testing::ChangelogTopic(group), scale_.partitions)) {
      sum += r.high;
    }
    return sum;
  }

  std::string WriteConfig(const std::string& group, Delivery delivery) {
    return dir_.Write(group + ".yaml", DaemonConfig(mock_->bootstrap(), group, scale_.events, delivery));
  }

  RunningDaemon Start(const std::string& config, const std::string& log) {
    RunningDaemon d = testing::StartDaemon({CXPULSE_BINARY, "run", "--config", config, "--shards", "2"},
                                           dir_.path() + "/" + log + ".log");
    EXPECT_NE(d.port, 0) << d.process->Output();
    return d;
  }

  // Every partition assigned, lag 0, and each partition's watermark at its
  // last event (the watermark metric is a delay from the wall clock, updated
  // each second: 3 s of slack).
  bool ShardsAtTheEnd(const std::vector<SampleLine>& samples) const {
    if (testing::AssignedPartitions(samples).size() != static_cast<size_t>(scale_.partitions)) return false;
    if (testing::SumOf(samples, "cxpulse_consumer_lag_messages") != 0) return false;
    const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    std::set<int> reached;
    for (const SampleLine& s : samples) {
      if (s.name != "cxpulse_watermark_delay_seconds" || s.labels.count("partition") == 0) continue;
      const int p = std::stoi(s.labels.at("partition"));
      const double final_watermark = static_cast<double>(last_event_[static_cast<size_t>(p)] - kLateness) / 1e6;
      if (now - s.value >= final_watermark - 3) reached.insert(p);
    }
    return reached.size() == static_cast<size_t>(scale_.partitions);
  }

  // Waits until the daemon has read everything: its shards at the end for a
  // lag refresh (1 s), then the centre stage's watermark at the lowest
  // partition's. A restarted daemon whose partitions have nothing left to
  // read never shows their watermarks (state lost): then lag 0 and nothing
  // consumed for 5 s will do. Returns the last scrape.
  std::vector<SampleLine> WaitUntilRead(const RunningDaemon& d, std::string* problems) {
    Micros lowest = last_event_.front();
    for (Micros t : last_event_) lowest = std::min(lowest, t);
    const double centre_final = static_cast<double>(lowest - kLateness) / 1e6;
    std::vector<SampleLine> samples;
    double consumed = -1;
    constexpr Clock::time_point kNever = Clock::time_point::max();
    auto changed = Clock::now();
    Clock::time_point at_end = kNever, shards_done = kNever;
    for (const auto deadline = Clock::now() + 300s; Clock::now() < deadline; std::this_thread::sleep_for(200ms)) {
      samples = d.Scrape();
      const auto now = Clock::now();
      if (const double c = testing::SumOf(samples, "cxpulse_events_consumed_total"); c != consumed) {
        consumed = c;
        changed = now;
      }
      if (!ShardsAtTheEnd(samples)) {
        at_end = kNever;
      } else if (at_end == kNever) {
        at_end = now;
      }
      const bool quiet = now - changed > 5s && testing::HttpGet(d.port, "/readyz").status == 200 &&
                         testing::AssignedPartitions(samples).size() == static_cast<size_t>(scale_.partitions) &&
                         testing::SumOf(samples, "cxpulse_consumer_lag_messages") == 0;
      if (shards_done == kNever && ((at_end != kNever && now - at_end > 1200ms) || quiet)) shards_done = now;
      if (shards_done == kNever) continue;
      const std::optional<double> centre = testing::ValueOf(samples, "cxpulse_centre_watermark_timestamp_seconds");
      if (centre && *centre >= centre_final) return samples;
      if (now - shards_done > 15s) {
        Append(problems, "the centre stage's watermark stayed at ", centre.value_or(0), ", below ", centre_final,
               "\n");
        return samples;
      }
    }
    Append(problems, "did not read the stream to its end within 300 s; log:\n", d.process->Output(), "\n");
    return samples;
  }

  // Input records this process has read: evaluated, or skipped because the
  // state it restored already held them.
  static double Consumed(const RunningDaemon& d) {
    const auto samples = d.Scrape();
    return testing::SumOf(samples, "cxpulse_events_consumed_total") +
           testing::SumOf(samples, "cxpulse_state_restore_skipped_records_total");
  }

  // Waits for its whole stream to be read, keeps its KPIs, stops it
  // (SIGTERM), and reads its findings.
  Outcome Finish(const RunningDaemon& d, const std::string& group) {
    Outcome o;
    o.problems = produced_.get();  // the whole stream is in the topic
    for (const SampleLine& s : WaitUntilRead(d, &o.problems)) {
      if (s.name.starts_with("cxpulse_kpi_")) o.kpis[SeriesName(s)] = s.value;
      if (s.name == "cxpulse_events_consumed_total") o.consumed += s.value;
    }
    d.process->Signal(SIGTERM);
    if (const int code = d.process->Wait(60s); code != 0) {
      Append(&o.problems, "exit code ", code, " after SIGTERM; log:\n", d.process->Output(), "\n");
    }
    ReadFindings(group, &o);
    return o;
  }

  void ReadFindings(const std::string& group, Outcome* o) {
    const auto ranges = testing::OffsetRanges(mock_->bootstrap(), FindingsTopic(group), kFindingPartitions);
    for (const testing::OffsetRange& r : ranges) {
      if (r.low > 0) Append(&o->problems, "the mock dropped findings of ", FindingsTopic(group), "\n");
    }
    for (const testing::Record& r : testing::ReadTopic(mock_->bootstrap(), FindingsTopic(group), kFindingPartitions,
                                                       120s)) {
      cx::v1::Finding f;
      if (!f.ParseFromString(r.value)) {
        Append(&o->problems, "a finding that does not parse\n");
        continue;
      }
      ++o->reads[f.finding_id()];
      o->what.emplace(f.finding_id(), Describe(f));
    }
  }

  // The uninterrupted run, on a thread of its own while the test goes on.
  std::future<Outcome> RunUninterrupted() {
    const std::string config = WriteConfig("uninterrupted", Delivery::kExactlyOnce);
    return std::async(std::launch::async, [this, config] {
      RunningDaemon d = testing::StartDaemon({CXPULSE_BINARY, "run", "--config", config, "--shards", "2"},
                                             dir_.path() + "/uninterrupted.log");
      if (d.port == 0) return Outcome{.problems = "did not start: " + d.process->Output()};
      Outcome o = Finish(d, "uninterrupted");
      if (o.consumed != scale_.events) Append(&o.problems, "consumed ", o.consumed, " of ", scale_.events, " events\n");
      return o;
    });
  }

  struct Stop {
    double threshold;  // events this process was to consume first; 0: as soon as it is assigned partitions
    double consumed;   // what its last scrape said
  };

  // Starts the daemon `stops` times and ends each with `signo` at a seeded
  // point: once it has consumed a random number of events (up to twice the
  // stream's share per run) and committed something, or, once, as soon as it
  // has been assigned its partitions (while it restores).
  std::vector<Stop> Interrupt(const std::string& config, const std::string& group, int signo, int stops,
                              const std::function<void(int)>& after_each = {}) {
    const std::string& name = group;
    std::mt19937_64 rng(static_cast<uint64_t>(scale_.seed) * 1'000'003 + static_cast<uint64_t>(signo));
    std::uniform_real_distribution<double> share(0.1, 2.0);
    const int at_assignment = static_cast<int>(rng() % static_cast<uint64_t>(std::max(stops, 1)));
    std::vector<Stop> out;
    for (int k = 0; k < stops; ++k) {
      const double threshold = k == at_assignment ? 0 : share(rng) * scale_.events / (stops + 1);
      const int64_t progress = Progress(group);
      RunningDaemon d = Start(config, Cat(name, "-", k));
      if (d.port == 0) return out;
      double consumed = 0;
      if (threshold == 0) {
        EXPECT_TRUE(d.process->WaitFor(R"(assigned (\d+) partition)", 120s)) << d.process->Output();
      } else {
        // Or once it has caught up: the stream ran out before the threshold.
        auto changed = Clock::now();
        bool committed = false;
        for (const auto deadline = Clock::now() + 180s; Clock::now() < deadline; std::this_thread::sleep_for(20ms)) {
          const double c = Consumed(d);
          if (c != consumed) changed = Clock::now();
          consumed = c;
          if (!committed && consumed >= threshold) committed = Progress(group) > progress;
          // Caught up: nothing read for 5 s, or nothing left to read at all.
          if ((committed && consumed >= threshold) || (consumed > 0 && Clock::now() - changed > 5s) ||
              (Clock::now() - changed > 5s && testing::SumOf(d.Scrape(), "cxpulse_consumer_lag_messages") == 0)) {
            break;
          }
        }
      }
      d.process->Signal(signo);
      const int code = d.process->Wait(60s);
      if (signo == SIGTERM) {
        EXPECT_EQ(code, 0) << d.process->Output();
      }
      out.push_back({threshold, consumed});
      if (after_each) after_each(k);
    }
    return out;
  }

  static std::string Summary(const std::vector<Stop>& stops) {
    std::string out;
    for (const Stop& s : stops) Append(&out, out.empty() ? "" : ", ", static_cast<int64_t>(s.consumed));
    return out;
  }

  // The comparison every variant makes; `doubles_fail` says whether a
  // finding read twice is a failure here.
  void ExpectSameAsUninterrupted(const Outcome& got, const Outcome& want, bool doubles_fail) {
    EXPECT_TRUE(want.problems.empty()) << "uninterrupted run: " << want.problems;
    EXPECT_TRUE(got.problems.empty()) << "interrupted run: " << got.problems;
    ASSERT_FALSE(want.reads.empty()) << "the uninterrupted run made no findings: the stream tests nothing";
    size_t missing = 0, extra = 0, doubled = 0;
    const std::string sets = CompareFindingSets(got, want, &missing, &extra);
    const std::string doubles = Doubles(got, want, &doubled);
    size_t baseline_repeats = 0;
    for (const auto& [id, n] : want.reads) baseline_repeats += n > 1;
    std::printf("findings: uninterrupted %zu ids (%zu read more than once); after restarts %zu ids: "
                "%zu missing, %zu extra, %zu doubled (%s)\n",
                want.reads.size(), baseline_repeats, got.reads.size(), missing, extra, doubled,
                doubles_fail ? "doubles fail the test" : "doubles reported, not failed");
    EXPECT_TRUE(sets.empty()) << sets;
    if (doubles_fail) {
      EXPECT_TRUE(doubles.empty()) << doubles;
    } else if (!doubles.empty()) {
      std::printf("%s", doubles.c_str());
    }
    const std::string kpis = CompareKpis(got, want);
    std::printf("KPIs: %zu series, %s\n", want.kpis.size(), kpis.empty() ? "all equal" : "some differ");
    EXPECT_FALSE(want.kpis.empty());
    EXPECT_TRUE(kpis.empty()) << kpis;
    RecordProperty("missing", static_cast<int>(missing));
    RecordProperty("extra", static_cast<int>(extra));
    RecordProperty("doubled", static_cast<int>(doubled));
  }

  // Killed at random points, restarted until it has read everything.
  void KillAndCompare(Delivery delivery) {
    std::future<Outcome> uninterrupted = RunUninterrupted();
    const std::string config = WriteConfig("killed", delivery);
    const std::vector<Stop> kills = Interrupt(config, "killed", SIGKILL, scale_.kills);
    RunningDaemon last = Start(config, "killed-last");
    Outcome got = last.port != 0 ? Finish(last, "killed") : Outcome{.problems = "the last restart did not start"};
    std::printf("%s: killed %zu times, having consumed %s events; the last run consumed %.0f\n",
                testing::DeliveryName(delivery).c_str(), kills.size(), Summary(kills).c_str(), got.consumed);
    EXPECT_EQ(kills.size(), static_cast<size_t>(scale_.kills));
    const Outcome want = uninterrupted.get();
    // A real broker (or a mock that hides aborted transactions and stores
    // their offsets) shows each finding once in exactly_once mode.
    ExpectSameAsUninterrupted(got, want,
                              delivery == Delivery::kExactlyOnce && transactions_.hides_aborted &&
                                  transactions_.stores_offsets);
  }

  Scale scale_;
  testing::TempDir dir_;
  std::unique_ptr<testing::MockKafkaProcess> mock_;
  std::vector<cx::v1::InteractionEvent> events_;  // the stream, in the order it is produced
  std::thread live_;                              // produces it
  std::atomic<bool> stop_producing_{false};
  std::shared_future<std::string> produced_;      // once it is all in the topic: what went wrong
  std::vector<Micros> last_event_;                // per input partition, once produced
  testing::TransactionSupport transactions_;
};

TEST_F(CrashTest, KilledAtRandomPointsItsFindingsAndKpisAreThoseOfAnUninterruptedRun) {
  KillAndCompare(Delivery::kExactlyOnce);
}

// Another 75 s: run by tests/crash_long.sh (CXPULSE_CRASH_ALL=1), so that
// ctest's crash_test stays within 3 minutes.
TEST_F(CrashTest, AtLeastOnceKilledAtRandomPointsLosesNoFindingAndInventsNone) {
  if (EnvInt("CXPULSE_CRASH_ALL", 0) == 0) GTEST_SKIP() << "set CXPULSE_CRASH_ALL=1 (tests/crash_long.sh does)";
  KillAndCompare(Delivery::kAtLeastOnce);
}

// SIGTERM drains: finish the batch, flush findings, commit, leave. After a
// restart nothing is read twice: each restart begins where the group's
// committed offsets say, the last run reads exactly what is left, and no
// finding is read twice.
TEST_F(CrashTest, StoppedGracefullyAndRestartedNothingIsReadTwice) {
  std::future<Outcome> uninterrupted = RunUninterrupted();
  const std::string config = WriteConfig("stopped", Delivery::kExactlyOnce);
  const auto committed = [&] {
    int64_t sum = 0;
    for (int64_t o : testing::CommittedOffsets(mock_->bootstrap(), "stopped", kInput, scale_.partitions)) {
      sum += std::max<int64_t>(0, o);
    }
    return sum;
  };
  std::vector<int64_t> committed_after;
  const std::vector<Stop> stops =
      Interrupt(config, "stopped", SIGTERM, scale_.kills, [&](int) { committed_after.push_back(committed()); });
  RunningDaemon last = Start(config, "stopped-last");
  Outcome got = last.port != 0 ? Finish(last, "stopped") : Outcome{.problems = "the last restart did not start"};
  std::printf("stopped %zu times, having consumed at least %s events; committed after each stop:", stops.size(),
              Summary(stops).c_str());
  for (int64_t c : committed_after) std::printf(" %lld", static_cast<long long>(c));
  std::printf("; the last run consumed %.0f\n", got.consumed);
  ASSERT_EQ(stops.size(), static_cast<size_t>(scale_.kills));
  // The group's offsets move with each transaction (the daemon commits them
  // after it, also where the cluster does not keep a transaction's own).
  // Each drain committed at least what it had consumed when it was stopped...
  for (size_t k = 0; k < stops.size(); ++k) {
    const int64_t before = k == 0 ? 0 : committed_after[k - 1];
    EXPECT_GE(committed_after[k] - before, static_cast<int64_t>(stops[k].consumed)) << "stop " << k;
  }
  // ... and the last run read exactly what was left.
  EXPECT_EQ(got.consumed, static_cast<double>(scale_.events - committed_after.back()))
      << "the last run read again what an earlier run had committed";
  ExpectSameAsUninterrupted(got, uninterrupted.get(), /*doubles_fail=*/true);
}

}  // namespace
}  // namespace cxpulse
