// Fills a protobuf message from a YAML mapping, by reflection over its
// descriptor: how rule tests write events. Field names are the proto names;
// enums take their short lower-case name ("voice") or full name; timestamps
// take RFC 3339 or an offset from a base time ("90s" = base + 90s);
// durations take "90s", "15m". Configuration time only; any thread.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/time.h"
#include "google/protobuf/message.h"
#include "yaml-cpp/yaml.h"

namespace cxpulse {

// Errors read "file:line:col: message". Top-level keys in `skip` are left
// for the caller (e.g. a test event's "at").
absl::Status YamlToMessage(const std::string& file, const YAML::Node& node, Micros base_time,
                           google::protobuf::Message* message, const std::vector<std::string>& skip = {});

}  // namespace cxpulse
