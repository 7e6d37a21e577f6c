#include "expr/expression.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/time.h"
#include "cx/v1/event.pb.h"

namespace cxpulse::expr {
namespace {

using cx::v1::InteractionEvent;

constexpr Micros kSecond = kMicrosPerSecond;
constexpr Micros kMinute = 60 * kSecond;
constexpr Micros kHour = 60 * kMinute;
constexpr Micros kT0 = 1'790'000'000LL * kSecond;  // 2026-09-21
constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();
constexpr int64_t kMinInt = std::numeric_limits<int64_t>::min();

void SetDuration(Micros d, google::protobuf::Duration* out) {
  out->set_seconds(d / kSecond);
  out->set_nanos(static_cast<int32_t>(d % kSecond * 1000));
}

// An event with every top-level field set and no body.
InteractionEvent Base() {
  InteractionEvent e;
  e.set_event_id("ev-1");
  SetTimestamp(kT0, e.mutable_occurred_at());
  e.set_customer_id("cust-1");
  e.set_contact_id("ct-1");
  e.set_channel(cx::v1::CHANNEL_VOICE);
  e.set_queue("billing");
  e.set_agent_id("ag-7");
  e.set_reason("billing_dispute");
  e.set_segment("vip");
  (*e.mutable_attributes())["tier"] = "Gold Plus";
  (*e.mutable_attributes())["region"] = "EU";
  return e;
}

InteractionEvent Survey(cx::v1::SurveyMetric metric, int score) {
  InteractionEvent e = Base();
  e.mutable_survey()->set_metric(metric);
  e.mutable_survey()->set_score(score);
  e.mutable_survey()->set_comment("too slow");
  return e;
}

InteractionEvent Ended(Micros handle_time, bool resolved) {
  InteractionEvent e = Base();
  SetDuration(handle_time, e.mutable_ended()->mutable_handle_time());
  e.mutable_ended()->set_resolved(resolved);
  e.mutable_ended()->set_disposition("refund");
  return e;
}

InteractionEvent CallbackDue(Micros due) {
  InteractionEvent e = Base();
  SetTimestamp(due, e.mutable_callback_requested()->mutable_due_at());
  return e;
}

InteractionEvent Sentiment(double score) {
  InteractionEvent e = Base();
  e.mutable_sentiment()->set_score(score);
  return e;
}

InteractionEvent Answered(Micros wait) {
  InteractionEvent e = Base();
  SetDuration(wait, e.mutable_answered()->mutable_wait());
  return e;
}

Expression Compiled(std::string_view text) {
  auto compiled = Expression::Compile(text);
  if (const auto* error = std::get_if<CompileError>(&compiled)) {
    ADD_FAILURE() << "\"" << text << "\" did not compile: " << error->offset << ": " << error->message;
    return std::get<Expression>(Expression::Compile("false"));
  }
  return std::get<Expression>(std::move(compiled));
}

// A Value with its string copied, so it outlives the Expression.
struct Result {
  Type type = Type::kBool;
  bool b = false;
  int64_t i = 0;
  double d = 0;
  std::string s;
};

Result Eval(std::string_view text, const InteractionEvent& event) {
  const Expression e = Compiled(text);
  const Value v = e.Evaluate(event);
  EXPECT_EQ(v.type, e.type()) << text;
  return Result{v.type, v.b, v.i, v.d, std::string(v.s)};
}

// A bool expression's value; fails the test if the expression is not bool.
bool Holds(std::string_view text, const InteractionEvent& event) {
  const Expression e = Compiled(text);
  EXPECT_EQ(e.type(), Type::kBool) << text;
  return e.Matches(event);
}

CompileError ErrorOf(std::string_view text) {
  auto compiled = Expression::Compile(text);
  if (std::holds_alternative<Expression>(compiled)) {
    ADD_FAILURE() << "\"" << text << "\" compiled, but should not have";
    return {};
  }
  return std::get<CompileError>(std::move(compiled));
}

struct Case {
  std::string_view text;
  bool expected;
};

void ExpectAll(const std::vector<Case>& cases, const InteractionEvent& event) {
  for (const Case& c : cases) EXPECT_EQ(Holds(c.text, event), c.expected) << c.text;
}

struct ErrorCase {
  std::string_view text;
  size_t offset;
  std::string_view message;
};

void ExpectErrors(const std::vector<ErrorCase>& cases) {
  for (const ErrorCase& c : cases) {
    const CompileError error = ErrorOf(c.text);
    EXPECT_EQ(error.offset, c.offset) << c.text;
    EXPECT_EQ(error.message, c.message) << c.text;
  }
}

TEST(ExpressionTest, LiteralsHaveTheirTypesAndValues) {
  const InteractionEvent e = Base();
  Result r = Eval("42", e);
  EXPECT_EQ(r.type, Type::kInt);
  EXPECT_EQ(r.i, 42);
  r = Eval("0.25", e);
  EXPECT_EQ(r.type, Type::kDouble);
  EXPECT_EQ(r.d, 0.25);
  r = Eval(R"("say \"hi\" \\ now")", e);
  EXPECT_EQ(r.type, Type::kString);
  EXPECT_EQ(r.s, R"(say "hi" \ now)");
  EXPECT_EQ(Eval(R"('it\'s')", e).s, "it's");
  EXPECT_EQ(Eval(R"('tab\there')", e).s, "tab\there");
  r = Eval("true", e);
  EXPECT_EQ(r.type, Type::kBool);
  EXPECT_TRUE(r.b);
  EXPECT_FALSE(Eval("false", e).b);
  const std::vector<std::pair<std::string_view, Micros>> durations = {
      {"90s", 90 * kSecond}, {"15m", 15 * kMinute},   {"7d", 7 * 24 * kHour},
      {"500ms", 500'000},    {"1h30m", 90 * kMinute}, {"-15m", -15 * kMinute},
  };
  for (const auto& [text, micros] : durations) {
    r = Eval(text, e);
    EXPECT_EQ(r.type, Type::kDuration) << text;
    EXPECT_EQ(r.i, micros) << text;
  }
  EXPECT_EQ(Eval("-5", e).i, -5);
  EXPECT_EQ(Eval("-2.5", e).d, -2.5);
}

TEST(ExpressionTest, ReadsTopLevelFieldsThroughDescriptors) {
  const InteractionEvent e = Base();
  EXPECT_EQ(Eval("event_id", e).s, "ev-1");
  EXPECT_EQ(Eval("customer_id", e).s, "cust-1");
  EXPECT_EQ(Eval("contact_id", e).s, "ct-1");
  EXPECT_EQ(Eval("queue", e).s, "billing");
  EXPECT_EQ(Eval("agent_id", e).s, "ag-7");
  EXPECT_EQ(Eval("reason", e).s, "billing_dispute");
  EXPECT_EQ(Eval("segment", e).s, "vip");
  const Result channel = Eval("channel", e);
  EXPECT_EQ(channel.type, Type::kString);
  EXPECT_EQ(channel.s, "voice");
  const Result at = Eval("occurred_at", e);
  EXPECT_EQ(at.type, Type::kTimestamp);
  EXPECT_EQ(at.i, kT0);
}

TEST(ExpressionTest, ReadsBodyFieldsWithTheirTypes) {
  const InteractionEvent survey = Survey(cx::v1::SURVEY_METRIC_NPS, 4);
  Result r = Eval("survey.metric", survey);
  EXPECT_EQ(r.type, Type::kString);
  EXPECT_EQ(r.s, "nps");
  r = Eval("survey.score", survey);
  EXPECT_EQ(r.type, Type::kInt);
  EXPECT_EQ(r.i, 4);
  EXPECT_EQ(Eval("survey.comment", survey).s, "too slow");

  r = Eval("sentiment.score", Sentiment(-0.7));
  EXPECT_EQ(r.type, Type::kDouble);
  EXPECT_EQ(r.d, -0.7);

  r = Eval("answered.wait", Answered(75 * kSecond + 250'000));
  EXPECT_EQ(r.type, Type::kDuration);
  EXPECT_EQ(r.i, 75 * kSecond + 250'000);

  const InteractionEvent ended = Ended(11 * kMinute, true);
  r = Eval("ended.resolved", ended);
  EXPECT_EQ(r.type, Type::kBool);
  EXPECT_TRUE(r.b);
  EXPECT_EQ(Eval("ended.handle_time", ended).i, 11 * kMinute);
  EXPECT_EQ(Eval("ended.disposition", ended).s, "refund");

  r = Eval("callback_requested.due_at", CallbackDue(kT0 + 2 * kHour));
  EXPECT_EQ(r.type, Type::kTimestamp);
  EXPECT_EQ(r.i, kT0 + 2 * kHour);

  InteractionEvent transferred = Base();
  transferred.mutable_transferred()->set_to_queue("retention");
  EXPECT_EQ(Eval("transferred.to_queue", transferred).s, "retention");

  InteractionEvent opened = Base();
  opened.mutable_case_opened()->set_case_id("case-9");
  SetTimestamp(kT0 + 24 * kHour, opened.mutable_case_opened()->mutable_sla_due_at());
  EXPECT_EQ(Eval("case_opened.case_id", opened).s, "case-9");
  EXPECT_EQ(Eval("case_opened.sla_due_at", opened).i, kT0 + 24 * kHour);

  InteractionEvent started = Base();
  started.mutable_contact_started()->set_direction(cx::v1::DIRECTION_OUTBOUND);
  EXPECT_EQ(Eval("contact_started.direction", started).s, "outbound");

  InteractionEvent complaint = Base();
  complaint.mutable_complaint()->set_category("Legal");
  EXPECT_EQ(Eval("complaint.category", complaint).s, "Legal");
}

TEST(ExpressionTest, BodyOfAnotherTypeReadsDefaults) {
  for (const InteractionEvent& e : {Ended(11 * kMinute, true), Base()}) {
    EXPECT_EQ(Eval("survey.score", e).i, 0);
    EXPECT_EQ(Eval("survey.metric", e).s, "unspecified");
    EXPECT_EQ(Eval("survey.comment", e).s, "");
    EXPECT_EQ(Eval("sentiment.score", e).d, 0.0);
    EXPECT_EQ(Eval("answered.wait", e).i, 0);
    EXPECT_EQ(Eval("callback_requested.due_at", e).i, 0);
    EXPECT_FALSE(Eval("callback_attempted.connected", e).b);
    EXPECT_FALSE(Holds("survey.metric == \"nps\" and survey.score <= 6", e));
  }
}

TEST(ExpressionTest, EnumsReadAsLowerCaseShortNames) {
  InteractionEvent e = Base();
  const std::vector<std::pair<cx::v1::Channel, std::string_view>> channels = {
      {cx::v1::CHANNEL_UNSPECIFIED, "unspecified"},
      {cx::v1::CHANNEL_CHAT, "chat"},
      {cx::v1::CHANNEL_EMAIL, "email"},
      {cx::v1::CHANNEL_SMS, "sms"},
      {cx::v1::CHANNEL_SOCIAL, "social"},
      {cx::v1::CHANNEL_WEB, "web"},
  };
  for (const auto& [channel, label] : channels) {
    e.set_channel(channel);
    EXPECT_EQ(Eval("channel", e).s, label);
    EXPECT_TRUE(Holds(std::string("channel == \"") + std::string(label) + "\"", e)) << label;
  }
  // The multi-word enum type name is the prefix: SURVEY_METRIC_.
  EXPECT_EQ(Eval("survey.metric", Survey(cx::v1::SURVEY_METRIC_CSAT, 2)).s, "csat");
  EXPECT_EQ(Eval("survey.metric", Survey(cx::v1::SURVEY_METRIC_CES, 2)).s, "ces");
  EXPECT_TRUE(Holds("survey.metric != \"nps\"", Survey(cx::v1::SURVEY_METRIC_CES, 2)));
  // proto3 enums are open: a number this schema does not know reads as "".
  e.set_channel(static_cast<cx::v1::Channel>(99));
  EXPECT_EQ(Eval("channel", e).s, "");
}

TEST(ExpressionTest, AttributesReadByKeyAndMissingKeysAreEmpty) {
  const InteractionEvent e = Base();
  const Result tier = Eval("attributes.tier", e);
  EXPECT_EQ(tier.type, Type::kString);
  EXPECT_EQ(tier.s, "Gold Plus");
  EXPECT_EQ(Eval("attributes.region", e).s, "EU");
  EXPECT_EQ(Eval("attributes.missing", e).s, "");
  EXPECT_TRUE(Holds("attributes.missing == \"\"", e));
  EXPECT_TRUE(Holds("attributes.tier == \"Gold Plus\"", e));
  EXPECT_TRUE(Holds("attributes.tier != attributes.region", e));
}

TEST(ExpressionTest, ComparisonOperators) {
  ExpectAll(
      {
          {"survey.score == 4", true},
          {"survey.score == 5", false},
          {"survey.score != 4", false},
          {"survey.score != 5", true},
          {"survey.score < 5", true},
          {"survey.score < 4", false},
          {"survey.score <= 4", true},
          {"survey.score <= 3", false},
          {"survey.score > 3", true},
          {"survey.score > 4", false},
          {"survey.score >= 4", true},
          {"survey.score >= 5", false},
          // int and double mix
          {"survey.score == 4.0", true},
          {"survey.score < 4.5", true},
          {"2.5 > survey.score", false},
          // strings, byte-wise
          {"queue == \"billing\"", true},
          {"queue != \"billing\"", false},
          {"queue < \"c\"", true},
          {"queue <= \"billing\"", true},
          {"queue > \"billing\"", false},
          {"queue >= \"bill\"", true},
          // durations and timestamps
          {"90s == 1m30s", true},
          {"1h > 59m", true},
          {"500ms >= 1s", false},
          {"occurred_at == occurred_at", true},
          {"occurred_at < occurred_at", false},
          // bools
          {"true == true", true},
          {"true != false", true},
          {"false == true", false},
      },
      Survey(cx::v1::SURVEY_METRIC_NPS, 4));
  EXPECT_TRUE(Holds("callback_requested.due_at > occurred_at", CallbackDue(kT0 + kSecond)));
  EXPECT_FALSE(Holds("callback_requested.due_at > occurred_at", CallbackDue(kT0)));
  EXPECT_TRUE(Holds("sentiment.score < -0.6", Sentiment(-0.7)));
  EXPECT_FALSE(Holds("sentiment.score < -0.6", Sentiment(-0.5)));
  EXPECT_TRUE(Holds("ended.resolved == false", Ended(kMinute, false)));
}

TEST(ExpressionTest, ArithmeticOperators) {
  const InteractionEvent e = Survey(cx::v1::SURVEY_METRIC_NPS, 4);
  Result r = Eval("survey.score * 2 + 1", e);
  EXPECT_EQ(r.type, Type::kInt);
  EXPECT_EQ(r.i, 9);
  EXPECT_EQ(Eval("10 - survey.score - 3", e).i, 3);
  r = Eval("7 / 2", e);  // int / int is a double: no silent truncation
  EXPECT_EQ(r.type, Type::kDouble);
  EXPECT_EQ(r.d, 3.5);
  r = Eval("survey.score + 0.5", e);
  EXPECT_EQ(r.type, Type::kDouble);
  EXPECT_EQ(r.d, 4.5);
  EXPECT_EQ(Eval("survey.score * 0.5", e).d, 2.0);
  EXPECT_EQ(Eval("1.5 - survey.score", e).d, -2.5);
  r = Eval("-survey.score", e);
  EXPECT_EQ(r.type, Type::kInt);
  EXPECT_EQ(r.i, -4);
  EXPECT_EQ(Eval("-sentiment.score", Sentiment(-0.7)).d, 0.7);
  EXPECT_EQ(Eval("2 - -3", e).i, 5);
  // Integer arithmetic saturates instead of wrapping.
  EXPECT_EQ(Eval("9223372036854775807 + 1", e).i, kMaxInt);
  EXPECT_EQ(Eval("-9223372036854775807 - 10", e).i, kMinInt);
  EXPECT_EQ(Eval("9223372036854775807 * -2", e).i, kMinInt);
}

TEST(ExpressionTest, DurationAndTimestampArithmetic) {
  const InteractionEvent callback = CallbackDue(kT0 + 2 * kHour);
  Result r = Eval("callback_requested.due_at - occurred_at", callback);
  EXPECT_EQ(r.type, Type::kDuration);
  EXPECT_EQ(r.i, 2 * kHour);
  r = Eval("occurred_at + 90m", callback);
  EXPECT_EQ(r.type, Type::kTimestamp);
  EXPECT_EQ(r.i, kT0 + 90 * kMinute);
  r = Eval("90m + occurred_at", callback);
  EXPECT_EQ(r.type, Type::kTimestamp);
  EXPECT_EQ(r.i, kT0 + 90 * kMinute);
  r = Eval("occurred_at - 1d", callback);
  EXPECT_EQ(r.type, Type::kTimestamp);
  EXPECT_EQ(r.i, kT0 - 24 * kHour);

  const std::vector<std::pair<std::string_view, Micros>> durations = {
      {"1h - 15m", 45 * kMinute},     {"1h + 30m", 90 * kMinute},
      {"15m * 2", 30 * kMinute},      {"2 * 15m", 30 * kMinute},
      {"1h * 1.5", 90 * kMinute},     {"0.5 * 1h", 30 * kMinute},
      {"1h / 4", 15 * kMinute},       {"1h / 0.5", 2 * kHour},
      {"-(1h - 15m)", -45 * kMinute}, {"1h / 0", kMaxInt},
      {"-1h / 0", kMinInt},           {"0s / 0", 0},
      {"1h / 0.0", kMaxInt},          {"0s / 0.0", 0},
  };
  for (const auto& [text, micros] : durations) {
    r = Eval(text, callback);
    EXPECT_EQ(r.type, Type::kDuration) << text;
    EXPECT_EQ(r.i, micros) << text;
  }
  EXPECT_TRUE(Holds("ended.handle_time / 2 > 5m", Ended(11 * kMinute, true)));
  EXPECT_FALSE(Holds("ended.handle_time / 2 > 5m", Ended(9 * kMinute, true)));
  EXPECT_TRUE(Holds("callback_requested.due_at - occurred_at > 1h", callback));
  EXPECT_FALSE(Holds("callback_requested.due_at - occurred_at > 1h", CallbackDue(kT0 + 30 * kMinute)));
}

TEST(ExpressionTest, LogicalOperators) {
  const InteractionEvent e = Base();
  ExpectAll(
      {
          {"true and true", true},
          {"true and false", false},
          {"false and true", false},
          {"true or false", true},
          {"false or true", true},
          {"false or false", false},
          {"not true", false},
          {"not false", true},
          {"not not true", true},
      },
      e);
  EXPECT_TRUE(Holds("not ended.resolved", Ended(kMinute, false)));
  EXPECT_FALSE(Holds("not ended.resolved", Ended(kMinute, true)));
}

TEST(ExpressionTest, PrecedenceAndAssociativity) {
  const InteractionEvent e = Base();
  ExpectAll(
      {
          {"true or false and false", true},  // and binds tighter than or
          {"(true or false) and false", false},
          {"not false and false", false},  // not binds tighter than and
          {"not 1 == 2", true},            // comparison binds tighter than not
          {"1 + 2 * 3 == 7", true},
          {"(1 + 2) * 3 == 9", true},
          {"1 + 2 < 4", true},        // arithmetic binds tighter than comparison
          {"10 - 4 - 3 == 3", true},  // left-associative
          {"12 / 3 / 2 == 2", true},
          {"-2 * 3 == -6", true},
          {"queue in [\"billing\"] and channel == \"voice\" or false", true},
      },
      e);
  EXPECT_EQ(Eval("-2 * -3", e).i, 6);
}

TEST(ExpressionTest, InAndNotIn) {
  const InteractionEvent e = Survey(cx::v1::SURVEY_METRIC_NPS, 4);
  ExpectAll(
      {
          {"queue in [\"billing\", \"retention\"]", true},
          {"queue in [\"sales\", 'retention']", false},
          {"queue not in [\"sales\"]", true},
          {"queue not in [\"billing\"]", false},
          {"survey.score in [1, 4, 9]", true},
          {"survey.score in [1, 9]", false},
          {"survey.score in [4.0]", true},
          {"survey.score in [-4, 3.5]", false},
          {"survey.metric in [\"csat\", \"nps\"]", true},
          {"channel in [\"chat\", \"email\"]", false},
          {"1m in [60s]", true},
          {"queue in []", false},
          {"true in [false, true]", true},
      },
      e);
  EXPECT_TRUE(Holds("sentiment.score in [-0.7, 0]", Sentiment(-0.7)));
  EXPECT_TRUE(Holds("answered.wait in [75s, -1m]", Answered(75 * kSecond)));
  EXPECT_FALSE(Holds("answered.wait in [75s, -1m]", Answered(76 * kSecond)));
}

TEST(ExpressionTest, Functions) {
  const InteractionEvent e = Base();
  ExpectAll(
      {
          {"starts_with(queue, \"bil\")", true},
          {"starts_with(queue, \"ill\")", false},
          {"ends_with(queue, \"ing\")", true},
          {"ends_with(queue, \"bill\")", false},
          {"contains(attributes.tier, \"Gold\")", true},
          {"contains(attributes.tier, \"gold\")", false},  // case-sensitive
          {"contains(lower(attributes.tier), \"gold\")", true},
          {"contains(queue, \"\")", true},
          {"contains(attributes.missing, \"x\")", false},
          {"lower(\"VIP\") == segment", true},
      },
      e);
  const Result lowered = Eval("lower(\"MiXeD Case 42\")", e);
  EXPECT_EQ(lowered.type, Type::kString);
  EXPECT_EQ(lowered.s, "mixed case 42");
  EXPECT_EQ(Eval("lower(lower(attributes.tier))", e).s, "gold plus");
  EXPECT_EQ(Eval("lower(channel)", e).s, "voice");

  // Longer than the reserved scratch: grows, and stays right.
  InteractionEvent complaint = Base();
  const std::string long_text = std::string(300, 'A') + "Regulator";
  complaint.mutable_complaint()->set_text(long_text);
  EXPECT_EQ(Eval("lower(complaint.text)", complaint).s, std::string(300, 'a') + "regulator");
}

TEST(ExpressionTest, TheExamplesOfTheRuleGuide) {
  EXPECT_TRUE(Holds("survey.metric == \"nps\" and survey.score <= 6", Survey(cx::v1::SURVEY_METRIC_NPS, 6)));
  EXPECT_FALSE(Holds("survey.metric == \"nps\" and survey.score <= 6", Survey(cx::v1::SURVEY_METRIC_NPS, 7)));
  EXPECT_FALSE(Holds("survey.metric == \"nps\" and survey.score <= 6", Survey(cx::v1::SURVEY_METRIC_CSAT, 2)));

  EXPECT_TRUE(Holds("segment == \"vip\" and sentiment.score < -0.6", Sentiment(-0.61)));
  EXPECT_FALSE(Holds("segment == \"vip\" and sentiment.score < -0.6", Sentiment(-0.6)));

  EXPECT_TRUE(Holds("answered.wait > 60s", Answered(61 * kSecond)));
  EXPECT_FALSE(Holds("answered.wait > 60s", Answered(60 * kSecond)));

  const std::string_view legal =
      "lower(complaint.category) in [\"legal\", \"regulator\"] or contains(attributes.tier, \"gold\")";
  InteractionEvent complaint = Base();
  complaint.mutable_complaint()->set_category("REGULATOR");
  EXPECT_TRUE(Holds(legal, complaint));
  complaint.mutable_complaint()->set_category("billing");
  EXPECT_FALSE(Holds(legal, complaint));  // tier is "Gold Plus": contains is case-sensitive
  (*complaint.mutable_attributes())["tier"] = "gold";
  EXPECT_TRUE(Holds(legal, complaint));

  EXPECT_TRUE(Holds("not ended.resolved", Ended(kMinute, false)));

  const std::string_view routed = "queue in [\"billing\", \"retention\"] and channel == \"voice\"";
  InteractionEvent e = Base();
  EXPECT_TRUE(Holds(routed, e));
  e.set_channel(cx::v1::CHANNEL_CHAT);
  EXPECT_FALSE(Holds(routed, e));
  e.set_channel(cx::v1::CHANNEL_VOICE);
  e.set_queue("sales");
  EXPECT_FALSE(Holds(routed, e));

  EXPECT_TRUE(Holds("ended.handle_time / 2 > 5m", Ended(10 * kMinute + kSecond, true)));
  EXPECT_FALSE(Holds("ended.handle_time / 2 > 5m", Ended(10 * kMinute, true)));

  EXPECT_TRUE(Holds("callback_requested.due_at - occurred_at > 1h", CallbackDue(kT0 + kHour + 1)));
  EXPECT_FALSE(Holds("callback_requested.due_at - occurred_at > 1h", CallbackDue(kT0 + kHour)));
}

TEST(ExpressionTest, ExpressionsMaySpanLines) {
  EXPECT_TRUE(Holds("queue == \"billing\"\n  and segment == \"vip\"", Base()));
}

TEST(ExpressionTest, CopiesShareTheProgramButNotTheScratch) {
  const Expression original = Compiled("lower(queue)");
  Expression copy = original;
  InteractionEvent billing = Base();
  billing.set_queue("BILLING");
  InteractionEvent sales = Base();
  sales.set_queue("Sales");
  const Value a = original.Evaluate(billing);
  const Value b = copy.Evaluate(sales);
  EXPECT_EQ(a.s, "billing");  // would read "sales" if the copy wrote the original's buffer
  EXPECT_EQ(b.s, "sales");
  EXPECT_EQ(copy.text(), "lower(queue)");

  Expression assigned = Compiled("true");
  assigned = original;
  EXPECT_EQ(assigned.type(), Type::kString);
  EXPECT_EQ(assigned.Evaluate(sales).s, "sales");
  EXPECT_EQ(original.Evaluate(billing).s, "billing");
}

TEST(ExpressionTest, TypeTextAndMatches) {
  EXPECT_EQ(Compiled("survey.score + 1").type(), Type::kInt);
  EXPECT_EQ(Compiled("survey.score / 2").type(), Type::kDouble);
  EXPECT_EQ(Compiled("occurred_at - occurred_at").type(), Type::kDuration);
  EXPECT_EQ(Compiled("occurred_at").type(), Type::kTimestamp);
  EXPECT_EQ(Compiled("lower(queue)").type(), Type::kString);
  EXPECT_EQ(Compiled("queue == \"x\"").type(), Type::kBool);
  EXPECT_EQ(Compiled("  queue == 'x' ").text(), "  queue == 'x' ");
  // Matches is for conditions: any other type does not match.
  EXPECT_FALSE(Compiled("survey.score").Matches(Survey(cx::v1::SURVEY_METRIC_NPS, 4)));
  EXPECT_EQ(TypeName(Type::kBool), "bool");
  EXPECT_EQ(TypeName(Type::kInt), "int");
  EXPECT_EQ(TypeName(Type::kDouble), "double");
  EXPECT_EQ(TypeName(Type::kString), "string");
  EXPECT_EQ(TypeName(Type::kDuration), "duration");
  EXPECT_EQ(TypeName(Type::kTimestamp), "timestamp");
}

TEST(ExpressionTest, ValueAsNumber) {
  const InteractionEvent e = Survey(cx::v1::SURVEY_METRIC_NPS, 4);
  const Expression score = Compiled("survey.score");
  EXPECT_EQ(score.Evaluate(e).AsNumber(), 4.0);
  const Expression wait = Compiled("2s");
  EXPECT_EQ(wait.Evaluate(e).AsNumber(), 2e6);
  const Expression half = Compiled("survey.score / 8");
  EXPECT_EQ(half.Evaluate(e).AsNumber(), 0.5);
  const Expression at = Compiled("occurred_at");
  EXPECT_EQ(at.Evaluate(e).AsNumber(), static_cast<double>(kT0));
}

TEST(ExpressionTest, BodiesReferenced) {
  EXPECT_EQ(Compiled("survey.score > 1 and not ended.resolved").BodiesReferenced(),
            (std::vector<int>{InteractionEvent::kEndedFieldNumber, InteractionEvent::kSurveyFieldNumber}));
  EXPECT_EQ(Compiled("survey.score > 1 or survey.metric == \"nps\"").BodiesReferenced(),
            std::vector<int>{InteractionEvent::kSurveyFieldNumber});
  EXPECT_EQ(Compiled("queue == \"x\" and attributes.tier == \"\" and occurred_at == occurred_at").BodiesReferenced(),
            std::vector<int>{});
}

TEST(ExpressionTest, CompileConditionRequiresBool) {
  auto compiled = Expression::CompileCondition("survey.score");
  ASSERT_TRUE(std::holds_alternative<CompileError>(compiled));
  EXPECT_EQ(std::get<CompileError>(compiled).offset, 0u);
  EXPECT_EQ(std::get<CompileError>(compiled).message,
            "expected a condition (true or false), but this expression is int");
  EXPECT_TRUE(std::holds_alternative<Expression>(Expression::CompileCondition("survey.score > 1")));
  // Its own errors pass through unchanged.
  auto bad = Expression::CompileCondition("queue == 1");
  ASSERT_TRUE(std::holds_alternative<CompileError>(bad));
  EXPECT_EQ(std::get<CompileError>(bad).message, "type mismatch: queue is string, 1 is int");
}

TEST(ExpressionErrorTest, LexicalErrors) {
  ExpectErrors({
      {"queue == \"billing", 9, "unterminated string: no closing \""},
      {"queue == 'a\\qb'", 11, "unknown escape \"\\q\" in a string; use \\\", \\', \\\\, \\n or \\t"},
      {"answered.wait > 3y", 16, "bad duration \"3y\": a unit (ms, s, m, h, d, w) must follow each number"},
      {"answered.wait > 1.5h", 16, "bad number \"1.5h\": a duration takes whole numbers of each unit, e.g. 1h30m"},
      {"survey.score > 99999999999999999999", 15, "integer 99999999999999999999 is out of range"},
      {"1. + 2", 0, "expected a digit after \"1.\""},
      {"survey. score", 6, "expected a field name after \"survey.\""},
      {"queue # 1", 6, "unexpected character \"#\""},
      {"queue = \"x\"", 6, "use == to compare, not ="},
      {"ended.resolved && true", 15, "use \"and\" instead of \"&&\""},
      {"ended.resolved || true", 15, "use \"or\" instead of \"||\""},
      {"!ended.resolved", 0, "use \"not\" instead of \"!\""},
  });
}

TEST(ExpressionErrorTest, SyntaxErrors) {
  std::string deep = std::string(70, '(') + "1" + std::string(70, ')');
  std::string long_chain = "1";
  for (int i = 0; i < 70; ++i) long_chain += " + 1";
  ExpectErrors({
      {"", 0, "empty expression"},
      {"   ", 0, "empty expression"},
      {"(queue == \"a\"", 13, "expected \")\", found end of expression"},
      {"queue == \"a\" \"b\"", 13, "unexpected \"b\" after a complete expression"},
      {"queue ==", 8, "expected a value, found end of expression"},
      {"survey.score > 1 and", 20, "expected a value, found end of expression"},
      {"queue == )", 9, "expected a value, found \")\""},
      {"1 < 2 < 3", 6, "comparisons do not chain; join them with \"and\""},
      {"1 < 2 in [true]", 6, "comparisons do not chain; join them with \"and\""},
      {"queue == [\"a\"]", 9, "a list [...] can only follow \"in\""},
      {"queue in \"a\"", 9, "expected a list [...] after \"in\", found \"a\""},
      {"queue in [segment]", 10, "list elements must be literals: strings, numbers, durations, true or false"},
      {"queue in [-\"a\"]", 10, "list elements must be literals: strings, numbers, durations, true or false"},
      {"queue in [\"a\" \"b\"]", 14, "expected \",\" or \"]\" in the list, found \"b\""},
      {"queue in [\"a\",]", 14, "list elements must be literals: strings, numbers, durations, true or false"},
      {"contains(queue \"a\")", 15, "expected \",\" or \")\" in the arguments of contains, found \"a\""},
      {deep, 64, "expression nests too deeply (more than 64 levels)"},
      {long_chain, 0, "expression nests too deeply (more than 64 levels)"},
  });
}

TEST(ExpressionErrorTest, FieldErrors) {
  ExpectErrors({
      {"survey.rating > 3", 0, "unknown field \"survey.rating\"; survey has: metric, score, comment"},
      {"queue == \"a\" and survey.rating > 3", 17,
       "unknown field \"survey.rating\"; survey has: metric, score, comment"},
      {"tier == \"gold\"", 0,
       "unknown field \"tier\"; an event has: event_id, occurred_at, customer_id, contact_id, channel, queue, "
       "agent_id, reason, segment, attributes.<name>, or <body>.<field> for a body: contact_started, queued, "
       "answered, transferred, abandoned, ended, callback_requested, callback_attempted, survey, sentiment, "
       "case_opened, case_closed, complaint"},
      {"survey == 1", 0, "\"survey\" is an event body, not a value; name one of its fields: metric, score, comment"},
      {"queued", 0, "\"queued\" is an event body with no fields to read"},
      {"queued.at", 0, "unknown field \"queued.at\"; queued has no fields"},
      {"survey.score.value > 1", 0, "unknown field \"survey.score.value\"; survey.score is an int and has no fields"},
      {"occurred_at.seconds > 1", 0,
       "unknown field \"occurred_at.seconds\"; occurred_at is a timestamp and has no fields"},
      {"attributes == \"x\"", 0, "\"attributes\": an attribute is read as attributes.<name>, e.g. attributes.tier"},
      {"attributes.a.b == \"x\"", 0,
       "\"attributes.a.b\": an attribute is read as attributes.<name>, e.g. attributes.tier"},
  });
}

TEST(ExpressionErrorTest, FunctionErrors) {
  ExpectErrors({
      {"upper(queue) == \"X\"", 0,
       "unknown function \"upper\"; functions are: contains, ends_with, lower, starts_with"},
      {"queue == survey.lower(queue)", 9,
       "unknown function \"survey.lower\"; functions are: contains, ends_with, lower, starts_with"},
      {"lower(queue, segment) == \"x\"", 0, "lower takes 1 argument, got 2"},
      {"contains(queue)", 0, "contains takes 2 arguments, got 1"},
      {"ends_with()", 0, "ends_with takes 2 arguments, got 0"},
      {"starts_with(queue, survey.score)", 19, "type mismatch: starts_with takes strings, survey.score is int"},
      {"lower(ended.resolved) == \"x\"", 6, "type mismatch: lower takes a string, ended.resolved is bool"},
  });
}

TEST(ExpressionErrorTest, TypeErrors) {
  ExpectErrors({
      {"survey.score == \"high\"", 0, "type mismatch: survey.score is int, \"high\" is string"},
      {"ended.resolved and survey.score == \"high\"", 19, "type mismatch: survey.score is int, \"high\" is string"},
      {"(survey.score + 1) == \"x\"", 0, "type mismatch: (survey.score + 1) is int, \"x\" is string"},
      {"answered.wait > 60", 0,
       "type mismatch: answered.wait is duration, 60 is int; write a duration with its unit, e.g. 60s"},
      {"occurred_at > 5m", 0, "type mismatch: occurred_at is timestamp, 5m is duration"},
      {"channel == \"phone\"", 11,
       "channel has no value \"phone\"; it is one of: unspecified, voice, chat, email, sms, social, web"},
      {"\"VOICE\" == channel", 0,
       "channel has no value \"VOICE\"; it is one of: unspecified, voice, chat, email, sms, social, web"},
      {"survey.metric in [\"nps\", \"net_promoter\"]", 25,
       "survey.metric has no value \"net_promoter\"; it is one of: unspecified, csat, nps, ces"},
      {"survey.score and true", 0, "type mismatch: \"and\" takes bool, survey.score is int"},
      {"true or queue", 8, "type mismatch: \"or\" takes bool, queue is string"},
      {"not survey.score", 4, "type mismatch: \"not\" takes bool, survey.score is int"},
      {"queue + 1 == 2", 0,
       "type mismatch: queue is string, 1 is int; + adds numbers, durations, or a duration to a timestamp"},
      {"occurred_at + occurred_at", 0,
       "type mismatch: occurred_at is timestamp, occurred_at is timestamp; + adds numbers, durations, or a duration "
       "to a timestamp"},
      {"5m - occurred_at", 0,
       "type mismatch: 5m is duration, occurred_at is timestamp; - subtracts numbers, durations, a duration from a "
       "timestamp, or two timestamps"},
      {"5m * 5m", 0, "type mismatch: 5m is duration, 5m is duration; * multiplies numbers, or a duration by a number"},
      {"2 / 5m", 0, "type mismatch: 2 is int, 5m is duration; / divides numbers, or a duration by a number"},
      {"-queue", 0, "type mismatch: \"-\" negates numbers and durations, queue is string"},
      {"-occurred_at", 0, "type mismatch: \"-\" negates numbers and durations, occurred_at is timestamp"},
      {"ended.resolved < true", 0,
       "type mismatch: \"<\" orders numbers, strings, durations and timestamps; ended.resolved is bool"},
      {"queue in [\"a\", 3]", 15, "type mismatch: queue is string, 3 is int"},
      {"answered.wait in [60]", 18,
       "type mismatch: answered.wait is duration, 60 is int; write a duration with its unit, e.g. 60s"},
  });
}

}  // namespace
}  // namespace cxpulse::expr
