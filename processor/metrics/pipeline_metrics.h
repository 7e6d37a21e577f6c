// PipelineMetrics: the control thread's own series: build info, the
// per-partition gauges (consumer lag, watermark delay) and the centre
// stage's (set from its atomics as the control thread polls). Everything counted
// per event lives in the shards' counters and reaches Prometheus through
// ShardMetrics at scrape time. Control thread only.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <vector>

namespace cxpulse {

// One gauge per partition, added when first set and removed when the
// partition is revoked, so a process shows only the partitions it owns.
class PartitionGauges {
 public:
  explicit PartitionGauges(prometheus::Family<prometheus::Gauge>& family) : family_(family) {}
  prometheus::Gauge& Get(int32_t partition);
  void Remove(int32_t partition);

 private:
  prometheus::Family<prometheus::Gauge>& family_;
  std::vector<prometheus::Gauge*> gauges_;  // by partition
};

class PipelineMetrics {
 public:
  explicit PipelineMetrics(prometheus::Registry& registry);

  PartitionGauges consumer_lag;     // messages
  PartitionGauges watermark_delay;  // seconds between the wall clock and the partition's watermark

  // The centre stage (daemon/centre_stage.h), in this process.
  prometheus::Gauge& centre_active;      // 1 while it runs here (this process holds partition 0)
  prometheus::Gauge& centre_watermark;   // the merged watermark, seconds since the epoch; 0 before
  prometheus::Gauge& centre_held;        // events held for the merge
  prometheus::Counter& centre_late;      // events a centre rule could use, refused as late
  prometheus::Counter& centre_forced;    // events released before their turn (the merge was full)
  prometheus::Counter& centre_transactions;  // committed, exactly once
};

}  // namespace cxpulse
