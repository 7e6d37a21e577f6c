// Engine::Checkpoint and Engine::Restore: what a changelog carries, what a
// restored engine does with it, and what it refuses.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common/strings.h"
#include "engine/engine.h"
#include "engine/rule_compiler.h"
#include "gen/traffic_generator.h"
#include "google/protobuf/util/message_differencer.h"
#include "support/events.h"
#include "support/temp_dir.h"

namespace cxpulse {
namespace {

using testing::CallbackAttempted;
using testing::CallbackRequested;
using testing::Ended;
using testing::kMinute;
using testing::kT0;

// One partition's changelog after compaction (the latest value of each key,
// tombstones gone), and the writes of the last checkpoint as they came.
class MemoryLog final : public StateWriter {
 public:
  void Put(std::string_view key, std::string_view value) override {
    latest[std::string(key)] = std::string(value);
    writes.push_back({true, std::string(key)});
  }
  void Erase(std::string_view key) override {
    latest.erase(std::string(key));
    writes.push_back({false, std::string(key)});
  }
  struct Write {
    bool put;
    std::string key;
    bool operator==(const Write&) const = default;
  };
  std::map<std::string, std::string> latest;
  std::vector<Write> writes;
};

class RecordingSink final : public FindingSink {
 public:
  void Emit(int, const cx::v1::Finding& f) override { findings.push_back(f); }
  std::vector<cx::v1::Finding> findings;
};

std::string RecordKey(std::string_view rule, std::string_view key) {
  return Cat(std::string_view(&kEngineRecord, 1), rule, std::string_view("\0", 1), key);
}

constexpr char kRules[] = R"(
rules:
  - {name: repeat_contact, family: prevention, kind: count, on: ended, key: [customer_id, reason], window: 1h,
     threshold: 3, cooldown: 30m, severity: warning}
  - {name: callback_missed, family: gap, kind: absence, on: callback_requested, expect: callback_attempted,
     key: customer_id, deadline: callback_requested.due_at, severity: critical}
)";

// Small rules from text, and engines over them with tracking on.
class StateTest : public ::testing::Test {
 protected:
  std::shared_ptr<const RuleSet> Load(const std::string& text) {
    auto rules = LoadRuleSet({dir_.Write("r" + std::to_string(files_++) + ".yaml", text)});
    EXPECT_TRUE(rules.ok()) << Message(rules.status());
    return rules.ok() ? *rules : nullptr;
  }
  std::unique_ptr<Engine> NewEngine(std::shared_ptr<const RuleSet> rules, size_t max_keys = 2'000'000) {
    EngineOptions options{30 * kMicrosPerSecond, 10 * kMicrosPerSecond};
    options.track_changes = true;
    options.max_keys_per_rule = max_keys;
    return std::make_unique<Engine>(std::move(rules), options, &sink_);
  }
  // A fresh engine over `rules`, partition 0 restored from `log`; the drops by reason.
  std::unique_ptr<Engine> Restored(std::shared_ptr<const RuleSet> rules, const MemoryLog& log,
                                   std::map<RestoreDrop, int>* drops = nullptr, size_t max_keys = 2'000'000) {
    auto engine = NewEngine(std::move(rules), max_keys);
    for (const auto& [key, value] : log.latest) {
      const RestoreDrop d = engine->Restore(0, key, value, kT0);
      if (drops) ++(*drops)[d];
    }
    return engine;
  }
  MemoryLog Checkpoint(Engine& engine) {
    MemoryLog log;
    engine.Checkpoint(0, log);
    return log;
  }
  void Feed(Engine& engine, const cx::v1::InteractionEvent& e) {
    ASSERT_EQ(engine.Process(0, e, kT0), Engine::Outcome::kProcessed);
  }

