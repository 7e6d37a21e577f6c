#include "engine/engine.h"

#include <gtest/gtest.h>

#include "common/strings.h"

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
  // ...after it, with three contacts still in the window, it does.
  Feed(Ended("e5", kT0 + 33 * kMinute, "c1"));
  ASSERT_EQ(sink_.findings.size(), 2u);
  EXPECT_EQ(std::vector<std::string>(sink_.findings[1].evidence_event_ids().begin(),
                                     sink_.findings[1].evidence_event_ids().end()),
            (std::vector<std::string>{"e3", "e4", "e5"}));
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
