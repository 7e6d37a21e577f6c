#include "engine/engine.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

#include "common/strings.h"
#include "engine/rule_compiler.h"

#include "support/events.h"
#include "support/temp_dir.h"

namespace cxpulse {
namespace {

using testing::CallbackAttempted;
using testing::CallbackRequested;
using testing::Ended;
using testing::kMinute;
using testing::kT0;
using testing::Sentiment;

constexpr char kRules[] = R"(
rules:
  - name: repeat_contact
    family: prevention
    kind: count
    on: ended
    key: [customer_id, reason]
    window: 1h
    threshold: 3
    cooldown: 30m
    severity: warning
    summary: "{customer_id} called {count} times about {reason} within {window}"
    labels: {team: quality}
  - name: callback_missed
    family: gap
    kind: absence
    on: callback_requested
    expect: callback_attempted
    key: customer_id
    deadline: callback_requested.due_at
    severity: critical
    summary: "callback for {customer_id} due {due_at} not attempted"
    escalate_to: team-lead
)";

class RecordingSink final : public FindingSink {
 public:
  void Emit(int rule_index, const cx::v1::Finding& f) override {
    findings.push_back(f);
    rule_indices.push_back(rule_index);
  }
  std::vector<cx::v1::Finding> findings;
  std::vector<int> rule_indices;
};

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::TempDir dir;
    auto rules = LoadRuleSet({dir.Write("rules.yaml", kRules)});
    ASSERT_TRUE(rules.ok()) << Message(rules.status());
    engine_ = std::make_unique<Engine>(*rules, EngineOptions{30 * kMicrosPerSecond, 10 * kMicrosPerSecond}, &sink_);
  }
  Engine::Outcome Feed(const cx::v1::InteractionEvent& e, int32_t partition = 0) {
    return engine_->Process(partition, e, wall_);
  }

  RecordingSink sink_;
  std::unique_ptr<Engine> engine_;
  Micros wall_ = kT0;  // the wall clock, driven by the test
};

// Idle means read to the end: a partition whose records wait in a backlog
// (a slow shard, a stalled fetch) must not let its watermark run on with the
// wall clock, or the records waiting would turn late when read.
TEST(WatermarkTest, OnlyAPartitionAtItsEndIdlesForward) {
  constexpr Micros kSecond = kMicrosPerSecond;
  Watermark w(30 * kSecond, 10 * kSecond);
  w.Observe(kT0, kT0);
  w.SetAtEnd(false, kT0);
  EXPECT_EQ(w.Current(kT0 + 60 * kSecond), kT0 - 30 * kSecond) << "behind: not idle, however long";
  EXPECT_FALSE(w.IsLate(kT0 - 20 * kSecond, kT0 + 60 * kSecond));
  w.SetAtEnd(true, kT0 + 60 * kSecond);
  EXPECT_EQ(w.Current(kT0 + 60 * kSecond), kT0 + 30 * kSecond) << "at its end, quiet for 60 s: idles forward";
  // A record arrives: the idle clock stops where it was, and does not go back.
  w.SetAtEnd(false, kT0 + 60 * kSecond);
  EXPECT_EQ(w.Current(kT0 + 120 * kSecond), kT0 + 30 * kSecond);
  EXPECT_TRUE(w.IsLate(kT0 + 29 * kSecond, kT0 + 120 * kSecond));
}

// Idle also means heard from: a partition at its end whose broker stops
// answering keeps its watermark where the broker was last heard, so the
// events the broker took meanwhile are not late when they come.
TEST(WatermarkTest, AtItsEndIdlesForwardOnlyUpToWhenItsBrokerWasHeard) {
  constexpr Micros kSecond = kMicrosPerSecond;
  Watermark w(1 * kSecond, 2 * kSecond);
  w.Observe(kT0, kT0);
  w.HeardUntil(0, kT0);
  w.SetAtEnd(true, kT0);
  w.HeardUntil(kT0 + 5 * kSecond, kT0 + 5 * kSecond);
  EXPECT_EQ(w.Current(kT0 + 5 * kSecond), kT0 + 4 * kSecond) << "heard from: idles forward";
  // The broker goes quiet: 40 s of wall time, not one more answer.
  EXPECT_EQ(w.Current(kT0 + 45 * kSecond), kT0 + 4 * kSecond) << "not heard from: frozen";
  EXPECT_FALSE(w.IsLate(kT0 + 6 * kSecond, kT0 + 45 * kSecond)) << "an event of the stall is not late";
  w.HeardUntil(kT0 + 46 * kSecond, kT0 + 46 * kSecond);  // back, and nothing more on it
  EXPECT_EQ(w.Current(kT0 + 46 * kSecond), kT0 + 45 * kSecond);
  w.HeardUntil(kT0 + 10 * kSecond, kT0 + 47 * kSecond);  // an older report moves nothing back
  EXPECT_EQ(w.Current(kT0 + 47 * kSecond), kT0 + 45 * kSecond);
}

