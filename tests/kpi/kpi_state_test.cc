// The KPIs' durable state: generated traffic over several partitions through
// an aggregator checkpointed into an in-memory changelog and, at random
// points, replaced by a fresh one restored from it must give the windows of
// one that ran straight through, and the oracle's; a partition moved to
// another aggregator takes exactly its counts along; a checkpoint writes
// only what changed; damaged records are dropped with a reason, never
// crash. The sizes a realistic load writes are printed for the report.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "common/hash.h"
#include "engine/rule_set.h"
#include "gen/traffic_generator.h"
#include "kpi/kpi.h"
#include "kpi/kpi_records.h"
#include "oracle/oracle.h"

namespace cxpulse {
namespace {

using cx::v1::InteractionEvent;

constexpr int kPartitions = 4;
constexpr Micros kLateness = 30 * kMicrosPerSecond;
// No partition idles: event time alone moves the clocks, as in the oracle.
constexpr Micros kNeverIdle = 365LL * 24 * 3600 * kMicrosPerSecond;
constexpr size_t kBatch = 50;  // a Tick after each, as a shard does
constexpr Micros kStart = 1'772'409'600LL * kMicrosPerSecond;  // 2026-03-02T00:00:00Z

// One partition's changelog as compaction leaves it: the latest value per key.
class MemoryLog final : public StateWriter {
 public:
  void Put(std::string_view key, std::string_view value) override {
    records[std::string(key)] = std::string(value);
    ++puts;
    bytes += key.size() + value.size();
  }
  void Erase(std::string_view key) override {
    records.erase(std::string(key));
    ++erases;
    bytes += key.size();
  }
  size_t Count(KpiRecordKind kind) const {
    size_t n = 0;
    for (const auto& [key, value] : records) n += key[1] == static_cast<char>(kind);
    return n;
  }
  std::map<std::string, std::string> records;
  size_t puts = 0, erases = 0, bytes = 0;
};

int PartitionOf(const InteractionEvent& e) {
  return static_cast<int>(StableHash().Add(e.customer_id()).value() % kPartitions);
}

oracle::Params Params() {
  oracle::Params p;
  p.allowed_lateness = kLateness;
  p.repeat_window = 2 * oracle::kHour;
  p.sl_threshold = {{"billing", 30 * kMicrosPerSecond}};
  p.queues = {"billing", "tech_support", "sales"};  // retention is "other"
  return p;
}

KpiConfig Config() {
  KpiConfig c;
  c.repeat_window = Params().repeat_window;
  c.max_queues = 0;
  c.queues["billing"] = ServiceLevel{30 * kMicrosPerSecond, 0.8};
  c.queues["tech_support"] = c.service_level;
  c.queues["sales"] = c.service_level;
  return c;
}

// Generated traffic, compressed so callbacks come due and repeats happen
// within the hours it spans; only what the oracle admits.
std::vector<InteractionEvent> Traffic(uint64_t seed, std::chrono::hours span) {
  TrafficOptions o;
  o.seed = seed;
  o.customers = 2000;
  o.contacts_per_second = 0.2;
  o.time_compression = 3;
  const auto start = std::chrono::system_clock::time_point(std::chrono::microseconds(kStart));
  TrafficGenerator generator(o, start);
  std::vector<InteractionEvent> all;
  generator.Poll(start + span, &all);
  std::vector<InteractionEvent> admitted;
  for (const InteractionEvent* e : oracle::Admit(all, PartitionOf, kLateness).admitted) admitted.push_back(*e);
  return admitted;
}

// A shard's aggregator over some of the partitions.
struct Shard {
  explicit Shard(QueueLabels* queues) : kpi(Config(), queues, kLateness, kNeverIdle, /*track_changes=*/true) {}
  void Feed(const InteractionEvent& e) {
    wall = ToMicros(e.occurred_at());
    kpi.Record(e, PartitionOf(e), wall);
  }
  // Every event, a Tick after each batch and the last; with `logs`, a
  // checkpoint after each Tick.
  void Run(const std::vector<InteractionEvent>& events, std::vector<MemoryLog>* logs = nullptr) {
    for (size_t i = 0; i < events.size(); ++i) {
      Feed(events[i]);
      if ((i + 1) % kBatch != 0 && i + 1 != events.size()) continue;
      kpi.Tick(wall);
      if (logs != nullptr) Checkpoint(*logs);
    }
  }
  void Checkpoint(std::vector<MemoryLog>& logs) {
    for (int p = 0; p < kPartitions; ++p) kpi.Checkpoint(p, logs[static_cast<size_t>(p)]);
  }
  void Restore(int32_t partition, const MemoryLog& log) {
    for (const auto& [key, value] : log.records) {
      ASSERT_EQ(kpi.Restore(partition, key, value, wall), RestoreDrop::kNone) << partition;
    }
  }
  KpiAggregator kpi;
  Micros wall = 0;
};

// The window's totals at `end`, summed over the aggregators.
std::vector<double> Totals(const std::vector<const KpiAggregator*>& kpis, size_t window, Micros end) {
  std::vector<double> totals(kpis.front()->cells() * kKpiCount);
  for (const KpiAggregator* k : kpis) k->AddWindow(window, end, &totals);
  return totals;
}

// Whether two windows' totals agree: counts exactly, sums of seconds to
// rounding (each aggregator turns its microseconds into seconds).
void ExpectSame(const std::vector<double>& got, const std::vector<double>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t v = 0; v < got.size(); ++v) {
    const Kpi k = static_cast<Kpi>(v % kKpiCount);
    if (k == Kpi::kWaitSecondsSum || k == Kpi::kHandleSecondsSum) {
      ASSERT_NEAR(got[v], want[v], 1e-9 * std::abs(want[v])) << what << ", value " << v;
    } else {
      ASSERT_EQ(got[v], want[v]) << what << ", value " << v;
    }
  }
}

// Where every window ends once the stream is through: the lowest watermark's bucket.
Micros WindowEnd(const std::vector<InteractionEvent>& events) {
  return oracle::KpiWindowEnd(oracle::Admit(events, PartitionOf, kLateness), Config().bucket);
}

// The non-zero totals in the oracle's terms.
std::map<oracle::KpiCell, oracle::KpiValues> AsOracle(const KpiAggregator& kpi, const std::vector<double>& totals,
                                                      const std::string& window) {
  std::map<oracle::KpiCell, oracle::KpiValues> out;
  for (size_t c = 0; c < kpi.cells(); ++c) {
    for (size_t k = 0; k < kKpiCount; ++k) {
      const double v = totals[c * kKpiCount + k];
      if (v == 0) continue;
      const std::string channel =
          EnumLabel(cx::v1::Channel_descriptor()->FindValueByNumber(static_cast<int>(c % kKpiChannels)));
      out[{*kpi.queues().name(static_cast<int>(c / kKpiChannels)), channel, window}][oracle::KpiNames()[k]] = v;
    }
  }
  return out;
}

// Differences, one a line; counts exactly, sums of seconds within 1e-9.
std::string Compare(const std::map<oracle::KpiCell, oracle::KpiValues>& got,
                    std::map<oracle::KpiCell, oracle::KpiValues> want) {
  for (auto& [cell, values] : want) std::erase_if(values, [](const auto& v) { return v.second == 0; });
  std::erase_if(want, [](const auto& cell) { return cell.second.empty(); });
  std::string diff;
  const auto describe = [](const oracle::KpiCell& c) { return c.queue + "/" + c.channel + "/" + c.window; };
  for (const auto& [cell, values] : want) {
    const auto g = got.find(cell);
    for (const auto& [name, w] : values) {
      const double v = g == got.end() || !g->second.contains(name) ? 0 : g->second.at(name);
      const bool seconds = name.ends_with("_seconds");
      if (seconds ? std::abs(v - w) > 1e-9 * std::abs(w) : v != w) {
        diff += describe(cell) + " " + name + ": " + std::to_string(v) + " want " + std::to_string(w) + "\n";
      }
    }
  }
  for (const auto& [cell, values] : got) {
    if (!want.contains(cell)) diff += describe(cell) + ": not in the oracle\n";
  }
  return diff;
}

class KpiStateTest : public ::testing::TestWithParam<uint64_t> {
 protected:
  KpiConfig config_ = Config();
  QueueLabels queues_{config_};
};

// Issue 10's acceptance for the KPIs: restarts at random points, each from
// the last checkpoint (the input rewound to its offset), change nothing.
TEST_P(KpiStateTest, RestartsFromCheckpointsGiveTheWindowsOfAStraightRunAndTheOracles) {
  const std::vector<InteractionEvent> events = Traffic(GetParam(), std::chrono::hours(8));
  ASSERT_GT(events.size(), 10'000u);
  const Micros end = WindowEnd(events);

  Shard straight(&queues_);
  straight.Run(events);

  constexpr size_t kCheckpointEvery = 10 * kBatch;
  std::mt19937_64 rng(GetParam());
  std::vector<MemoryLog> logs(kPartitions);
  auto restarted = std::make_unique<Shard>(&queues_);
  size_t checkpointed = 0, restarts = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    restarted->Feed(events[i]);
    if ((i + 1) % kBatch != 0) continue;
    restarted->kpi.Tick(restarted->wall);
    if ((i + 1) % kCheckpointEvery == 0) {
      restarted->Checkpoint(logs);
      checkpointed = i + 1;
    } else if (rng() % 12 == 0) {  // a crash: what came after the checkpoint is read again
      const Micros wall = restarted->wall;
      restarted = std::make_unique<Shard>(&queues_);
      restarted->wall = wall;
      for (int p = 0; p < kPartitions; ++p) restarted->Restore(p, logs[static_cast<size_t>(p)]);
      i = checkpointed - 1;
      ++restarts;
    }
  }
  restarted->kpi.Tick(restarted->wall);
  EXPECT_GT(restarts, 10u);

  for (size_t w = 0; w < config_.windows.size(); ++w) {
    const std::vector<double> want = Totals({&straight.kpi}, w, end);
    EXPECT_EQ(Totals({&restarted->kpi}, w, end), want) << "window " << w;
    const std::string label = config_.windows[w].label;
    auto oracle = oracle::Kpis(events, PartitionOf, Params(), end);
    std::erase_if(oracle, [&](const auto& cell) { return cell.first.window != label; });
    const std::string diff = Compare(AsOracle(straight.kpi, want, label), oracle);
    EXPECT_EQ(diff, "") << "window " << label;
    double callbacks = 0;
    for (size_t c = 0; c < straight.kpi.cells(); ++c) {
      for (Kpi k : {Kpi::kCallbacksDue, Kpi::kCallbacksMissed, Kpi::kRepeatContacts}) {
        callbacks += want[c * kKpiCount + static_cast<size_t>(k)];
      }
    }
    EXPECT_GT(callbacks, 0) << "the stream exercises the promises and the repeats";
  }
}

// A partition dropped here and restored there takes exactly its counts:
// the two aggregators then sum to one that held every partition, and at
// the move, what leaves one is what the other gains.
TEST_P(KpiStateTest, APartitionMovedToAnotherShardTakesExactlyItsCounts) {
  const std::vector<InteractionEvent> events = Traffic(GetParam(), std::chrono::hours(6));
  const Micros end = WindowEnd(events);
  constexpr int kMoved = 1;
  Shard single(&queues_), a(&queues_), b(&queues_);
  const size_t move_at = events.size() / 2 / kBatch * kBatch;
  for (size_t i = 0; i < events.size(); ++i) {
    const InteractionEvent& e = events[i];
    single.Feed(e);
    (i >= move_at && PartitionOf(e) == kMoved ? b : a).Feed(e);
    if ((i + 1) % kBatch != 0) continue;
    single.kpi.Tick(single.wall);
    a.kpi.Tick(a.wall);
    b.kpi.Tick(a.wall);
    if (i + 1 != move_at) continue;
    MemoryLog log;
    a.kpi.Checkpoint(kMoved, log);
    const Micros at = a.wall / Config().bucket * Config().bucket;
    const std::vector<double> before = Totals({&a.kpi}, 1, at);
    a.kpi.DropPartition(kMoved);
    b.wall = a.wall;
    b.Restore(kMoved, log);
    std::vector<double> after = Totals({&a.kpi}, 1, at);
    const std::vector<double> moved = Totals({&b.kpi}, 1, at);
    EXPECT_GT(std::accumulate(moved.begin(), moved.end(), 0.0), 0);
    EXPECT_LT(std::accumulate(after.begin(), after.end(), 0.0), std::accumulate(before.begin(), before.end(), 0.0));
    for (size_t v = 0; v < after.size(); ++v) after[v] += moved[v];
    ExpectSame(after, before, "at the move");
  }
  single.kpi.Tick(single.wall);
  a.kpi.Tick(a.wall);
  b.kpi.Tick(a.wall);
  for (size_t w = 0; w < config_.windows.size(); ++w) {
    ExpectSame(Totals({&a.kpi, &b.kpi}, w, end), Totals({&single.kpi}, w, end), "window " + std::to_string(w));
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, KpiStateTest, ::testing::Values(1, 2, 3));

// A checkpoint writes what changed since the last one: right after one,
// nothing; over a long run, tombstones keep the changelog to the state held.
TEST(KpiStateDeltaTest, ACheckpointWritesOnlyWhatChangedAndTombstonesWhatWent) {
  KpiConfig config = Config();
  QueueLabels queues(config);
  Shard shard(&queues);
  std::vector<MemoryLog> logs(kPartitions);
  const std::vector<InteractionEvent> events = Traffic(4, std::chrono::hours(12));
  shard.Run(events, &logs);
  std::vector<MemoryLog> again(kPartitions);
  shard.Checkpoint(again);
  for (const MemoryLog& log : again) EXPECT_EQ(log.puts + log.erases, 0u);

  const int64_t ring = (3600 + 15 * 60 + 30) / 60 + 2;  // kpi.h's ring for these windows
  size_t promises = 0;
  for (const MemoryLog& log : logs) {
    EXPECT_EQ(log.Count(KpiRecordKind::kClock), 1u);
    EXPECT_GT(log.Count(KpiRecordKind::kBucket), 30u);
    EXPECT_LE(log.Count(KpiRecordKind::kBucket), static_cast<size_t>(ring)) << "buckets that left the ring went";
    EXPECT_GT(log.Count(KpiRecordKind::kCustomer), 0u);
    EXPECT_GT(log.erases, 0u);
    promises += log.Count(KpiRecordKind::kPromise);
  }
  EXPECT_GT(promises, 0u) << "pending at the end";
  // 12 hours of starts, a 2-hour repeat window: the swept customers went.
  size_t customers_seen = 0;
  std::map<std::string, int> seen;
  for (const InteractionEvent& e : events) customers_seen += seen[e.customer_id()]++ == 0;
  size_t customers_logged = 0;
  for (const MemoryLog& log : logs) customers_logged += log.Count(KpiRecordKind::kCustomer);
  EXPECT_LT(customers_logged, customers_seen * 3 / 4);
}

// Every damaged record is dropped with a reason; none crashes or is taken
// half. Under ASan (a sanitizer target) the reads are bounds-checked too.
TEST(KpiStateRestoreTest, DamagedRecordsAreDroppedWithAReason) {
  KpiConfig config = Config();
  QueueLabels queues(config);
  Shard shard(&queues);
  std::vector<MemoryLog> logs(kPartitions);
  shard.Run(Traffic(5, std::chrono::hours(2)), &logs);
  std::vector<std::pair<std::string, std::string>> samples;
  for (KpiRecordKind kind : {KpiRecordKind::kClock, KpiRecordKind::kBucket, KpiRecordKind::kCustomer,
                             KpiRecordKind::kPromise}) {
    for (const MemoryLog& log : logs) {
      const auto it = std::find_if(log.records.begin(), log.records.end(),
                                   [kind](const auto& r) { return r.first[1] == static_cast<char>(kind); });
      if (it == log.records.end()) continue;
      samples.emplace_back(*it);
      break;
    }
  }
  ASSERT_EQ(samples.size(), 4u);

  Shard fresh(&queues);
  for (const auto& [key, value] : samples) {
    std::string newer = value;
    newer[0] = 2;
    EXPECT_EQ(fresh.kpi.Restore(0, key, newer, 0), RestoreDrop::kUnknownVersion) << key;
    EXPECT_EQ(fresh.kpi.Restore(0, key, "", 0), RestoreDrop::kMalformed) << key;
    EXPECT_EQ(fresh.kpi.Restore(0, key, value.substr(0, value.size() - 1), 0), RestoreDrop::kMalformed) << key;
    EXPECT_EQ(fresh.kpi.Restore(0, key, value + "x", 0), RestoreDrop::kMalformed) << key;
  }
  EXPECT_EQ(fresh.kpi.Restore(0, std::string("kz"), samples[0].second, 0), RestoreDrop::kUnknownVersion);
  EXPECT_EQ(fresh.kpi.Restore(0, std::string("kb123"), samples[1].second, 0), RestoreDrop::kMalformed);
  EXPECT_EQ(fresh.kpi.Restore(0, std::string("e"), samples[0].second, 0), RestoreDrop::kMalformed);
  // Nothing was taken: the fresh aggregator has no clock and no counts.
  Micros lowest = 0, highest = 0;
  fresh.kpi.Tick(0);
  EXPECT_FALSE(fresh.kpi.Watermarks(&lowest, &highest));

  std::mt19937_64 rng(99);
  std::map<RestoreDrop, int> reasons;
  for (int round = 0; round < 5000; ++round) {
    auto [key, value] = samples[rng() % samples.size()];
    for (int m = 1 + static_cast<int>(rng() % 4); m > 0; --m) {
      switch (rng() % 4) {
        case 0: if (!value.empty()) value[rng() % value.size()] = static_cast<char>(rng()); break;
        case 1: value.resize(rng() % (value.size() + 1)); break;
        case 2: value.insert(rng() % (value.size() + 1), 1, static_cast<char>(rng())); break;
        default: if (key.size() > 2) key[2 + rng() % (key.size() - 2)] = static_cast<char>(rng()); break;
      }
    }
    Shard target(&queues);
    const RestoreDrop d = target.kpi.Restore(static_cast<int32_t>(rng() % kPartitions), key, value, 0);
    ASSERT_LT(static_cast<int>(d), static_cast<int>(RestoreDrop::kCount));
    ++reasons[d];
    target.kpi.Tick(kStart);  // whatever was taken runs
  }
  EXPECT_GT(reasons[RestoreDrop::kMalformed], 1000);
  EXPECT_GT(reasons[RestoreDrop::kUnknownVersion], 10);
  EXPECT_GT(reasons[RestoreDrop::kNone], 10) << "mutations that still decode (a count, an id) are taken";
}

size_t Bytes(const std::vector<MemoryLog>& logs) {
  size_t n = 0;
  for (const MemoryLog& log : logs) n += log.bytes;
  return n;
}

// The figures for the report: what a commit interval (1 s, engine's
// default) writes at the generator's default load (200 contacts a second,
// 50k customers), and the state of a million customers.
TEST(KpiStateSizeTest, ACommitIntervalWritesWhatItTouchedNotAnEventEach) {
  QueueLabels queues(Config());
  Shard shard(&queues);
  const auto start = std::chrono::system_clock::time_point(std::chrono::microseconds(kStart));
  TrafficGenerator generator(TrafficOptions{}, start);
  std::vector<MemoryLog> logs(kPartitions);
  std::vector<InteractionEvent> batch;
  size_t events = 0, intervals = 0, puts = 0, bytes = 0, max_bytes = 0;
  for (auto t = start; t < start + std::chrono::minutes(6); t += std::chrono::seconds(1)) {
    batch.clear();
    generator.Poll(t, &batch);
    for (const InteractionEvent& e : batch) shard.Feed(e);
    shard.kpi.Tick(shard.wall);
    const size_t puts_before = std::accumulate(logs.begin(), logs.end(), size_t{0},
                                               [](size_t n, const MemoryLog& l) { return n + l.puts + l.erases; });
    const size_t bytes_before = Bytes(logs);
    shard.Checkpoint(logs);
    if (t < start + std::chrono::minutes(5)) continue;  // warming up
    const size_t written = Bytes(logs) - bytes_before;
    events += batch.size();
    ++intervals;
    bytes += written;
    max_bytes = std::max(max_bytes, written);
    puts += std::accumulate(logs.begin(), logs.end(), size_t{0},
                            [](size_t n, const MemoryLog& l) { return n + l.puts + l.erases; }) -
            puts_before;
  }
  std::printf("per 1 s commit interval, %zu partitions: %.0f events, %.0f records, %.0f bytes (max %zu)\n",
              static_cast<size_t>(kPartitions), static_cast<double>(events) / static_cast<double>(intervals),
              static_cast<double>(puts) / static_cast<double>(intervals),
              static_cast<double>(bytes) / static_cast<double>(intervals), max_bytes);
  EXPECT_GT(events, 0u);
  EXPECT_LT(puts, events) << "a record per event";
}

TEST(KpiStateSizeTest, AMillionCustomersState) {
  constexpr int kCustomers = 1'000'000;
  const KpiConfig config;  // a 24 h repeat window: every start is kept
  QueueLabels queues(config);
  KpiAggregator kpi(config, &queues, kLateness, kNeverIdle, /*track_changes=*/true);
  // Over 12 hours each customer starts a contact; one in ten asks for a
  // callback in 20 minutes, so the last 25 minutes' promises are pending.
  const Micros span = 12 * 3600 * kMicrosPerSecond;
  const char* const kQueues[] = {"billing", "tech_support", "sales", "retention"};
  InteractionEvent started, requested;
  started.mutable_contact_started()->set_direction(cx::v1::DIRECTION_INBOUND);
  for (int c = 0; c < kCustomers; ++c) {
    const Micros t = kStart + span / kCustomers * c;
    for (InteractionEvent* e : {&started, &requested}) {
      SetTimestamp(t, e->mutable_occurred_at());
      e->set_customer_id("c" + std::to_string(c));
      e->set_queue(kQueues[c % 4]);
      e->set_channel(static_cast<cx::v1::Channel>(1 + c % 5));
    }
    kpi.Record(started, 0, t);
    if (c % 10 != 0) continue;
    SetTimestamp(t + 20 * 60 * kMicrosPerSecond, requested.mutable_callback_requested()->mutable_due_at());
    kpi.Record(requested, 0, t);
    if (c % 1000 == 0) kpi.Tick(t);
  }
  kpi.Tick(kStart + span);
  MemoryLog log;
  kpi.Checkpoint(0, log);
  size_t bytes = 0;
  for (const auto& [key, value] : log.records) bytes += key.size() + value.size();
  std::printf("%d customers: %zu records (%zu customers, %zu promises, %zu buckets), %zu bytes, %.1f per customer\n",
              kCustomers, log.records.size(), log.Count(KpiRecordKind::kCustomer),
              log.Count(KpiRecordKind::kPromise), log.Count(KpiRecordKind::kBucket), bytes,
              static_cast<double>(bytes) / kCustomers);
  EXPECT_EQ(log.Count(KpiRecordKind::kCustomer), static_cast<size_t>(kCustomers));
  EXPECT_LT(bytes, size_t{32} * kCustomers);
}

}  // namespace
}  // namespace cxpulse
