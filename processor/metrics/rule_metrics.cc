#include "metrics/rule_metrics.h"

#include <prometheus/metric_family.h>

namespace cxpulse {
namespace {

prometheus::MetricFamily Family(const char* name, const char* help, prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

void AddSample(prometheus::MetricFamily* f, const std::string& rule, double value) {
  prometheus::ClientMetric m;
  m.label.push_back({"rule", rule});
  if (f->type == prometheus::MetricType::Counter) m.counter.value = value;
  else m.gauge.value = value;
  f->metric.push_back(std::move(m));
}

}  // namespace

std::vector<prometheus::MetricFamily> RuleMetrics::Collect() const {
  auto evaluations = Family("cxpulse_rule_evaluations_total", "Events a rule was evaluated on.",
                            prometheus::MetricType::Counter);
  auto keys = Family("cxpulse_rule_keys", "Keys a rule holds state for.", prometheus::MetricType::Gauge);
  auto limit = Family("cxpulse_rule_key_limit_hits_total",
                      "New keys a rule did not track because it held engine.max_keys_per_rule keys.",
                      prometheus::MetricType::Counter);
  const auto& rules = engine_->rules().rules();
  for (size_t i = 0; i < rules.size(); ++i) {
    const RuleStats& s = engine_->Stats(static_cast<int>(i));
    AddSample(&evaluations, rules[i].name, static_cast<double>(s.evaluations.load(std::memory_order_relaxed)));
    AddSample(&keys, rules[i].name, static_cast<double>(s.keys.load(std::memory_order_relaxed)));
    AddSample(&limit, rules[i].name, static_cast<double>(s.key_limit_hits.load(std::memory_order_relaxed)));
  }
  return {std::move(evaluations), std::move(keys), std::move(limit)};
}

}  // namespace cxpulse
