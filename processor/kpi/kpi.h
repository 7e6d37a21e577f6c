// KpiAggregator: live contact-centre KPIs per (queue, channel) over sliding
// windows of event time, for one shard. The shard thread is its only writer
// (Record, Tick); the control thread reads it at scrape time (AddWindow,
// used) from atomics, without locks.
//
// Semantics (README.md, "KPIs"):
// - Time is event time: "now" is the highest occurred_at seen (or, after
//   engine.idle_partition_timeout of wall time without events, that plus the
//   idle time, as the engine's watermark does). Counts go into buckets of
//   kpi.bucket by the event's occurred_at; a window W covers the buckets in
//   (now - W, now]. Events older than the longest window are ignored.
// - offered: queued; answered: answered, and answered_within_target when its
//   wait <= the queue's service-level threshold; wait_seconds: their
//   waits; abandoned: abandoned; handled: ended, handle_seconds: their
//   handle times.
// - contacts: contact_started; repeat_contacts: those whose customer had
//   another contact_started at most kpi.repeat_window apart (the later one
//   to arrive is the repeat).
// - callbacks_made: callback_attempted. callbacks_due: callback_requested
//   whose due_at now has reached, counted in due_at's bucket. A customer has
//   one pending promise (a newer request replaces it); a callback_attempted
//   by that customer keeps it, else it is missed at due_at +
//   kpi.callback_grace, counted in that bucket. An attempt at exactly the
//   deadline is in time. A callback due more than 30 days after its request
//   is not tracked. Pending callbacks belong to their partition: when it
//   moves away they go too (DropPartition), so the old owner does not count
//   them missed; the new one starts without them, as the rules' state does.
// - csat_responses / csat_points: CSAT surveys; nps_responses,
//   nps_promoters (9-10), nps_detractors (0-6): NPS surveys. CES is ignored.
// - Labels: the queue through QueueLabels (configured, first come up to
//   kpi.max_queues, then "other"; no queue is "unassigned"); the channel's
//   short name. A customer or contact id is never a label.
//
// Steady state allocates nothing per event: the per-customer maps (last
// contact start, pending callback) and the timer heap grow to the size the
// traffic needs and stay there; the queue cache holds at most one entry per
// label slot, plus up to 1024 names folded into "other".
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/time.h"
#include "config/config.h"
#include "cx/v1/event.pb.h"
#include "kpi/queue_labels.h"

namespace cxpulse {

// What each bucket counts per (queue, channel) cell. Counts are kept as
// doubles too, so one array of atomics holds everything (exact to 2^53).
enum class Kpi : size_t {
  kOffered,
  kAnswered,
  kAnsweredWithinTarget,
  kAbandoned,
  kWaitSecondsSum,
  kHandled,
  kHandleSecondsSum,
  kContacts,
  kRepeatContacts,
  kCallbacksDue,
  kCallbacksMade,
  kCallbacksMissed,
  kCsatResponses,
  kCsatScoreSum,
  kNpsResponses,
  kNpsPromoters,
  kNpsDetractors,
  kCount
};
inline constexpr size_t kKpiCount = static_cast<size_t>(Kpi::kCount);
// cx.v1.Channel values; an unknown one counts as unspecified (0).
inline constexpr size_t kKpiChannels = 7;

class KpiAggregator {
 public:
  // `queues` is shared by every shard of the process and outlives this.
  KpiAggregator(const KpiConfig& config, QueueLabels* queues, Micros idle_timeout);
  KpiAggregator(const KpiAggregator&) = delete;
  KpiAggregator& operator=(const KpiAggregator&) = delete;

  // Shard thread: a valid event of `partition` that was not late, at wall
  // time `wall_now`.
  void Record(const cx::v1::InteractionEvent& event, int32_t partition, Micros wall_now);
  // Shard thread: the partition moved away. Its customers' pending callbacks
  // go with it (their next owner starts without them, as the rules' state
  // does), so this shard does not count them missed. What was counted stays.
  void DropPartition(int32_t partition);
  // Shard thread, after each batch: lets time pass on a quiet shard.
  void Tick(Micros wall_now);

  // Any thread.
  const KpiConfig& config() const { return config_; }
  const QueueLabels& queues() const { return *queues_; }
  // Cells are queue label index * kKpiChannels + channel.
  size_t cells() const { return cells_; }
  // Whether the cell has seen an event that a KPI counts (only those make series).
  bool used(size_t cell) const { return used_[cell].load(std::memory_order_relaxed); }
  // Adds window `window`'s totals to `totals`, which holds cells() *
  // kKpiCount values, cell by cell.
  void AddWindow(size_t window, std::vector<double>* totals) const;

 private:
  static constexpr int64_t kNoBucket = std::numeric_limits<int64_t>::min() / 2;

  // A callback deadline: due (counted always) or missed (counted if the
  // promise `gen` is still pending for `customer`). It fires once now
  // reaches `fire`: a due one at its due time, a missed one just after its
  // deadline, so an attempt at the deadline, whatever else comes at that
  // time, is in time. It is counted in the bucket of `at`.
  struct Timer {
    Micros fire;
    Micros at;
    uint64_t customer;
    uint32_t cell;
    uint32_t gen;  // 0: the due timer
    bool operator>(const Timer& o) const { return fire > o.fire; }
  };

  // Moves now forward to `t` (never back) and fires the timers it passes.
  void AdvanceTo(Micros t);
  void FireTimers();
  void RecordBody(const cx::v1::InteractionEvent& event, int32_t partition, Micros t);
  void RequestCallback(const cx::v1::InteractionEvent& event, int32_t partition, Micros t, size_t cell);
  bool IsRepeat(uint64_t customer, Micros t);
  void SweepContactStarts();
  size_t Cell(const cx::v1::InteractionEvent& event);
  int64_t BucketOf(Micros t) const;
  // Adds `value` to `kpi` of `cell` in the bucket of `at`, if it is still in the ring.
  void Add(Micros at, size_t cell, Kpi kpi, double value = 1);
  std::atomic<double>* Slot(int64_t bucket);

  const KpiConfig config_;
  QueueLabels* const queues_;
  const Micros idle_timeout_;
  const size_t cells_;
  const int64_t ring_;  // buckets kept: the longest window's

  // Readers see these. values_: ring_ slots of cells_ * kKpiCount; ids_: the
  // bucket each slot holds (kNoBucket while it is being reset).
  std::unique_ptr<std::atomic<double>[]> values_;
  std::unique_ptr<std::atomic<int64_t>[]> ids_;
  std::unique_ptr<std::atomic<bool>[]> used_;
  std::atomic<int64_t> now_bucket_{kNoBucket};

  // The writer's own.
  Micros now_ = std::numeric_limits<Micros>::min();
  Micros max_event_time_ = std::numeric_limits<Micros>::min();
  Micros last_event_wall_ = 0;
  Micros last_sweep_ = 0;
  uint32_t next_gen_ = 0;
  absl::flat_hash_map<std::string, int> queue_cache_;          // name -> label index
  size_t other_cached_ = 0;                                    // entries of queue_cache_ that are "other"
  absl::flat_hash_map<uint64_t, Micros> last_start_;           // customer hash -> latest contact_started
  struct Promise {
    uint32_t gen;
    int32_t partition;
  };
  absl::flat_hash_map<uint64_t, Promise> pending_;             // customer hash -> its pending promise
  std::vector<Timer> timers_;                                  // min-heap by time, lazily deleted
};

}  // namespace cxpulse
