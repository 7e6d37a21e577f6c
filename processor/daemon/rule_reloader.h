// RuleReloader: hot reload of the rule files, on the control thread. A new
// RuleSet is compiled here; if it fails, the running rules stay and the
// error is reported (log, cxpulse_rule_reloads_total{result="failure"},
// GET /rules). If it compiles, every shard swaps it in between batches
// (Pipeline::Reload). Triggers: SIGHUP, a change to the rule files (polled),
// POST /-/reload. Control thread only.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "common/time.h"
#include "daemon/pipeline.h"

namespace cxpulse {

class RuleReloader {
 public:
  RuleReloader(std::string rules_path, Pipeline* pipeline, prometheus::Registry& registry, const Clock* clock);

  // Compiles and, if it compiles, swaps in the rule files. `trigger` names
  // the cause in the log ("SIGHUP", "file change", "POST /-/reload").
  absl::Status Reload(std::string_view trigger);
  // Reloads if the rule files changed since the last look (their names,
  // sizes and modification times).
  void ReloadIfChanged();

  // JSON for GET /rules: the running rules with version and counters, and
  // the last reload's outcome.
  std::string RulesJson() const;

 private:
  std::string Signature() const;

  std::string rules_path_;
  Pipeline* pipeline_;
  const Clock* clock_;
  std::string signature_;
  prometheus::Counter* succeeded_;
  prometheus::Counter* failed_;
  prometheus::Gauge* last_ok_;
  prometheus::Gauge* last_success_time_;
  std::string last_error_;
  std::string last_trigger_ = "start";
  Micros last_at_ = 0;
};

}  // namespace cxpulse
