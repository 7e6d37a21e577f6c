// Steady state allocates nothing per event (issue acceptance): the shipped
// rule pack and the KPI aggregator over generated contact-centre traffic,
// after a warm-up, run 100k events without one heap allocation, findings
// included, through the daemon's KafkaFindingSink to a mock cluster too
// (issue 11). This binary
// replaces the global operator new with a counting one, so it is built on its
// own, apart from the other tests.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <new>
#include <string>
#include <unordered_set>
#include <vector>

#include "codec/event_decoder.h"
#include "common/strings.h"
#include "daemon/kafka_finding_sink.h"
#include "engine/engine.h"
#include "engine/event_time_merge.h"
#include "engine/rule_compiler.h"
#include "gen/traffic_generator.h"
#include "kafka/client.h"
#include "kpi/kpi.h"
#include "support/counting_allocator.h"
#include "support/embedded_cluster.h"


namespace cxpulse {
namespace {

constexpr int kPartitions = 4;
constexpr size_t kMeasured = 100'000;
constexpr int kTickEvery = 256;  // the daemon ticks after each batch of records

// Counts findings per rule into storage sized up front: emitting allocates
// nothing. With `forward`, each finding then goes on to that sink (the
// daemon's KafkaFindingSink).
class CountingSink final : public FindingSink {
 public:
  explicit CountingSink(size_t rules, FindingSink* forward = nullptr) : per_rule(rules, 0), forward_(forward) {}
  void Emit(int rule_index, const cx::v1::Finding& finding) override {
    ++per_rule[static_cast<size_t>(rule_index)];
    summary_bytes += finding.summary().size();
    if (forward_ != nullptr) forward_->Emit(rule_index, finding);
  }
  uint64_t Total() const {
    uint64_t n = 0;
    for (uint64_t x : per_rule) n += x;
    return n;
  }
  std::vector<uint64_t> per_rule;
  size_t summary_bytes = 0;

