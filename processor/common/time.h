// Event time in cxpulse: microseconds since the Unix epoch, as a plain int64.
// The engine does arithmetic on these in the hot loop, so they are integers,
// not std::chrono types with conversions at every step. Pure functions; any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace cxpulse {

using Micros = int64_t;

inline constexpr Micros kMicrosPerSecond = 1'000'000;

inline Micros ToMicros(const google::protobuf::Timestamp& t) {
  return t.seconds() * kMicrosPerSecond + t.nanos() / 1000;
}

inline Micros ToMicros(const google::protobuf::Duration& d) {
  return d.seconds() * kMicrosPerSecond + d.nanos() / 1000;
}

inline void SetTimestamp(Micros t, google::protobuf::Timestamp* out) {
  Micros seconds = t / kMicrosPerSecond;
  Micros rest = t % kMicrosPerSecond;
  if (rest < 0) {
    --seconds;
    rest += kMicrosPerSecond;
  }
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(rest * 1000));
}

inline Micros ToMicros(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

// Wall clock, in event-time units. Behind an interface so tests can drive time.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual Micros Now() const = 0;
};

class SystemClock final : public Clock {
 public:
  Micros Now() const override { return ToMicros(std::chrono::system_clock::now()); }
};

// Parses "500ms", "90s", "15m", "24h", "7d", and sums like "1h30m".
absl::StatusOr<Micros> ParseDuration(std::string_view text);

// The shortest exact form: 5400000000 -> "1h30m".
std::string FormatDuration(Micros d);

// RFC 3339 in UTC, e.g. "2026-11-22T10:55:43Z" (fraction only when non-zero).
std::string FormatTime(Micros t);

}  // namespace cxpulse
