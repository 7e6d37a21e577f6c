// The state of N customers, for the state benchmarks (state_bench,
// restore_bench): each customer makes one inbound voice contact (started,
// queued, answered after 20 s, ended after 300 s) and is promised a callback
// due two hours after `t0`, so the default pack holds per customer a count
// key per (customer, reason), one per customer, a pending promise with its
// timer, and the KPIs a customer record and a pending callback.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>

#include "common/time.h"
#include "cx/v1/event.pb.h"

namespace cxpulse::bench {

inline void SetNumbered(std::string* out, std::string_view prefix, uint64_t n) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
  out->assign(prefix).append(digits, end);
}

// Calls feed(customer, event) for every event of every journey, in event
// time order within the hour after `t0`; `event` is reused between calls.
template <typename Feed>
void ForEachJourneyEvent(size_t customers, Micros t0, Feed feed) {
  static constexpr std::string_view kReasons[] = {"password_reset", "billing_dispute", "payment_failed",
                                                  "plan_change",    "delivery_late",   "refund_status",
                                                  "outage",         "cancel_request"};
  cx::v1::InteractionEvent e;
  const Micros step = std::max<Micros>(1, 3600 * kMicrosPerSecond / static_cast<Micros>(customers * 5));
  uint64_t n = 0;
  for (uint64_t c = 0; c < customers; ++c) {
    auto next = [&] {
      SetNumbered(e.mutable_event_id(), "e1-", ++n);
      SetTimestamp(t0 + static_cast<Micros>(n) * step, e.mutable_occurred_at());
      feed(static_cast<size_t>(c), e);
    };
    SetNumbered(e.mutable_customer_id(), "c", 100000 + c);
    SetNumbered(e.mutable_contact_id(), "ct1-", c);
    e.set_reason(std::string(kReasons[c % std::size(kReasons)]));
    e.set_queue("billing");
    e.set_channel(cx::v1::CHANNEL_VOICE);
    e.mutable_contact_started()->set_direction(cx::v1::DIRECTION_INBOUND);
    next();
    e.mutable_queued();
    next();
    e.mutable_answered()->mutable_wait()->set_seconds(20);
    next();
    e.mutable_ended()->mutable_handle_time()->set_seconds(300);
    next();
    SetTimestamp(t0 + 2 * 3600 * kMicrosPerSecond, e.mutable_callback_requested()->mutable_due_at());
    next();
  }
}

}  // namespace cxpulse::bench