  testing::TempDir dir_;
  int files_ = 0;
  RecordingSink sink_;
};

TEST_F(StateTest, ACheckpointWritesOnlyWhatChangedSinceThePreviousOne) {
  auto engine = NewEngine(Load(kRules));
  Feed(*engine, Ended("e1", kT0, "c1"));
  Feed(*engine, Ended("e2", kT0 + kMinute, "c2"));
  MemoryLog first = Checkpoint(*engine);
  EXPECT_EQ(first.latest.size(), 3u);  // two count keys and the watermark
  EXPECT_TRUE(first.latest.contains(RecordKey("repeat_contact", "c1\x1f" "billing_dispute")));
  EXPECT_TRUE(first.latest.contains("e"));

  EXPECT_TRUE(Checkpoint(*engine).writes.empty()) << "nothing changed";

  // An event older than the newest (within the allowed lateness) leaves the
  // watermark where it was: one key touched, one record.
  Feed(*engine, Ended("e3", kT0 + kMinute - kMicrosPerSecond, "c1"));
  const MemoryLog second = Checkpoint(*engine);
  EXPECT_EQ(second.writes,
            (std::vector<MemoryLog::Write>{{true, RecordKey("repeat_contact", "c1\x1f" "billing_dispute")}}));
  EXPECT_EQ(engine->KeysHeld(0), 2u);
}

TEST_F(StateTest, WithoutTrackingACheckpointWritesNothing) {
  Engine engine(Load(kRules), EngineOptions{}, &sink_);
  ASSERT_EQ(engine.Process(0, Ended("e1", kT0, "c1"), kT0), Engine::Outcome::kProcessed);
  MemoryLog log;
  engine.Checkpoint(0, log);
  EXPECT_TRUE(log.writes.empty());
}

TEST_F(StateTest, KeptAndBrokenPromisesAndSweptKeysWriteTombstones) {
  auto engine = NewEngine(Load(kRules));
  Feed(*engine, CallbackRequested("r1", kT0, "c1", kT0 + 60 * kMinute));
  Feed(*engine, CallbackRequested("r2", kT0, "c2", kT0 + 60 * kMinute));
  Feed(*engine, Ended("e1", kT0, "c3"));
  EXPECT_EQ(Checkpoint(*engine).latest.size(), 4u);

  Feed(*engine, CallbackAttempted("a1", kT0 + kMinute, "c1"));  // kept
  EXPECT_EQ(Checkpoint(*engine).writes, (std::vector<MemoryLog::Write>{{true, "e"}, {false, RecordKey("callback_missed", "c1")}}));

  // Past c2's deadline and c3's window: the promise breaks, the count key is swept.
  engine->AdvanceWatermark(0, kT0 + 2 * 60 * kMinute, kT0);
  engine->Tick(kT0 + 20 * kMicrosPerSecond);
  ASSERT_EQ(sink_.findings.size(), 1u);
  const MemoryLog log = Checkpoint(*engine);
  std::vector<MemoryLog::Write> tombstones;
  for (const auto& w : log.writes) {
    if (!w.put) tombstones.push_back(w);
  }
  EXPECT_EQ(tombstones, (std::vector<MemoryLog::Write>{{false, RecordKey("repeat_contact", "c3\x1f" "billing_dispute")},
                                                        {false, RecordKey("callback_missed", "c2")}}))
      << "in rule order";
  EXPECT_EQ(engine->KeysHeld(0) + engine->KeysHeld(1), 0u);
}

// A promise kept and made again within one interval: its key's last write
// is the new promise, which a restored engine holds (and reports broken).
TEST_F(StateTest, AKeyErasedAndCreatedAgainInOneIntervalEndsWithItsPut) {
  auto rules = Load(kRules);
  auto engine = NewEngine(rules);
  MemoryLog log;
  Feed(*engine, CallbackRequested("r1", kT0, "c1", kT0 + 60 * kMinute));
  engine->Checkpoint(0, log);
  Feed(*engine, CallbackAttempted("a1", kT0 + kMinute, "c1"));
  Feed(*engine, CallbackRequested("r2", kT0 + 2 * kMinute, "c1", kT0 + 90 * kMinute));
  log.writes.clear();
  engine->Checkpoint(0, log);
  const std::string key = RecordKey("callback_missed", "c1");
  auto last = std::find_if(log.writes.rbegin(), log.writes.rend(), [&](const auto& w) { return w.key == key; });
  ASSERT_NE(last, log.writes.rend());
  EXPECT_TRUE(last->put);

  auto restored = Restored(rules, log);
  restored->AdvanceWatermark(0, kT0 + 2 * 60 * kMinute, kT0);
  ASSERT_EQ(sink_.findings.size(), 1u);
  EXPECT_EQ(sink_.findings[0].evidence_event_ids(0), "r2");
}

TEST_F(StateTest, AnUnchangedRuleKeepsItsStateAChangedOrRemovedOneDropsIt) {
  auto engine = NewEngine(Load(kRules));
  Feed(*engine, Ended("e1", kT0, "c1"));
  Feed(*engine, Ended("e2", kT0 + kMinute, "c1"));
  Feed(*engine, CallbackRequested("r1", kT0 + kMinute, "c1", kT0 + 60 * kMinute));
  const MemoryLog log = Checkpoint(*engine);

  // Same rules: the count goes on from two.
  std::map<RestoreDrop, int> drops;
  auto same = Restored(Load(kRules), log, &drops);
  EXPECT_EQ(drops, (std::map<RestoreDrop, int>{{RestoreDrop::kNone, 3}}));
  EXPECT_EQ(same->KeysHeld(0), 1u);
  Feed(*same, Ended("e3", kT0 + 2 * kMinute, "c1"));
  ASSERT_EQ(sink_.findings.size(), 1u);
  EXPECT_EQ(sink_.findings[0].count(), 3);

  // repeat_contact's threshold changed, callback_missed went.
  std::string changed = kRules;
  changed.replace(changed.find("threshold: 3"), 12, "threshold: 4");
  changed.resize(changed.find("  - {name: callback_missed"));
  drops.clear();
  auto other = Restored(Load(changed), log, &drops);
  EXPECT_EQ(drops, (std::map<RestoreDrop, int>{
                       {RestoreDrop::kNone, 1}, {RestoreDrop::kRuleRemoved, 1}, {RestoreDrop::kRuleChanged, 1}}));
  EXPECT_EQ(other->KeysHeld(0), 0u);
}

TEST_F(StateTest, RestoreStopsAtTheKeyLimit) {
  auto rules = Load(kRules);
  auto engine = NewEngine(rules);
  for (const char* c : {"c1", "c2", "c3"}) Feed(*engine, Ended(std::string("e") + c, kT0, c));
  std::map<RestoreDrop, int> drops;
  auto restored = Restored(rules, Checkpoint(*engine), &drops, 2);
  EXPECT_EQ(drops, (std::map<RestoreDrop, int>{{RestoreDrop::kNone, 3}, {RestoreDrop::kKeyLimit, 1}}));
  EXPECT_EQ(restored->KeysHeld(0), 2u);
}

TEST_F(StateTest, TheRestoredWatermarkNeverMovesBackAndIdlesFromRestoreTime) {
  auto rules = Load(kRules);
  auto engine = NewEngine(rules);
  ASSERT_EQ(engine->Process(0, Ended("e1", kT0, "c1"), kT0), Engine::Outcome::kProcessed);
  // Idle at its end: the watermark follows the wall clock, and Tick fires by it.
  engine->Tick(kT0 + 10 * kMinute);
  const Micros before = engine->WatermarkOf(0, kT0 + 10 * kMinute);
  ASSERT_GT(before, kT0);
  const MemoryLog log = Checkpoint(*engine);

  auto restored = NewEngine(rules);
  const Micros restart = kT0 + 365 * 24 * 60 * kMinute;  // another process, another wall clock
  ASSERT_EQ(restored->Restore(0, "e", log.latest.at("e"), restart), RestoreDrop::kNone);
  EXPECT_EQ(restored->WatermarkOf(0, restart), before);
  EXPECT_EQ(restored->WatermarkOf(0, restart + 5 * kMicrosPerSecond), before) << "not idle yet";
  EXPECT_EQ(restored->WatermarkOf(0, restart + kMinute), before + kMinute);
  EXPECT_TRUE(Checkpoint(*restored).writes.empty()) << "restored state counts as written";
}

// One record of each kind, from rules small enough to fill by hand.
constexpr char kEveryKind[] = R"(
rules:
  - {name: m, family: gap, kind: match, on: ended, key: customer_id, cooldown: 1h, severity: info}
  - {name: n, family: gap, kind: count, on: ended, key: customer_id, window: 1h, threshold: 9, severity: info}
  - {name: s, family: gap, kind: sum, on: ended, value: ended.handle_time, key: customer_id, window: 1h,
     threshold: 9h, severity: info}
  - {name: r, family: gap, kind: ratio, numerator: abandoned, denominator: queued, key: customer_id, window: 1h,
     threshold: 0.5, min_volume: 9, severity: info}
  - {name: k, family: gap, kind: spike, on: ended, key: customer_id, window: 1m, baseline: 10m, factor: 3,
     min_count: 9, severity: info}
  - {name: q, family: gap, kind: sequence, steps: [abandoned, complaint, ended], within: 1h, key: customer_id,
     severity: info}
  - {name: a, family: gap, kind: absence, on: callback_requested, expect: callback_attempted, key: customer_id,
     deadline: callback_requested.due_at, severity: info}
)";