 private:
  FindingSink* forward_;
};

// Keeps the optimiser from dropping a value or an allocation.
template <typename T>
void Escape(T* p) {
  asm volatile("" : : "g"(p) : "memory");
}

TEST(EngineAllocTest, TheCounterSeesAllocations) {
  const long before = ::cxpulse::testing::Allocations();
  auto* s = new std::string(1000, 'x');
  Escape(s);
  delete s;
  EXPECT_GE(::cxpulse::testing::Allocations() - before, 1);
}

// Counts a checkpoint's writes, keeping nothing: writing allocates nothing.
class CountingWriter final : public StateWriter {
 public:
  void Put(std::string_view key, std::string_view value) override {
    ++puts;
    bytes += key.size() + value.size();
  }
  void Erase(std::string_view) override { ++erases; }
  uint64_t puts = 0, erases = 0, bytes = 0;
};

// The daemon's wall clock during live traffic is close to event time: each
// event is processed at its own time, and Tick runs as after a batch. As in
// a shard, the KPIs take what the engine did not find late. With change
// tracking, each batch is a commit interval: every partition checkpointed.
struct Feeder {
  Engine& engine;
  KpiAggregator& kpi;
  bool checkpoint = false;
  Producer* producer = nullptr;  // served after each batch, as a shard serves its producer
  size_t fed = 0;
  size_t late = 0;
  CountingWriter changelog;
  void operator()(const cx::v1::InteractionEvent& e) {
    const Micros now = ToMicros(e.occurred_at());
    const auto partition = static_cast<int32_t>(std::hash<std::string>()(e.customer_id()) % kPartitions);
    if (engine.Process(partition, e, now) == Engine::Outcome::kLate) ++late;
    else kpi.Record(e, partition, now);
    if (++fed % kTickEvery == 0) {
      engine.Tick(now);
      kpi.Tick(now);
      for (int32_t p = 0; checkpoint && p < kPartitions; ++p) engine.Checkpoint(p, changelog);
      if (producer != nullptr) producer->Poll();
    }
  }
};

// As a shard does: every event arrives serialized and is decoded into one
// reused message, so decoding is part of what must not allocate. With
// `to_kafka`, findings go on through the daemon's KafkaFindingSink to a
// topic of an in-process mock cluster (librdkafka's own buffers are C
// malloc, outside what operator new counts: one a finding produced, as any
// librdkafka producer does).
void ExpectSteadyStateAllocatesNothing(bool track_changes, bool to_kafka = false) {
  auto loaded = LoadRuleSet({CXPULSE_RULES_DIR});
  ASSERT_TRUE(loaded.ok()) << Message(loaded.status());
  const std::shared_ptr<const RuleSet> rules = *loaded;
  // A name past std::string's 15-byte inline buffer, as a deployment's may be.
  const std::string findings_topic = "acme-prod-eu.cx.findings";
  std::unique_ptr<EmbeddedCluster> cluster;
  std::unique_ptr<Producer> producer;
  std::unique_ptr<KafkaFindingSink> kafka_sink;
  if (to_kafka) {
    cluster = ::cxpulse::testing::StartCluster({{findings_topic, 1}});
    ASSERT_NE(cluster, nullptr);
    auto p = Producer::Create({{"bootstrap.servers", cluster->bootstrap_servers()}, {"linger.ms", "5"}});
    ASSERT_TRUE(p.ok()) << Message(p.status());
    producer = *std::move(p);
    kafka_sink = std::make_unique<KafkaFindingSink>(producer.get(), findings_topic,
                                                    [](absl::Status s) { ADD_FAILURE() << Message(s); });
  }
  CountingSink sink(rules->rules().size(), kafka_sink.get());
  EngineOptions engine_options;
  engine_options.track_changes = track_changes;
  Engine engine(rules, engine_options, &sink);
  const KpiConfig kpi_config;
  QueueLabels queues(kpi_config);
  KpiAggregator kpi(kpi_config, &queues, EngineConfig().allowed_lateness, EngineConfig().idle_partition_timeout);
  Feeder feed{engine, kpi, track_changes, producer.get()};

  // A small customer pool at a high contact rate (each customer about 40
  // contacts a day) so that, after the warm-up, every customer and
  // every (customer, reason) of the measured window has state already:
  // the per-customer maps are at their full size. Keys that are new by
  // nature still arrive in the window: contacts transferred for the first
  // time (transfer_ping_pong, by contact_id), cases opened (case_sla_breached,
  // by case_id), promises (the absence rules). They take the place of keys
  // swept or settled, so they must not allocate either; what does allocate is
  // growth past the most state the warm-up ever held (a map's capacity, the
  // timer heap, a size class of count rings), which two weeks settle: twice
  // the longest window (7d), so every count key's ring has been as full as
  // this traffic makes it, and rings' size classes have had their peaks.
  TrafficOptions options;
  options.seed = 7;
  options.customers = 1000;
  options.contacts_per_second = 0.5;
  const auto start = std::chrono::system_clock::time_point(std::chrono::seconds(1'767'603'600));
  const auto warm_until = start + std::chrono::hours(14 * 24);
  TrafficGenerator gen(options, start);

  EventDecoder decoder;  // as daemon/shard.cc decodes
  std::string wire;
  std::unordered_set<std::string> seen_customers, seen_pairs;
  std::vector<cx::v1::InteractionEvent> batch;
  auto t = start;
  for (; t < warm_until; t += std::chrono::minutes(10)) {
    batch.clear();
    gen.Poll(t, &batch);
    for (const auto& e : batch) {
      e.SerializeToString(&wire);
      const cx::v1::InteractionEvent* decoded = decoder.Decode(wire.data(), wire.size());
      ASSERT_NE(decoded, nullptr);
      feed(*decoded);
      seen_customers.insert(e.customer_id());
      seen_pairs.insert(e.customer_id() + '/' + e.reason());
    }
  }
  const size_t warm_events = feed.fed;
  const uint64_t warm_findings = sink.Total();

  // The measured window: the next 100k events, generated before counting.
  std::vector<cx::v1::InteractionEvent> measured;
  while (measured.size() < kMeasured) {
    t += std::chrono::minutes(10);
    gen.Poll(t, &measured);
  }
  measured.resize(kMeasured);
  size_t unseen_customers = 0, unseen_pairs = 0;
  for (const auto& e : measured) {
    unseen_customers += !seen_customers.contains(e.customer_id());
    unseen_pairs += !seen_pairs.contains(e.customer_id() + '/' + e.reason());
  }
  ASSERT_EQ(unseen_customers, 0u) << "the warm-up must have seen every customer of the measured window";
  ASSERT_EQ(unseen_pairs, 0u) << "the warm-up must have seen every (customer, reason) of the measured window";

  std::vector<int64_t> keys_before;
  for (int r = 0; r < static_cast<int>(rules->rules().size()); ++r) {
    keys_before.push_back(static_cast<int64_t>(engine.KeysHeld(r)));
  }
  const uint64_t findings_before = sink.Total();
  const std::vector<uint64_t> per_rule_before = sink.per_rule;
  const CountingWriter changelog_before = feed.changelog;

  std::vector<std::string> measured_wire;
  size_t long_strings = 0;  // free text: survey comments, complaints
  for (const auto& e : measured) {
    measured_wire.push_back(e.SerializeAsString());
    long_strings += e.survey().comment().size() > 15 || e.complaint().text().size() > 15;
  }

  const long before = ::cxpulse::testing::Allocations();
  size_t undecodable = 0;
  for (const std::string& w : measured_wire) {
    const cx::v1::InteractionEvent* decoded = decoder.Decode(w.data(), w.size());
    if (decoded == nullptr) {
      ++undecodable;
      continue;
    }
    feed(*decoded);
  }
  const long allocated = ::cxpulse::testing::Allocations() - before;
  EXPECT_EQ(undecodable, 0u);
  if (producer != nullptr) {
    // Every finding reached the topic.
    ASSERT_TRUE(producer->Flush(30'000).ok());
    EXPECT_EQ(producer->delivery_failures(), 0u);
    EXPECT_EQ(producer->produced(), sink.Total());
  }

  // Decoding, the engine and the KPIs allocate nothing.
  EXPECT_EQ(allocated, 0) << "allocations over " << kMeasured << " events after " << warm_events
                          << " events of warm-up";
  // Strings past std::string's 15-byte inline buffer were decoded (they
  // allocated once per record with the per-record arena used before).
  EXPECT_GT(long_strings, 0u);
  EXPECT_EQ(feed.late, 0u);
  EXPECT_GT(warm_findings, 0u);

  // The window really exercised the rules and their findings: many findings,
  // from rules of several kinds (the report shows which, and how keys moved).
  const uint64_t window_findings = sink.Total() - findings_before;
  std::string report;
  int rules_that_fired = 0;
  for (size_t r = 0; r < rules->rules().size(); ++r) {
    const uint64_t n = sink.per_rule[r] - per_rule_before[r];
    rules_that_fired += n > 0;
    report += Cat("  ", rules->rules()[r].name, ": ", n, " findings, keys ", keys_before[r], " -> ",
                  engine.KeysHeld(static_cast<int>(r)), "\n");
  }
  EXPECT_GT(window_findings, 100u) << report;
  EXPECT_GE(rules_that_fired, 5) << report;
  // The KPIs counted the window's traffic (read after measuring: a scrape may allocate).
  std::vector<double> hour(kpi.cells() * kKpiCount);
  Micros lowest = 0, highest = 0;
  ASSERT_TRUE(kpi.Watermarks(&lowest, &highest));
  kpi.AddWindow(1, lowest, &hour);
  for (Kpi k : {Kpi::kOffered, Kpi::kAnswered, Kpi::kHandled, Kpi::kContacts, Kpi::kRepeatContacts, Kpi::kCallbacksDue,
                Kpi::kCallbacksMade, Kpi::kCsatResponses, Kpi::kNpsResponses}) {
    double total = 0;
    for (size_t c = 0; c < kpi.cells(); ++c) total += hour[c * kKpiCount + static_cast<size_t>(k)];
    EXPECT_GT(total, 0) << "KPI " << static_cast<size_t>(k) << " in the last hour";
  }
  const int ping_pong = rules->IndexOf("transfer_ping_pong");
  ASSERT_GE(ping_pong, 0);
  EXPECT_GT(engine.Stats(ping_pong).evaluations.load(), 0u);
  if (track_changes) {
    // Checkpoints ran in the window and wrote both kinds of record.
    EXPECT_GT(feed.changelog.puts, changelog_before.puts);
    EXPECT_GT(feed.changelog.erases, changelog_before.erases);
    std::printf("changelog in the window: %llu puts (%llu bytes), %llu tombstones\n",
                static_cast<unsigned long long>(feed.changelog.puts - changelog_before.puts),
                static_cast<unsigned long long>(feed.changelog.bytes - changelog_before.bytes),
                static_cast<unsigned long long>(feed.changelog.erases - changelog_before.erases));
  }
  std::printf("measured window (%zu events after %zu of warm-up): %llu findings, %ld allocations, %zu events "
              "with free text over 15 bytes\n%s",
              kMeasured, warm_events, static_cast<unsigned long long>(window_findings), allocated, long_strings,
              report.c_str());
}

TEST(EngineAllocTest, SteadyStateAllocatesNothingPerEventDecodeAndFindingsIncluded) {
  ExpectSteadyStateAllocatesNothing(false);
}

// Change tracking and the checkpoints after each batch allocate nothing either.
TEST(EngineAllocTest, SteadyStateWithCheckpointsAllocatesNothing) { ExpectSteadyStateAllocatesNothing(true); }

// Nor do findings on their way to Kafka through the daemon's sink.
TEST(EngineAllocTest, SteadyStateWithTheKafkaFindingSinkAllocatesNothing) {
  ExpectSteadyStateAllocatesNothing(true, true);
}

// Generated traffic from a small customer pool at a high contact rate, so
// every customer has state within days of it.
TrafficGenerator SmallPoolTraffic(uint64_t seed, std::chrono::system_clock::time_point start) {
  TrafficOptions options;
  options.seed = seed;
  options.customers = 1000;
  options.contacts_per_second = 0.5;
  return TrafficGenerator(options, start);
}
const auto kTrafficStart = std::chrono::system_clock::time_point(std::chrono::seconds(1'767'603'600));

// With change tracking on, as the daemon runs it with a changelog: the
// partitions' shares, the dirty lists and each batch's checkpoint of every
// partition allocate nothing once warm either.
TEST(EngineAllocTest, KpiChangeTrackingAndCheckpointsAllocateNothingOnceWarm) {
  const KpiConfig kpi_config;
  QueueLabels queues(kpi_config);
  KpiAggregator kpi(kpi_config, &queues, EngineConfig().allowed_lateness, EngineConfig().idle_partition_timeout,
                    /*track_changes=*/true);
  CountingWriter changelog;
  size_t fed = 0;
  const auto feed = [&](const cx::v1::InteractionEvent& e) {
    const Micros now = ToMicros(e.occurred_at());
    kpi.Record(e, static_cast<int32_t>(std::hash<std::string>()(e.customer_id()) % kPartitions), now);
    if (++fed % kTickEvery != 0) return;
    kpi.Tick(now);
    for (int32_t p = 0; p < kPartitions; ++p) kpi.Checkpoint(p, changelog);
  };
  TrafficGenerator gen = SmallPoolTraffic(5, kTrafficStart);
  std::vector<cx::v1::InteractionEvent> events;
  auto t = kTrafficStart;
  for (; t < kTrafficStart + std::chrono::hours(4 * 24); t += std::chrono::minutes(10)) {
    events.clear();
    gen.Poll(t, &events);
    for (const auto& e : events) feed(e);
  }
  std::vector<cx::v1::InteractionEvent> measured;
  while (measured.size() < kMeasured) {
    t += std::chrono::minutes(10);
    gen.Poll(t, &measured);
  }
  const size_t written_before = changelog.bytes;
  const long before = ::cxpulse::testing::Allocations();
  for (const auto& e : measured) feed(e);
  const long allocated = ::cxpulse::testing::Allocations() - before;
  EXPECT_EQ(allocated, 0) << "allocations over " << measured.size() << " events with tracking and checkpoints";
  EXPECT_GT(changelog.bytes, written_before) << "the checkpoints wrote the window's changes";
}

// Why the merge holds events in their wire form: copying into a reused
// message allocates on every event (Clear() deletes the body and Timestamp
// sub-messages that CopyFrom makes again); copying bytes into a reused
// string does not.
TEST(EngineAllocTest, CopyFromIntoAReusedMessageAllocatesAWireCopyDoesNot) {
  std::vector<cx::v1::InteractionEvent> events(4);
  for (size_t i = 0; i < events.size(); ++i) {
    events[i].set_event_id("e" + std::to_string(i));
    SetTimestamp(static_cast<Micros>(i) * kMicrosPerSecond, events[i].mutable_occurred_at());
    if (i % 2 == 0) events[i].mutable_answered()->mutable_wait()->set_seconds(30);
    else events[i].mutable_abandoned()->mutable_wait()->set_seconds(90);
  }
  cx::v1::InteractionEvent slot;
  std::string wire_slot, wire;
  for (const auto& e : events) {  // warm
    slot.CopyFrom(e);
    e.SerializeToString(&wire);
    wire_slot.assign(wire);
  }
  long before = ::cxpulse::testing::Allocations();
  for (int round = 0; round < 100; ++round) {
    for (const auto& e : events) slot.CopyFrom(e);
  }
  EXPECT_GE(::cxpulse::testing::Allocations() - before, 400) << "CopyFrom into a reused message";
  before = ::cxpulse::testing::Allocations();
  for (int round = 0; round < 100; ++round) {
    for (const auto& e : events) {
      e.SerializeToString(&wire);
      wire_slot.assign(wire);
    }
  }
  EXPECT_EQ(::cxpulse::testing::Allocations() - before, 0) << "wire form into a reused string";
}

// The daemon's two paths over the same traffic: a shard's engine on the
// per-customer rules, and the centre stage's: decode, merge four partitions
// in event time, decode what is released, the centre-wide rules, the clock
// moved to the merged watermark. Once warm, neither allocates.
TEST(EngineAllocTest, TheCentrePathAllocatesNothingPerEventOnceWarm) {
  auto loaded = LoadRuleSet({CXPULSE_RULES_DIR});
  ASSERT_TRUE(loaded.ok()) << Message(loaded.status());
  const std::shared_ptr<const RuleSet> rules = *loaded;
  CountingSink sink(rules->rules().size());
  EngineOptions shard_options;
  shard_options.scope = ScopeSelector::kCustomer;
  Engine shard_engine(rules, shard_options, &sink);
  EngineOptions centre_options;
  centre_options.allowed_lateness = 0;
  centre_options.idle_partition_timeout = INT64_MAX / 4;
  centre_options.scope = ScopeSelector::kCentre;
  Engine centre_engine(std::make_shared<const RuleSet>(*rules), centre_options, &sink);
  EventTimeMerge merge(EventTimeMerge::Options{.allowed_lateness = EngineConfig().allowed_lateness,
                                               .idle_timeout = EngineConfig().idle_partition_timeout},
                       kPartitions);

  const auto start = kTrafficStart;
  TrafficGenerator gen = SmallPoolTraffic(11, start);
  EventDecoder decoder, release_decoder;
  std::string wire;
  std::vector<int64_t> offsets(kPartitions, 0);
  std::vector<int64_t> lowest;
  size_t late = 0, released = 0, fed = 0;
  auto feed = [&](const std::string& w) {
    const cx::v1::InteractionEvent* e = decoder.Decode(w.data(), w.size());
    ASSERT_NE(e, nullptr);
    const Micros now = ToMicros(e->occurred_at());
    const auto p = static_cast<int32_t>(std::hash<std::string>()(e->customer_id()) % kPartitions);
    if (shard_engine.Process(p, *e, now) == Engine::Outcome::kLate) ++late;
    const bool keep = !rules->RulesFor(e->body_case(), ScopeSelector::kCentre).empty();
    if (keep && merge.full()) FAIL() << "the merge filled up";
    if (merge.Push(p, offsets[static_cast<size_t>(p)]++, *e, w, keep, now) == EventTimeMerge::Outcome::kLate) ++late;
    if (++fed % kTickEvery != 0) return;
    // As the centre stage does after each batch.
    while (const EventTimeMerge::Released* r = merge.Next(now)) {
      const cx::v1::InteractionEvent* out = release_decoder.Decode(r->encoded.data(), r->encoded.size());
      ASSERT_NE(out, nullptr);
      ASSERT_EQ(centre_engine.Process(0, *out, now), Engine::Outcome::kProcessed);
      ++released;
    }
    if (merge.watermark() != Watermark::kNone) centre_engine.AdvanceWatermark(0, merge.watermark(), now);
    merge.LowestHeldOffsets(&lowest);
    shard_engine.Tick(now);
    centre_engine.Tick(now);
  };

  std::vector<cx::v1::InteractionEvent> batch;
  auto t = start;
  // 8 days: where a hash table grows depends on its layout, which absl seeds
  // per process; 4 days of warm-up left one growth to fall, in about one run
  // in five, inside the measured window.
  for (; t < start + std::chrono::hours(8 * 24); t += std::chrono::minutes(10)) {
    batch.clear();
    gen.Poll(t, &batch);
    for (const auto& e : batch) {
      e.SerializeToString(&wire);
      feed(wire);
    }
  }
  std::vector<cx::v1::InteractionEvent> measured;
  while (measured.size() < kMeasured) {
    t += std::chrono::minutes(10);
    gen.Poll(t, &measured);
  }
  measured.resize(kMeasured);
  std::vector<std::string> measured_wire;
  for (const auto& e : measured) measured_wire.push_back(e.SerializeAsString());
  const uint64_t findings_before = sink.Total();
  const size_t released_before = released;
  const std::vector<uint64_t> per_rule_before = sink.per_rule;

  const long before = ::cxpulse::testing::Allocations();
  for (const std::string& w : measured_wire) feed(w);
  const long allocated = ::cxpulse::testing::Allocations() - before;

  // At most one growth of a hash table, not one allocation per event: when
  // a table that erases keys (swept, promises kept) grows rather than drops
  // its tombstones in place depends on its layout, which absl seeds per
  // process, and even after 8 days of warm-up one growth fell inside the
  // window in about one run in ten (seen 2026-12-07: 1 allocation in 100,000
  // events). Allocating per event would show as thousands here.
  EXPECT_LE(allocated, 1) << "allocations over " << kMeasured << " events";
  EXPECT_EQ(late, 0u);
  EXPECT_GT(released - released_before, kMeasured / 4) << "the centre-wide rules saw the window's traffic";
  EXPECT_GT(sink.Total(), findings_before);
  for (const char* centre_rule : {"reason_surge", "queue_abandonment_spike", "answer_time_over_target"}) {
    const int r = rules->IndexOf(centre_rule);
    ASSERT_GE(r, 0);
    EXPECT_GT(centre_engine.Stats(r).evaluations.load(), 0u) << centre_rule;
    EXPECT_EQ(shard_engine.Stats(r).evaluations.load(), 0u) << centre_rule;
  }
  const int answer = rules->IndexOf("answer_time_over_target");
  EXPECT_GT(sink.per_rule[static_cast<size_t>(answer)], per_rule_before[static_cast<size_t>(answer)])
      << "a centre-wide rule fired in the measured window";
}

}  // namespace
}  // namespace cxpulse
