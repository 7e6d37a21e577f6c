// ShardMetrics: every per-event series (events by type and channel, decode
// errors, late events, dead letters, batch durations, findings and per-rule
// statistics), summed over the shards' own counters when Prometheus
// scrapes. The event loop never touches a prometheus-cpp family. Collect()
// runs on the control thread; shards only write their relaxed atomics.
#pragma once

#include <prometheus/collectable.h>

#include <memory>
#include <vector>

#include "daemon/shard.h"

namespace cxpulse {

class ShardMetrics final : public prometheus::Collectable {
 public:
  // `shards` must outlive this collector.
  explicit ShardMetrics(const std::vector<std::unique_ptr<Shard>>* shards) : shards_(shards) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const std::vector<std::unique_ptr<Shard>>* shards_;
};

}  // namespace cxpulse