// An end of partition is read when the shard gets to it, which can be long
// after it was fetched (the shard was held up in a commit whose EndTxn the
// broker refused twice: BrokerFaultsTest.AddOffsetsToTxnAndEndTxnErrors,
// 50 to 100 events dead-lettered as late, one run in four). The records
// fetched after it wait behind it; reading the end says nothing of when the
// broker last had nothing more, so only the broker's own answers (HeardUntil)
// bound the idle advance.
TEST(WatermarkTest, AnEndReadLateDoesNotMakeTheRecordsBehindItLate) {
  constexpr Micros kSecond = kMicrosPerSecond;
  Watermark w(1 * kSecond, 1 * kSecond);
  w.HeardUntil(0, kT0);
  w.Observe(kT0, kT0);
  w.HeardUntil(kT0, kT0);  // heard: nothing past what was read
  // Blocked 3 s; meanwhile the end was fetched, then records stamped kT0 + 1.5 s.
  w.SetAtEnd(true, kT0 + 3 * kSecond);
  w.SetAtEnd(false, kT0 + 3 * kSecond);
  EXPECT_FALSE(w.IsLate(kT0 + 3 * kSecond / 2, kT0 + 3 * kSecond));
  EXPECT_EQ(w.Current(kT0 + 3 * kSecond), kT0 - 1 * kSecond);
}

TEST_F(EngineTest, CountFiresOnceAtThresholdWithEvidenceThenCoolsDown) {
  EXPECT_EQ(Feed(Ended("e1", kT0, "c1")), Engine::Outcome::kProcessed);
  Feed(Ended("e2", kT0 + 1 * kMinute, "c1"));
  EXPECT_TRUE(sink_.findings.empty());
  Feed(Ended("e3", kT0 + 2 * kMinute, "c1"));
  ASSERT_EQ(sink_.findings.size(), 1u);
  const cx::v1::Finding& f = sink_.findings[0];
  EXPECT_EQ(f.rule(), "repeat_contact");
  EXPECT_EQ(f.family(), cx::v1::FAMILY_PREVENTION);
  EXPECT_EQ(f.severity(), cx::v1::SEVERITY_WARNING);
  ASSERT_EQ(f.key_size(), 2);
  EXPECT_EQ(f.key(0).field(), "customer_id");
  EXPECT_EQ(f.key(0).value(), "c1");
  EXPECT_EQ(f.key(1).field(), "reason");
  EXPECT_EQ(f.key(1).value(), "billing_dispute");
  EXPECT_EQ(std::vector<std::string>(f.evidence_event_ids().begin(), f.evidence_event_ids().end()),
            (std::vector<std::string>{"e1", "e2", "e3"}));
  EXPECT_EQ(ToMicros(f.window_start()), kT0);
  EXPECT_EQ(ToMicros(f.window_end()), kT0 + 2 * kMinute);
  EXPECT_EQ(ToMicros(f.fired_at()), kT0 + 2 * kMinute);
  EXPECT_EQ(f.summary(), "c1 called 3 times about billing_dispute within 1h");
  EXPECT_EQ(f.labels().at("team"), "quality");
  EXPECT_EQ(f.finding_id().size(), 16u);

  // Within the cooldown a fourth contact does not fire again...
  Feed(Ended("e4", kT0 + 10 * kMinute, "c1"));
  EXPECT_EQ(sink_.findings.size(), 1u);
  // ...after it, it does, and counts every contact in the window: five,
  // not the threshold's three (issue 9).
  Feed(Ended("e5", kT0 + 33 * kMinute, "c1"));
  ASSERT_EQ(sink_.findings.size(), 2u);
  EXPECT_EQ(std::vector<std::string>(sink_.findings[1].evidence_event_ids().begin(),
                                     sink_.findings[1].evidence_event_ids().end()),
            (std::vector<std::string>{"e1", "e2", "e3", "e4", "e5"}));
  EXPECT_EQ(sink_.findings[1].count(), 5);
  EXPECT_FALSE(sink_.findings[1].count_is_lower_bound());
  EXPECT_EQ(sink_.findings[1].summary(), "c1 called 5 times about billing_dispute within 1h");
}

