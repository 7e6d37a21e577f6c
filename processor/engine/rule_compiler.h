// The rule compiler: rule files (YAML) into a RuleSet. Every field is
// checked and every expression parsed and type-checked against the
// InteractionEvent descriptor here, once, so the engine only evaluates; an
// error names its place as file:line:col (rules/README.md is the language).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/rule_set.h"

namespace cxpulse {

// Loads every *.yaml / *.yml file in `paths` (files, or directories read in
// name order; *_test.yaml files are rule tests and are skipped). On failure
// the message holds every error found, one per line, as "file:line:col: message".
absl::StatusOr<std::shared_ptr<const RuleSet>> LoadRuleSet(const std::vector<std::string>& paths);

// The rule files `paths` stands for, in load order.
absl::StatusOr<std::vector<std::string>> RuleFiles(const std::vector<std::string>& paths);

}  // namespace cxpulse
