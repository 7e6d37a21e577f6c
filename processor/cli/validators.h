// CLI11 validators the subcommands share: a Status-returning check as a
// validator, and durations ("30s", "5m") as ParseDuration reads them.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/strings.h"
#include "common/time.h"

namespace cxpulse {

inline CLI::Validator StatusValidator(std::string name, std::function<absl::Status(const std::string&)> check) {
  return CLI::Validator(
      [check = std::move(check)](std::string& text) -> std::string {
        absl::Status s = check(text);
        return s.ok() ? std::string() : std::string(Message(s));
      },
      std::move(name));
}

// A duration option ("30s", "5m"), zero allowed.
inline CLI::Validator DurationValidator() {
  return StatusValidator("DURATION", [](const std::string& text) { return ParseDuration(text).status(); });
}

}  // namespace cxpulse
