// The cxpulse_kpi_* families: each KPI aggregator's (one per shard) window
// totals, summed when Prometheus scrapes, the ratios derived from them, and
// each labelled queue's service-level target. Control thread only; the
// aggregators are read through their atomics.
#pragma once

#include <prometheus/metric_family.h>

#include <vector>

#include "kpi/kpi.h"

namespace cxpulse {

// `kpis` share one QueueLabels (as a process's shards do). Series are
// labelled {queue, channel, window}, only for cells that ever counted
// something; a derived ratio is left out while its denominator is 0.
void AppendKpiFamilies(const std::vector<const KpiAggregator*>& kpis, std::vector<prometheus::MetricFamily>* out);

}  // namespace cxpulse
