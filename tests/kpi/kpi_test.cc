// KPIs against values computed by hand from a fixed event stream: every
// exported KPI in both windows, as Prometheus would scrape it.
#include "kpi/kpi.h"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "common/strings.h"
#include "config/config.h"
#include "metrics/kpi_metrics.h"
#include "support/events.h"
#include "support/metrics_text.h"

namespace cxpulse {
namespace {

using cx::v1::InteractionEvent;
using testing::kMinute;

// Minute 0 of the stream, on a bucket boundary.
constexpr Micros kStart = testing::kT0 / kMinute * kMinute;
constexpr Micros kIdleTimeout = 10 * kMicrosPerSecond;
constexpr double kAbsent = std::numeric_limits<double>::quiet_NaN();

// The defaults (windows 15m and 1h, 1m buckets, 5m callback grace, a 20s
// service-level threshold) but for a short repeat window, one first-come
// queue, and billing's own threshold.
KpiConfig TestConfig() {
  KpiConfig config;
  config.repeat_window = 30 * kMinute;
  config.max_queues = 1;
  config.queues["billing"] = ServiceLevel{30 * kMicrosPerSecond, 0.85};
  return config;
}

Micros At(double minute) { return kStart + static_cast<Micros>(minute * static_cast<double>(kMinute)); }

InteractionEvent Event(double minute, const std::string& queue, cx::v1::Channel channel,
                       const std::string& customer = "c0") {
  InteractionEvent e;
  SetTimestamp(At(minute), e.mutable_occurred_at());
  e.set_customer_id(customer);
  e.set_queue(queue);
  e.set_channel(channel);
  return e;
}

google::protobuf::Duration Seconds(int64_t s) {
  google::protobuf::Duration d;
  d.set_seconds(s);
  return d;
}

InteractionEvent Queued(double m, const std::string& q, cx::v1::Channel ch) {
  auto e = Event(m, q, ch);
  e.mutable_queued();
  return e;
}
InteractionEvent Answered(double m, const std::string& q, cx::v1::Channel ch, int64_t wait) {
  auto e = Event(m, q, ch);
  *e.mutable_answered()->mutable_wait() = Seconds(wait);
  return e;
}
InteractionEvent Abandoned(double m, const std::string& q, cx::v1::Channel ch) {
  auto e = Event(m, q, ch);
  *e.mutable_abandoned()->mutable_wait() = Seconds(90);
  return e;
}
InteractionEvent Ended(double m, const std::string& q, cx::v1::Channel ch, int64_t handle) {
  auto e = Event(m, q, ch);
  *e.mutable_ended()->mutable_handle_time() = Seconds(handle);
  return e;
}
InteractionEvent Started(double m, const std::string& customer) {
  auto e = Event(m, "", cx::v1::CHANNEL_UNSPECIFIED, customer);
  e.mutable_contact_started()->set_direction(cx::v1::DIRECTION_INBOUND);
  return e;
}
InteractionEvent Survey(double m, cx::v1::SurveyMetric metric, int score) {
  auto e = Event(m, "billing", cx::v1::CHANNEL_CHAT);
  e.mutable_survey()->set_metric(metric);
  e.mutable_survey()->set_score(score);
  return e;
}
InteractionEvent Sentiment(double m) {
  auto e = Event(m, "billing", cx::v1::CHANNEL_VOICE);
  e.mutable_sentiment()->set_score(0);
  return e;
}
InteractionEvent CallbackRequested(double m, const std::string& customer, double due) {
  auto e = Event(m, "billing", cx::v1::CHANNEL_SMS, customer);
  SetTimestamp(At(due), e.mutable_callback_requested()->mutable_due_at());
  return e;
}
InteractionEvent CallbackAttempted(double m, const std::string& customer) {
  auto e = Event(m, "billing", cx::v1::CHANNEL_SMS, customer);
  e.mutable_callback_attempted()->set_connected(true);
  return e;
}

// The stream, in event-time order (sorted below; ties keep this order).
// Queues: billing (configured, threshold 30s), sales (first come: the one
// label max_queues allows), tech and support (folded into "other"), and ""
// (unassigned). The tests close it at minute 61, so the windows end there:
// the 15m window holds minutes 46..60, the 1h window minutes 1..60.
std::vector<InteractionEvent> Stream() {
  using cx::v1::CHANNEL_CHAT, cx::v1::CHANNEL_EMAIL, cx::v1::CHANNEL_VOICE, cx::v1::SURVEY_METRIC_CSAT,
      cx::v1::SURVEY_METRIC_NPS, cx::v1::SURVEY_METRIC_CES;
  std::vector<InteractionEvent> s = {
      // billing/voice: the 30s threshold, not the default 20s.
      Queued(0, "billing", CHANNEL_VOICE),  // slides out of both windows
      Queued(10, "billing", CHANNEL_VOICE), Answered(10, "billing", CHANNEL_VOICE, 25),
      Ended(10, "billing", CHANNEL_VOICE, 300), Queued(20, "billing", CHANNEL_VOICE),
      Answered(21, "billing", CHANNEL_VOICE, 28), Queued(50, "billing", CHANNEL_VOICE),
      Queued(50, "billing", CHANNEL_VOICE), Answered(50, "billing", CHANNEL_VOICE, 10),
      Abandoned(51, "billing", CHANNEL_VOICE), Ended(52, "billing", CHANNEL_VOICE, 200),
      Ended(55, "billing", CHANNEL_VOICE, 100),
      Answered(58, "billing", CHANNEL_VOICE, 31),  // 1s over billing's threshold
      // sales/chat: the default 20s threshold (20s is within, 25s is not).
      Queued(5, "sales", CHANNEL_CHAT), Abandoned(5, "sales", CHANNEL_CHAT), Queued(48, "sales", CHANNEL_CHAT),
      Answered(48, "sales", CHANNEL_CHAT, 25), Queued(49, "sales", CHANNEL_CHAT),
      Answered(49, "sales", CHANNEL_CHAT, 20), Ended(58, "sales", CHANNEL_CHAT, 90),
      // other/email: beyond max_queues.
      Queued(30, "tech", CHANNEL_EMAIL),
      // unassigned/unspecified: contacts; repeat_window 30m.
      Started(2, "c1"), Started(12, "c3"), Started(47, "c1"),  // 45 min after c1's first: not a repeat
      Started(50, "c2"), Started(55, "c1"),                      // 8 min after: a repeat
      Started(59, "c2"),                                         // 9 min after: a repeat
      // billing/chat: surveys.
      Survey(5, SURVEY_METRIC_CSAT, 2), Survey(50, SURVEY_METRIC_CSAT, 5), Survey(56, SURVEY_METRIC_CSAT, 4),
      Survey(8, SURVEY_METRIC_NPS, 10), Survey(20, SURVEY_METRIC_NPS, 8), Survey(47, SURVEY_METRIC_NPS, 9),
      Survey(48, SURVEY_METRIC_NPS, 7), Survey(52, SURVEY_METRIC_NPS, 6), Survey(57, SURVEY_METRIC_NPS, 0),
      Survey(50, SURVEY_METRIC_CES, 3),  // ignored
      // billing/sms: callbacks, grace 5m.
      CallbackRequested(3, "k1", 10), CallbackAttempted(12, "k1"),   // due 10, made in time
      CallbackRequested(30, "k2", 43),                               // due 43, missed at 48
      // Attempted exactly at the deadline, after the NPS survey of minute 57: in time.
      CallbackRequested(50, "k3", 52), CallbackAttempted(57, "k3"),
      CallbackRequested(50, "k4", 54), CallbackAttempted(60, "k4"),  // after its deadline (59): missed, and made
      CallbackRequested(55, "k5", 70),                               // not due yet
      CallbackAttempted(47, "k6"),                                   // made, never requested
  };
  std::stable_sort(s.begin(), s.end(), [](const InteractionEvent& a, const InteractionEvent& b) {
    return ToMicros(a.occurred_at()) < ToMicros(b.occurred_at());
  });
  return s;
}

class KpiTest : public ::testing::Test {
 protected:
  // As a shard does: the wall clock near event time, a Tick after the batch.
  void Record(const InteractionEvent& e, int32_t partition = 0) {
    const Micros wall = frozen_wall_.value_or(ToMicros(e.occurred_at()));
    kpi_.Record(e, partition, wall);
    kpi_.Tick(wall);
  }
  // An event no KPI counts, at `minute`: moves the partition's clock there,
  // so the windows end at that minute (they hold whole minutes before it).
  void Close(double minute, int32_t partition = 0) { Record(Sentiment(minute), partition); }

