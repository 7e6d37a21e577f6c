// QueueLabels: the process-wide map from an event's queue name to the index
// of its KPI label, so every shard folds queues the same way and a label's
// cardinality stays bounded. Slot 0 is "other" (what does not fit), slot 1
// "unassigned" (events with no queue), then the configured queues, then
// first-come names up to kpi.max_queues. Thread-safe and lock-free: a slot
// is claimed once, by compare-and-swap, and never changes afterwards.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace cxpulse {

class QueueLabels {
 public:
  static constexpr int kOther = 0;
  static constexpr int kUnassigned = 1;

  explicit QueueLabels(const KpiConfig& config);
  ~QueueLabels();
  QueueLabels(const QueueLabels&) = delete;
  QueueLabels& operator=(const QueueLabels&) = delete;

  // The label index of `queue` ("" is "unassigned"); claims a free slot for
  // a new name, or returns kOther once all are taken. Allocates only when it
  // claims a slot; callers cache what it returns (KpiAggregator does).
  int Resolve(std::string_view queue);

  // Slots, claimed or not; indexes are below this.
  int capacity() const { return static_cast<int>(service_levels_.size()); }
  // The label of slot `i`, or null while it is unclaimed.
  const std::string* name(int i) const { return names_[static_cast<size_t>(i)].load(std::memory_order_acquire); }
  const ServiceLevel& service_level(int i) const { return service_levels_[static_cast<size_t>(i)]; }

 private:
  std::unique_ptr<std::atomic<const std::string*>[]> names_;
  std::vector<ServiceLevel> service_levels_;  // fixed at construction
};

}  // namespace cxpulse
