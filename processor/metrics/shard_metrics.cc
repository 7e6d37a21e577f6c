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

  // Durable state (daemon/changelog.h).
  auto counter = [&](const char* name, const char* help, auto get) {
    auto f = Family(name, help, MetricType::Counter);
    Add(&f, {}, Sum(shards, [&](const Shard& s) { return get(s.counters()); }));
    out.push_back(std::move(f));
  };
  auto relaxed = [](const auto& atomic) { return atomic.load(std::memory_order_relaxed); };
  counter("cxpulse_state_restore_partitions_total", "Partitions whose state was read back from the changelog.",
          [&](const ShardCounters& c) { return relaxed(c.restored_partitions); });
  counter("cxpulse_state_restore_records_total",
          "Changelog records read back, superseded values and tombstones included.",
          [&](const ShardCounters& c) { return relaxed(c.restored_records); });
  counter("cxpulse_state_restore_bytes_total", "Bytes of changelog keys and values read back.",
          [&](const ShardCounters& c) { return relaxed(c.restored_bytes); });
  counter("cxpulse_state_restore_seconds_total", "Time spent reading state back from the changelog.",
          [&](const ShardCounters& c) { return relaxed(c.restore_seconds); });
  counter("cxpulse_state_restore_skipped_records_total",
          "Input records read again after a restore whose state already held them, and not evaluated again.",
          [&](const ShardCounters& c) { return relaxed(c.restore_skipped); });
  counter("cxpulse_state_changelog_records_total", "State records (tombstones included) written to the changelog.",
          [&](const ShardCounters& c) { return relaxed(c.state_records); });
  counter("cxpulse_state_changelog_bytes_total", "Bytes of state keys and values written to the changelog.",
          [&](const ShardCounters& c) { return relaxed(c.state_bytes); });
  counter("cxpulse_transactions_total", "Kafka transactions committed (engine.delivery: exactly_once).",
          [&](const ShardCounters& c) { return relaxed(c.transactions); });
  counter("cxpulse_backpressure_pauses_total",
          "Times a shard paused its partitions because the brokers were not taking its output.",
          [&](const ShardCounters& c) { return relaxed(c.pauses); });
  auto paused = Family("cxpulse_shards_paused", "Shards whose partitions are paused for the brokers to catch up.",
                       MetricType::Gauge);
  Add(&paused, {}, Sum(shards, [](const Shard& s) { return s.counters().paused.load(std::memory_order_relaxed) ? 1 : 0; }));
  out.push_back(std::move(paused));
  auto dropped = Family("cxpulse_state_restore_dropped_total",
                        "Changelog records not taken on restore, by reason (a rule changed or removed, an unknown "
                        "format version, malformed bytes, the key limit).",
                        MetricType::Counter);
  for (size_t d = 1; d < static_cast<size_t>(RestoreDrop::kCount); ++d) {
    Add(&dropped, {{"reason", std::string(RestoreDropName(static_cast<RestoreDrop>(d)))}},
        Sum(shards, [&](const Shard& s) { return relaxed(s.counters().restore_dropped[d]); }));
  }
  out.push_back(std::move(dropped));
  auto restoring = Family("cxpulse_state_restoring_partitions",
                          "Partitions assigned whose state is still being read back (/readyz is 503 meanwhile).",
                          MetricType::Gauge);
  Add(&restoring, {}, Sum(shards, [](const Shard& s) { return s.restoring(); }));
  out.push_back(std::move(restoring));

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
  const std::shared_ptr<const RuleSet> rules = pipeline_->rules();  // held: a reload may replace them
  for (const Rule& rule : rules->rules()) {
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