TEST_F(EngineTest, CountBeyondWhatAKeyHoldsSaysAtLeast) {
  // 300 contacts within the hour: the key holds the newest 256, so the
  // count is a lower bound and the summary says so.
  for (int i = 0; i < 300; ++i) Feed(Ended(absl::StrCat("e", i), kT0 + i * kMicrosPerSecond, "c1"));
  // The cooldown (30m) let only the third fire; one more after it counts all held.
  Feed(Ended("after", kT0 + 31 * kMinute, "c1"));
  ASSERT_EQ(sink_.findings.size(), 2u);
  const cx::v1::Finding& f = sink_.findings[1];
  EXPECT_EQ(f.count(), 256);
  EXPECT_TRUE(f.count_is_lower_bound());
  EXPECT_EQ(f.summary(), "c1 called at least 256 times about billing_dispute within 1h");
}

TEST_F(EngineTest, CountWindowEndsAtTheKeysNewestEventWhenOneArrivesOutOfOrder) {
  Feed(Ended("e1", kT0, "c1"));
  Feed(Ended("e3", kT0 + 20 * kMicrosPerSecond, "c1"));
  // Out of order, within the allowed lateness: the third in the window ending at e3.
  ASSERT_EQ(Feed(Ended("e2", kT0 + 10 * kMicrosPerSecond, "c1")), Engine::Outcome::kProcessed);
  ASSERT_EQ(sink_.findings.size(), 1u);
  const cx::v1::Finding& f = sink_.findings[0];
  EXPECT_EQ(ToMicros(f.fired_at()), kT0 + 20 * kMicrosPerSecond);
  EXPECT_EQ(ToMicros(f.window_start()), kT0);
  EXPECT_EQ(std::vector<std::string>(f.evidence_event_ids().begin(), f.evidence_event_ids().end()),
            (std::vector<std::string>{"e1", "e2", "e3"}));
}

TEST_F(EngineTest, CountKeepsKeysApartAndForgetsOutsideTheWindow) {
  Feed(Ended("e1", kT0, "c1"));
  Feed(Ended("e2", kT0 + 1 * kMinute, "c1", "outage"));  // other reason: other key
  Feed(Ended("e3", kT0 + 2 * kMinute, "c2"));              // other customer
  Feed(Ended("e4", kT0 + 61 * kMinute, "c1"));             // e1 has left the 1h window
  Feed(Ended("e5", kT0 + 62 * kMinute, "c1"));
  EXPECT_TRUE(sink_.findings.empty());
  Feed(Ended("e6", kT0 + 63 * kMinute, "c1"));
  ASSERT_EQ(sink_.findings.size(), 1u);
  EXPECT_EQ(sink_.findings[0].evidence_event_ids(0), "e4");
}

TEST_F(EngineTest, FindingIdIsDeterministic) {
  RecordingSink other;
  testing::TempDir dir;
  auto rules = LoadRuleSet({dir.Write("rules.yaml", kRules)});
  ASSERT_TRUE(rules.ok());
  Engine second(*rules, EngineOptions{}, &other);
  for (Engine* e : {engine_.get(), &second}) {
    for (int i = 0; i < 3; ++i) {
      (void)e->Process(0, Ended("e" + std::to_string(i), kT0 + i * kMinute, "c1"), wall_);
    }
  }
  ASSERT_EQ(sink_.findings.size(), 1u);
  ASSERT_EQ(other.findings.size(), 1u);
  EXPECT_EQ(sink_.findings[0].finding_id(), other.findings[0].finding_id());
  // A different key (on another partition, whose watermark is its own) gives a different id.
  (void)second.Process(1, Ended("x1", kT0, "c2"), wall_);
  (void)second.Process(1, Ended("x2", kT0 + kMinute, "c2"), wall_);
  (void)second.Process(1, Ended("x3", kT0 + 2 * kMinute, "c2"), wall_);
  ASSERT_EQ(other.findings.size(), 2u);
  EXPECT_NE(other.findings[0].finding_id(), other.findings[1].finding_id());
}

TEST_F(EngineTest, AbsenceFiresWhenTheWatermarkPassesTheDeadline) {
  Feed(CallbackRequested("r1", kT0, "c1", kT0 + 10 * kMinute));
  Feed(Sentiment("s1", kT0 + 10 * kMinute, "other"));  // watermark = deadline - lateness
  EXPECT_TRUE(sink_.findings.empty());
  Feed(Sentiment("s2", kT0 + 11 * kMinute, "other"));  // watermark passes the deadline
  ASSERT_EQ(sink_.findings.size(), 1u);
  const cx::v1::Finding& f = sink_.findings[0];
  EXPECT_EQ(f.rule(), "callback_missed");
  EXPECT_EQ(f.key(0).value(), "c1");
  EXPECT_EQ(f.evidence_event_ids(0), "r1");
  EXPECT_EQ(ToMicros(f.fired_at()), kT0 + 10 * kMinute);
  EXPECT_EQ(f.escalate_to(), "team-lead");
  EXPECT_EQ(f.summary(), "callback for c1 due 2026-09-21T14:23:20Z not attempted");
  EXPECT_EQ(engine_->KeysHeld(1), 0u);
}

