// Builders for test events: short, readable sequences of InteractionEvents.
#pragma once

#include <string>

#include "common/time.h"
#include "cx/v1/event.pb.h"

namespace cxpulse::testing {

inline constexpr Micros kMinute = 60 * kMicrosPerSecond;

// A fixed point in event time, so findings' times and ids are reproducible.
inline constexpr Micros kT0 = 1'790'000'000LL * kMicrosPerSecond;  // 2026-09-21

inline cx::v1::InteractionEvent Event(const std::string& id, Micros at, const std::string& customer,
                                      const std::string& reason = "billing_dispute") {
  cx::v1::InteractionEvent e;
  e.set_event_id(id);
  SetTimestamp(at, e.mutable_occurred_at());
  e.set_customer_id(customer);
  e.set_contact_id("ct-" + id);
  e.set_channel(cx::v1::CHANNEL_VOICE);
  e.set_queue("billing");
  e.set_reason(reason);
  e.set_segment("standard");
  return e;
}

inline cx::v1::InteractionEvent Ended(const std::string& id, Micros at, const std::string& customer,
                                      const std::string& reason = "billing_dispute") {
  auto e = Event(id, at, customer, reason);
  e.mutable_ended()->set_resolved(false);
  return e;
}

inline cx::v1::InteractionEvent CallbackRequested(const std::string& id, Micros at, const std::string& customer,
                                                  Micros due) {
  auto e = Event(id, at, customer);
  SetTimestamp(due, e.mutable_callback_requested()->mutable_due_at());
  return e;
}

inline cx::v1::InteractionEvent CallbackAttempted(const std::string& id, Micros at, const std::string& customer) {
  auto e = Event(id, at, customer);
  e.mutable_callback_attempted()->set_connected(true);
  return e;
}

inline cx::v1::InteractionEvent Sentiment(const std::string& id, Micros at, const std::string& customer) {
  auto e = Event(id, at, customer);
  e.mutable_sentiment()->set_score(0.1);
  return e;
}

}  // namespace cxpulse::testing
