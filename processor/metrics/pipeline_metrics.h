// PipelineMetrics: the control thread's own series: build info and per-
// partition consumer lag. Everything counted per event lives in the shards'
// counters and reaches Prometheus through ShardMetrics at scrape time.
// Control thread only.
#pragma once

#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <vector>

namespace cxpulse {

class PipelineMetrics {
 public:
  explicit PipelineMetrics(prometheus::Registry& registry);

  // Per-partition gauges, added when a partition is assigned and removed when
  // it is revoked.
  prometheus::Gauge& ConsumerLag(int32_t partition);
  void RemoveConsumerLag(int32_t partition);

 private:
  prometheus::Family<prometheus::Gauge>& lag_family_;
  std::vector<prometheus::Gauge*> lag_;  // by partition
};

}  // namespace cxpulse
