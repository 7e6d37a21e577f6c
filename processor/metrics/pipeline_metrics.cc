#include "metrics/pipeline_metrics.h"

#include <librdkafka/rdkafka.h>

#include "cx/v1/event.pb.h"
#include "google/protobuf/stubs/common.h"

namespace cxpulse {

std::string_view DeadLetterReasonName(DeadLetterReason r) {
  switch (r) {
    case DeadLetterReason::kDecode: return "decode";
    case DeadLetterReason::kInvalid: return "invalid";
    case DeadLetterReason::kLate: return "late";
    case DeadLetterReason::kCount: break;
  }
  return "unknown";
}

namespace {

std::string_view FamilyLabel(cx::v1::Family f) {
  switch (f) {
    case cx::v1::FAMILY_PREVENTION: return "prevention";
    case cx::v1::FAMILY_GAP: return "gap";
    case cx::v1::FAMILY_ESCALATION: return "escalation";
    default: return "unspecified";
  }
}

std::string_view SeverityLabel(cx::v1::Severity s) {
  switch (s) {
    case cx::v1::SEVERITY_INFO: return "info";
    case cx::v1::SEVERITY_WARNING: return "warning";
    case cx::v1::SEVERITY_CRITICAL: return "critical";
    default: return "unspecified";
  }
}

}  // namespace

PipelineMetrics::PipelineMetrics(prometheus::Registry& registry)
    : events_family_(prometheus::BuildCounter()
                         .Name("cxpulse_events_consumed_total")
                         .Help("Interaction events decoded from the input topic, by body type and channel.")
                         .Register(registry)),
      findings_family_(prometheus::BuildCounter()
                           .Name("cxpulse_findings_total")
                           .Help("Findings written to the findings topic, by rule, family and severity.")
                           .Register(registry)),
      lag_family_(prometheus::BuildGauge()
                      .Name("cxpulse_consumer_lag_messages")
                      .Help("Messages between the consumer's position and the partition's high watermark.")
                      .Register(registry)) {
  // Every (type, channel) pair is created up front, so the event loop only
  // indexes an array. Zero-valued series also make rate() work from the start.
  const auto* channel_enum = cx::v1::Channel_descriptor();
  const auto* oneof = cx::v1::InteractionEvent::descriptor()->FindOneofByName("body");
  for (int i = 0; i < oneof->field_count(); ++i) {
    const int body = oneof->field(i)->number();
    for (int c = 0; c < channel_enum->value_count(); ++c) {
      const auto* v = channel_enum->value(c);
      events_consumed_[static_cast<size_t>(body)][static_cast<size_t>(v->number())] =
          &events_family_.Add({{"type", oneof->field(i)->name()}, {"channel", EnumLabel(v)}});
    }
  }
  // Out-of-range indices land in slot [0][0]: a body-less event is never
  // counted here (it is dead-lettered as invalid), but the slot must exist.
  for (auto& row : events_consumed_) {
    for (auto& cell : row) {
      if (cell == nullptr) cell = &events_family_.Add({{"type", "other"}, {"channel", "other"}});
    }
  }
  decode_errors_ = &prometheus::BuildCounter()
                        .Name("cxpulse_decode_errors_total")
                        .Help("Input messages that did not decode as cx.v1.InteractionEvent.")
                        .Register(registry)
                        .Add({});
  late_events_ = &prometheus::BuildCounter()
                      .Name("cxpulse_late_events_total")
                      .Help("Events older than their partition's watermark, routed to the dead-letter topic.")
                      .Register(registry)
                      .Add({});
  auto& dlq = prometheus::BuildCounter()
                  .Name("cxpulse_dead_letters_total")
                  .Help("Input messages copied to the dead-letter topic, by reason.")
                  .Register(registry);
  for (size_t r = 0; r < dead_letters_.size(); ++r) {
    dead_letters_[r] = &dlq.Add({{"reason", std::string(DeadLetterReasonName(static_cast<DeadLetterReason>(r)))}});
  }
  batch_duration_ = &prometheus::BuildHistogram()
                         .Name("cxpulse_batch_duration_seconds")
                         .Help("Time to decode and evaluate one batch of polled messages.")
                         .Register(registry)
                         .Add({}, prometheus::Histogram::BucketBoundaries{0.00001, 0.00005, 0.0001, 0.0005, 0.001,
                                                                          0.005, 0.01, 0.05, 0.1, 0.5});
  prometheus::BuildGauge()
      .Name("cxpulse_build_info")
      .Help("Build information; the value is always 1.")
      .Register(registry)
      .Add({{"version", CXPULSE_VERSION},
            {"librdkafka", rd_kafka_version_str()},
            {"protobuf", google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION)}})
      .Set(1);
}

void PipelineMetrics::BindRules(const RuleSet& rules) {
  findings_.clear();
  for (const Rule& r : rules.rules()) {
    findings_.push_back(&findings_family_.Add({{"rule", r.name},
                                               {"family", std::string(FamilyLabel(r.family))},
                                               {"severity", std::string(SeverityLabel(r.severity))}}));
  }
}

prometheus::Gauge& PipelineMetrics::ConsumerLag(int32_t partition) {
  const auto p = static_cast<size_t>(partition);
  if (p >= lag_.size()) lag_.resize(p + 1, nullptr);
  if (lag_[p] == nullptr) lag_[p] = &lag_family_.Add({{"partition", std::to_string(partition)}});
  return *lag_[p];
}

}  // namespace cxpulse

namespace cxpulse {

void PipelineMetrics::RemoveConsumerLag(int32_t partition) {
  const auto p = static_cast<size_t>(partition);
  if (p >= lag_.size() || lag_[p] == nullptr) return;
  lag_family_.Remove(lag_[p]);
  lag_[p] = nullptr;
}

}  // namespace cxpulse