std::vector<cx::v1::InteractionEvent> EveryKindEvents() {
  std::vector<cx::v1::InteractionEvent> events;
  for (int i = 0; i < 4; ++i) {
    auto ended = Ended("e" + std::to_string(i), kT0 + i * kMinute, "c1");
    ended.mutable_ended()->mutable_handle_time()->set_seconds(60 + i);
    events.push_back(ended);
  }
  auto queued = testing::Event("q1", kT0 + 5 * kMinute, "c1");
  queued.mutable_queued();
  events.push_back(queued);
  auto abandoned = testing::Event("ab1", kT0 + 5 * kMinute, "c1");
  abandoned.mutable_abandoned();
  events.push_back(abandoned);
  auto complaint = testing::Event("co1", kT0 + 6 * kMinute, "c1");
  complaint.mutable_complaint()->set_text("a complaint long enough to live on the heap");
  events.push_back(complaint);
  events.push_back(CallbackRequested("cb1", kT0 + 6 * kMinute, "c1", kT0 + 60 * kMinute));
  return events;
}

TEST_F(StateTest, EveryKindRestoresAndNoTruncationOrMutationCrashesOrPassesUnnoticed) {
  auto rules = Load(kEveryKind);
  auto engine = NewEngine(rules);
  for (const auto& e : EveryKindEvents()) Feed(*engine, e);
  const MemoryLog log = Checkpoint(*engine);
  ASSERT_EQ(log.latest.size(), rules->rules().size() + 1) << "a record per rule and the watermark";
  std::map<RestoreDrop, int> drops;
  auto restored = Restored(rules, log, &drops);
  EXPECT_EQ(drops, (std::map<RestoreDrop, int>{{RestoreDrop::kNone, static_cast<int>(log.latest.size())}}));

  std::mt19937_64 random(42);
  int unknown_versions = 0, mutations = 0;
  for (const auto& [key, value] : log.latest) {
    std::string bad = value;
    bad[0] = 2;
    EXPECT_EQ(NewEngine(rules)->Restore(0, key, bad, kT0), RestoreDrop::kUnknownVersion) << key;
    ++unknown_versions;
    for (size_t n = 0; n < value.size(); ++n) {
      EXPECT_NE(NewEngine(rules)->Restore(0, key, value.substr(0, n), kT0), RestoreDrop::kNone)
          << key << " truncated to " << n;
    }
    // Random flips, insertions and cuts, into one engine that must survive all.
    auto fuzzed = NewEngine(rules);
    for (int round = 0; round < 1000; ++round, ++mutations) {
      std::string m = value;
      for (int edits = 1 + static_cast<int>(random() % 4); edits > 0; --edits) {
        const size_t at = random() % (m.size() + 1);
        switch (random() % 3) {
          case 0: if (at < m.size()) m[at] = static_cast<char>(random()); break;
          case 1: m.insert(at, 1, static_cast<char>(random())); break;
          default: m.resize(at); break;
        }
      }
      const RestoreDrop d = fuzzed->Restore(0, key, m, kT0);
      ASSERT_LT(d, RestoreDrop::kCount);
    }
    // Whatever it took, it runs on.
    for (const auto& e : EveryKindEvents()) (void)fuzzed->Process(0, e, kT0);
    fuzzed->AdvanceWatermark(0, kT0 + 24 * 60 * kMinute, kT0);
    fuzzed->Tick(kT0 + kMinute);
  }
  EXPECT_EQ(unknown_versions, static_cast<int>(log.latest.size()));
  EXPECT_GE(mutations, 7000);
  EXPECT_EQ(NewEngine(rules)->Restore(0, RecordKey("n", "c1"), "", kT0), RestoreDrop::kMalformed);
  EXPECT_EQ(NewEngine(rules)->Restore(0, "en-no-separator", log.latest.begin()->second, kT0), RestoreDrop::kMalformed);
  EXPECT_EQ(NewEngine(rules)->Restore(0, "x", log.latest.begin()->second, kT0), RestoreDrop::kMalformed);
}

