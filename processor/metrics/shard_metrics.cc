#include "metrics/shard_metrics.h"

#include <prometheus/metric_family.h>

#include "engine/rule_set.h"
#include "metrics/families.h"
#include "metrics/kpi_metrics.h"

namespace cxpulse {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

std::string FamilyLabel(cx::v1::Family f) {
  switch (f) {
    case cx::v1::FAMILY_PREVENTION: return "prevention";
    case cx::v1::FAMILY_GAP: return "gap";
    case cx::v1::FAMILY_ESCALATION: return "escalation";
    default: return "unspecified";
  }
}

std::string SeverityLabel(cx::v1::Severity s) {
  switch (s) {
    case cx::v1::SEVERITY_INFO: return "info";
    case cx::v1::SEVERITY_WARNING: return "warning";
    case cx::v1::SEVERITY_CRITICAL: return "critical";
    default: return "unspecified";
  }
}

template <typename Get>
double Sum(const std::vector<std::unique_ptr<Shard>>& shards, Get get) {
  double total = 0;
  for (const auto& s : shards) total += static_cast<double>(get(*s));
  return total;
}

}  // namespace

std::vector<MetricFamily> ShardMetrics::Collect() const {
  const auto& shards = pipeline_->shards();
  std::vector<MetricFamily> out;

  auto events = Family("cxpulse_events_consumed_total",
                       "Interaction events decoded from the input topic, by body type and channel.", MetricType::Counter);
  const auto* oneof = cx::v1::InteractionEvent::descriptor()->FindOneofByName("body");
  const auto* channels = cx::v1::Channel_descriptor();
  for (int i = 0; i < oneof->field_count(); ++i) {
    const auto body = static_cast<size_t>(oneof->field(i)->number());
    for (int c = 0; c < channels->value_count(); ++c) {
      const auto ch = static_cast<size_t>(channels->value(c)->number());
      Add(&events, {{"channel", EnumLabel(channels->value(c))}, {"type", oneof->field(i)->name()}},
          Sum(shards, [&](const Shard& s) { return s.counters().events[body][ch].load(std::memory_order_relaxed); }));
    }
  }
  out.push_back(std::move(events));

  auto decode = Family("cxpulse_decode_errors_total", "Input messages that did not decode as cx.v1.InteractionEvent.",
                       MetricType::Counter);
  Add(&decode, {}, Sum(shards, [](const Shard& s) { return s.counters().decode_errors.load(std::memory_order_relaxed); }));
  out.push_back(std::move(decode));

  auto late = Family("cxpulse_late_events_total",
                     "Events older than their partition's watermark, routed to the dead-letter topic.", MetricType::Counter);
  Add(&late, {}, Sum(shards, [](const Shard& s) { return s.counters().late.load(std::memory_order_relaxed); }));
  out.push_back(std::move(late));

  auto dead = Family("cxpulse_dead_letters_total", "Input messages copied to the dead-letter topic, by reason.",
                     MetricType::Counter);
  for (size_t r = 0; r < static_cast<size_t>(DeadLetterReason::kCount); ++r) {
    Add(&dead, {{"reason", std::string(DeadLetterReasonName(static_cast<DeadLetterReason>(r)))}},
        Sum(shards, [&](const Shard& s) { return s.counters().dead_letters[r].load(std::memory_order_relaxed); }));
  }
  out.push_back(std::move(dead));

  auto truncated = Family("cxpulse_dead_letters_truncated_total",
                          "Dead letters too large to copy whole, written as a prefix (cxpulse.truncated header).",
                          MetricType::Counter);
  Add(&truncated, {},
      Sum(shards, [](const Shard& s) { return s.counters().dead_letters_truncated.load(std::memory_order_relaxed); }));
  out.push_back(std::move(truncated));

  auto batch = Family("cxpulse_batch_duration_seconds", "Time to decode and evaluate one batch of polled messages.",
                      MetricType::Histogram);
  ClientMetric h;
  uint64_t cumulative = 0;
  for (size_t b = 0; b <= kBatchBuckets.size(); ++b) {
    cumulative += static_cast<uint64_t>(
        Sum(shards, [&](const Shard& s) { return s.counters().batch_buckets[b].load(std::memory_order_relaxed); }));
    ClientMetric::Bucket bucket;
    bucket.cumulative_count = cumulative;
    bucket.upper_bound = b < kBatchBuckets.size() ? kBatchBuckets[b] : std::numeric_limits<double>::infinity();
    h.histogram.bucket.push_back(bucket);
  }
  h.histogram.sample_count = cumulative;
  h.histogram.sample_sum = Sum(shards, [](const Shard& s) { return s.counters().batch_seconds.load(std::memory_order_relaxed); });
  batch.metric.push_back(std::move(h));
  out.push_back(std::move(batch));

  // Per rule, summed over shards (every shard runs the same rule set).
  auto findings = Family("cxpulse_findings_total", "Findings written to the findings topic, by rule, family and severity.",
                         MetricType::Counter);
  auto evaluations = Family("cxpulse_rule_evaluations_total", "Events a rule was evaluated on.", MetricType::Counter);
  auto evaluation_time = Family("cxpulse_rule_evaluation_seconds_total",
                                "Time spent evaluating a rule, estimated from one evaluation in 16, timed.",
                                MetricType::Counter);
  auto keys = Family("cxpulse_rule_keys", "Keys a rule holds state for.", MetricType::Gauge);
  auto limit = Family("cxpulse_rule_key_limit_hits_total",
                      "New keys a rule did not track because it held engine.max_keys_per_rule keys.", MetricType::Counter);
  for (const Rule& rule : pipeline_->rules().rules()) {
    const Pipeline::RuleTotals t = pipeline_->Totals(rule.name);
    Add(&findings, {{"family", FamilyLabel(rule.family)}, {"rule", rule.name}, {"severity", SeverityLabel(rule.severity)}},
        static_cast<double>(t.findings));
    Add(&evaluations, {{"rule", rule.name}}, static_cast<double>(t.evaluations));
    Add(&evaluation_time, {{"rule", rule.name}}, t.evaluation_seconds);
    Add(&keys, {{"rule", rule.name}}, static_cast<double>(t.keys));
    Add(&limit, {{"rule", rule.name}}, static_cast<double>(t.key_limit_hits));
  }
  out.push_back(std::move(findings));
  out.push_back(std::move(evaluations));
  out.push_back(std::move(evaluation_time));
  out.push_back(std::move(keys));
  out.push_back(std::move(limit));

  std::vector<const KpiAggregator*> kpis;
  for (const auto& s : shards) kpis.push_back(&s->kpi());
  AppendKpiFamilies(kpis, &out);
  return out;
}

}  // namespace cxpulse