TEST_F(EngineTest, AbsenceIsCancelledByAnAttemptInTime) {
  Feed(CallbackRequested("r1", kT0, "c1", kT0 + 10 * kMinute));
  Feed(CallbackAttempted("a1", kT0 + 5 * kMinute, "c1"));
  Feed(Sentiment("s1", kT0 + 30 * kMinute, "other"));
  EXPECT_TRUE(sink_.findings.empty());
}

TEST_F(EngineTest, AbsenceFiresOnAnIdlePartitionAsTheWallClockMoves) {
  Feed(CallbackRequested("r1", kT0, "c1", kT0 + 1 * kMinute));
  engine_->Tick(wall_ + 5 * kMicrosPerSecond);  // not idle long enough
  EXPECT_TRUE(sink_.findings.empty());
  engine_->Tick(wall_ + 2 * kMinute);  // idle: the watermark follows the wall clock
  ASSERT_EQ(sink_.findings.size(), 1u);
  EXPECT_EQ(sink_.findings[0].rule(), "callback_missed");
}

TEST_F(EngineTest, LateEventsAreRefusedAndWatermarksArePerPartition) {
  Feed(Sentiment("s1", kT0 + 10 * kMinute, "c1"), 0);
  EXPECT_EQ(Feed(Ended("old", kT0, "c1"), 0), Engine::Outcome::kLate);
  EXPECT_EQ(Feed(Ended("ok", kT0 + 10 * kMinute - 20 * kMicrosPerSecond, "c1"), 0),
            Engine::Outcome::kProcessed);  // within the allowed lateness
  EXPECT_EQ(Feed(Ended("other", kT0, "c1"), 1), Engine::Outcome::kProcessed);
  EXPECT_EQ(engine_->WatermarkOf(0, wall_), kT0 + 10 * kMinute - 30 * kMicrosPerSecond);
}

TEST_F(EngineTest, DroppingAPartitionDropsItsState) {
  Feed(Ended("e1", kT0, "c1"), 3);
  Feed(Ended("e2", kT0 + kMinute, "c1"), 3);
  EXPECT_EQ(engine_->KeysHeld(0), 1u);
  engine_->DropPartition(3);
  EXPECT_EQ(engine_->KeysHeld(0), 0u);
  Feed(Ended("e3", kT0 + 2 * kMinute, "c1"), 3);
  EXPECT_TRUE(sink_.findings.empty());
}

TEST_F(EngineTest, IdleKeysExpire) {
  Feed(Ended("e1", kT0, "c1"));
  EXPECT_EQ(engine_->KeysHeld(0), 1u);
  Feed(Sentiment("s1", kT0 + 2 * 60 * kMinute, "c2"));
  engine_->Tick(wall_ + 11 * kMicrosPerSecond);
  EXPECT_EQ(engine_->KeysHeld(0), 0u);
}

}  // namespace
}  // namespace cxpulse

namespace cxpulse {
namespace {

using testing::Event;
using testing::kMinute;
using testing::kT0;

// One rule per kind, loaded from text, fed by hand-built events.
class KindTest : public ::testing::Test {
 protected:
  void Load(const std::string& rule, EngineOptions options = {30 * kMicrosPerSecond, 10 * kMicrosPerSecond}) {
    testing::TempDir dir;
    auto rules = LoadRuleSet({dir.Write("r.yaml", "rules:\n" + rule)});
    ASSERT_TRUE(rules.ok()) << Message(rules.status());
    engine_ = std::make_unique<Engine>(*rules, options, &sink_);
  }
  void Feed(const cx::v1::InteractionEvent& e) { ASSERT_EQ(engine_->Process(0, e, kT0), Engine::Outcome::kProcessed); }

