// The oracle itself against hand-computed cases: every rule of the shipped
// pack firing and not firing at its edges, the four defects of issue 9, and
// every KPI with its window edges. If the oracle is wrong here, every
// differential test built on it is meaningless.
#include "oracle/oracle.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

namespace cxpulse::oracle {
namespace {

using cx::v1::InteractionEvent;

constexpr Micros kDay0 = 1'772'409'600 * kSecond;  // 2026-03-02T00:00:00Z

// A time on day `day` after 2026-03-02 (0: that day).
constexpr Micros T(int h, int m = 0, int s = 0, int day = 0) {
  return kDay0 + day * kDay + h * kHour + m * kMinute + s * kSecond;
}

void Stamp(Micros t, google::protobuf::Timestamp* out) {
  out->set_seconds(t / kSecond);
  out->set_nanos(static_cast<int32_t>(t % kSecond * 1000));
}
void Length(Micros d, google::protobuf::Duration* out) {
  out->set_seconds(d / kSecond);
  out->set_nanos(static_cast<int32_t>(d % kSecond * 1000));
}

// An arrival-ordered event list with ids e1, e2, ... Each event is billing,
// voice, reason billing_dispute, segment standard unless the test says
// otherwise. The returned reference is good until the next Add.
class Events {
 public:
  InteractionEvent& Add(Micros at, const std::string& customer) {
    InteractionEvent& e = list_.emplace_back();
    e.set_event_id("e" + std::to_string(list_.size()));
    Stamp(at, e.mutable_occurred_at());
    e.set_customer_id(customer);
    e.set_contact_id("ct-" + customer);
    e.set_channel(cx::v1::CHANNEL_VOICE);
    e.set_queue("billing");
    e.set_reason("billing_dispute");
    e.set_segment("standard");
    return e;
  }
  InteractionEvent& ContactStarted(Micros at, const std::string& customer, bool inbound = true) {
    InteractionEvent& e = Add(at, customer);
    e.mutable_contact_started()->set_direction(inbound ? cx::v1::DIRECTION_INBOUND : cx::v1::DIRECTION_OUTBOUND);
    return e;
  }
  InteractionEvent& Ended(Micros at, const std::string& customer, const std::string& reason = "billing_dispute") {
    InteractionEvent& e = Add(at, customer);
    e.set_reason(reason);
    e.mutable_ended()->set_resolved(false);
    return e;
  }
  InteractionEvent& Transferred(Micros at, const std::string& contact) {
    InteractionEvent& e = Add(at, "c-" + contact);
    e.set_contact_id(contact);
    e.mutable_transferred()->set_to_queue("sales");
    return e;
  }
  InteractionEvent& Queued(Micros at, const std::string& customer, const std::string& queue = "billing") {
    InteractionEvent& e = Add(at, customer);
    e.set_queue(queue);
    e.mutable_queued();
    return e;
  }
  InteractionEvent& Abandoned(Micros at, const std::string& customer, const std::string& queue = "billing") {
    InteractionEvent& e = Add(at, customer);
    e.set_queue(queue);
    Length(90 * kSecond, e.mutable_abandoned()->mutable_wait());
    return e;
  }
  InteractionEvent& Answered(Micros at, const std::string& customer, const std::string& queue, Micros wait) {
    InteractionEvent& e = Add(at, customer);
    e.set_queue(queue);
    Length(wait, e.mutable_answered()->mutable_wait());
    return e;
  }
  InteractionEvent& CallbackRequested(Micros at, const std::string& customer, Micros due) {
    InteractionEvent& e = Add(at, customer);
    Stamp(due, e.mutable_callback_requested()->mutable_due_at());
    return e;
  }
  InteractionEvent& CallbackAttempted(Micros at, const std::string& customer) {
    InteractionEvent& e = Add(at, customer);
    e.mutable_callback_attempted()->set_connected(true);
    return e;
  }
  InteractionEvent& Survey(Micros at, const std::string& customer, cx::v1::SurveyMetric metric, int score) {
    InteractionEvent& e = Add(at, customer);
    e.mutable_survey()->set_metric(metric);
    e.mutable_survey()->set_score(score);
    return e;
  }
  InteractionEvent& Sentiment(Micros at, const std::string& customer, const std::string& segment, double score) {
    InteractionEvent& e = Add(at, customer);
    e.set_segment(segment);
    e.mutable_sentiment()->set_score(score);
    return e;
  }
  InteractionEvent& CaseOpened(Micros at, const std::string& customer, const std::string& case_id, Micros sla) {
    InteractionEvent& e = Add(at, customer);
    e.mutable_case_opened()->set_case_id(case_id);
    Stamp(sla, e.mutable_case_opened()->mutable_sla_due_at());
    return e;
  }
  InteractionEvent& CaseClosed(Micros at, const std::string& customer, const std::string& case_id) {
    InteractionEvent& e = Add(at, customer);
    e.mutable_case_closed()->set_case_id(case_id);
    return e;
  }
  InteractionEvent& Complaint(Micros at, const std::string& customer) {
    InteractionEvent& e = Add(at, customer);
    e.mutable_complaint()->set_category("wait_time");
    return e;
  }

