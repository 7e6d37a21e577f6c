#include "kpi/kpi.h"

#include <algorithm>
#include <functional>

#include "absl/container/flat_hash_map.h"
#include "common/hash.h"
#include "kpi/kpi_records.h"

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

static_assert(kKpiRecordCounts == kKpiCount);

size_t Index(Kpi k) { return static_cast<size_t>(k); }

// Single writer: a load and a store, no read-modify-write. Release, so a
// scrape that reads the value also sees its slot's reuse (Slot, below).
void Bump(std::atomic<double>& a, double v) {
  a.store(a.load(std::memory_order_relaxed) + v, std::memory_order_release);
}

// Stable, not absl::Hash (seeded per process): checkpointed customers are
// found by it again after a restart.
uint64_t CustomerHash(const cx::v1::InteractionEvent& event) {
  return StableHash().Add(event.customer_id()).value();
}

// Adds `id` to a dirty list. Duplicates are cheaper than a set lookup per
// event; they are sorted out before the list would grow, and it grows (to
// the interval's peak, then stays) only if that leaves it more than half full.
template <typename Id>
void MarkDirty(std::vector<Id>& dirty, Id id) {
  if (dirty.size() == dirty.capacity() && !dirty.empty()) {
    std::sort(dirty.begin(), dirty.end());
    dirty.erase(std::unique(dirty.begin(), dirty.end()), dirty.end());
    if (dirty.size() > dirty.capacity() / 2) dirty.reserve(dirty.capacity() * 2);
  }
  dirty.push_back(id);
}

template <typename Id>
void Deduplicate(std::vector<Id>& dirty) {
  std::sort(dirty.begin(), dirty.end());
  dirty.erase(std::unique(dirty.begin(), dirty.end()), dirty.end());
}

// A time an event could carry (protobuf's years 1 to 9999), far from the
// Micros limits, so no clock arithmetic on a restored one overflows.
bool SaneTime(Micros t) { return t > Watermark::kNone && t < -Watermark::kNone; }

// The Kpis whose values are microseconds in memory and seconds in a window.
bool InMicros(size_t k) { return k == Index(Kpi::kWaitSecondsSum) || k == Index(Kpi::kHandleSecondsSum); }

Micros LongestWindow(const KpiConfig& config) {
  Micros longest = 0;
  for (const KpiWindow& w : config.windows) longest = std::max(longest, w.length);
  return longest;
}

}  // namespace

// One partition's clock, the per-customer state its events keep, and with
// tracking its share of the buckets and what changed since its checkpoint.
struct KpiAggregator::Partition {
  Partition(Micros lateness, Micros idle) : watermark(lateness, idle) { timers.reserve(kTimersReserved); }
  bool tracked() const { return counts != nullptr; }
  Watermark watermark;
  Micros ticked = Watermark::kNone;  // the watermark of the last Tick: its timers have fired
  Micros last_sweep = Watermark::kNone;
  absl::flat_hash_map<uint64_t, Micros> last_start;  // customer hash -> newest contact_started
  absl::flat_hash_map<uint64_t, uint32_t> current;   // customer hash -> current promise
  // Promises with a timer to come, by id. Ids are the partition's own, so
  // they name the same promise in its changelog on any later owner.
  absl::flat_hash_map<uint32_t, Promise> promises;
  uint32_t last_promise = 0;
  std::vector<Timer> timers;  // min-heap by time

  std::unique_ptr<PartitionCounts> counts;
  std::vector<uint64_t> dirty_customers;
  std::vector<uint32_t> dirty_promises;
  KpiClockRecord written_clock{Watermark::kNone, Watermark::kNone};
};

