// KpiAggregator: live contact-centre KPIs per (queue, channel) over sliding
// windows of event time, for one shard. The shard thread is its only writer
// (Record, Tick, DropPartition, Checkpoint, Restore); the control thread
// reads it at scrape time (Watermarks, AddWindow, used) from atomics,
// without locks.
//
// Semantics (README.md, "KPIs"; tests/oracle/ holds a reference computation):
// - Each event counts in the bucket (kpi.bucket) of its occurred_at, except
//   the callback timers below, counted in the bucket of their own time.
// - Time is per partition: each has a Watermark (engine/watermark.h, the
//   rule engine's: newest event time minus allowed_lateness, following the
//   wall clock once idle). A partition's callback timers are counted when
//   its watermark passes them, never by another partition's clock.
// - Windows end at E, the start of the bucket that holds the lowest
//   watermark among the process's partitions that have had an event (the
//   scrape takes it over every shard: metrics/kpi_metrics.cc). A window W
//   covers [E - W, E): whole buckets that every partition is done with, so a
//   published number never changes and is the same on any partition or shard
//   layout. Should one partition fall more than kMaxSkew behind the newest,
//   E stops waiting for it.
// - offered: queued; answered: answered, and answered_within_target when its
//   wait <= the queue's service-level threshold; wait_seconds: their
//   waits; abandoned: abandoned; handled: ended, handle_seconds: their
//   handle times.
// - contacts: contact_started; repeat_contacts: those whose customer's
//   newest earlier-arrived contact_started is at most kpi.repeat_window
//   apart from it.
// - callbacks_made: callback_attempted. Callbacks due and missed follow a
//   customer's promises in arrival order: a callback_requested at r, due d,
//   is a promise if r <= d <= r + 30 days (else ignored). A customer has one
//   current promise. A newer request while it is current reschedules it
//   unless it is already past d + kpi.callback_grace (then it stays broken);
//   a rescheduled promise is never missed, and is due only if rescheduled at
//   or after d. An attempt at a with r <= a <= d + grace keeps the current
//   promise. due: each promise not rescheduled before d, in d's bucket;
//   missed: each neither kept nor rescheduled, in the bucket of d + grace.
//   Promises belong to their partition: when it moves away they go too.
// - Durable state (engine/state_log.h), with change tracking on: a
//   partition's clock, its share of every bucket still in the ring, its
//   customers' newest contact starts and its pending promises are
//   checkpointed as records and restored on assignment, so a restarted or
//   moved partition counts on as if it had never stopped. Its counts move
//   with it: DropPartition takes its share out of this shard's buckets,
//   published windows included, and its next owner restores it. A window a
//   process publishes can so drop at a rebalance, by what the new owner
//   adds back: the sum over processes (what a dashboard shows) counts each
//   event once, where keeping the share here would count it on both owners
//   for as long as its bucket is in a window. Without tracking nothing
//   carries the share elsewhere, so it stays.
// - csat_responses / csat_points: CSAT surveys; nps_responses,
//   nps_promoters (9-10), nps_detractors (0-6): NPS surveys. CES is ignored.
// - Labels: the queue through QueueLabels (configured, first come up to
//   kpi.max_queues, then "other"; no queue is "unassigned"); the channel's
//   short name. A customer or contact id is never a label.
//
// Steady state allocates nothing per event: the per-customer maps (last
// contact start, current promise), the promise tables and the timer heaps
// grow to the size the traffic needs and stay there; the queue cache holds
// at most one entry per label slot, plus up to 1024 names folded into
// "other"; with tracking, so do the partitions' shares and dirty lists.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/time.h"
#include "config/config.h"
#include "cx/v1/event.pb.h"
#include "engine/state_log.h"
#include "engine/watermark.h"
#include "kpi/partition_counts.h"
#include "kpi/queue_labels.h"

namespace cxpulse {

// What each bucket counts per (queue, channel) cell. Counts are kept as
// doubles too, so one array of atomics holds everything (exact to 2^53).
// The two sums of seconds are held in microseconds, so every value is an
// integer and a partition's share leaves a sum exactly; AddWindow gives
// seconds.
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
  // How far the window end may trail the newest partition's watermark
  // waiting for the lowest one; the buckets are kept for it.
  static constexpr Micros kMaxSkew = 15 * 60 * kMicrosPerSecond;

  // `queues` is shared by every shard of the process and outlives this.
  // `allowed_lateness` and `idle_timeout` are the engine's (engine.*), so a
  // partition's KPI clock is its rule watermark.
  // `track_changes`: keep each partition's share of the buckets and what
  // changed since its last Checkpoint (off: neither, and no cost).
  KpiAggregator(const KpiConfig& config, QueueLabels* queues, Micros allowed_lateness, Micros idle_timeout,
                bool track_changes = false);
  KpiAggregator(const KpiAggregator&) = delete;
  KpiAggregator& operator=(const KpiAggregator&) = delete;
  ~KpiAggregator();

