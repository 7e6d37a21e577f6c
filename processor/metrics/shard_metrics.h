// ShardMetrics: every per-event series (events by type and channel, decode
// errors, late events, dead letters, batch durations, findings and per-rule
// statistics), summed over the shards' own counters when Prometheus
// scrapes. The event loop never touches a prometheus-cpp family. Collect()
// runs on the control thread; shards only write their relaxed atomics.
#pragma once

#include <prometheus/collectable.h>

#include <memory>
#include <vector>

#include "daemon/pipeline.h"

namespace cxpulse {

class ShardMetrics final : public prometheus::Collectable {
 public:
  // `pipeline` must outlive this collector; Collect() runs on its (control) thread.
  explicit ShardMetrics(const Pipeline* pipeline) : pipeline_(pipeline) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const Pipeline* pipeline_;
};

}  // namespace cxpulse
