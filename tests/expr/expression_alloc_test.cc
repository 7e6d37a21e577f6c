// Evaluating a compiled expression must not allocate once warm. This binary
// replaces the global operator new with a counting one, so it is built on its
// own, apart from the other tests.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/time.h"
#include "cx/v1/event.pb.h"
#include "expr/expression.h"
#include "support/counting_allocator.h"


namespace cxpulse::expr {
namespace {

using cx::v1::InteractionEvent;

constexpr Micros kT0 = 1'790'000'000LL * kMicrosPerSecond;

// Keeps the optimiser from dropping a value or an allocation.
template <typename T>
void Escape(T* p) {
  asm volatile("" : : "g"(p) : "memory");
}

InteractionEvent Base() {
  InteractionEvent e;
  e.set_event_id("ev-1");
  SetTimestamp(kT0, e.mutable_occurred_at());
  e.set_customer_id("cust-1");
  e.set_channel(cx::v1::CHANNEL_VOICE);
  e.set_queue("billing");
  e.set_segment("vip");
  (*e.mutable_attributes())["tier"] = "Gold Plus";
  return e;
}

std::vector<InteractionEvent> Events() {
  std::vector<InteractionEvent> events;
  InteractionEvent survey = Base();
  survey.mutable_survey()->set_metric(cx::v1::SURVEY_METRIC_NPS);
  survey.mutable_survey()->set_score(3);
  events.push_back(survey);
  InteractionEvent complaint = Base();
  complaint.mutable_complaint()->set_category("REGULATOR");
  // Longer than the scratch lower() reserves: it grows once, in the warm-up.
  complaint.mutable_complaint()->set_text(std::string(500, 'X') + " Ombudsman");
  events.push_back(complaint);
  InteractionEvent ended = Base();
  ended.mutable_ended()->mutable_handle_time()->set_seconds(700);
  events.push_back(ended);
  InteractionEvent callback = Base();
  SetTimestamp(kT0 + 2 * 3600 * kMicrosPerSecond, callback.mutable_callback_requested()->mutable_due_at());
  events.push_back(callback);
  InteractionEvent sentiment = Base();
  sentiment.mutable_sentiment()->set_score(-0.8);
  events.push_back(sentiment);
  InteractionEvent answered = Base();
  answered.mutable_answered()->mutable_wait()->set_seconds(90);
  events.push_back(answered);
  return events;
}

constexpr std::string_view kExpressions[] = {
    "survey.metric == \"nps\" and survey.score <= 6",
    "segment == \"vip\" and sentiment.score < -0.6",
    "answered.wait > 60s",
    "lower(complaint.category) in [\"legal\", \"regulator\"] or contains(attributes.tier, \"gold\")",
    "not ended.resolved",
    "queue in [\"billing\", \"retention\"] and channel == \"voice\"",
    "ended.handle_time / 2 > 5m",
    "callback_requested.due_at - occurred_at > 1h",
    "starts_with(lower(attributes.tier), \"gold\") and attributes.missing == \"\"",
    "contains(lower(complaint.text), \"ombudsman\")",
    "lower(complaint.text)",
    "survey.score * 1.5 + 1 > 2 and ended.handle_time * 2 > 1m",
    "channel not in [\"chat\", \"email\"] and ends_with(customer_id, \"-1\")",
};

TEST(ExpressionAllocTest, TheCounterSeesAllocations) {
  const long before = ::cxpulse::testing::Allocations();
  auto* s = new std::string(1000, 'x');
  Escape(s);
  delete s;
  EXPECT_GE(::cxpulse::testing::Allocations() - before, 1);
}

TEST(ExpressionAllocTest, EvaluateDoesNotAllocateOnceWarm) {
  const std::vector<InteractionEvent> events = Events();
  std::vector<Expression> expressions;
  for (std::string_view text : kExpressions) {
    auto compiled = Expression::Compile(text);
    ASSERT_TRUE(std::holds_alternative<Expression>(compiled))
        << text << ": " << std::get<CompileError>(compiled).message;
    expressions.push_back(std::get<Expression>(std::move(compiled)));
  }
  // A shard's copy must be as quiet as the original.
  expressions.push_back(expressions[3]);

  auto evaluate_all = [&] {
    long matches = 0;
    size_t lowered = 0;
    for (const Expression& x : expressions) {
      for (const InteractionEvent& e : events) {
        const Value v = x.Evaluate(e);
        matches += v.type == Type::kBool && v.b;
        lowered += v.s.size();
      }
    }
    return std::pair{matches, lowered};
  };
  const auto expected = evaluate_all();  // warm-up: scratch buffers reach their size

  constexpr int kRounds = 100'000;
  const long before = ::cxpulse::testing::Allocations();
  long mismatches = 0;
  for (int round = 0; round < kRounds; ++round) {
    const auto got = evaluate_all();
    mismatches += got != expected;
  }
  const long allocated = ::cxpulse::testing::Allocations() - before;

  EXPECT_EQ(allocated, 0) << "allocations in " << kRounds << " rounds of evaluation";
  EXPECT_EQ(mismatches, 0);
  // The set really exercises matches and lower(): the one string expression,
  // lower(complaint.text), yields the 510-character text on the complaint
  // event and "" on the others.
  EXPECT_EQ(expected.second, 510u);
  EXPECT_GT(expected.first, 10);
}

}  // namespace
}  // namespace cxpulse::expr