  // Shard thread: a valid event of `partition` that was not late, at wall
  // time `wall_now`.
  void Record(const cx::v1::InteractionEvent& event, int32_t partition, Micros wall_now);
  // Shard thread: the consumer reached the partition's end (true) or read a
  // record of it (false), as for Engine::SetAtEnd.
  void SetAtEnd(int32_t partition, bool at_end, Micros wall_now);
  // Shard thread: as for Engine::HeardUntil.
  void HeardUntil(int32_t partition, Micros heard_at, Micros wall_now);
  // Shard thread: the partition moved away. Its customers' pending callbacks
  // go with it, so this shard does not count them missed. With tracking its
  // counts go too (the header comment says why); Checkpoint it first, so
  // its next owner has what changed since the last checkpoint.
  void DropPartition(int32_t partition);
  // Shard thread, with tracking, each commit interval: writes the records of
  // the partition's state that changed since its previous Checkpoint, and
  // tombstones for state that went. Nothing if nothing changed.
  void Checkpoint(int32_t partition, StateWriter& out);
  // Shard thread, with tracking: takes one record of the partition's
  // changelog (the latest of its key, tombstones left out), in any order,
  // before the partition's first event. kNone, or why it was dropped; a
  // bucket no longer in the ring is ignored (kNone). An idle clock restarts
  // its idle timeout at `wall_now`.
  [[nodiscard]] RestoreDrop Restore(int32_t partition, std::string_view key, std::string_view value,
                                    Micros wall_now);
  // Shard thread, after each batch: moves each partition's clock (the idle
  // ones with the wall clock), counts the callback timers it passed, and
  // publishes the watermarks.
  void Tick(Micros wall_now);

  // Any thread.
  const KpiConfig& config() const { return config_; }
  const QueueLabels& queues() const { return *queues_; }
  // Cells are queue label index * kKpiChannels + channel.
  size_t cells() const { return cells_; }
  // Whether the cell has seen an event that a KPI counts (only those make series).
  bool used(size_t cell) const { return used_[cell].load(std::memory_order_relaxed); }
  // The lowest and highest watermark, as of the last Tick, of this shard's
  // partitions that have had an event; false if none has. Everything a
  // partition counts before its watermark is visible once this returns it.
  bool Watermarks(Micros* lowest, Micros* highest) const;
  // Adds window `window`'s totals, the buckets of [end - window, end), to
  // `totals`, which holds cells() * kKpiCount values, cell by cell.
  void AddWindow(size_t window, Micros end, std::vector<double>* totals) const;

 private:
  static constexpr int64_t kNoBucket = std::numeric_limits<int64_t>::min() / 2;
  struct Partition;

  // A callback timer, counted once its partition's watermark passes `at`:
  // due (at the due time) or missed (at due + grace) for promise `promise`.
  struct Timer {
    Micros at;
    uint32_t promise;
    bool missed;  // due timers sort first at the same time
    bool operator>(const Timer& o) const { return at != o.at ? at > o.at : missed > o.missed; }
  };
  struct Promise {
    Micros requested = 0;
    Micros due = 0;
    uint64_t customer = 0;
    uint32_t cell = 0;
    bool kept = false;
    bool rescheduled = false;
    bool rescheduled_before_due = false;
    bool due_fired = false;
  };

  Partition& PartitionFor(int32_t partition);
  Partition* Held(int32_t partition);
  void FireTimers(Partition& p, Micros watermark);
  void RecordBody(const cx::v1::InteractionEvent& event, Partition& p, Micros t);
  void RequestCallback(const cx::v1::InteractionEvent& event, Partition& p, Micros t, size_t cell);
  void AttemptCallback(const cx::v1::InteractionEvent& event, Partition& p, Micros t);
  bool IsRepeat(Partition& p, uint64_t customer, Micros t);
  void SweepContactStarts(Partition& p, Micros watermark);
  size_t Cell(const cx::v1::InteractionEvent& event);
  size_t CellOf(std::string_view queue, size_t channel);
  int64_t BucketOf(Micros t) const;
  bool InRing(int64_t bucket) const { return bucket > newest_bucket_ - ring_; }
  // Adds `value` to `kpi` of `cell` in the bucket of `at`, if it is still in
  // the ring, and to the partition's share when tracked.
  void Add(Partition& p, Micros at, size_t cell, Kpi kpi, double value = 1);
  std::atomic<double>* Slot(int64_t bucket);
  // The shard's slot of `bucket` if it holds that bucket now, else null.
  std::atomic<double>* HeldSlot(int64_t bucket);
  void RemoveShare(Partition& p);

  void CheckpointClock(Partition& p, StateWriter& out);
  void CheckpointBuckets(Partition& p, StateWriter& out);
  void CheckpointCustomers(Partition& p, StateWriter& out);
  void CheckpointPromises(Partition& p, StateWriter& out);
  RestoreDrop RestoreClock(Partition& p, std::string_view value, Micros wall_now);
  RestoreDrop RestoreBucket(Partition& p, int64_t bucket, std::string_view value);
  RestoreDrop RestoreCustomer(Partition& p, uint64_t customer, std::string_view value);
  RestoreDrop RestorePromise(Partition& p, uint32_t id, std::string_view value);
  void AddTimers(Partition& p, uint32_t id, const Promise& promise);

  const KpiConfig config_;
  QueueLabels* const queues_;
  const Micros allowed_lateness_;
  const Micros idle_timeout_;
  const bool track_changes_;
  const size_t cells_;
  const int64_t ring_;  // buckets kept: the longest window's, the skew and the lateness

  // Readers see these. values_: ring_ slots of cells_ * kKpiCount; ids_: the
  // bucket each slot holds (kNoBucket while it is being reset).
  std::unique_ptr<std::atomic<double>[]> values_;
  std::unique_ptr<std::atomic<int64_t>[]> ids_;
  std::unique_ptr<std::atomic<bool>[]> used_;
  std::atomic<Micros> lowest_watermark_;
  std::atomic<Micros> highest_watermark_;

  // The writer's own.
  int64_t newest_bucket_ = kNoBucket;  // of any event recorded
  absl::flat_hash_map<std::string, int> queue_cache_;  // name -> label index
  size_t other_cached_ = 0;                            // entries of queue_cache_ that are "other"
  std::vector<std::unique_ptr<Partition>> partitions_;  // by partition id; null: not held
  std::string key_, value_;                             // a checkpoint's, reused
};

}  // namespace cxpulse