  RecordingSink sink_;
  std::unique_ptr<Engine> engine_;
};

cx::v1::InteractionEvent EndedAfter(const std::string& id, Micros at, const std::string& agent, int handle_minutes) {
  auto e = Event(id, at, "c-" + id);
  e.set_agent_id(agent);
  e.mutable_ended()->mutable_handle_time()->set_seconds(handle_minutes * 60);
  return e;
}

TEST_F(KindTest, SumAddsDurationsPerKeyWithinTheWindow) {
  Load(R"(  - {name: busy, family: gap, kind: sum, on: ended, value: ended.handle_time, key: agent_id,
     window: 1h, threshold: 30m, severity: info, summary: "{agent_id} {value}"})");
  Feed(EndedAfter("e1", kT0, "a1", 10));
  Feed(EndedAfter("e2", kT0 + 5 * kMinute, "a2", 25));  // another agent
  Feed(EndedAfter("e3", kT0 + 10 * kMinute, "a1", 15));
  EXPECT_TRUE(sink_.findings.empty());
  Feed(EndedAfter("e4", kT0 + 20 * kMinute, "a1", 5));  // 30 minutes in all
  ASSERT_EQ(sink_.findings.size(), 1u);
  EXPECT_EQ(sink_.findings[0].key(0).value(), "a1");
  EXPECT_EQ(std::vector<std::string>(sink_.findings[0].evidence_event_ids().begin(),
                                     sink_.findings[0].evidence_event_ids().end()),
            (std::vector<std::string>{"e1", "e3", "e4"}));
  EXPECT_EQ(sink_.findings[0].summary(), "a1 1800000000");
}

TEST_F(KindTest, SumForgetsBucketsThatLeftTheWindow) {
  Load(R"(  - {name: busy, family: gap, kind: sum, on: ended, value: ended.handle_time, key: agent_id,
     window: 1h, threshold: 30m, severity: info})");
  Feed(EndedAfter("e1", kT0, "a1", 20));
  Feed(EndedAfter("e2", kT0 + 70 * kMinute, "a1", 15));  // e1 is out of the window
  EXPECT_TRUE(sink_.findings.empty());
}

TEST_F(KindTest, RatioNeedsItsMinimumVolume) {
  Load(R"(  - {name: abandon, family: prevention, kind: ratio, numerator: abandoned, denominator: queued,
     key: queue, window: 15m, threshold: 0.5, min_volume: 4, severity: info})");
  auto queued = [](const std::string& id, Micros at) {
    auto e = Event(id, at, "c-" + id);
    e.mutable_queued();
    return e;
  };
  auto abandoned = [](const std::string& id, Micros at) {
    auto e = Event(id, at, "c-" + id);
    e.mutable_abandoned();
    return e;
  };
  Feed(queued("q1", kT0));
  Feed(abandoned("a1", kT0 + kMinute));
  Feed(abandoned("a2", kT0 + kMinute));  // 2 of 1 queued: over the ratio, under the volume
  EXPECT_TRUE(sink_.findings.empty());
  Feed(queued("q2", kT0 + 2 * kMinute));
  Feed(queued("q3", kT0 + 2 * kMinute));
  EXPECT_TRUE(sink_.findings.empty());   // 2 of 3
  Feed(queued("q4", kT0 + 3 * kMinute));  // 2 of 4 = 0.5
  ASSERT_EQ(sink_.findings.size(), 1u);
  EXPECT_EQ(sink_.findings[0].key(0).value(), "billing");
}

TEST_F(KindTest, SequenceNeedsTheStepsInOrderWithinTheBound) {
  Load(R"(  - {name: seq, family: escalation, kind: sequence, steps: [abandoned, callback_requested, complaint],
     key: customer_id, within: 1h, severity: info})");
  auto ev = [](const std::string& id, Micros at, const std::string& body) {
    auto e = Event(id, at, "c1");
    if (body == "abandoned") e.mutable_abandoned();
    if (body == "callback_requested") e.mutable_callback_requested();
    if (body == "complaint") e.mutable_complaint();
    return e;
  };
  Feed(ev("x1", kT0, "complaint"));  // out of order: ignored
  Feed(ev("x2", kT0 + kMinute, "abandoned"));
  Feed(ev("x3", kT0 + 2 * kMinute, "callback_requested"));
  Feed(ev("x4", kT0 + 90 * kMinute, "complaint"));  // too late: the sequence expired
  EXPECT_TRUE(sink_.findings.empty());
  Feed(ev("y1", kT0 + 100 * kMinute, "abandoned"));
  Feed(ev("y2", kT0 + 101 * kMinute, "callback_requested"));
  Feed(ev("y3", kT0 + 102 * kMinute, "complaint"));
  ASSERT_EQ(sink_.findings.size(), 1u);
  EXPECT_EQ(sink_.findings[0].evidence_event_ids_size(), 3);
  EXPECT_EQ(sink_.findings[0].evidence_event_ids(0), "y1");
  EXPECT_EQ(ToMicros(sink_.findings[0].window_start()), kT0 + 100 * kMinute);
}