  void Scrape() {
    std::vector<prometheus::MetricFamily> families;
    AppendKpiFamilies({&kpi_}, &families);
    scrape_ = prometheus::TextSerializer().Serialize(families);
  }

  // The sample, or NaN when the series is absent.
  double Get(const std::string& kpi, const std::string& queue, const std::string& channel,
             const std::string& window) const {
    return testing::Sample(scrape_, "cxpulse_kpi_" + kpi, {{"queue", queue}, {"channel", channel}, {"window", window}})
        .value_or(kAbsent);
  }

  struct Expected {
    const char* kpi;
    double in_15m, in_1h;
  };
  void ExpectCell(const std::string& queue, const std::string& channel, std::initializer_list<Expected> expected) {
    for (const Expected& e : expected) {
      for (const auto& [window, value] : {std::pair{"15m", e.in_15m}, std::pair{"1h", e.in_1h}}) {
        const double got = Get(e.kpi, queue, channel, window);
        if (std::isnan(value)) {
          EXPECT_TRUE(std::isnan(got)) << e.kpi << "{" << queue << "," << channel << "," << window << "} = " << got;
        } else {
          EXPECT_NEAR(got, value, 1e-9) << e.kpi << "{" << queue << "," << channel << "," << window << "}";
        }
      }
    }
  }

