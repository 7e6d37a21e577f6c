#include "engine/offline_run.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/strings.h"
#include "engine/rule_compiler.h"
#include "support/events.h"
#include "support/temp_dir.h"

namespace cxpulse {
namespace {

using testing::kMinute;
using testing::kT0;
constexpr Micros kSecond = kMicrosPerSecond;

// The same shape twice: queued then abandoned within a minute, once per
// customer, once per queue (centre-wide).
constexpr char kRules[] = R"(rules:
  - {name: per_customer, family: gap, kind: sequence, steps: [queued, abandoned], within: 1m, key: customer_id,
     severity: info}
  - {name: per_queue, family: gap, kind: sequence, steps: [queued, abandoned], within: 1m, key: queue,
     severity: info}
  - {name: queue_unanswered, family: gap, kind: absence, on: queued, expect: answered, within: 10m, key: queue,
     severity: info}
)";

cx::v1::InteractionEvent Queued(const std::string& id, Micros t, const std::string& customer) {
  auto e = testing::Event(id, t, customer);
  e.mutable_queued();
  return e;
}
cx::v1::InteractionEvent Abandoned(const std::string& id, Micros t, const std::string& customer) {
  auto e = testing::Event(id, t, customer);
  e.mutable_abandoned();
  return e;
}

class OfflineRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto rules = LoadRuleSet({dir_.Write("r.yaml", kRules)});
    ASSERT_TRUE(rules.ok()) << Message(rules.status());
    run_ = std::make_unique<OfflineRun>(*rules, 30 * kSecond, [this](int, const cx::v1::Finding& f) {
      fired_.push_back(Cat(f.rule(), "@", (ToMicros(f.fired_at()) - kT0) / kSecond));
    });
  }
  void Feed(const cx::v1::InteractionEvent& e) { ASSERT_EQ(run_->Process(e), Engine::Outcome::kProcessed); }

  testing::TempDir dir_;
  std::unique_ptr<OfflineRun> run_;
  std::vector<std::string> fired_;
};

TEST_F(OfflineRunTest, PerCustomerRulesSeeInputOrderCentreWideRulesEventTimeOrder) {
  // One customer's abandonment recorded before its queueing, 5 s earlier in
  // time (within the lateness); then another customer's the other way round.
  Feed(Abandoned("a1", kT0 + 10 * kSecond, "c1"));
  Feed(Queued("q1", kT0 + 5 * kSecond, "c1"));
  EXPECT_TRUE(fired_.empty());
  // The centre-wide rule's finding waits for the watermark (newest - 30 s) to pass a1.
  Feed(Queued("q2", kT0 + 45 * kSecond, "c2"));
  EXPECT_EQ(fired_, std::vector<std::string>{"per_queue@10"});
  Feed(Abandoned("a2", kT0 + 50 * kSecond, "c2"));  // in order for c2 and for the queue
  EXPECT_EQ(fired_, (std::vector<std::string>{"per_queue@10", "per_customer@50"}));
  // At the end of the input the held events reach the centre-wide rules;
  // the queue's second sequence (q2, a2) fires, stamped with a2's time.
  run_->EndOfInput();
  EXPECT_EQ(fired_, (std::vector<std::string>{"per_queue@10", "per_customer@50", "per_queue@50"}));
}

TEST_F(OfflineRunTest, LateEventsReachNoRuleOfEitherScope) {
  Feed(Queued("q1", kT0 + 2 * kMinute, "c1"));
  EXPECT_EQ(run_->Process(Abandoned("late", kT0, "c1")), Engine::Outcome::kLate);
  run_->AdvancePastEnd();
  EXPECT_EQ(fired_, std::vector<std::string>{"queue_unanswered@720"});  // q1's 10 minutes, at the end
}

TEST_F(OfflineRunTest, CentreWideAbsenceFiresAsTheWatermarkPassesItsDeadline) {
  Feed(Queued("q1", kT0, "c1"));
  run_->AdvanceTo(kT0 + 10 * kMinute);  // exactly at the deadline: not passed
  EXPECT_TRUE(fired_.empty());
  run_->EndOfInput();  // time stays: nothing more fires
  EXPECT_TRUE(fired_.empty());
  run_->AdvanceTo(kT0 + 10 * kMinute + 1);
  EXPECT_EQ(fired_, std::vector<std::string>{"queue_unanswered@600"});
}

}  // namespace
}  // namespace cxpulse