TEST_F(KindTest, CountKeepsItsWindowRightWhenEventsArriveOutOfOrder) {
  Load(R"(  - {name: rc, family: prevention, kind: count, on: ended, key: customer_id, window: 1h, threshold: 3,
     severity: info})");
  Feed(Ended("e2", kT0 + 10 * kMinute, "c1"));
  Feed(Ended("e1", kT0 + 10 * kMinute - 20 * kMicrosPerSecond, "c1"));  // within the allowed lateness (30s)
  Feed(Ended("e3", kT0 + 11 * kMinute, "c1"));
  ASSERT_EQ(sink_.findings.size(), 1u);
  EXPECT_EQ(ToMicros(sink_.findings[0].window_start()), kT0 + 10 * kMinute - 20 * kMicrosPerSecond);
  EXPECT_EQ(sink_.findings[0].evidence_event_ids(0), "e1");
}

TEST_F(KindTest, APromiseWithoutADueTimeIsNotHeldAgainstAnyone) {
  Load(R"(  - {name: cb, family: gap, kind: absence, on: callback_requested, expect: callback_attempted,
     key: customer_id, deadline: callback_requested.due_at, severity: critical})");
  auto no_due = Event("r1", kT0, "c1");
  no_due.mutable_callback_requested();
  Feed(no_due);
  Feed(testing::CallbackRequested("r2", kT0, "c2", kT0 - kMinute));  // due before it was made
  engine_->AdvanceWatermark(0, kT0 + 10 * 60 * kMinute, kT0);
  EXPECT_TRUE(sink_.findings.empty());
  EXPECT_EQ(engine_->KeysHeld(0), 0u);
}

TEST_F(KindTest, AbsenceWithAFixedBoundAndAConditionalFollowUp) {
  Load(R"(  - name: detractor
    family: gap
    kind: absence
    on: survey
    where: survey.metric == "nps" and survey.score <= 6
    expect: {on: contact_started, where: contact_started.direction == "outbound"}
    key: customer_id
    within: 48h
    severity: warning)");
  auto survey = [](const std::string& id, const std::string& customer, int score) {
    auto e = Event(id, kT0, customer);
    e.mutable_survey()->set_metric(cx::v1::SURVEY_METRIC_NPS);
    e.mutable_survey()->set_score(score);
    return e;
  };
  auto contact = [](const std::string& id, Micros at, const std::string& customer, cx::v1::Direction d) {
    auto e = Event(id, at, customer);
    e.mutable_contact_started()->set_direction(d);
    return e;
  };
  Feed(survey("s1", "c1", 3));
  Feed(survey("s2", "c2", 5));
  Feed(survey("s3", "c3", 9));  // a promoter: nothing to follow up
  Feed(contact("o1", kT0 + kMinute, "c1", cx::v1::DIRECTION_INBOUND));   // does not close the loop
  Feed(contact("o2", kT0 + kMinute, "c2", cx::v1::DIRECTION_OUTBOUND));  // does
  engine_->AdvanceWatermark(0, kT0 + 49 * 60 * kMinute, kT0);
  ASSERT_EQ(sink_.findings.size(), 1u);
  EXPECT_EQ(sink_.findings[0].key(0).value(), "c1");
  EXPECT_EQ(ToMicros(sink_.findings[0].fired_at()), kT0 + 48 * 60 * kMinute);
}

TEST_F(KindTest, SpikeComparesAKeyWithItsOwnBaseline) {
  Load(R"(  - {name: surge, family: prevention, kind: spike, on: queued, key: reason, window: 10m, baseline: 1h,
     factor: 3, min_count: 5, severity: info, summary: "{count} vs {baseline}"})");
  auto queued = [](const std::string& id, Micros at, const std::string& reason) {
    auto e = Event(id, at, "c-" + id, reason);
    e.mutable_queued();
    return e;
  };
  // Two an interval for an hour: a baseline of about two.
  int n = 0;
  for (int w = 0; w < 6; ++w) {
    for (int i = 0; i < 2; ++i) Feed(queued("b" + std::to_string(n++), kT0 + w * 10 * kMinute + i * kMinute, "outage"));
  }
  // Five in the next interval: not three times two.
  for (int i = 0; i < 5; ++i) Feed(queued("s" + std::to_string(i), kT0 + 60 * kMinute + i * kMinute, "outage"));
  EXPECT_TRUE(sink_.findings.empty());
  Feed(queued("s5", kT0 + 66 * kMinute, "outage"));  // six: three times the baseline
  ASSERT_EQ(sink_.findings.size(), 1u);
  EXPECT_EQ(sink_.findings[0].key(0).value(), "outage");
  EXPECT_EQ(sink_.findings[0].summary().substr(0, 5), "6 vs ");
}