// ---- The whole pack over generated traffic ----------------------------------

// Rules of the kinds the pack lacks, and a spike and a ratio kept per
// customer so that a partition holds many keys of them.
constexpr char kExtraRules[] = R"(
rules:
  - {name: agent_busy, family: gap, kind: sum, on: ended, value: ended.handle_time, key: agent_id, window: 1h,
     threshold: 40m, cooldown: 20m, severity: info}
  - {name: customer_abandons, family: gap, kind: ratio, numerator: abandoned, denominator: queued, key: customer_id,
     window: 1d, threshold: 0.5, min_volume: 2, cooldown: 1h, severity: info}
  - {name: customer_burst, family: gap, kind: spike, on: contact_started, key: customer_id, window: 1h,
     baseline: 3h, factor: 2, min_count: 2, severity: info}
)";

constexpr int kPartitions = 4;
constexpr size_t kTickEvery = 256;        // as a shard ticks after each batch
constexpr size_t kCheckpointEvery = 1000;  // a commit interval

struct Stream {
  std::vector<cx::v1::InteractionEvent> events;
  std::vector<int32_t> partitions;
};

// Two days of a small centre, with a surge and a staffing drop so that the
// spike and ratio rules fire too; journeys compressed so promises come due.
Stream Traffic() {
  TrafficOptions options;
  options.seed = 5;
  options.customers = 3000;
  options.contacts_per_second = 0.15;
  options.time_compression = 4;
  options.surges.push_back({.reason = "outage", .after = std::chrono::hours(20), .duration = std::chrono::hours(1),
                            .extra_contacts_per_second = 1});
  options.staffing_drops.push_back(
      {.queue = "billing", .after = std::chrono::hours(30), .duration = std::chrono::hours(2), .agents_left = 0.1});
  const auto start = std::chrono::system_clock::time_point(std::chrono::seconds(1'767'603'600));
  TrafficGenerator gen(options, start);
  Stream s;
  for (auto t = start; t < start + std::chrono::hours(48); t += std::chrono::minutes(1)) gen.Poll(t, &s.events);
  for (const auto& e : s.events) {
    s.partitions.push_back(static_cast<int32_t>(std::hash<std::string>()(e.customer_id()) % kPartitions));
  }
  return s;
}

// Runs the stream from `from`, as a shard does: the wall clock at each
// event's time, a Tick after each batch; `after(i)` after event i.
void Play(Engine& engine, const Stream& s, size_t from, size_t to, const std::function<bool(size_t)>& after) {
  for (size_t i = from; i < to; ++i) {
    const Micros now = ToMicros(s.events[i].occurred_at());
    (void)engine.Process(s.partitions[i], s.events[i], now);
    if ((i + 1) % kTickEvery == 0) engine.Tick(now);
    if (!after(i)) return;
  }
}

void Finish(Engine& engine, const Stream& s) {
  const Micros end = ToMicros(s.events.back().occurred_at());
  for (int32_t p = 0; p < kPartitions; ++p) engine.AdvanceWatermark(p, end + 7 * 24 * 60 * kMinute, end);
}

std::vector<cx::v1::Finding> ById(std::vector<cx::v1::Finding> findings) {
  std::sort(findings.begin(), findings.end(), [](const auto& a, const auto& b) {
    return a.finding_id() != b.finding_id() ? a.finding_id() < b.finding_id()
                                            : a.SerializeAsString() < b.SerializeAsString();
  });
  return findings;
}

// The daemon's recovery, at random points between commits: the engine is
// lost, a new one restores every partition's changelog as of the last
// checkpoint, the findings of the interval it lost are not committed (the
// transaction aborts), and the events from the last checkpoint are read again.
TEST_F(StateTest, AnEngineRestoredAtAnyPointFindsExactlyWhatOneRunStraightThroughFinds) {
  auto loaded = LoadRuleSet({CXPULSE_RULES_DIR, dir_.Write("extra.yaml", kExtraRules)});
  ASSERT_TRUE(loaded.ok()) << Message(loaded.status());
  const std::shared_ptr<const RuleSet> rules = *loaded;
  const Stream stream = Traffic();
  ASSERT_GT(stream.events.size(), 100'000u);
  // Idle partitions would tie the watermark to the wall clock, which a
  // restart does not keep (TheRestoredWatermarkNeverMovesBackAndIdlesFromRestoreTime).
  const EngineOptions plain{30 * kMicrosPerSecond, 24 * 60 * kMinute};
  EngineOptions tracked = plain;
  tracked.track_changes = true;

  RecordingSink straight;
  Engine one(rules, plain, &straight);
  Play(one, stream, 0, stream.events.size(), [](size_t) { return true; });
  Finish(one, stream);

  std::mt19937_64 random(9);
  std::vector<size_t> crashes;
  for (int i = 0; i < 8; ++i) crashes.push_back(random() % stream.events.size());
  std::sort(crashes.begin(), crashes.end());
  crashes.push_back(SIZE_MAX);

  RecordingSink sink;
  auto engine = std::make_unique<Engine>(rules, tracked, &sink);
  std::vector<MemoryLog> logs(kPartitions);
  size_t committed_events = 0, committed_findings = 0, next_crash = 0, restores = 0;
  std::map<RuleKind, int> restored_by_kind;
  for (size_t from = 0; from < stream.events.size();) {
    size_t stopped = stream.events.size();
    Play(*engine, stream, from, stream.events.size(), [&](size_t i) {
      if ((i + 1) % kCheckpointEvery == 0) {
        for (int32_t p = 0; p < kPartitions; ++p) engine->Checkpoint(p, logs[static_cast<size_t>(p)]);
        committed_events = i + 1;
        committed_findings = sink.findings.size();
      }
      if (i != crashes[next_crash]) return true;
      ++next_crash;
      stopped = i;
      return false;
    });
    if (stopped == stream.events.size()) break;
    sink.findings.resize(committed_findings);
    engine = std::make_unique<Engine>(rules, tracked, &sink);
    const Micros wall = ToMicros(stream.events[committed_events > 0 ? committed_events - 1 : 0].occurred_at());
    for (int32_t p = 0; p < kPartitions; ++p) {
      for (const auto& [key, value] : logs[static_cast<size_t>(p)].latest) {
        ASSERT_EQ(engine->Restore(p, key, value, wall), RestoreDrop::kNone) << key;
        if (key.size() > 1) ++restored_by_kind[rules->rules()[static_cast<size_t>(rules->IndexOf(key.substr(1, key.find('\0') - 1)))].kind];
      }
    }
    ++restores;
    from = committed_events;
  }
  Finish(*engine, stream);

  EXPECT_EQ(restores, 8u);
  for (RuleKind kind : {RuleKind::kMatch, RuleKind::kCount, RuleKind::kSum, RuleKind::kRatio, RuleKind::kSpike,
                        RuleKind::kSequence, RuleKind::kAbsence}) {
    EXPECT_GT(restored_by_kind[kind], 0) << "no " << RuleKindName(kind) << " state was ever restored";
  }
  std::map<std::string, int> fired;
  for (const auto& f : straight.findings) ++fired[f.rule()];
  std::string report;
  for (const auto& [rule, n] : fired) report += Cat(" ", rule, "=", n);
  EXPECT_EQ(fired.size(), rules->rules().size()) << "every rule fires:" << report;

  const std::vector<cx::v1::Finding> want = ById(straight.findings), got = ById(sink.findings);
  ASSERT_EQ(got.size(), want.size()) << report;
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_TRUE(google::protobuf::util::MessageDifferencer::Equals(got[i], want[i]))
        << "restored:\n" << got[i].DebugString() << "straight through:\n" << want[i].DebugString();
  }
}

}  // namespace
}  // namespace cxpulse
