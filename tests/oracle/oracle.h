// The test oracle: a deliberately simple reference implementation of the
// semantics cxpulse promises (issue 9's contract: lateness per partition, rule
// scope, the per-kind rules of the shipped pack rules/contact-centre.yaml, and
// every KPI), for differential tests against the real binary.
//
// It shares no code with processor/: only the generated protobuf classes.
// Everything is recomputed from the whole event list with std::map and sorted
// std::vector; clarity first, but linear-ish in the stream (per-key work may
// be quadratic in that key's events). The 12 rules are hardcoded with their
// parameters; a change to the pack must be made here too.
//
// Pure functions of their arguments; any thread.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "cx/v1/event.pb.h"

namespace cxpulse::oracle {

using Micros = int64_t;  // microseconds since the epoch, or a length
using Event = cx::v1::InteractionEvent;

inline constexpr Micros kSecond = 1'000'000;
inline constexpr Micros kMinute = 60 * kSecond;
inline constexpr Micros kHour = 60 * kMinute;
inline constexpr Micros kDay = 24 * kHour;

// The Kafka partition an event is produced to (the caller's partitioner).
using PartitionOf = std::function<int(const Event&)>;

// What the daemon's configuration says, in the oracle's terms.
struct Params {
  Micros allowed_lateness = 30 * kSecond;  // engine.allowed_lateness
  Micros kpi_bucket = kMinute;             // kpi.bucket
  // kpi.windows: label (as written in the config) and length.
  std::vector<std::pair<std::string, Micros>> windows = {{"15m", 15 * kMinute}, {"1h", kHour}};
  Micros repeat_window = kDay;                 // kpi.repeat_window
  Micros callback_grace = 5 * kMinute;         // kpi.callback_grace
  std::map<std::string, Micros> sl_threshold;  // per queue service-level threshold
  Micros default_sl_threshold = 20 * kSecond;  // kpi.service_level.threshold
  // Queues labelled by name (kpi.queues); any other non-empty queue is
  // "other", an empty one "unassigned". This is the daemon with
  // kpi.max_queues: 0 (first-come labels depend on arrival order).
  std::set<std::string> queues;
};

// A finding as compared: rule, key values (in the rule's key order), the event
// time it fired at, and how many events it counts (Finding.count).
struct Finding {
  std::string rule;
  std::vector<std::string> key;
  Micros fired_at = 0;
  int64_t count = 0;

  friend auto operator<=>(const Finding&, const Finding&) = default;
  friend bool operator==(const Finding&, const Finding&) = default;
};

// "callback_missed[c000123] at 2026-03-02T10:00:00Z count 1".
std::string ToString(const Finding& f);
std::ostream& operator<<(std::ostream& out, const Finding& f);
// RFC 3339 UTC with microseconds when they are not zero.
std::string FormatTime(Micros t);

// Which events count at all (spec section 0): per partition in arrival order,
// an event below its partition's watermark (newest occurred_at seen on it
// minus the allowed lateness) is late; an event with no body, no occurred_at
// or no customer_id is invalid. Neither counts anywhere.
struct Admission {
  std::vector<const Event*> admitted;  // valid and not late, in arrival order
  std::vector<const Event*> late;      // in arrival order
  std::map<int, Micros> watermark;     // final watermark of each partition that had a valid event
};
Admission Admit(const std::vector<Event>& events, const PartitionOf& partition_of, Micros allowed_lateness);

// The shipped pack's rule names, in file order.
const std::vector<std::string>& RuleNames();

// Every finding of the shipped pack over `events` (global arrival order),
// sorted. Per-customer rules see each key's events in arrival order;
// centre-wide rules (reason_surge, queue_abandonment_spike,
// answer_time_over_target) see every admitted event ordered by (occurred_at,
// event_id). An absence promise fires when its partition's final watermark
// (centre-wide: the lowest over partitions that had an event) is past its
// deadline, or, with `flush_at_end` (cxpulse replay), whatever the watermark.
std::vector<Finding> Findings(const std::vector<Event>& events, const PartitionOf& partition_of, const Params& params,
                              bool flush_at_end);

// A KPI series: queue label, channel short name ("voice"), window label ("15m").
struct KpiCell {
  std::string queue;
  std::string channel;
  std::string window;
  friend auto operator<=>(const KpiCell&, const KpiCell&) = default;
  friend bool operator==(const KpiCell&, const KpiCell&) = default;
};
// Component name (as in the metric cxpulse_kpi_<name>) to value.
using KpiValues = std::map<std::string, double>;

// The 17 component names, in the README's order: offered, answered,
// answered_within_target, abandoned, wait_seconds, handled, handle_seconds,
// contacts, repeat_contacts, callbacks_due, callbacks_made, callbacks_missed,
// csat_responses, csat_points, nps_responses, nps_promoters, nps_detractors.
const std::vector<std::string>& KpiNames();

// The exported window end E: floor(G / bucket) * bucket, G the lowest final
// watermark among partitions that had an event (0 if none had).
Micros KpiWindowEnd(const Admission& admission, Micros bucket);

// Every KPI of every window ending at `window_end` (E): the sum over admitted
// events, and callback timers, whose bucket starts in [E - W, E). A callback
// timer counts only once its partition's final watermark is past it. Cells and
// components that would be zero may be missing.
std::map<KpiCell, KpiValues> Kpis(const std::vector<Event>& events, const PartitionOf& partition_of,
                                  const Params& params, Micros window_end);

}  // namespace cxpulse::oracle