TEST_F(KindTest, TheKeyLimitBoundsStateAndIsCounted) {
  EngineOptions options{30 * kMicrosPerSecond, 10 * kMicrosPerSecond};
  options.max_keys_per_rule = 2;
  Load(R"(  - {name: rc, family: prevention, kind: count, on: ended, key: customer_id, window: 1h, threshold: 2,
     severity: info})",
       options);
  Feed(Ended("e1", kT0, "c1"));
  Feed(Ended("e2", kT0, "c2"));
  Feed(Ended("e3", kT0, "c3"));  // a third key: not tracked
  Feed(Ended("e4", kT0 + kMinute, "c3"));
  EXPECT_EQ(engine_->KeysHeld(0), 2u);
  EXPECT_EQ(engine_->Stats(0).key_limit_hits.load(), 2u);
  EXPECT_TRUE(sink_.findings.empty());
  Feed(Ended("e5", kT0 + kMinute, "c1"));  // tracked keys still work
  EXPECT_EQ(sink_.findings.size(), 1u);
  EXPECT_EQ(engine_->Stats(0).findings.load(), 1u);
  EXPECT_EQ(engine_->Stats(0).evaluations.load(), 5u);
}

TEST_F(KindTest, MatchWithoutCooldownFiresOnEveryMatchingEvent) {
  Load(R"(  - {name: c, family: escalation, kind: match, on: complaint, where: 'lower(complaint.category) == "legal"',
     key: customer_id, severity: critical})");
  auto complaint = [](const std::string& id, const std::string& category) {
    auto e = Event(id, kT0, "c1");
    e.mutable_complaint()->set_category(category);
    return e;
  };
  Feed(complaint("x1", "LEGAL"));
  Feed(complaint("x2", "billing"));
  Feed(complaint("x3", "Legal"));
  ASSERT_EQ(sink_.findings.size(), 2u);
  EXPECT_EQ(sink_.findings[1].evidence_event_ids(0), "x3");
  EXPECT_NE(sink_.findings[0].finding_id(), sink_.findings[1].finding_id());
}

}  // namespace
}  // namespace cxpulse

namespace cxpulse {
namespace {

using testing::Ended;
using testing::Event;
using testing::kMinute;
using testing::kT0;

constexpr char kScopedRules[] = R"(rules:
  - {name: per_customer, family: prevention, kind: count, on: ended, key: customer_id, window: 1h, threshold: 2,
     severity: warning}
  - {name: per_queue, family: prevention, kind: count, on: ended, key: queue, window: 1h, threshold: 2,
     severity: warning}
  - {name: queue_silent, family: gap, kind: absence, on: queued, expect: answered, key: queue, within: 5m,
     severity: warning}
)";

// Which rules an engine runs: a shard's engine the per-customer ones, the
// centre stage's the centre-wide ones; the others cost nothing there.
class ScopeTest : public ::testing::Test {
 protected:
  std::unique_ptr<Engine> Make(ScopeSelector scope, const std::string& text = kScopedRules) {
    auto rules = LoadRuleSet({dir_.Write("r.yaml", text)});
    EXPECT_TRUE(rules.ok()) << Message(rules.status());
    EngineOptions options{30 * kMicrosPerSecond, 10 * kMicrosPerSecond};
    options.scope = scope;
    return std::make_unique<Engine>(*rules, options, &sink_);
  }
  std::vector<std::string> Fired() const {
    std::vector<std::string> names;
    for (const auto& f : sink_.findings) names.push_back(f.rule());
    return names;
  }
  void FeedTwo(Engine& engine) {
    // Two customers in one queue: the queue's count reaches 2, no customer's does.
    ASSERT_EQ(engine.Process(0, Ended("e1", kT0, "c1"), kT0), Engine::Outcome::kProcessed);
    ASSERT_EQ(engine.Process(0, Ended("e2", kT0 + kMinute, "c2"), kT0), Engine::Outcome::kProcessed);
  }