KpiAggregator::KpiAggregator(const KpiConfig& config, QueueLabels* queues, Micros allowed_lateness,
                             Micros idle_timeout, bool track_changes)
    : config_(config),
      queues_(queues),
      allowed_lateness_(allowed_lateness),
      idle_timeout_(idle_timeout),
      track_changes_(track_changes),
      cells_(static_cast<size_t>(queues->capacity()) * kKpiChannels),
      ring_((LongestWindow(config) + kMaxSkew + allowed_lateness) / config.bucket + 2),
      values_(new std::atomic<double>[static_cast<size_t>(ring_) * cells_ * kKpiCount]),
      ids_(new std::atomic<int64_t>[static_cast<size_t>(ring_)]),
      used_(new std::atomic<bool>[cells_]),
      lowest_watermark_(Watermark::kNone),
      highest_watermark_(Watermark::kNone) {
  static_assert(PartitionCounts::kNoBucket == kNoBucket);
  for (size_t i = 0; i < static_cast<size_t>(ring_) * cells_ * kKpiCount; ++i) values_[i].store(0);
  for (int64_t i = 0; i < ring_; ++i) ids_[static_cast<size_t>(i)].store(kNoBucket);
  for (size_t i = 0; i < cells_; ++i) used_[i].store(false);
  queue_cache_.reserve(static_cast<size_t>(queues->capacity()));
}

KpiAggregator::~KpiAggregator() = default;

KpiAggregator::Partition& KpiAggregator::PartitionFor(int32_t partition) {
  const auto i = static_cast<size_t>(partition);
  if (i >= partitions_.size()) partitions_.resize(i + 1);
  if (!partitions_[i]) {
    partitions_[i] = std::make_unique<Partition>(allowed_lateness_, idle_timeout_);
    if (track_changes_) partitions_[i]->counts = std::make_unique<PartitionCounts>(ring_, cells_, kKpiCount);
  }
  return *partitions_[i];
}

KpiAggregator::Partition* KpiAggregator::Held(int32_t partition) {
  const auto i = static_cast<size_t>(partition);
  return i < partitions_.size() ? partitions_[i].get() : nullptr;
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
  Partition* p = Held(partition);
  if (p == nullptr) return;
  if (p->tracked()) RemoveShare(*p);
  partitions_[static_cast<size_t>(partition)].reset();
}

// Subtracts the partition's share from every bucket of the shard still
// holding it. Exact: every value is an integer (see Kpi).
void KpiAggregator::RemoveShare(Partition& p) {
  for (int64_t s = 0; s < ring_; ++s) {
    const PartitionCounts::Bucket& b = p.counts->bucket(s);
    std::atomic<double>* slot = HeldSlot(b.id);
    if (slot == nullptr) continue;
    for (size_t local = 0; local < p.counts->local_cells(); ++local) {
      const double* share = &b.values[local * kKpiCount];
      std::atomic<double>* sum = &slot[p.counts->cell(local) * kKpiCount];
      for (size_t k = 0; k < kKpiCount; ++k) {
        if (share[k] != 0) Bump(sum[k], -share[k]);
      }
    }
  }
}

void KpiAggregator::Checkpoint(int32_t partition, StateWriter& out) {
  Partition* p = Held(partition);
  if (p == nullptr || !p->tracked()) return;
  CheckpointClock(*p, out);
  CheckpointBuckets(*p, out);
  CheckpointCustomers(*p, out);
  CheckpointPromises(*p, out);
}

// The clock as of the last Tick, so the restored one has fired the same
// timers; events recorded since are in max_event_time.
void KpiAggregator::CheckpointClock(Partition& p, StateWriter& out) {
  const KpiClockRecord clock{.max_event_time = p.watermark.max_event_time(), .watermark = p.ticked};
  if (clock.max_event_time == Watermark::kNone) return;  // no event yet
  if (clock.max_event_time == p.written_clock.max_event_time && clock.watermark == p.written_clock.watermark) return;
  p.written_clock = clock;
  KpiRecordKey(KpiRecordKind::kClock, 0, &key_);
  EncodeKpiClock(clock, &value_);
  out.Put(key_, value_);
}

