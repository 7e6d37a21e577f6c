#include "kpi/queue_labels.h"

namespace cxpulse {

QueueLabels::QueueLabels(const KpiConfig& config) {
  // Configured queues, "other", "unassigned" (unless configured), first-come ones.
  const size_t capacity = config.queues.size() + static_cast<size_t>(config.max_queues) + 2;
  names_.reset(new std::atomic<const std::string*>[capacity]);
  service_levels_.assign(capacity, config.service_level);
  for (size_t i = 0; i < capacity; ++i) names_[i].store(nullptr, std::memory_order_relaxed);
  names_[kOther].store(new std::string("other"), std::memory_order_relaxed);
  names_[kUnassigned].store(new std::string("unassigned"), std::memory_order_relaxed);
  size_t next = kUnassigned + 1;
  for (const auto& [name, sl] : config.queues) {
    const size_t i = name == "unassigned" ? kUnassigned : next++;
    if (i != kUnassigned) names_[i].store(new std::string(name), std::memory_order_relaxed);
    service_levels_[i] = sl;
  }
  // Constructed before any shard thread starts: thread creation publishes it.
}

QueueLabels::~QueueLabels() {
  for (int i = 0; i < capacity(); ++i) delete name(i);
}

int QueueLabels::Resolve(std::string_view queue) {
  if (queue.empty()) return kUnassigned;
  std::unique_ptr<std::string> mine;
  for (int i = 0; i < capacity(); ++i) {
    const std::string* claimed = name(i);
    if (claimed == nullptr) {
      // First free slot: claim it for `queue`. If another shard claims it
      // first, its name is read below and the scan goes on.
      if (mine == nullptr) mine = std::make_unique<std::string>(queue);
      if (names_[static_cast<size_t>(i)].compare_exchange_strong(claimed, mine.get(), std::memory_order_acq_rel,
                                                                  std::memory_order_acquire)) {
        mine.release();
        return i;
      }
    }
    if (*claimed == queue) return i;
  }
  return kOther;
}

}  // namespace cxpulse
