#include "kpi/kpi.h"

#include <algorithm>
#include <functional>

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

KpiAggregator::KpiAggregator(const KpiConfig& config, QueueLabels* queues, Micros idle_timeout)
    : config_(config),
      queues_(queues),
      idle_timeout_(idle_timeout),
      cells_(static_cast<size_t>(queues->capacity()) * kKpiChannels),
      ring_(LongestWindow(config) / config.bucket),
      values_(new std::atomic<double>[static_cast<size_t>(ring_) * cells_ * kKpiCount]),
      ids_(new std::atomic<int64_t>[static_cast<size_t>(ring_)]),
      used_(new std::atomic<bool>[cells_]) {
  for (size_t i = 0; i < static_cast<size_t>(ring_) * cells_ * kKpiCount; ++i) values_[i].store(0);
  for (int64_t i = 0; i < ring_; ++i) ids_[static_cast<size_t>(i)].store(kNoBucket);
  for (size_t i = 0; i < cells_; ++i) used_[i].store(false);
  queue_cache_.reserve(static_cast<size_t>(queues->capacity()));
  timers_.reserve(kTimersReserved);
}

void KpiAggregator::Record(const cx::v1::InteractionEvent& event, int32_t partition, Micros wall_now) {
  const Micros t = ToMicros(event.occurred_at());
  last_event_wall_ = wall_now;
  max_event_time_ = std::max(max_event_time_, t);
  // Deadlines this event passes fire first: an attempt after its deadline
  // must not save the promise.
  AdvanceTo(t);
  if (BucketOf(t) > now_bucket_.load(std::memory_order_relaxed) - ring_) RecordBody(event, partition, t);
  FireTimers();  // a callback requested already due
}

void KpiAggregator::DropPartition(int32_t partition) {
  absl::erase_if(pending_, [partition](const auto& entry) { return entry.second.partition == partition; });
}

void KpiAggregator::Tick(Micros wall_now) {
  if (max_event_time_ == std::numeric_limits<Micros>::min()) return;
  const Micros idle = wall_now - last_event_wall_;
  if (idle < idle_timeout_) return;
  AdvanceTo(max_event_time_ + idle);
}

void KpiAggregator::RecordBody(const cx::v1::InteractionEvent& event, int32_t partition, Micros t) {
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
      if (IsRepeat(CustomerHash(event), t)) Add(t, cell, Kpi::kRepeatContacts);
      return;
    }
    case E::kCallbackRequested: return RequestCallback(event, partition, t, Cell(event));
    case E::kCallbackAttempted:
      pending_.erase(CustomerHash(event));
      return Add(t, Cell(event), Kpi::kCallbacksMade);
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

void KpiAggregator::RequestCallback(const cx::v1::InteractionEvent& event, int32_t partition, Micros t,
                                    size_t cell) {
  const uint64_t customer = CustomerHash(event);
  const Micros due = ToMicros(event.callback_requested().due_at());
  if (due - t > kMaxCallbackHorizon) return;
  if (++next_gen_ == 0) ++next_gen_;  // 0 marks a due timer
  pending_[customer] = Promise{next_gen_, partition};
  const auto c = static_cast<uint32_t>(cell);
  const Micros deadline = due + config_.callback_grace;
  for (const Timer& timer : {Timer{due, due, customer, c, 0}, Timer{deadline + 1, deadline, customer, c, next_gen_}}) {
    timers_.push_back(timer);
    std::push_heap(timers_.begin(), timers_.end(), std::greater<>());
  }
}

void KpiAggregator::FireTimers() {
  while (!timers_.empty() && timers_.front().fire <= now_) {
    std::pop_heap(timers_.begin(), timers_.end(), std::greater<>());
    const Timer timer = timers_.back();
    timers_.pop_back();
    if (timer.gen == 0) {
      Add(timer.at, timer.cell, Kpi::kCallbacksDue);
      continue;
    }
    // Lazy deletion: an attempt erased the promise, or a newer one replaced it.
    const auto it = pending_.find(timer.customer);
    if (it == pending_.end() || it->second.gen != timer.gen) continue;
    pending_.erase(it);
    Add(timer.at, timer.cell, Kpi::kCallbacksMissed);
  }
}

bool KpiAggregator::IsRepeat(uint64_t customer, Micros t) {
  const auto [it, inserted] = last_start_.try_emplace(customer, t);
  if (inserted) return false;
  const Micros previous = it->second;
  it->second = std::max(previous, t);
  return std::max(previous, t) - std::min(previous, t) <= config_.repeat_window;
}

void KpiAggregator::AdvanceTo(Micros t) {
  if (t <= now_) return;
  now_ = t;
  const int64_t bucket = BucketOf(t);
  if (bucket != now_bucket_.load(std::memory_order_relaxed)) {
    now_bucket_.store(bucket, std::memory_order_release);
    // A full pass over the customers is costly: an eighth of the repeat
    // window apart, so the map holds at most 9/8 of the window's customers.
    if (now_ - last_sweep_ >= std::max(config_.repeat_window / 8, config_.bucket)) SweepContactStarts();
  }
  FireTimers();
}

void KpiAggregator::SweepContactStarts() {
  last_sweep_ = now_;
  for (auto it = last_start_.begin(); it != last_start_.end();) {
    if (now_ - it->second > config_.repeat_window) last_start_.erase(it++);
    else ++it;
  }
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
  if (bucket <= now_bucket_.load(std::memory_order_relaxed) - ring_) return;  // older than every window
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

void KpiAggregator::AddWindow(size_t window, std::vector<double>* totals) const {
  const int64_t now = now_bucket_.load(std::memory_order_acquire);
  if (now == kNoBucket) return;
  const int64_t oldest = now - config_.windows[window].length / config_.bucket;  // exclusive
  const size_t size = cells_ * kKpiCount;
  std::vector<double> copy(size);
  for (int64_t s = 0; s < ring_; ++s) {
    const std::atomic<int64_t>& id = ids_[static_cast<size_t>(s)];
    const int64_t bucket = id.load(std::memory_order_acquire);
    if (bucket <= oldest || bucket > now) continue;
    const std::atomic<double>* values = &values_[static_cast<size_t>(s) * size];
    for (size_t i = 0; i < size; ++i) copy[i] = values[i].load(std::memory_order_acquire);
    if (id.load(std::memory_order_relaxed) != bucket) continue;  // reused while read
    for (size_t i = 0; i < size; ++i) (*totals)[i] += copy[i];
  }
}

}  // namespace cxpulse