void KpiAggregator::CheckpointBuckets(Partition& p, StateWriter& out) {
  for (const int64_t gone : p.counts->gone()) {
    KpiRecordKey(KpiRecordKind::kBucket, static_cast<uint64_t>(gone), &key_);
    out.Erase(key_);
  }
  p.counts->gone().clear();
  for (int64_t s = 0; s < ring_; ++s) {
    PartitionCounts::Bucket& b = p.counts->bucket(s);
    if (b.id == PartitionCounts::kNoBucket || (!b.dirty && HeldSlot(b.id) != nullptr)) continue;
    KpiRecordKey(KpiRecordKind::kBucket, static_cast<uint64_t>(b.id), &key_);
    size_t cells = 0;
    for (size_t local = 0; local < p.counts->local_cells(); ++local) {
      const double* v = &b.values[local * kKpiCount];
      cells += std::any_of(v, v + kKpiCount, [](double x) { return x != 0; });
    }
    if (HeldSlot(b.id) == nullptr || cells == 0) {  // left the shard's ring, or holds nothing
      if (b.written) out.Erase(key_);
      b.id = PartitionCounts::kNoBucket;
      b.dirty = b.written = false;
      continue;
    }
    BeginKpiBucket(cells, &value_);
    for (size_t local = 0; local < p.counts->local_cells(); ++local) {
      const double* v = &b.values[local * kKpiCount];
      if (std::none_of(v, v + kKpiCount, [](double x) { return x != 0; })) continue;
      const size_t cell = p.counts->cell(local);
      KpiCellCounts counts{.queue = *queues_->name(static_cast<int>(cell / kKpiChannels)),
                           .channel = static_cast<uint8_t>(cell % kKpiChannels)};
      for (size_t k = 0; k < kKpiCount; ++k) counts.counts[k] = static_cast<int64_t>(v[k]);
      AppendKpiCell(counts, &value_);
    }
    out.Put(key_, value_);
    b.dirty = false;
    b.written = true;
  }
}

void KpiAggregator::CheckpointCustomers(Partition& p, StateWriter& out) {
  Deduplicate(p.dirty_customers);
  for (const uint64_t customer : p.dirty_customers) {
    KpiRecordKey(KpiRecordKind::kCustomer, customer, &key_);
    KpiCustomerRecord r;
    if (const auto it = p.last_start.find(customer); it != p.last_start.end()) {
      r.has_last_start = true;
      r.last_start = it->second;
    }
    if (const auto it = p.current.find(customer); it != p.current.end()) {
      r.has_current = true;
      r.current = it->second;
    }
    if (!r.has_last_start && !r.has_current) {
      out.Erase(key_);
      continue;
    }
    EncodeKpiCustomer(r, &value_);
    out.Put(key_, value_);
  }
  p.dirty_customers.clear();
}

void KpiAggregator::CheckpointPromises(Partition& p, StateWriter& out) {
  Deduplicate(p.dirty_promises);
  for (const uint32_t id : p.dirty_promises) {
    KpiRecordKey(KpiRecordKind::kPromise, id, &key_);
    const auto it = p.promises.find(id);
    if (it == p.promises.end()) {
      out.Erase(key_);
      continue;
    }
    const Promise& promise = it->second;
    EncodeKpiPromise(KpiPromiseRecord{.requested = promise.requested,
                                      .due = promise.due,
                                      .customer = promise.customer,
                                      .queue = *queues_->name(static_cast<int>(promise.cell / kKpiChannels)),
                                      .channel = static_cast<uint8_t>(promise.cell % kKpiChannels),
                                      .kept = promise.kept,
                                      .rescheduled = promise.rescheduled,
                                      .rescheduled_before_due = promise.rescheduled_before_due,
                                      .due_fired = promise.due_fired},
                     &value_);
    out.Put(key_, value_);
  }
  p.dirty_promises.clear();
}

RestoreDrop KpiAggregator::Restore(int32_t partition, std::string_view key, std::string_view value, Micros wall_now) {
  KpiRecordId id;
  if (const RestoreDrop d = ParseKpiRecordKey(key, &id); d != RestoreDrop::kNone) return d;
  Partition& p = PartitionFor(partition);
  switch (id.kind) {
    case KpiRecordKind::kClock: return RestoreClock(p, value, wall_now);
    case KpiRecordKind::kBucket: return RestoreBucket(p, static_cast<int64_t>(id.id), value);
    case KpiRecordKind::kCustomer: return RestoreCustomer(p, id.id, value);
    case KpiRecordKind::kPromise: return RestorePromise(p, static_cast<uint32_t>(id.id), value);
  }
  return RestoreDrop::kMalformed;
}