  const std::vector<InteractionEvent>& list() const { return list_; }

 private:
  std::vector<InteractionEvent> list_;
};

int OnePartition(const InteractionEvent&) { return 0; }
// Each customer on a partition of its own (so each has its own clock).
int ByCustomer(const InteractionEvent& e) {
  return static_cast<int>(std::hash<std::string>{}(e.customer_id()) % 1'000'003);
}

// The findings of one rule.
std::vector<Finding> Of(const std::string& rule, const Events& events, bool flush_at_end = true,
                        const PartitionOf& partition_of = ByCustomer) {
  std::vector<Finding> out;
  for (const Finding& f : Findings(events.list(), partition_of, Params{}, flush_at_end)) {
    if (f.rule == rule) out.push_back(f);
  }
  return out;
}

Finding F(const std::string& rule, std::vector<std::string> key, Micros at, int64_t count = 1) {
  return Finding{rule, std::move(key), at, count};
}

TEST(OracleAdmissionTest, LatenessIsPerPartitionAndStrictlyBelowTheWatermark) {
  Events events;
  events.Sentiment(T(10), "c1", "standard", 0);         // p0: watermark 09:59:30
  events.Sentiment(T(9), "c2", "standard", 0);          // p1: its own clock, not late
  events.Sentiment(T(9, 59, 29), "c1", "standard", 0);  // p0: below the watermark: late
  events.Sentiment(T(9, 59, 30), "c1", "standard", 0);  // p0: exactly at it: in time
  InteractionEvent no_body;
  no_body.set_customer_id("c1");
  Stamp(T(11), no_body.mutable_occurred_at());
  std::vector<InteractionEvent> list = events.list();
  list.push_back(no_body);  // invalid: moves no watermark
  const PartitionOf by_customer = [](const InteractionEvent& e) { return e.customer_id() == "c2" ? 1 : 0; };
  const Admission a = Admit(list, by_customer, 30 * kSecond);
  ASSERT_EQ(a.late.size(), 1u);
  EXPECT_EQ(a.late[0]->event_id(), "e3");
  ASSERT_EQ(a.admitted.size(), 3u);
  EXPECT_EQ(a.admitted[2]->event_id(), "e4");
  EXPECT_EQ(a.watermark.at(0), T(9, 59, 30));
  EXPECT_EQ(a.watermark.at(1), T(8, 59, 30));
  EXPECT_EQ(KpiWindowEnd(a, kMinute), T(8, 59));
  EXPECT_EQ(RuleNames().size(), 12u);
}

// Issue 9, defect 4: the second finding counts all four events in the window.
TEST(OracleRulesTest, RepeatContactCountsTheTrueNumberInTheWindow) {
  Events events;
  events.Ended(T(9), "c1");
  events.Ended(T(10), "c1");
  events.Ended(T(11), "c1");                     // third: fires, cooldown 1d
  events.Ended(T(11, 30), "c1", "plan_change");  // another reason, another key
  events.Ended(T(12, 0, 0, 1), "c1");            // a day later, four in the week
  events.Ended(T(9), "c2");
  events.Ended(T(10), "c2");
  events.Ended(T(9), "c3");
  events.Ended(T(9, 0, 0, 8), "c3");   // (T - 7d, T]: the first is out
  events.Ended(T(10, 0, 0, 8), "c3");  // only two in the window
  EXPECT_EQ(Of("repeat_contact", events),
            (std::vector<Finding>{F("repeat_contact", {"c1", "billing_dispute"}, T(11), 3),
                                  F("repeat_contact", {"c1", "billing_dispute"}, T(12, 0, 0, 1), 4)}));
}

TEST(OracleRulesTest, TransferPingPongWindowFollowsTheNewestEvent) {
  Events events;
  events.Transferred(T(10), "X");
  events.Transferred(T(10, 20), "X");
  events.Transferred(T(10, 19, 45), "X");  // out of order: the window ends at 10:20
  events.Transferred(T(10), "Y");
  events.Transferred(T(10, 20), "Y");
  events.Transferred(T(10, 31), "Y");  // (10:01, 10:31]: 10:00 forgotten, two left
  events.Transferred(T(10, 32), "Y");  // three again
  EXPECT_EQ(Of("transfer_ping_pong", events), (std::vector<Finding>{F("transfer_ping_pong", {"X"}, T(10, 20), 3),
                                                                    F("transfer_ping_pong", {"Y"}, T(10, 32), 3)}));
}

TEST(OracleRulesTest, ReasonSurgeNeedsAFullBaselineAndFiresOnceInItsCooldown) {
  Events events;
  int n = 0;
  auto contact = [&](Micros at, const std::string& reason, bool inbound = true) {
    events.ContactStarted(at, "s" + std::to_string(++n), inbound).set_reason(reason);
  };
  for (int w = 0; w < 24; ++w) {  // 6h of history: two a window
    contact(T(0, 15 * w + 1), "outage");
    contact(T(0, 15 * w + 2), "outage");
    if (w >= 1) contact(T(0, 15 * w + 3), "late_start");  // 23 windows only
  }
  for (int k = 0; k < 30; ++k) contact(T(5, 50), "outage", false);  // outbound: not counted
  for (int k = 0; k < 25; ++k) {
    contact(T(6, 0, 10 + 10 * k), "outage");
    contact(T(6, 0, 11 + 10 * k), "late_start");
    contact(T(6, 0, 12 + 10 * k), "fresh");  // no history at all
  }
  EXPECT_EQ(Of("reason_surge", events), (std::vector<Finding>{F("reason_surge", {"outage"}, T(6, 3, 20), 20)}));
}

TEST(OracleRulesTest, QueueAbandonmentSpikeOverTwelveBuckets) {
  Events events;
  int n = 0;
  auto id = [&] { return "q" + std::to_string(++n); };
  for (int k = 0; k < 30; ++k) events.Queued(T(10, 0, k), id(), "sales");
  for (int k = 0; k < 8; ++k) events.Abandoned(T(10, 1, k), id(), "sales");  // the 6th: 6/30
  for (int k = 0; k < 30; ++k) events.Queued(T(10, 0, k), id(), "retention");
  for (int k = 0; k < 5; ++k) events.Abandoned(T(10, 1, k), id(), "retention");  // 5/30 < 0.2
  for (int k = 0; k < 29; ++k) events.Queued(T(10, 0, k), id(), "tech_support");
  for (int k = 0; k < 20; ++k) events.Abandoned(T(10, 1, k), id(), "tech_support");  // under min_volume
  // Buckets of 75 s: 10:00 starts bucket i, 10:15 starts i + 12, whose window is i+1 .. i+12.
  for (int k = 0; k < 30; ++k) events.Queued(T(10, 0, k), id(), "billing");
  for (int k = 0; k < 8; ++k) events.Abandoned(T(10, 15, k), id(), "billing");
  EXPECT_EQ(Of("queue_abandonment_spike", events),
            (std::vector<Finding>{F("queue_abandonment_spike", {"sales"}, T(10, 1, 5), 30)}));
}

TEST(OracleRulesTest, AnswerTimeOverTargetPerQueueWithAHalfOpenCooldown) {
  Events events;
  events.Answered(T(10), "c1", "billing", 60 * kSecond);      // at the target: no
  events.Answered(T(10, 1), "c2", "billing", 61 * kSecond);   // fires
  events.Answered(T(10, 5), "c3", "billing", 200 * kSecond);  // cooldown
  events.Answered(T(10, 16), "c4", "billing", 61 * kSecond);  // 10:01 + 15m: fires again
  events.Answered(T(10), "c5", "sales", 119 * kSecond);       // sales' target is 120 s
  events.Answered(T(10, 2), "c6", "sales", 121 * kSecond);
  events.Answered(T(11), "c7", "retention", 61 * kSecond);
  EXPECT_EQ(
      Of("answer_time_over_target", events),
      (std::vector<Finding>{
          F("answer_time_over_target", {"billing"}, T(10, 1)), F("answer_time_over_target", {"billing"}, T(10, 16)),
          F("answer_time_over_target", {"retention"}, T(11)), F("answer_time_over_target", {"sales"}, T(10, 2))}));
}

// A centre-wide rule sees events in event time, not in arrival order.
TEST(OracleRulesTest, CentreWideRulesSeeEventTimeOrderAcrossPartitions) {
  Events events;
  events.Answered(T(10, 10), "c1", "billing", 61 * kSecond);  // p0
  events.Answered(T(10), "c2", "billing", 61 * kSecond);      // p1, arrives later, earlier in time
  const PartitionOf by_customer = [](const InteractionEvent& e) { return e.customer_id() == "c2" ? 1 : 0; };
  EXPECT_EQ(Of("answer_time_over_target", events, true, by_customer),
            (std::vector<Finding>{F("answer_time_over_target", {"billing"}, T(10))}));
}

// Ties on time break by event_id, byte-wise, not by arrival: here the
// abandoned event at 10:02 comes first and tips the ratio to 6/30.
TEST(OracleRulesTest, CentreWideTiesBreakByEventId) {
  Events events;
  int n = 0;
  auto id = [&] { return "q" + std::to_string(++n); };
  for (int k = 0; k < 30; ++k) events.Queued(T(10, 0, k), id(), "sales");
  for (int k = 0; k < 5; ++k) events.Abandoned(T(10, 1, k), id(), "sales");
  events.Queued(T(10, 2), id(), "sales").set_event_id("z-queued");  // arrives first
  events.Abandoned(T(10, 2), id(), "sales").set_event_id("a-abandoned");
  EXPECT_EQ(Of("queue_abandonment_spike", events),
            (std::vector<Finding>{F("queue_abandonment_spike", {"sales"}, T(10, 2), 30)}));
}

TEST(OracleRulesTest, CallbackMissedFiresOnceTheWatermarkPassesTheDueTime) {
  Events events;
  events.CallbackRequested(T(9), "c1", T(10));  // never attempted
  events.CallbackRequested(T(9), "c2", T(10));
  events.CallbackRequested(T(9, 10), "c3", T(9, 40));
  events.CallbackAttempted(T(9, 45), "c3");                  // after the deadline: too late
  events.CallbackAttempted(T(10), "c2");                     // exactly at the deadline: in time
  events.CallbackRequested(T(11, 50), "c4", T(12, 30));      // still pending at the end
  events.CallbackRequested(T(11, 51), "c5", T(11, 59, 30));  // due at the final watermark: not passed
  events.Sentiment(T(12), "c9", "standard", 0);              // watermark 11:59:30
  EXPECT_EQ(Of("callback_missed", events, false, OnePartition),
            (std::vector<Finding>{F("callback_missed", {"c1"}, T(10)), F("callback_missed", {"c3"}, T(9, 40))}));
  EXPECT_EQ(
      Of("callback_missed", events, true, OnePartition),
      (std::vector<Finding>{F("callback_missed", {"c1"}, T(10)), F("callback_missed", {"c3"}, T(9, 40)),
                            F("callback_missed", {"c4"}, T(12, 30)), F("callback_missed", {"c5"}, T(11, 59, 30))}));
}

// Issue 9, defect 2: a promise already overdue is reported, never replaced.
TEST(OracleRulesTest, AnOverduePromiseIsReportedNotReplaced) {
  Events events;
  events.CallbackRequested(T(9), "c1", T(10));
  events.CallbackAttempted(T(10, 0, 5), "c2");
  events.CallbackRequested(T(10, 0, 10), "c1", T(12));  // the first was broken at 10:00
  events.CallbackAttempted(T(11), "c1");                // keeps the second
  events.CallbackRequested(T(9), "c5", T(10));
  events.CallbackRequested(T(9, 30), "c5", T(11));  // rescheduled before it was due: replaces it
  EXPECT_EQ(Of("callback_missed", events),
            (std::vector<Finding>{F("callback_missed", {"c1"}, T(10)), F("callback_missed", {"c5"}, T(11))}));
}

// Issue 9, defect 3: a second bad survey does not restart the 48 h clock.
TEST(OracleRulesTest, DetractorKeepsTheFirstDeadline) {
  Events events;
  events.Survey(T(9), "c1", cx::v1::SURVEY_METRIC_NPS, 3);
  events.Survey(T(9), "c2", cx::v1::SURVEY_METRIC_NPS, 5);
  events.Survey(T(9), "c3", cx::v1::SURVEY_METRIC_NPS, 6);
  events.Survey(T(9), "c4", cx::v1::SURVEY_METRIC_NPS, 7);   // not a detractor
  events.Survey(T(9), "c5", cx::v1::SURVEY_METRIC_CSAT, 1);  // not NPS
  events.Survey(T(9), "c6", cx::v1::SURVEY_METRIC_NPS, 0);
  events.ContactStarted(T(10), "c3", true);                          // inbound: not a follow-up
  events.Survey(T(1, 0, 0, 2), "c1", cx::v1::SURVEY_METRIC_NPS, 2);  // 03-04T01:00: ignored (keep)
  events.ContactStarted(T(8, 0, 0, 2), "c2", false);                 // outbound within 48 h
  events.ContactStarted(T(9, 0, 0, 2), "c6", false);                 // exactly at the deadline: in time
  EXPECT_EQ(Of("detractor_not_followed_up", events),
            (std::vector<Finding>{F("detractor_not_followed_up", {"c1"}, T(9, 0, 0, 2)),
                                  F("detractor_not_followed_up", {"c3"}, T(9, 0, 0, 2))}));
}

TEST(OracleRulesTest, CaseSlaBreachedByCaseId) {
  Events events;
  events.CaseOpened(T(9), "c1", "K1", T(12));
  events.CaseOpened(T(9), "c2", "K2", T(12));
  events.CaseOpened(T(9), "c3", "K3", T(8));  // due before it was opened: no promise
  events.CaseOpened(T(9), "c4", "K4", T(10));
  events.CaseOpened(T(9, 30), "c2", "K2", T(15));  // the same case again: keeps 12:00
  events.CaseClosed(T(10), "c4", "K4");            // at the deadline: in time
  events.CaseClosed(T(11), "c1", "K1");
  events.CaseClosed(T(11), "c2", "K5");  // another case
  EXPECT_EQ(Of("case_sla_breached", events), (std::vector<Finding>{F("case_sla_breached", {"K2"}, T(12))}));
}

TEST(OracleRulesTest, VipNegativeSentimentWithItsCooldown) {
  Events events;
  events.Sentiment(T(10), "c1", "vip", -0.6);
  events.Sentiment(T(13, 59), "c1", "vip", -0.9);  // within 4 h
  events.Sentiment(T(14), "c1", "vip", -0.7);
  events.Sentiment(T(10), "c2", "vip", -0.59);
  events.Sentiment(T(10), "c3", "standard", -0.9);
  EXPECT_EQ(Of("vip_negative_sentiment", events), (std::vector<Finding>{F("vip_negative_sentiment", {"c1"}, T(10)),
                                                                        F("vip_negative_sentiment", {"c1"}, T(14))}));
}

TEST(OracleRulesTest, ThirdInboundContactInADay) {
  Events events;
  events.ContactStarted(T(9), "c1");
  events.ContactStarted(T(15), "c1");
  events.ContactStarted(T(8, 59, 0, 1), "c1");
  events.ContactStarted(T(9), "c2");
  events.ContactStarted(T(10), "c2", false);  // outbound
  events.ContactStarted(T(11), "c2");
  events.ContactStarted(T(9), "c3");
  events.ContactStarted(T(10), "c3");
  events.ContactStarted(T(9, 0, 0, 1), "c3");  // (09:00, 09:00 next day]: the first is out
  EXPECT_EQ(Of("third_contact_in_a_day", events),
            (std::vector<Finding>{F("third_contact_in_a_day", {"c1"}, T(8, 59, 0, 1), 3)}));
}

TEST(OracleRulesTest, ComplaintWithItsCooldown) {
  Events events;
  events.Complaint(T(10), "c1");
  events.Complaint(T(10, 59, 59), "c1");
  events.Complaint(T(11), "c1");
  EXPECT_EQ(Of("complaint", events),
            (std::vector<Finding>{F("complaint", {"c1"}, T(10)), F("complaint", {"c1"}, T(11))}));
}

TEST(OracleRulesTest, AbandonedThenComplainedWithinADay) {
  Events events;
  events.Abandoned(T(10), "c1");
  events.Complaint(T(12), "c1");
  events.Abandoned(T(10), "c2");
  events.Complaint(T(10, 0, 1, 1), "c2");  // a day and a second later
  events.Complaint(T(10), "c3");           // nothing abandoned
  events.Abandoned(T(10), "c4");
  events.Abandoned(T(11), "c4");  // starts over at 11:00
  events.Complaint(T(10, 30, 0, 1), "c4");
  EXPECT_EQ(Of("abandoned_then_complained", events),
            (std::vector<Finding>{F("abandoned_then_complained", {"c1"}, T(12), 2),
                                  F("abandoned_then_complained", {"c4"}, T(10, 30, 0, 1), 2)}));
}

TEST(OracleRulesTest, LateEventsCountInNoRule) {
  Events events;
  events.Sentiment(T(12), "c1", "standard", 0);
  events.Complaint(T(9), "c1");  // three hours behind
  EXPECT_TRUE(Of("complaint", events).empty());
}

Params KpiParams() {
  Params p;
  p.queues = {"billing", "sales"};
  p.sl_threshold["billing"] = 30 * kSecond;
  return p;
}

double Value(const std::map<KpiCell, KpiValues>& kpis, const KpiCell& cell, const std::string& name) {
  auto c = kpis.find(cell);
  if (c == kpis.end()) return 0;
  auto v = c->second.find(name);
  return v == c->second.end() ? 0 : v->second;
}

// Issue 9, defect 1: a partition running ahead does not fire another's timers.
TEST(OracleKpiTest, CallbackTimersRunOnTheirOwnPartitionsClock) {
  Events events;
  events.Queued(T(12), "c2");                   // partition 1, far ahead
  events.CallbackRequested(T(9), "c1", T(10));  // partition 0
  events.CallbackRequested(T(9), "c3", T(10));  // never attempted
  events.CallbackAttempted(T(9, 30), "c1");
  events.Queued(T(10, 30), "c1");  // partition 0's watermark 10:29:30
  const PartitionOf by_customer = [](const InteractionEvent& e) { return e.customer_id() == "c2" ? 1 : 0; };
  const Params params = KpiParams();
  const Micros end = KpiWindowEnd(Admit(events.list(), by_customer, params.allowed_lateness), params.kpi_bucket);
  EXPECT_EQ(end, T(10, 29));
  const auto kpis = Kpis(events.list(), by_customer, params, end);
  const KpiCell hour{"billing", "voice", "1h"};  // [09:29, 10:29)
  EXPECT_EQ(Value(kpis, hour, "callbacks_due"), 2);
  EXPECT_EQ(Value(kpis, hour, "callbacks_made"), 1);
  EXPECT_EQ(Value(kpis, hour, "callbacks_missed"), 1);  // c3 at 10:05; c1 kept
  EXPECT_EQ(Value(kpis, hour, "offered"), 0);
  const KpiCell quarter{"billing", "voice", "15m"};  // [10:14, 10:29)
  EXPECT_EQ(Value(kpis, quarter, "callbacks_due"), 0);
  EXPECT_EQ(Value(kpis, quarter, "callbacks_missed"), 0);
}

// Issue 9, defect 2 for the KPIs: overdue, rescheduled, kept at the edge.
TEST(OracleKpiTest, CallbackPromisesRescheduledOverdueKeptAndIgnored) {
  Events events;
  events.CallbackRequested(T(8, 59, 50), "c5", T(10));
  events.CallbackAttempted(T(8, 59, 40), "c5");  // before the request: keeps nothing
  events.CallbackRequested(T(9), "c1", T(10));
  events.CallbackRequested(T(9), "c2", T(10));
  events.CallbackRequested(T(9), "c3", T(10));
  events.CallbackRequested(T(9), "c4", T(10));
  events.CallbackRequested(T(9), "c6", T(9) + 31 * kDay);  // more than 30 days: ignored
  events.CallbackRequested(T(9), "c7", T(8));              // due before it was requested: ignored
  events.CallbackRequested(T(9, 30), "c3", T(11));         // rescheduled before due
  events.CallbackRequested(T(10, 4), "c2", T(12));         // rescheduled within the grace
  events.CallbackAttempted(T(10, 5), "c4");                // at due + grace: in time
  events.CallbackRequested(T(10, 6), "c1", T(12));         // the first is overdue: missed
  events.Sentiment(T(13), "c9", "standard", 0);            // watermark 12:59:30
  Params params = KpiParams();
  params.windows = {{"4h", 4 * kHour}};  // [08:59, 12:59)
  const auto kpis = Kpis(events.list(), OnePartition, params, T(12, 59));
  const KpiCell cell{"billing", "voice", "4h"};
  // Due: c1 10:00 and 12:00, c2 10:00 and 12:00, c3 11:00 only, c4, c5.
  EXPECT_EQ(Value(kpis, cell, "callbacks_due"), 7);
  // Missed: c1 10:05 and 12:05, c2 12:05, c3 11:05, c5 10:05.
  EXPECT_EQ(Value(kpis, cell, "callbacks_missed"), 5);
  EXPECT_EQ(Value(kpis, cell, "callbacks_made"), 2);
}

TEST(OracleKpiTest, EveryCountInItsBucketWithinTheWindowEdges) {
  Events events;
  events.ContactStarted(T(10, 18, 0, -2), "c2");  // two days earlier
  events.Queued(T(10, 14, 59), "q1");             // bucket 10:14: before the window
  events.Queued(T(10, 15), "q2");
  events.ContactStarted(T(10, 16), "c1");
  events.ContactStarted(T(10, 17), "c1");  // a repeat
  events.ContactStarted(T(10, 18), "c2");  // previous one 48 h ago: not a repeat
  events.ContactStarted(T(10, 19, 10), "c3");
  events.ContactStarted(T(10, 19), "c3");                     // out of order: 10 s from the other, a repeat
  events.Answered(T(10, 20), "a1", "billing", 30 * kSecond);  // billing's target: 30 s
  events.Answered(T(10, 21), "a2", "billing", 31 * kSecond);
  events.Answered(T(10, 21), "a3", "sales", 20 * kSecond).set_channel(cx::v1::CHANNEL_CHAT);  // default 20 s
  events.Answered(T(10, 21), "a4", "returns", 21 * kSecond);                                  // not configured: "other"
  events.Abandoned(T(10, 22), "b1");
  events.Ended(T(10, 23), "h1");
  Length(300 * kSecond, events.Ended(T(10, 23, 30), "h2").mutable_ended()->mutable_handle_time());
  events.Survey(T(10, 24), "s1", cx::v1::SURVEY_METRIC_CSAT, 4);
  events.Survey(T(10, 24), "s2", cx::v1::SURVEY_METRIC_CSAT, 2);
  events.Survey(T(10, 24), "s3", cx::v1::SURVEY_METRIC_NPS, 9);
  events.Survey(T(10, 24), "s4", cx::v1::SURVEY_METRIC_NPS, 6);
  events.Survey(T(10, 24), "s5", cx::v1::SURVEY_METRIC_NPS, 7);
  events.Survey(T(10, 24), "s6", cx::v1::SURVEY_METRIC_CES, 3);
  events.Queued(T(10, 25), "u1", "");                    // no queue
  events.Queued(T(10, 29, 59), "q3");                    // the last bucket of the window
  events.Queued(T(10), "q4");                            // 29:59 behind: late, counted nowhere
  events.Queued(T(10, 30), "q5");                        // bucket 10:30: after the window
  events.Sentiment(T(10, 30, 45), "c9", "standard", 0);  // watermark 10:30:15
  const Params params = KpiParams();
  const Micros end = KpiWindowEnd(Admit(events.list(), OnePartition, params.allowed_lateness), params.kpi_bucket);
  ASSERT_EQ(end, T(10, 30));
  const auto kpis = Kpis(events.list(), OnePartition, params, end);
  const KpiCell billing{"billing", "voice", "15m"};
  const std::map<std::string, double> expected = {
      {"offered", 2},         {"answered", 2},      {"answered_within_target", 1}, {"abandoned", 1},
      {"wait_seconds", 61},   {"handled", 2},       {"handle_seconds", 300},       {"contacts", 5},
      {"repeat_contacts", 2}, {"callbacks_due", 0}, {"callbacks_made", 0},         {"callbacks_missed", 0},
      {"csat_responses", 2},  {"csat_points", 6},   {"nps_responses", 3},          {"nps_promoters", 1},
      {"nps_detractors", 1}};
  for (const std::string& name : KpiNames()) {
    EXPECT_EQ(Value(kpis, billing, name), expected.at(name)) << name;
  }
  EXPECT_EQ(Value(kpis, {"sales", "chat", "15m"}, "answered_within_target"), 1);
  EXPECT_EQ(Value(kpis, {"sales", "chat", "15m"}, "wait_seconds"), 20);
  EXPECT_EQ(Value(kpis, {"other", "voice", "15m"}, "answered"), 1);
  EXPECT_EQ(Value(kpis, {"other", "voice", "15m"}, "answered_within_target"), 0);
  EXPECT_EQ(Value(kpis, {"unassigned", "voice", "15m"}, "offered"), 1);
  // The hour holds the same events, and c2's first contact is two days out of it.
  EXPECT_EQ(Value(kpis, {"billing", "voice", "1h"}, "offered"), 3);
  EXPECT_EQ(Value(kpis, {"billing", "voice", "1h"}, "contacts"), 5);
}

}  // namespace
}  // namespace cxpulse::oracle
