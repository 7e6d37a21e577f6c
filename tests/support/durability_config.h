// The delivery setting of a test's daemon config (`engine.delivery`), in one
// place for every test of durable state and exactly-once findings. The
// changelog is the default `<group_id>-changelog`, which a test creates on
// the mock cluster with the input topic's partition count.
#pragma once

#include <string>

namespace cxpulse::testing {

enum class Delivery { kExactlyOnce, kAtLeastOnce };

inline std::string DeliveryName(Delivery d) { return d == Delivery::kExactlyOnce ? "exactly_once" : "at_least_once"; }

inline std::string ChangelogTopic(const std::string& group) { return group + "-changelog"; }

// For a block-style `engine:` section.
inline std::string DeliveryLine(Delivery delivery) { return "  delivery: " + DeliveryName(delivery) + "\n"; }

}  // namespace cxpulse::testing