RestoreDrop KpiAggregator::RestoreClock(Partition& p, std::string_view value, Micros wall_now) {
  KpiClockRecord clock;
  if (const RestoreDrop d = DecodeKpiClock(value, &clock); d != RestoreDrop::kNone) return d;
  if (!SaneTime(clock.max_event_time) || (clock.watermark != Watermark::kNone && !SaneTime(clock.watermark))) {
    return RestoreDrop::kMalformed;
  }
  // Observe restarts the idle timeout at wall_now; the floor keeps the
  // watermark where it was, never behind.
  p.watermark.Observe(clock.max_event_time, wall_now);
  if (clock.watermark != Watermark::kNone) p.watermark.AdvanceTo(clock.watermark, wall_now);
  p.ticked = clock.watermark;
  p.written_clock = clock;
  newest_bucket_ = std::max(newest_bucket_, BucketOf(clock.max_event_time));
  return RestoreDrop::kNone;
}

RestoreDrop KpiAggregator::RestoreBucket(Partition& p, int64_t bucket, std::string_view value) {
  std::vector<KpiCellCounts> cells;
  if (const RestoreDrop d = DecodeKpiBucket(value, &cells); d != RestoreDrop::kNone) return d;
  for (const KpiCellCounts& cell : cells) {
    if (cell.channel >= kKpiChannels) return RestoreDrop::kMalformed;
  }
  // Out of the ring, or its slot holds a newer bucket already: in no window.
  const int64_t held = ids_[static_cast<size_t>(((bucket % ring_) + ring_) % ring_)].load(std::memory_order_relaxed);
  if (!InRing(bucket) || held > bucket) return RestoreDrop::kNone;
  std::atomic<double>* slot = Slot(bucket);
  for (const KpiCellCounts& cell : cells) {
    const size_t c = CellOf(cell.queue, cell.channel);
    double* share = p.tracked() ? p.counts->Values(bucket, c) : nullptr;
    for (size_t k = 0; k < kKpiCount; ++k) {
      const auto v = static_cast<double>(cell.counts[k]);
      if (v == 0) continue;
      Bump(slot[c * kKpiCount + k], v);
      if (share != nullptr) share[k] += v;
    }
  }
  if (p.tracked()) {  // as it is in the changelog
    PartitionCounts::Bucket& b = p.counts->bucket(static_cast<int64_t>(p.counts->SlotOf(bucket)));
    b.written = true;
    b.dirty = false;
  }
  return RestoreDrop::kNone;
}

RestoreDrop KpiAggregator::RestoreCustomer(Partition& p, uint64_t customer, std::string_view value) {
  KpiCustomerRecord r;
  if (const RestoreDrop d = DecodeKpiCustomer(value, &r); d != RestoreDrop::kNone) return d;
  if (r.has_last_start && !SaneTime(r.last_start)) return RestoreDrop::kMalformed;
  if (r.has_last_start) p.last_start[customer] = r.last_start;
  if (r.has_current) p.current[customer] = r.current;
  return RestoreDrop::kNone;
}

RestoreDrop KpiAggregator::RestorePromise(Partition& p, uint32_t id, std::string_view value) {
  KpiPromiseRecord r;
  if (const RestoreDrop d = DecodeKpiPromise(value, &r); d != RestoreDrop::kNone) return d;
  if (id == 0 || r.channel >= kKpiChannels || !SaneTime(r.requested) || !SaneTime(r.due) || r.due < r.requested ||
      r.due - r.requested > kMaxCallbackHorizon) {
    return RestoreDrop::kMalformed;
  }
  const Promise& promise = p.promises[id] = Promise{.requested = r.requested,
                                                    .due = r.due,
                                                    .customer = r.customer,
                                                    .cell = static_cast<uint32_t>(CellOf(r.queue, r.channel)),
                                                    .kept = r.kept,
                                                    .rescheduled = r.rescheduled,
                                                    .rescheduled_before_due = r.rescheduled_before_due,
                                                    .due_fired = r.due_fired};
  AddTimers(p, id, promise);
  // New ids continue after every restored one.
  p.last_promise = std::max(p.last_promise, id);
  return RestoreDrop::kNone;
}

