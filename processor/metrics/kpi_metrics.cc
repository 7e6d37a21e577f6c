#include "metrics/kpi_metrics.h"

#include <algorithm>
#include <array>
#include <string>

#include "engine/rule_set.h"
#include "metrics/families.h"

namespace cxpulse {
namespace {

using prometheus::MetricFamily;
using prometheus::MetricType;

struct Count {
  const char* name;
  const char* help;
};
// Indexed by Kpi.
constexpr std::array<Count, kKpiCount> kCounts = {{
    {"cxpulse_kpi_offered", "Contacts queued in the window."},
    {"cxpulse_kpi_answered", "Queued contacts answered in the window."},
    {"cxpulse_kpi_answered_within_target", "Contacts answered within the queue's service-level threshold."},
    {"cxpulse_kpi_abandoned", "Queued contacts abandoned in the window."},
    {"cxpulse_kpi_wait_seconds", "Total wait of the contacts answered in the window."},
    {"cxpulse_kpi_handled", "Contacts ended in the window."},
    {"cxpulse_kpi_handle_seconds", "Total handle time of the contacts ended in the window."},
    {"cxpulse_kpi_contacts", "Contacts started in the window."},
    {"cxpulse_kpi_repeat_contacts", "Contacts started within kpi.repeat_window of the customer's previous one."},
    {"cxpulse_kpi_callbacks_due", "Requested callbacks whose due time fell in the window."},
    {"cxpulse_kpi_callbacks_made", "Callbacks attempted in the window."},
    {"cxpulse_kpi_callbacks_missed", "Callbacks not attempted by due time plus kpi.callback_grace, in the window."},
    {"cxpulse_kpi_csat_responses", "CSAT survey responses in the window."},
    {"cxpulse_kpi_csat_points", "Total score of the CSAT responses in the window."},
    {"cxpulse_kpi_nps_responses", "NPS survey responses in the window."},
    {"cxpulse_kpi_nps_promoters", "NPS responses scoring 9 or 10 in the window."},
    {"cxpulse_kpi_nps_detractors", "NPS responses scoring 0 to 6 in the window."},
}};

double V(const double* v, Kpi k) { return v[static_cast<size_t>(k)]; }

struct Derived {
  const char* name;
  const char* help;
  double (*numerator)(const double* v);
  double (*denominator)(const double* v);
};
const Derived kDerived[] = {
    {"cxpulse_kpi_service_level_ratio", "Answered within target over answered plus abandoned.",
     [](const double* v) { return V(v, Kpi::kAnsweredWithinTarget); },
     [](const double* v) { return V(v, Kpi::kAnswered) + V(v, Kpi::kAbandoned); }},
    {"cxpulse_kpi_abandon_ratio", "Abandoned over offered.", [](const double* v) { return V(v, Kpi::kAbandoned); },
     [](const double* v) { return V(v, Kpi::kOffered); }},
    {"cxpulse_kpi_speed_of_answer_seconds", "Average wait of the contacts answered.",
     [](const double* v) { return V(v, Kpi::kWaitSecondsSum); }, [](const double* v) { return V(v, Kpi::kAnswered); }},
    {"cxpulse_kpi_handle_time_seconds", "Average handle time of the contacts ended.",
     [](const double* v) { return V(v, Kpi::kHandleSecondsSum); }, [](const double* v) { return V(v, Kpi::kHandled); }},
    {"cxpulse_kpi_repeat_contact_ratio", "Repeat contacts over contacts started.",
     [](const double* v) { return V(v, Kpi::kRepeatContacts); }, [](const double* v) { return V(v, Kpi::kContacts); }},
    {"cxpulse_kpi_csat_average", "Average CSAT score.", [](const double* v) { return V(v, Kpi::kCsatScoreSum); },
     [](const double* v) { return V(v, Kpi::kCsatResponses); }},
    {"cxpulse_kpi_nps", "Net promoter score: 100 * (promoters - detractors) / responses.",
     [](const double* v) { return 100 * (V(v, Kpi::kNpsPromoters) - V(v, Kpi::kNpsDetractors)); },
     [](const double* v) { return V(v, Kpi::kNpsResponses); }},
};

std::string ChannelLabel(size_t channel) {
  return EnumLabel(cx::v1::Channel_descriptor()->FindValueByNumber(static_cast<int>(channel)));
}

void AppendServiceLevelTargets(const QueueLabels& queues, std::vector<MetricFamily>* out) {
  auto threshold = Family("cxpulse_kpi_service_level_threshold_seconds",
                          "The queue's service-level answer-time threshold (kpi config).", MetricType::Gauge);
  auto objective = Family("cxpulse_kpi_service_level_objective_ratio",
                          "The share of contacts the queue aims to answer within its threshold (kpi config).",
                          MetricType::Gauge);
  for (int q = 0; q < queues.capacity(); ++q) {
    const std::string* name = queues.name(q);
    if (name == nullptr) continue;
    const ServiceLevel& sl = queues.service_level(q);
    Add(&threshold, {{"queue", *name}}, static_cast<double>(sl.threshold) / kMicrosPerSecond);
    Add(&objective, {{"queue", *name}}, sl.objective);
  }
  out->push_back(std::move(threshold));
  out->push_back(std::move(objective));
}

}  // namespace

void AppendKpiFamilies(const std::vector<const KpiAggregator*>& kpis, std::vector<MetricFamily>* out) {
  if (kpis.empty()) return;
  const KpiAggregator& first = *kpis.front();
  const size_t cells = first.cells();
  std::vector<bool> used(cells);
  for (size_t c = 0; c < cells; ++c) {
    for (const KpiAggregator* k : kpis) used[c] = used[c] || k->used(c);
  }

  // The windows end where every partition of the process is done: the start
  // of the bucket of the lowest watermark (kpi/kpi.h), unless that trails the
  // highest by more than the buckets kept for it.
  Micros lowest = 0, highest = 0;
  bool any = false;
  for (const KpiAggregator* k : kpis) {
    Micros low, high;
    if (!k->Watermarks(&low, &high)) continue;
    lowest = any ? std::min(lowest, low) : low;
    highest = any ? std::max(highest, high) : high;
    any = true;
  }
  if (!any) {  // no partition has had an event: no window has an end yet
    AppendServiceLevelTargets(first.queues(), out);
    return;
  }
  const Micros bucket = first.config().bucket;
  const auto floor_to_bucket = [bucket](Micros t) { return (t >= 0 ? t / bucket : (t - bucket + 1) / bucket) * bucket; };
  const Micros end = std::max(floor_to_bucket(lowest), floor_to_bucket(highest) - KpiAggregator::kMaxSkew);
  auto window_end = Family("cxpulse_kpi_window_end_timestamp_seconds",
                           "Event time at which every KPI window ends (exclusive): the start of the minute of the "
                           "lowest partition watermark. Windows cover whole buckets before it.",
                           MetricType::Gauge);
  Add(&window_end, {}, static_cast<double>(end) / kMicrosPerSecond);
  out->push_back(std::move(window_end));

  std::vector<MetricFamily> counts, derived;
  for (const Count& c : kCounts) counts.push_back(Family(c.name, c.help, MetricType::Gauge));
  for (const Derived& d : kDerived) derived.push_back(Family(d.name, d.help, MetricType::Gauge));
  const std::vector<KpiWindow>& windows = first.config().windows;
  for (size_t w = 0; w < windows.size(); ++w) {
    std::vector<double> totals(cells * kKpiCount);
    for (const KpiAggregator* k : kpis) k->AddWindow(w, end, &totals);
    for (size_t c = 0; c < cells; ++c) {
      const std::string* queue = first.queues().name(static_cast<int>(c / kKpiChannels));
      if (!used[c] || queue == nullptr) continue;
      const std::vector<prometheus::ClientMetric::Label> labels = {
          {"channel", ChannelLabel(c % kKpiChannels)}, {"queue", *queue}, {"window", windows[w].label}};
      const double* v = &totals[c * kKpiCount];
      for (size_t k = 0; k < kKpiCount; ++k) Add(&counts[k], labels, v[k]);
      for (size_t d = 0; d < std::size(kDerived); ++d) {
        const double denominator = kDerived[d].denominator(v);
        if (denominator > 0) Add(&derived[d], labels, kDerived[d].numerator(v) / denominator);
      }
    }
  }
  for (auto& f : counts) out->push_back(std::move(f));
  for (auto& f : derived) out->push_back(std::move(f));
  AppendServiceLevelTargets(first.queues(), out);
}

}  // namespace cxpulse