  KpiConfig config_ = TestConfig();
  QueueLabels queues_{config_};
  KpiAggregator kpi_{config_, &queues_, /*allowed_lateness=*/0, kIdleTimeout};
  std::string scrape_;
  // Set: the wall clock stands still, so no partition counts as idle (event
  // time alone moves the clocks, as when partitions are read at different
  // speeds).
  std::optional<Micros> frozen_wall_;
};

TEST_F(KpiTest, EveryKpiInBothWindowsMatchesTheHandComputedValues) {
  for (const InteractionEvent& e : Stream()) Record(e);
  Close(61);
  EXPECT_EQ(kpi_.config().windows.size(), 2u);
  // After the fact, within the hour: counted. Older than the longest window: ignored.
  auto late = Queued(40, "support", cx::v1::CHANNEL_EMAIL);
  Record(late);
  Record(Queued(0, "billing", cx::v1::CHANNEL_VOICE));
  Record(Queued(-30, "sales", cx::v1::CHANNEL_CHAT));
  Scrape();
  EXPECT_EQ(testing::Sample(scrape_, "cxpulse_kpi_window_end_timestamp_seconds", {}),
            static_cast<double>(At(61) / kMicrosPerSecond));

  // billing/voice. 1h: offered 10,20,50,50; answered 25s,28s,10s (within
  // 30s), 31s (not); abandoned 51; ended 300,200,100. 15m: offered 50,50;
  // answered 10s, 31s; abandoned 51; ended 200,100.
  ExpectCell("billing", "voice", {{"offered", 2, 4},
                                  {"answered", 2, 4},
                                  {"answered_within_target", 1, 3},
                                  {"abandoned", 1, 1},
                                  {"wait_seconds", 41, 94},
                                  {"handled", 2, 3},
                                  {"handle_seconds", 300, 600},
                                  {"service_level_ratio", 1.0 / 3, 3.0 / 5},
                                  {"abandon_ratio", 0.5, 0.25},
                                  {"speed_of_answer_seconds", 20.5, 23.5},
                                  {"handle_time_seconds", 150, 200},
                                  {"contacts", 0, 0},
                                  {"repeat_contact_ratio", kAbsent, kAbsent},
                                  {"csat_average", kAbsent, kAbsent},
                                  {"nps", kAbsent, kAbsent}});
  // sales/chat, default threshold 20s. 1h: offered 5,48,49; abandoned 5;
  // answered 25s (not within), 20s (within); ended 90. 15m: minutes 48, 49, 58.
  ExpectCell("sales", "chat", {{"offered", 2, 3},
                               {"answered", 2, 2},
                               {"answered_within_target", 1, 1},
                               {"abandoned", 0, 1},
                               {"wait_seconds", 45, 45},
                               {"handled", 1, 1},
                               {"handle_seconds", 90, 90},
                               {"service_level_ratio", 0.5, 1.0 / 3},
                               {"abandon_ratio", 0, 1.0 / 3},
                               {"speed_of_answer_seconds", 22.5, 22.5},
                               {"handle_time_seconds", 90, 90}});
  // tech (30) and support (40, recorded last) share "other"; neither is in 15m.
  ExpectCell("other", "email", {{"offered", 0, 2}, {"abandon_ratio", kAbsent, 0}, {"answered", 0, 0}});
  // Contacts: 1h 2,12,47,50,55,59 with repeats 55 and 59; 15m 47,50,55,59.
  ExpectCell("unassigned", "unspecified",
             {{"contacts", 4, 6}, {"repeat_contacts", 2, 2}, {"repeat_contact_ratio", 0.5, 1.0 / 3},
              {"offered", 0, 0}, {"service_level_ratio", kAbsent, kAbsent}});
  // Surveys. CSAT 1h 2,5,4, 15m 5,4. NPS 1h 10,8,9,7,6,0 (2 promoters, 2
  // detractors); 15m 9,7,6,0 (1 promoter, 2 detractors). CES not counted.
  ExpectCell("billing", "chat", {{"csat_responses", 2, 3},
                                 {"csat_points", 9, 11},
                                 {"csat_average", 4.5, 11.0 / 3},
                                 {"nps_responses", 4, 6},
                                 {"nps_promoters", 1, 2},
                                 {"nps_detractors", 2, 2},
                                 {"nps", -25, 0}});
  // Callbacks. Due at 10, 43, 52, 54 (70 is not yet); made at 12, 47, 57,
  // 60; missed at 48 (k2) and 59 (k4, attempted at 60).
  ExpectCell("billing", "sms", {{"callbacks_due", 2, 4}, {"callbacks_made", 3, 4}, {"callbacks_missed", 2, 2}});

  // Cells that never counted anything make no series.
  EXPECT_TRUE(std::isnan(Get("offered", "billing", "web", "1h")));
  EXPECT_TRUE(std::isnan(Get("offered", "tech", "email", "1h")));
  EXPECT_TRUE(std::isnan(Get("offered", "support", "email", "1h")));
  // Every labelled queue has its service-level target; no others.
  EXPECT_EQ(testing::Sample(scrape_, "cxpulse_kpi_service_level_threshold_seconds", {{"queue", "billing"}}), 30);
  EXPECT_EQ(testing::Sample(scrape_, "cxpulse_kpi_service_level_objective_ratio", {{"queue", "billing"}}), 0.85);
  for (const char* queue : {"sales", "other", "unassigned"}) {
    EXPECT_EQ(testing::Sample(scrape_, "cxpulse_kpi_service_level_threshold_seconds", {{"queue", queue}}), 20) << queue;
    EXPECT_EQ(testing::Sample(scrape_, "cxpulse_kpi_service_level_objective_ratio", {{"queue", queue}}), 0.8) << queue;
  }
  EXPECT_EQ(testing::Sample(scrape_, "cxpulse_kpi_service_level_threshold_seconds", {{"queue", "tech"}}), std::nullopt);
}

TEST_F(KpiTest, CountsSlideOutOfTheShortWindowFirst) {
  const std::vector<InteractionEvent> stream = Stream();
  for (const InteractionEvent& e : stream) {
    if (e.occurred_at().seconds() > At(21) / kMicrosPerSecond) break;
    Record(e);
  }
  Close(22);
  Scrape();
  // The windows end at minute 22: 15m holds 7..21 (offered 10, 20), 1h all of 0..21.
  ExpectCell("billing", "voice", {{"offered", 2, 3}, {"answered", 2, 2}, {"handled", 1, 1}});
  // Minute 30: 15m holds 15..29, so minute 10 has left it; the hour has not.
  Record(Started(30, "c9"));
  Scrape();
  ExpectCell("billing", "voice", {{"offered", 1, 3}, {"answered", 1, 2}, {"handled", 0, 1}});
}

TEST_F(KpiTest, AQuietShardLetsTimePassAndMissesCallbacks) {
  Record(CallbackRequested(0, "k1", 1));
  Record(Queued(0, "billing", cx::v1::CHANNEL_VOICE));
  kpi_.Tick(At(0) + kIdleTimeout - 1);  // not idle yet
  Scrape();
  ExpectCell("billing", "sms", {{"callbacks_due", 0, 0}, {"callbacks_missed", 0, 0}});
  // Idle: event time follows the wall clock; due at 1, missed at 6.
  kpi_.Tick(At(10));
  Scrape();
  ExpectCell("billing", "sms", {{"callbacks_due", 1, 1}, {"callbacks_missed", 1, 1}});
  ExpectCell("billing", "voice", {{"offered", 1, 1}});
  kpi_.Tick(At(30));
  Scrape();
  ExpectCell("billing", "voice", {{"offered", 0, 1}, {"abandon_ratio", kAbsent, 0}});
}

// A partition that moves away takes its pending callbacks, due and missed
// timers both: its next owner has them to count (once state moves with a
// partition); the other partition's promise is due and missed as usual.
TEST_F(KpiTest, APartitionMovedAwayTakesItsPendingCallbacks) {
  Record(CallbackRequested(0, "k1", 1), /*partition=*/1);
  Record(CallbackRequested(0, "k2", 1), /*partition=*/2);
  kpi_.DropPartition(1);
  Record(Queued(10, "billing", cx::v1::CHANNEL_VOICE), /*partition=*/2);  // event time passes both deadlines (6)
  Scrape();
  ExpectCell("billing", "sms", {{"callbacks_due", 1, 1}, {"callbacks_missed", 1, 1}});
}

// Issue 9, defect 1: a partition running behind another never has its
// callback timers fired by the other's clock. Partition 0's callback, due
// at 5 (deadline 10), is attempted at 8, after partition 1 reached 12.
TEST_F(KpiTest, APartitionBehindAnotherKeepsItsOwnClock) {
  frozen_wall_ = At(0);
  Record(CallbackRequested(0, "k1", 5), /*partition=*/0);
  Record(Queued(12, "billing", cx::v1::CHANNEL_VOICE), /*partition=*/1);
  Record(CallbackAttempted(8, "k1"), /*partition=*/0);
  Scrape();
  // Partition 0 is the lowest: the windows end at minute 8.
  EXPECT_EQ(testing::Sample(scrape_, "cxpulse_kpi_window_end_timestamp_seconds", {}),
            static_cast<double>(At(8) / kMicrosPerSecond));
  ExpectCell("billing", "sms", {{"callbacks_due", 1, 1}, {"callbacks_missed", 0, 0}, {"callbacks_made", 0, 0}});
  // Both move on past the deadline: the promise was kept.
  Close(30, /*partition=*/0);
  Close(30, /*partition=*/1);
  Scrape();
  ExpectCell("billing", "sms", {{"callbacks_due", 0, 1}, {"callbacks_missed", 0, 0}, {"callbacks_made", 0, 1}});
}

// A partition further behind than the buckets kept no longer holds the
// windows back, and still keeps its customers' promises.
TEST_F(KpiTest, APartitionFarBehindNoLongerHoldsTheWindowsBack) {
  frozen_wall_ = At(0);
  Record(Queued(180, "billing", cx::v1::CHANNEL_VOICE), /*partition=*/1);
  Record(CallbackRequested(0, "k1", 60), /*partition=*/0);
  Record(CallbackAttempted(30, "k1"), /*partition=*/0);
  Scrape();
  EXPECT_EQ(testing::Sample(scrape_, "cxpulse_kpi_window_end_timestamp_seconds", {}),
            static_cast<double>((At(180) - KpiAggregator::kMaxSkew) / kMicrosPerSecond));
  Record(CallbackRequested(170, "k2", 171), /*partition=*/0);
  Close(200, /*partition=*/0);
  Close(200, /*partition=*/1);
  Scrape();
  // k1 was kept at 30 (its minutes are out of every window); k2 is missed at 176.
  ExpectCell("billing", "sms", {{"callbacks_due", 0, 1}, {"callbacks_missed", 0, 1}});
}

// Issue 9, defect 2, for the KPIs: a new request does not erase a promise
// already past its deadline; one made before the due time reschedules it.
TEST_F(KpiTest, ANewRequestDoesNotEraseAnOverduePromise) {
  Record(CallbackRequested(0, "k1", 10));    // deadline 15
  Record(CallbackRequested(16, "k1", 40));   // after the deadline: the first stays missed
  Record(CallbackAttempted(20, "k1"));       // keeps the second
  Record(CallbackRequested(22, "k2", 30));
  Record(CallbackRequested(25, "k2", 50));   // before k2's due time: rescheduled, neither due nor missed
  Close(59);
  Scrape();
  // Due: k1's 10 and 40, k2's 50. Missed: k1's first (at 15), k2's second (at 55).
  ExpectCell("billing", "sms", {{"callbacks_due", 1, 3}, {"callbacks_missed", 1, 2}, {"callbacks_made", 0, 1}});
}

TEST_F(KpiTest, QueueLabelsAreSharedAndBounded) {
  // A second shard sees "sales" after the first claimed it: the same label.
  KpiAggregator other_shard(config_, &queues_, /*allowed_lateness=*/0, kIdleTimeout);
  Record(Queued(1, "sales", cx::v1::CHANNEL_WEB));
  other_shard.Record(Queued(1, "sales", cx::v1::CHANNEL_WEB), 0, At(1));
  for (int i = 0; i < 100; ++i) other_shard.Record(Queued(2, Cat("q", i), cx::v1::CHANNEL_WEB), 0, At(2));
  auto unknown_channel = Queued(2, "billing", cx::v1::CHANNEL_WEB);
  unknown_channel.set_channel(static_cast<cx::v1::Channel>(42));
  Record(unknown_channel);
  Close(3);
  other_shard.Record(Sentiment(3), 0, At(3));
  other_shard.Tick(At(3));

  std::vector<prometheus::MetricFamily> families;
  AppendKpiFamilies({&kpi_, &other_shard}, &families);
  scrape_ = prometheus::TextSerializer().Serialize(families);
  ExpectCell("sales", "web", {{"offered", 2, 2}});
  ExpectCell("other", "web", {{"offered", 100, 100}});
  ExpectCell("billing", "unspecified", {{"offered", 1, 1}});
  EXPECT_EQ(queues_.capacity(), 4);  // other, unassigned, billing, one first-come
  for (int q = 0; q < queues_.capacity(); ++q) ASSERT_NE(queues_.name(q), nullptr);
  EXPECT_EQ(*queues_.name(3), "sales");
}

}  // namespace
}  // namespace cxpulse
