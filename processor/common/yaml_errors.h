// Turns yaml-cpp positions into "file:line:col: message" errors, the one form
// every cxpulse error about a user's file takes. Configuration time only.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "common/strings.h"
#include "yaml-cpp/yaml.h"

namespace cxpulse {

// yaml-cpp marks are 0-based; editors and compilers count from 1.
inline std::string Where(std::string_view file, const YAML::Mark& mark) {
  if (mark.is_null()) return std::string(file);
  return Cat(file, ":", mark.line + 1, ":", mark.column + 1);
}

inline absl::Status ErrorAt(std::string_view file, const YAML::Node& node, std::string_view message) {
  return absl::InvalidArgumentError(Cat(Where(file, node.Mark()), ": ", message));
}

}  // namespace cxpulse
