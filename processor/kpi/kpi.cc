#include "kpi/kpi.h"

#include <algorithm>
#include <functional>

#include "absl/container/flat_hash_map.h"

#include "absl/hash/hash.h"

namespace cxpulse {
namespace {

constexpr size_t kTimersReserved = 4096;
// A callback due further ahead than this is not tracked: its timers would sit
// in the heap until then (a mistyped year keeps them forever).
constexpr Micros kMaxCallbackHorizon = 30LL * 24 * 3600 * kMicrosPerSecond;
// Queue names folded into "other" are cached up to this many, so a stream of
// ever-new names neither grows the cache without bound nor searches the
// shared table on every event of the names seen so far.
constexpr size_t kMaxCachedOther = 1024;

size_t Index(Kpi k) { return static_cast<size_t>(k); }

// Single writer: a load and a store, no read-modify-write. Release, so a
// scrape that reads the value also sees its slot's reuse (Slot, below).
void Bump(std::atomic<double>& a, double v) {
  a.store(a.load(std::memory_order_relaxed) + v, std::memory_order_release);
}

uint64_t CustomerHash(const cx::v1::InteractionEvent& event) {
  return absl::Hash<std::string>()(event.customer_id());
}

Micros LongestWindow(const KpiConfig& config) {
  Micros longest = 0;
  for (const KpiWindow& w : config.windows) longest = std::max(longest, w.length);
  return longest;
}

}  // namespace

// One partition's clock and the per-customer state its events keep.
struct KpiAggregator::Partition {
  Partition(Micros lateness, Micros idle) : watermark(lateness, idle) { timers.reserve(kTimersReserved); }
  Watermark watermark;
  Micros last_sweep = Watermark::kNone;
  absl::flat_hash_map<uint64_t, Micros> last_start;  // customer hash -> newest contact_started
  absl::flat_hash_map<uint64_t, uint32_t> current;   // customer hash -> current promise
  std::vector<Timer> timers;                         // min-heap by time
};

KpiAggregator::KpiAggregator(const KpiConfig& config, QueueLabels* queues, Micros allowed_lateness,
                             Micros idle_timeout)
    : config_(config),
      queues_(queues),
      allowed_lateness_(allowed_lateness),
      idle_timeout_(idle_timeout),
      cells_(static_cast<size_t>(queues->capacity()) * kKpiChannels),
      ring_((LongestWindow(config) + kMaxSkew + allowed_lateness) / config.bucket + 2),
      values_(new std::atomic<double>[static_cast<size_t>(ring_) * cells_ * kKpiCount]),
      ids_(new std::atomic<int64_t>[static_cast<size_t>(ring_)]),
      used_(new std::atomic<bool>[cells_]),
      lowest_watermark_(Watermark::kNone),
      highest_watermark_(Watermark::kNone) {
  for (size_t i = 0; i < static_cast<size_t>(ring_) * cells_ * kKpiCount; ++i) values_[i].store(0);
  for (int64_t i = 0; i < ring_; ++i) ids_[static_cast<size_t>(i)].store(kNoBucket);
  for (size_t i = 0; i < cells_; ++i) used_[i].store(false);
  queue_cache_.reserve(static_cast<size_t>(queues->capacity()));
}

KpiAggregator::~KpiAggregator() = default;

KpiAggregator::Partition& KpiAggregator::PartitionFor(int32_t partition) {
  const auto i = static_cast<size_t>(partition);
  if (i >= partitions_.size()) partitions_.resize(i + 1);
  if (!partitions_[i]) partitions_[i] = std::make_unique<Partition>(allowed_lateness_, idle_timeout_);
  return *partitions_[i];
}

void KpiAggregator::Record(const cx::v1::InteractionEvent& event, int32_t partition, Micros wall_now) {
  Partition& p = PartitionFor(partition);
  const Micros t = ToMicros(event.occurred_at());
  p.watermark.Observe(t, wall_now);
  newest_bucket_ = std::max(newest_bucket_, BucketOf(t));
  // Always: a partition far behind the others still keeps its customers'
  // promises and contacts; only counts older than every window kept are lost.
  RecordBody(event, p, t);
}

void KpiAggregator::SetAtEnd(int32_t partition, bool at_end, Micros wall_now) {
  PartitionFor(partition).watermark.SetAtEnd(at_end, wall_now);
}

void KpiAggregator::HeardUntil(int32_t partition, Micros heard_at, Micros wall_now) {
  PartitionFor(partition).watermark.HeardUntil(heard_at, wall_now);
}

void KpiAggregator::DropPartition(int32_t partition) {
  const auto i = static_cast<size_t>(partition);
  if (i >= partitions_.size() || !partitions_[i]) return;
  for (const Timer& timer : partitions_[i]->timers) promises_.erase(timer.promise);
  partitions_[i].reset();
}

void KpiAggregator::Tick(Micros wall_now) {
  Micros lowest = Watermark::kNone, highest = Watermark::kNone;
  for (auto& p : partitions_) {
    if (!p || p->watermark.max_event_time() == Watermark::kNone) continue;
    const Micros wm = p->watermark.Current(wall_now);
    FireTimers(*p, wm);
    // A full pass over the customers is costly: an eighth of the repeat
    // window apart, so the map holds at most 9/8 of the window's customers.
    if (p->last_sweep == Watermark::kNone) p->last_sweep = wm;
    if (wm - p->last_sweep >= std::max(config_.repeat_window / 8, config_.bucket)) SweepContactStarts(*p, wm);
    lowest = lowest == Watermark::kNone ? wm : std::min(lowest, wm);
    highest = highest == Watermark::kNone ? wm : std::max(highest, wm);
  }
  // Published after the timers they pass are counted. Release: a reader
  // that loads these sees every count made before them.
  highest_watermark_.store(highest, std::memory_order_release);
  lowest_watermark_.store(lowest, std::memory_order_release);
}

bool KpiAggregator::Watermarks(Micros* lowest, Micros* highest) const {
  const Micros low = lowest_watermark_.load(std::memory_order_acquire);
  const Micros high = highest_watermark_.load(std::memory_order_acquire);
  if (low == Watermark::kNone || high == Watermark::kNone) return false;
  *lowest = low;
  *highest = std::max(low, high);
  return true;
}

void KpiAggregator::RecordBody(const cx::v1::InteractionEvent& event, Partition& p, Micros t) {
  using E = cx::v1::InteractionEvent;
  switch (event.body_case()) {
    case E::kQueued: return Add(t, Cell(event), Kpi::kOffered);
    case E::kAnswered: {
      const size_t cell = Cell(event);
      const Micros wait = ToMicros(event.answered().wait());
      Add(t, cell, Kpi::kAnswered);
      Add(t, cell, Kpi::kWaitSecondsSum, static_cast<double>(wait) / kMicrosPerSecond);
      const auto queue = static_cast<int>(cell / kKpiChannels);
      if (wait <= queues_->service_level(queue).threshold) Add(t, cell, Kpi::kAnsweredWithinTarget);
      return;
    }
    case E::kAbandoned: return Add(t, Cell(event), Kpi::kAbandoned);
    case E::kEnded: {
      const size_t cell = Cell(event);
      Add(t, cell, Kpi::kHandled);
      return Add(t, cell, Kpi::kHandleSecondsSum,
                 static_cast<double>(ToMicros(event.ended().handle_time())) / kMicrosPerSecond);
    }
    case E::kContactStarted: {
      const size_t cell = Cell(event);
      Add(t, cell, Kpi::kContacts);
      if (IsRepeat(p, CustomerHash(event), t)) Add(t, cell, Kpi::kRepeatContacts);
      return;
    }
    case E::kCallbackRequested: return RequestCallback(event, p, t, Cell(event));
    case E::kCallbackAttempted: return AttemptCallback(event, p, t);
    case E::kSurvey: {
      const int score = event.survey().score();
      if (event.survey().metric() == cx::v1::SURVEY_METRIC_CSAT) {
        const size_t cell = Cell(event);
        Add(t, cell, Kpi::kCsatResponses);
        Add(t, cell, Kpi::kCsatScoreSum, score);
      } else if (event.survey().metric() == cx::v1::SURVEY_METRIC_NPS) {
        const size_t cell = Cell(event);
        Add(t, cell, Kpi::kNpsResponses);
        if (score >= 9) Add(t, cell, Kpi::kNpsPromoters);
        if (score <= 6) Add(t, cell, Kpi::kNpsDetractors);
      }
      return;
    }
    default: return;  // no KPI counts it
  }
}

void KpiAggregator::RequestCallback(const cx::v1::InteractionEvent& event, Partition& p, Micros t, size_t cell) {
  const Micros due = ToMicros(event.callback_requested().due_at());
  // Due before it was asked for, or so far ahead that its timers would sit
  // in the heap until then (a mistyped year): not a promise.
  if (due < t || due - t > kMaxCallbackHorizon) return;
  const uint64_t customer = CustomerHash(event);
  if (++next_promise_ == 0) ++next_promise_;
  const uint32_t id = next_promise_;
  auto [current, fresh] = p.current.try_emplace(customer, id);
  if (!fresh) {
    // Past its deadline the old promise is broken, whatever comes now; before
    // it, this request reschedules it.
    const auto old = promises_.find(current->second);
    if (old != promises_.end() && t <= old->second.due + config_.callback_grace) {
      old->second.rescheduled = true;
      old->second.rescheduled_before_due = t < old->second.due;
    }
    current->second = id;
  }
  promises_[id] = Promise{.requested = t, .due = due, .customer = customer, .cell = static_cast<uint32_t>(cell)};
  for (const Timer& timer : {Timer{due, id, false}, Timer{due + config_.callback_grace, id, true}}) {
    p.timers.push_back(timer);
    std::push_heap(p.timers.begin(), p.timers.end(), std::greater<>());
  }
}

void KpiAggregator::AttemptCallback(const cx::v1::InteractionEvent& event, Partition& p, Micros t) {
  Add(t, Cell(event), Kpi::kCallbacksMade);
  const auto current = p.current.find(CustomerHash(event));
  if (current == p.current.end()) return;
  const auto promise = promises_.find(current->second);
  if (promise == promises_.end()) return;
  Promise& kept = promise->second;
  if (t < kept.requested || t > kept.due + config_.callback_grace) return;  // not in time for it
  kept.kept = true;
  p.current.erase(current);
}

void KpiAggregator::FireTimers(Partition& p, Micros watermark) {
  // Strictly past: an attempt stamped exactly at the deadline is in time,
  // and may still arrive while the watermark is there.
  while (!p.timers.empty() && p.timers.front().at < watermark) {
    std::pop_heap(p.timers.begin(), p.timers.end(), std::greater<>());
    const Timer timer = p.timers.back();
    p.timers.pop_back();
    const auto it = promises_.find(timer.promise);
    if (it == promises_.end()) continue;
    const Promise& promise = it->second;
    if (!timer.missed) {
      if (!promise.rescheduled_before_due) Add(timer.at, promise.cell, Kpi::kCallbacksDue);
      continue;
    }
    if (!promise.kept && !promise.rescheduled) Add(timer.at, promise.cell, Kpi::kCallbacksMissed);
    if (const auto c = p.current.find(promise.customer); c != p.current.end() && c->second == timer.promise) {
      p.current.erase(c);
    }
    promises_.erase(it);
  }
}

bool KpiAggregator::IsRepeat(Partition& p, uint64_t customer, Micros t) {
  const auto [it, inserted] = p.last_start.try_emplace(customer, t);
  if (inserted) return false;
  const Micros previous = it->second;
  it->second = std::max(previous, t);
  return std::max(previous, t) - std::min(previous, t) <= config_.repeat_window;
}

void KpiAggregator::SweepContactStarts(Partition& p, Micros watermark) {
  // Every later event of the partition is at or after the watermark, so a
  // start older than it by more than the repeat window can make no repeat.
  p.last_sweep = watermark;
  absl::erase_if(p.last_start, [&](const auto& entry) { return watermark - entry.second > config_.repeat_window; });
}

size_t KpiAggregator::Cell(const cx::v1::InteractionEvent& event) {
  const std::string& queue = event.queue();
  int label = 0;
  if (const auto it = queue_cache_.find(queue); it != queue_cache_.end()) {
    label = it->second;
  } else {
    label = queues_->Resolve(queue);
    if (label != QueueLabels::kOther || other_cached_ < kMaxCachedOther) {
      queue_cache_.emplace(queue, label);
      other_cached_ += label == QueueLabels::kOther;
    }
  }
  const auto channel = static_cast<size_t>(event.channel());
  const size_t cell = static_cast<size_t>(label) * kKpiChannels + (channel < kKpiChannels ? channel : 0);
  if (!used_[cell].load(std::memory_order_relaxed)) used_[cell].store(true, std::memory_order_relaxed);
  return cell;
}

int64_t KpiAggregator::BucketOf(Micros t) const {
  const int64_t b = t / config_.bucket;
  return b * config_.bucket > t ? b - 1 : b;  // floor, for times before 1970
}

void KpiAggregator::Add(Micros at, size_t cell, Kpi kpi, double value) {
  const int64_t bucket = BucketOf(at);
  if (bucket <= newest_bucket_ - ring_) return;  // older than every window
  Bump(Slot(bucket)[cell * kKpiCount + Index(kpi)], value);
}

// A slot is reused for a newer bucket like a seqlock: the writer marks it
// invalid, zeroes it, then publishes the new bucket id (release). A reader
// reads the id (acquire), the values (acquire), and the id again. Every value
// is stored with release after the invalid mark, so if the reader saw any
// value written after the mark, the mark happens-before its second read of
// the id, which therefore sees the mark or a later id: a mixed slot is
// skipped, never summed. (Release stores and acquire loads are plain moves
// on x86; standalone fences would do the same but GCC's TSan cannot check
// them.) Increments within a bucket need no such care: each value is its own
// atomic, and a scrape only sees some of a just-recorded event's counts at
// worst.
std::atomic<double>* KpiAggregator::Slot(int64_t bucket) {
  const auto slot = static_cast<size_t>(((bucket % ring_) + ring_) % ring_);
  std::atomic<double>* values = &values_[slot * cells_ * kKpiCount];
  std::atomic<int64_t>& id = ids_[slot];
  if (id.load(std::memory_order_relaxed) != bucket) {
    id.store(kNoBucket, std::memory_order_relaxed);
    for (size_t i = 0; i < cells_ * kKpiCount; ++i) values[i].store(0, std::memory_order_release);
    id.store(bucket, std::memory_order_release);
  }
  return values;
}

void KpiAggregator::AddWindow(size_t window, Micros end, std::vector<double>* totals) const {
  const int64_t last = BucketOf(end) - 1;                                   // inclusive
  const int64_t first = BucketOf(end - config_.windows[window].length);     // inclusive
  const size_t size = cells_ * kKpiCount;
  std::vector<double> copy(size);
  for (int64_t s = 0; s < ring_; ++s) {
    const std::atomic<int64_t>& id = ids_[static_cast<size_t>(s)];
    const int64_t bucket = id.load(std::memory_order_acquire);
    if (bucket < first || bucket > last) continue;
    const std::atomic<double>* values = &values_[static_cast<size_t>(s) * size];
    for (size_t i = 0; i < size; ++i) copy[i] = values[i].load(std::memory_order_acquire);
    if (id.load(std::memory_order_relaxed) != bucket) continue;  // reused while read
    for (size_t i = 0; i < size; ++i) (*totals)[i] += copy[i];
  }
}

}  // namespace cxpulse
