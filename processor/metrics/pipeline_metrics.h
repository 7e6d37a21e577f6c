// PipelineMetrics: every metric the ingest/engine/output path exports,
// declared once here and resolved to handles at start-up (and when rules
// load), so the event loop increments a handle and never looks up a label.
// Handles are prometheus-cpp counters (atomic); any thread may increment.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <vector>

#include "cx/v1/event.pb.h"
#include "engine/rule_set.h"

namespace cxpulse {

enum class DeadLetterReason { kDecode, kInvalid, kLate, kCount };
std::string_view DeadLetterReasonName(DeadLetterReason r);

class PipelineMetrics {
 public:
  explicit PipelineMetrics(prometheus::Registry& registry);

  prometheus::Counter& EventConsumed(int body_case, int channel) {
    const auto b = static_cast<size_t>(body_case) < kMaxBodyCase ? static_cast<size_t>(body_case) : 0;
    const auto c = static_cast<size_t>(channel) < kChannels ? static_cast<size_t>(channel) : 0;
    return *events_consumed_[b][c];
  }
  prometheus::Counter& decode_errors() { return *decode_errors_; }
  prometheus::Counter& late_events() { return *late_events_; }
  prometheus::Counter& DeadLetter(DeadLetterReason r) { return *dead_letters_[static_cast<size_t>(r)]; }
  prometheus::Histogram& batch_duration() { return *batch_duration_; }

  // Resolves the per-rule handles for a rule set, before it is used.
  void BindRules(const RuleSet& rules);
  prometheus::Counter& FindingOf(int rule_index) { return *findings_[static_cast<size_t>(rule_index)]; }

  // Per-partition gauges, added when a partition is assigned and removed when
  // it is revoked (rebalances: rare, never per event).
  prometheus::Gauge& ConsumerLag(int32_t partition);
  void RemoveConsumerLag(int32_t partition);

 private:
  static constexpr size_t kChannels = 8;
  prometheus::Family<prometheus::Counter>& events_family_;
  prometheus::Family<prometheus::Counter>& findings_family_;
  prometheus::Family<prometheus::Gauge>& lag_family_;
  std::array<std::array<prometheus::Counter*, kChannels>, kMaxBodyCase> events_consumed_{};
  prometheus::Counter* decode_errors_;
  prometheus::Counter* late_events_;
  std::array<prometheus::Counter*, static_cast<size_t>(DeadLetterReason::kCount)> dead_letters_{};
  prometheus::Histogram* batch_duration_;
  std::vector<prometheus::Counter*> findings_;
  std::vector<prometheus::Gauge*> lag_;  // by partition
};

}  // namespace cxpulse
