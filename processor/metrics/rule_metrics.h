// RuleMetrics: per-rule series (evaluations, keys held, key-limit hits) read
// from the engine's own atomics when Prometheus scrapes, so the event loop
// never touches a prometheus-cpp family. Collect() runs on the scraping
// (control) thread; the engine's thread only writes its relaxed atomics.
#pragma once

#include <prometheus/collectable.h>

#include <vector>

#include "engine/engine.h"

namespace cxpulse {

class RuleMetrics final : public prometheus::Collectable {
 public:
  // `engine` must outlive this collector's registration.
  explicit RuleMetrics(const Engine* engine) : engine_(engine) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const Engine* engine_;
};

}  // namespace cxpulse
