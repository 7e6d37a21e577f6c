// Building prometheus-cpp metric families by hand, for collectors that sum
// shard state at scrape time. Control thread only.
#pragma once

#include <prometheus/metric_family.h>

#include <string>
#include <utility>
#include <vector>

namespace cxpulse {

inline prometheus::MetricFamily Family(std::string name, std::string help, prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

inline void Add(prometheus::MetricFamily* f, std::vector<prometheus::ClientMetric::Label> labels, double value) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  if (f->type == prometheus::MetricType::Counter) m.counter.value = value;
  else m.gauge.value = value;
  f->metric.push_back(std::move(m));
}

}  // namespace cxpulse