void KpiAggregator::Tick(Micros wall_now) {
  Micros lowest = Watermark::kNone, highest = Watermark::kNone;
  for (auto& p : partitions_) {
    if (!p || p->watermark.max_event_time() == Watermark::kNone) continue;
    const Micros wm = p->watermark.Current(wall_now);
    FireTimers(*p, wm);
    p->ticked = wm;
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
    case E::kQueued: return Add(p, t, Cell(event), Kpi::kOffered);
    case E::kAnswered: {
      const size_t cell = Cell(event);
      const Micros wait = ToMicros(event.answered().wait());
      Add(p, t, cell, Kpi::kAnswered);
      Add(p, t, cell, Kpi::kWaitSecondsSum, static_cast<double>(wait));
      const auto queue = static_cast<int>(cell / kKpiChannels);
      if (wait <= queues_->service_level(queue).threshold) Add(p, t, cell, Kpi::kAnsweredWithinTarget);
      return;
    }
    case E::kAbandoned: return Add(p, t, Cell(event), Kpi::kAbandoned);
    case E::kEnded: {
      const size_t cell = Cell(event);
      Add(p, t, cell, Kpi::kHandled);
      return Add(p, t, cell, Kpi::kHandleSecondsSum, static_cast<double>(ToMicros(event.ended().handle_time())));
    }
    case E::kContactStarted: {
      const size_t cell = Cell(event);
      Add(p, t, cell, Kpi::kContacts);
      if (IsRepeat(p, CustomerHash(event), t)) Add(p, t, cell, Kpi::kRepeatContacts);
      return;
    }
    case E::kCallbackRequested: return RequestCallback(event, p, t, Cell(event));
    case E::kCallbackAttempted: return AttemptCallback(event, p, t);
    case E::kSurvey: {
      const int score = event.survey().score();
      if (event.survey().metric() == cx::v1::SURVEY_METRIC_CSAT) {
        const size_t cell = Cell(event);
        Add(p, t, cell, Kpi::kCsatResponses);
        Add(p, t, cell, Kpi::kCsatScoreSum, score);
      } else if (event.survey().metric() == cx::v1::SURVEY_METRIC_NPS) {
        const size_t cell = Cell(event);
        Add(p, t, cell, Kpi::kNpsResponses);
        if (score >= 9) Add(p, t, cell, Kpi::kNpsPromoters);
        if (score <= 6) Add(p, t, cell, Kpi::kNpsDetractors);
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
  if (++p.last_promise == 0) ++p.last_promise;
  const uint32_t id = p.last_promise;
  auto [current, fresh] = p.current.try_emplace(customer, id);
  if (!fresh) {
    // Past its deadline the old promise is broken, whatever comes now; before
    // it, this request reschedules it.
    const auto old = p.promises.find(current->second);
    if (old != p.promises.end() && t <= old->second.due + config_.callback_grace) {
      old->second.rescheduled = true;
      old->second.rescheduled_before_due = t < old->second.due;
      if (p.tracked()) MarkDirty(p.dirty_promises, old->first);
    }
    current->second = id;
  }
  const Promise& promise = p.promises[id] =
      Promise{.requested = t, .due = due, .customer = customer, .cell = static_cast<uint32_t>(cell)};
  AddTimers(p, id, promise);
  if (p.tracked()) {
    MarkDirty(p.dirty_promises, id);
    MarkDirty(p.dirty_customers, customer);
  }
}

// The promise's timers still to come: due (unless it fired), then missed.
void KpiAggregator::AddTimers(Partition& p, uint32_t id, const Promise& promise) {
  const auto push = [&p](const Timer& timer) {
    p.timers.push_back(timer);
    std::push_heap(p.timers.begin(), p.timers.end(), std::greater<>());
  };
  if (!promise.due_fired) push(Timer{promise.due, id, false});
  push(Timer{promise.due + config_.callback_grace, id, true});
}

void KpiAggregator::AttemptCallback(const cx::v1::InteractionEvent& event, Partition& p, Micros t) {
  Add(p, t, Cell(event), Kpi::kCallbacksMade);
  const auto current = p.current.find(CustomerHash(event));
  if (current == p.current.end()) return;
  const auto promise = p.promises.find(current->second);
  if (promise == p.promises.end()) return;
  Promise& kept = promise->second;
  if (t < kept.requested || t > kept.due + config_.callback_grace) return;  // not in time for it
  kept.kept = true;
  if (p.tracked()) {
    MarkDirty(p.dirty_promises, promise->first);
    MarkDirty(p.dirty_customers, current->first);
  }
  p.current.erase(current);
}

void KpiAggregator::FireTimers(Partition& p, Micros watermark) {
  // Strictly past: an attempt stamped exactly at the deadline is in time,
  // and may still arrive while the watermark is there.
  while (!p.timers.empty() && p.timers.front().at < watermark) {
    std::pop_heap(p.timers.begin(), p.timers.end(), std::greater<>());
    const Timer timer = p.timers.back();
    p.timers.pop_back();
    const auto it = p.promises.find(timer.promise);
    if (it == p.promises.end()) continue;
    Promise& promise = it->second;
    if (p.tracked()) MarkDirty(p.dirty_promises, timer.promise);
    if (!timer.missed) {
      promise.due_fired = true;
      if (!promise.rescheduled_before_due) Add(p, timer.at, promise.cell, Kpi::kCallbacksDue);
      continue;
    }
    if (!promise.kept && !promise.rescheduled) Add(p, timer.at, promise.cell, Kpi::kCallbacksMissed);
    if (const auto c = p.current.find(promise.customer); c != p.current.end() && c->second == timer.promise) {
      if (p.tracked()) MarkDirty(p.dirty_customers, c->first);
      p.current.erase(c);
    }
    p.promises.erase(it);
  }
}

bool KpiAggregator::IsRepeat(Partition& p, uint64_t customer, Micros t) {
  if (p.tracked()) MarkDirty(p.dirty_customers, customer);
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
  absl::erase_if(p.last_start, [&](const auto& entry) {
    if (watermark - entry.second <= config_.repeat_window) return false;
    if (p.tracked()) MarkDirty(p.dirty_customers, entry.first);
    return true;
  });
}

size_t KpiAggregator::Cell(const cx::v1::InteractionEvent& event) {
  return CellOf(event.queue(), static_cast<size_t>(event.channel()));
}

size_t KpiAggregator::CellOf(std::string_view queue, size_t channel) {
  int label = 0;
  // Debian's abseil has a string_view of its own.
  if (const auto it = queue_cache_.find(absl::string_view(queue.data(), queue.size())); it != queue_cache_.end()) {
    label = it->second;
  } else {
    label = queues_->Resolve(queue);
    if (label != QueueLabels::kOther || other_cached_ < kMaxCachedOther) {
      queue_cache_.emplace(std::string(queue), label);
      other_cached_ += label == QueueLabels::kOther;
    }
  }
  const size_t cell = static_cast<size_t>(label) * kKpiChannels + (channel < kKpiChannels ? channel : 0);
  if (!used_[cell].load(std::memory_order_relaxed)) used_[cell].store(true, std::memory_order_relaxed);
  return cell;
}

int64_t KpiAggregator::BucketOf(Micros t) const {
  const int64_t b = t / config_.bucket;
  return b * config_.bucket > t ? b - 1 : b;  // floor, for times before 1970
}

void KpiAggregator::Add(Partition& p, Micros at, size_t cell, Kpi kpi, double value) {
  const int64_t bucket = BucketOf(at);
  if (!InRing(bucket)) return;  // older than every window
  Bump(Slot(bucket)[cell * kKpiCount + Index(kpi)], value);
  if (p.tracked()) p.counts->Values(bucket, cell)[Index(kpi)] += value;
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

std::atomic<double>* KpiAggregator::HeldSlot(int64_t bucket) {
  if (bucket == kNoBucket) return nullptr;
  const auto slot = static_cast<size_t>(((bucket % ring_) + ring_) % ring_);
  if (ids_[slot].load(std::memory_order_relaxed) != bucket) return nullptr;
  return &values_[slot * cells_ * kKpiCount];
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
    for (size_t i = 0; i < size; ++i) (*totals)[i] += InMicros(i % kKpiCount) ? copy[i] / kMicrosPerSecond : copy[i];
  }
}

}  // namespace cxpulse
