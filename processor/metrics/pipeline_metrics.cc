#include "metrics/pipeline_metrics.h"

#include <librdkafka/rdkafka.h>

#include "google/protobuf/stubs/common.h"

namespace cxpulse {

prometheus::Gauge& PartitionGauges::Get(int32_t partition) {
  const auto p = static_cast<size_t>(partition);
  if (p >= gauges_.size()) gauges_.resize(p + 1, nullptr);
  if (gauges_[p] == nullptr) gauges_[p] = &family_.Add({{"partition", std::to_string(partition)}});
  return *gauges_[p];
}

void PartitionGauges::Remove(int32_t partition) {
  const auto p = static_cast<size_t>(partition);
  if (p >= gauges_.size() || gauges_[p] == nullptr) return;
  family_.Remove(gauges_[p]);
  gauges_[p] = nullptr;
}

PipelineMetrics::PipelineMetrics(prometheus::Registry& registry)
    : consumer_lag(prometheus::BuildGauge()
                       .Name("cxpulse_consumer_lag_messages")
                       .Help("Messages between the consumer's position and the partition's high watermark.")
                       .Register(registry)),
      watermark_delay(prometheus::BuildGauge()
                          .Name("cxpulse_watermark_delay_seconds")
                          .Help("Wall clock minus the partition's event-time watermark: how far behind real "
                                "time its absence timers fire (includes the allowed lateness).")
                          .Register(registry)),
      centre_active(prometheus::BuildGauge()
                        .Name("cxpulse_centre_active")
                        .Help("1 while this process runs the centre stage (it holds partition 0 of the input "
                              "topic), else 0.")
                        .Register(registry)
                        .Add({})),
      centre_watermark(prometheus::BuildGauge()
                           .Name("cxpulse_centre_watermark_timestamp_seconds")
                           .Help("The centre stage's merged event-time watermark: the lowest partition watermark; "
                                 "centre-wide findings and timers are complete up to here. 0 before it is known.")
                           .Register(registry)
                           .Add({})),
      centre_held(prometheus::BuildGauge()
                      .Name("cxpulse_centre_buffered_events")
                      .Help("Events the centre stage holds until every partition's watermark passes them.")
                      .Register(registry)
                      .Add({})),
      centre_late(prometheus::BuildCounter()
                      .Name("cxpulse_centre_late_events_total")
                      .Help("Events a centre-wide rule could use, refused by the centre stage as late for their "
                            "partition or behind what it had released.")
                      .Register(registry)
                      .Add({})),
      centre_forced(prometheus::BuildCounter()
                        .Name("cxpulse_centre_forced_releases_total")
                        .Help("Events the centre stage released before their turn because it held "
                              "engine.centre_max_held_events.")
                        .Register(registry)
                        .Add({})),
      centre_transactions(prometheus::BuildCounter()
                              .Name("cxpulse_centre_transactions_total")
                              .Help("Transactions the centre stage committed (exactly-once delivery): its findings, "
                                    "snapshot and input offsets together.")
                              .Register(registry)
                              .Add({})) {
  prometheus::BuildGauge()
      .Name("cxpulse_build_info")
      .Help("Build information; the value is always 1.")
      .Register(registry)
      .Add({{"version", CXPULSE_VERSION},
            {"librdkafka", rd_kafka_version_str()},
            {"protobuf", google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION)}})
      .Set(1);
}

}  // namespace cxpulse
