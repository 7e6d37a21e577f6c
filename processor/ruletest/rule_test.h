// Rule unit tests (`cxpulse test`): YAML files giving input events with
// times and the findings expected from them, like `promtool test rules`.
// Runs the real Engine on one partition, single-threaded, each rule in its
// scope as the daemon runs it (engine/offline_run.h).
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace cxpulse {

struct RuleTestSummary {
  int passed = 0;
  int failed = 0;
  int errors = 0;  // files that could not be read or whose rules did not load
};

// Runs every test in every file, writing a line per test (and, for a
// failure, what was expected and what came) to `out`.
RuleTestSummary RunRuleTests(const std::vector<std::string>& files, std::ostream& out);

}  // namespace cxpulse
