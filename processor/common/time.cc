#include "common/time.h"
#include "common/strings.h"

#include <array>
#include <charconv>
#include <utility>

#include "google/protobuf/util/time_util.h"

namespace cxpulse {
namespace {

struct Unit {
  std::string_view suffix;
  Micros micros;
};

// Longest suffix first so "ms" is not read as "m" followed by garbage.
constexpr std::array<Unit, 6> kUnits = {{
    {"ms", 1000},
    {"d", 86400 * kMicrosPerSecond},
    {"h", 3600 * kMicrosPerSecond},
    {"m", 60 * kMicrosPerSecond},
    {"s", kMicrosPerSecond},
    {"w", 7 * 86400 * kMicrosPerSecond},
}};

}  // namespace

absl::StatusOr<Micros> ParseDuration(std::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("empty duration");
  Micros total = 0;
  std::string_view rest = text;
  while (!rest.empty()) {
    int64_t value = 0;
    auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), value);
    if (ec != std::errc() || end == rest.data() || value < 0) {
      return absl::InvalidArgumentError(
          Cat("bad duration \"", text, "\": expected a number followed by ms, s, m, h, d or w"));
    }
    rest.remove_prefix(static_cast<size_t>(end - rest.data()));
    const Unit* unit = nullptr;
    for (const Unit& u : kUnits) {
      if (rest.substr(0, u.suffix.size()) == u.suffix) {
        unit = &u;
        break;
      }
    }
    if (unit == nullptr) {
      return absl::InvalidArgumentError(
          Cat("bad duration \"", text, "\": a unit (ms, s, m, h, d, w) must follow each number"));
    }
    rest.remove_prefix(unit->suffix.size());
    total += value * unit->micros;
  }
  return total;
}

std::string FormatDuration(Micros d) {
  if (d == 0) return "0s";
  std::string out;
  if (d < 0) {
    out = "-";
    d = -d;
  }
  constexpr std::array<std::pair<std::string_view, Micros>, 5> kParts = {{
      {"d", 86400 * kMicrosPerSecond},
      {"h", 3600 * kMicrosPerSecond},
      {"m", 60 * kMicrosPerSecond},
      {"s", kMicrosPerSecond},
      {"ms", 1000},
  }};
  for (const auto& [suffix, size] : kParts) {
    if (d >= size) {
      Append(&out, d / size, suffix);
      d %= size;
    }
  }
  if (d > 0) Append(&out, d, "us");
  return out;
}

std::string FormatTime(Micros t) {
  google::protobuf::Timestamp ts;
  SetTimestamp(t, &ts);
  return google::protobuf::util::TimeUtil::ToString(ts);
}

}  // namespace cxpulse