  testing::TempDir dir_;
  RecordingSink sink_;
};

TEST_F(ScopeTest, ACustomerEngineRunsOnlyPerCustomerRules) {
  auto engine = Make(ScopeSelector::kCustomer);
  FeedTwo(*engine);
  ASSERT_EQ(engine->Process(0, Ended("e3", kT0 + 2 * kMinute, "c1"), kT0), Engine::Outcome::kProcessed);
  EXPECT_EQ(Fired(), std::vector<std::string>{"per_customer"});
  EXPECT_EQ(engine->Stats(0).evaluations.load(), 3u);
  EXPECT_EQ(engine->KeysHeld(0), 2u);
  // The centre-wide rule was never evaluated, holds no key, fired nothing.
  EXPECT_EQ(engine->Stats(1).evaluations.load(), 0u);
  EXPECT_EQ(engine->KeysHeld(1), 0u);
  EXPECT_EQ(engine->Stats(1).findings.load(), 0u);
  // Nor do its timers: a queued event starts no promise here.
  auto queued = Event("q1", kT0 + 3 * kMinute, "c3");
  queued.mutable_queued();
  ASSERT_EQ(engine->Process(0, queued, kT0), Engine::Outcome::kProcessed);
  engine->AdvanceWatermark(0, kT0 + 60 * kMinute, kT0);
  EXPECT_EQ(engine->KeysHeld(2), 0u);
  EXPECT_EQ(Fired(), std::vector<std::string>{"per_customer"});
}

TEST_F(ScopeTest, ACentreEngineRunsOnlyCentreWideRulesTimersIncluded) {
  auto engine = Make(ScopeSelector::kCentre);
  FeedTwo(*engine);
  EXPECT_EQ(Fired(), std::vector<std::string>{"per_queue"});
  EXPECT_EQ(engine->Stats(0).evaluations.load(), 0u);
  EXPECT_EQ(engine->KeysHeld(0), 0u);
  auto queued = Event("q1", kT0 + 3 * kMinute, "c3");
  queued.mutable_queued();
  ASSERT_EQ(engine->Process(0, queued, kT0), Engine::Outcome::kProcessed);
  EXPECT_EQ(engine->KeysHeld(2), 1u);
  engine->AdvanceWatermark(0, kT0 + 60 * kMinute, kT0);  // the centre stage moves it to the merged watermark
  EXPECT_EQ(Fired(), (std::vector<std::string>{"per_queue", "queue_silent"}));
  EXPECT_EQ(sink_.findings[1].fired_at().seconds() * kMicrosPerSecond, kT0 + 8 * kMinute);
}

TEST_F(ScopeTest, AnEngineOfEveryScopeRunsEveryRule) {
  auto engine = Make(ScopeSelector::kAll);
  FeedTwo(*engine);
  ASSERT_EQ(engine->Process(0, Ended("e3", kT0 + 2 * kMinute, "c1"), kT0), Engine::Outcome::kProcessed);
  EXPECT_EQ(Fired(), (std::vector<std::string>{"per_queue", "per_customer"}));
}

TEST_F(ScopeTest, AReloadKeepsStateInScopeAndMakesNoneOutsideIt) {
  auto engine = Make(ScopeSelector::kCustomer);
  FeedTwo(*engine);
  // The same rules plus one per-customer and one centre-wide rule.
  std::string more = std::string(kScopedRules) +
                     "  - {name: per_customer_2, family: gap, kind: match, on: ended, key: customer_id, severity: info}\n"
                     "  - {name: per_agent, family: gap, kind: match, on: ended, key: agent_id, severity: info}\n";
  auto reloaded = LoadRuleSet({dir_.Write("r2.yaml", more)});
  ASSERT_TRUE(reloaded.ok()) << Message(reloaded.status());
  engine->SwapRules(*reloaded);
  EXPECT_EQ(engine->KeysHeld(0), 2u);  // carried over
  ASSERT_EQ(engine->Process(0, Ended("e3", kT0 + 2 * kMinute, "c1"), kT0), Engine::Outcome::kProcessed);
  EXPECT_EQ(Fired(), (std::vector<std::string>{"per_customer", "per_customer_2"}));
  EXPECT_EQ(engine->Stats(4).evaluations.load(), 0u);
  // A rule moved to the other scope by `scope:` leaves this engine, state and all.
  std::string moved = kScopedRules;
  moved.replace(moved.find("key: customer_id"), 16, "key: customer_id, scope: centre");
  auto moved_rules = LoadRuleSet({dir_.Write("r3.yaml", moved)});
  ASSERT_TRUE(moved_rules.ok()) << Message(moved_rules.status());
  engine->SwapRules(*moved_rules);
  EXPECT_EQ(engine->KeysHeld(0), 0u);
  engine->Tick(kT0 + 20 * kMicrosPerSecond);
  engine->DropPartition(0);
}

}  // namespace
}  // namespace cxpulse
