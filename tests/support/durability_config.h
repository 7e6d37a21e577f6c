// The settings of issue 10's durable state and exactly-once findings, in one
// place for every test that needs them: the group's changelog topic
// (`kafka.changelog_topic`) and the delivery mode (`engine.delivery`).
// A config loader that does not know them refuses them as unknown keys; then
// a test's config goes without them, running on the defaults they spell out
// (`<group_id>-changelog`, exactly_once), and the test says so.
#pragma once

#include <cstdio>
#include <functional>
#include <string>

#include "config/config.h"

namespace cxpulse::testing {

enum class Delivery { kExactlyOnce, kAtLeastOnce };

inline std::string DeliveryName(Delivery d) { return d == Delivery::kExactlyOnce ? "exactly_once" : "at_least_once"; }

// The changelog topic of `group`: the default name. A test creates it on the
// mock cluster with the input topic's partition count.
inline std::string ChangelogTopic(const std::string& group) { return group + "-changelog"; }

// Lines for a block-style config: `kafka` goes under `kafka:`, `engine` under `engine:`.
struct DurabilityLines {
  std::string kafka;
  std::string engine;
};

inline DurabilityLines DurabilityLinesFor(const std::string& group, Delivery delivery) {
  return {"  changelog_topic: " + ChangelogTopic(group) + "\n", "  delivery: " + DeliveryName(delivery) + "\n"};
}

// The config `make` builds around the durability lines if this build's
// loader knows them, else around empty ones; *known says which. Any other
// error is left for the daemon to report.
inline std::string ConfigWithDurability(const std::function<std::string(const DurabilityLines&)>& make,
                                        const std::string& group, Delivery delivery, bool* known) {
  const std::string with = make(DurabilityLinesFor(group, delivery));
  const absl::StatusOr<Config> parsed = ParseConfig(with, "durability-probe.yaml", "/");
  const std::string error(parsed.status().message());
  *known = parsed.ok() || (error.find("unknown key \"changelog_topic\"") == std::string::npos &&
                           error.find("unknown key \"delivery\"") == std::string::npos);
  if (*known) return with;
  std::printf("note: this build's config loader refuses the durability keys (%s); running on the defaults\n",
              std::string(parsed.status().message()).c_str());
  return make(DurabilityLines{});
}

}  // namespace cxpulse::testing
