#include "metrics/pipeline_metrics.h"

#include <librdkafka/rdkafka.h>

#include "google/protobuf/stubs/common.h"

namespace cxpulse {

PipelineMetrics::PipelineMetrics(prometheus::Registry& registry)
    : lag_family_(prometheus::BuildGauge()
                      .Name("cxpulse_consumer_lag_messages")
                      .Help("Messages between the consumer's position and the partition's high watermark.")
                      .Register(registry)) {
  prometheus::BuildGauge()
      .Name("cxpulse_build_info")
      .Help("Build information; the value is always 1.")
      .Register(registry)
      .Add({{"version", CXPULSE_VERSION},
            {"librdkafka", rd_kafka_version_str()},
            {"protobuf", google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION)}})
      .Set(1);
}

prometheus::Gauge& PipelineMetrics::ConsumerLag(int32_t partition) {
  const auto p = static_cast<size_t>(partition);
  if (p >= lag_.size()) lag_.resize(p + 1, nullptr);
  if (lag_[p] == nullptr) lag_[p] = &lag_family_.Add({{"partition", std::to_string(partition)}});
  return *lag_[p];
}

void PipelineMetrics::RemoveConsumerLag(int32_t partition) {
  const auto p = static_cast<size_t>(partition);
  if (p >= lag_.size() || lag_[p] == nullptr) return;
  lag_family_.Remove(lag_[p]);
  lag_[p] = nullptr;
}

}  // namespace cxpulse
