// Shard: one thread's share of the event path. It owns a set of input
// partitions (forwarded into its own librdkafka queue, so it reads them with
// no hand-off), every piece of per-customer rule state for their keys (its
// own Engine; the centre-wide rules run in daemon/centre_stage.h),
// its own KPI windows, its own producer for findings and dead letters, and
// its own counters.
// Single writer for all of it; the control thread reaches it only through
// its command ring and reads only its atomics.
#pragma once

#include <array>
#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/time.h"
#include "config/config.h"
#include "cx/v1/event.pb.h"
#include "daemon/changelog.h"
#include "codec/event_decoder.h"
#include "daemon/kafka_finding_sink.h"
#include "daemon/spsc_ring.h"
#include "engine/engine.h"
#include "kafka/client.h"
#include "kpi/kpi.h"

namespace cxpulse {

enum class DeadLetterReason { kDecode, kInvalid, kLate, kCount };
std::string_view DeadLetterReasonName(DeadLetterReason r);

// Largest partition id a daemon can own. Per-partition offsets live in flat
// arrays of this size, so the control thread can read them without locks.
inline constexpr int32_t kMaxPartitions = 4096;

inline constexpr size_t kChannels = 8;
// Upper bounds (seconds) of the batch-duration histogram buckets.
inline constexpr std::array<double, 10> kBatchBuckets = {0.00001, 0.00005, 0.0001, 0.0005, 0.001,
                                                         0.005,   0.01,    0.05,   0.1,    0.5};

// One shard's counters. Written only by the shard (load + store, no
// read-modify-write), read at scrape time by the control thread; aligned so
// two shards never share a cache line.
struct alignas(64) ShardCounters {
  using Counter = std::atomic<uint64_t>;
  std::array<std::array<Counter, kChannels>, kMaxBodyCase> events{};
  Counter decode_errors{0};
  Counter late{0};
  std::array<Counter, static_cast<size_t>(DeadLetterReason::kCount)> dead_letters{};
  Counter dead_letters_truncated{0};  // of dead_letters: too large to copy whole
  std::array<Counter, kBatchBuckets.size() + 1> batch_buckets{};  // last: +Inf
  Counter batch_count{0};
  std::atomic<double> batch_seconds{0};
  // Durable state (daemon/changelog.h).
  Counter restored_partitions{0};
  Counter restored_records{0};  // read back, superseded values and tombstones included
  Counter restored_bytes{0};
  std::atomic<double> restore_seconds{0};
  std::array<Counter, static_cast<size_t>(RestoreDrop::kCount)> restore_dropped{};
  Counter restore_skipped{0};  // input records the restored state already reflected
  Counter state_records{0};    // written to the changelog, tombstones included
  Counter state_bytes{0};
  Counter transactions{0};  // committed (exactly once)
  Counter pauses{0};        // times the shard paused its partitions for the brokers to catch up
  std::atomic<bool> paused{false};

  static void Add(Counter& c, uint64_t n = 1) { c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
};

struct ShardCommand {
  enum class Kind { kNone, kAssign, kRevoke, kRules };
  Kind kind = Kind::kNone;
  int32_t partition = -1;
  uint64_t seq = 0;  // acknowledged through Shard::acked()
  // kRules: this shard's own copy of the new rules, and their stats.
  std::shared_ptr<const RuleSet> rules;
  std::vector<RuleStats*> stats;
};

class Shard {
 public:
  // Per-partition offsets shared with the control thread, by partition id.
  struct Offsets {
    // Next offset whose findings are delivered: safe to commit.
    std::unique_ptr<std::atomic<int64_t>[]> committable{new std::atomic<int64_t>[kMaxPartitions]};
    // Next offset processed (for lag); and whether the partition is at its end.
    std::unique_ptr<std::atomic<int64_t>[]> processed{new std::atomic<int64_t>[kMaxPartitions]};
    std::unique_ptr<std::atomic<bool>[]> at_end{new std::atomic<bool>[kMaxPartitions]};
    // The partition's event-time watermark (Watermark::kNone before its first event).
    std::unique_ptr<std::atomic<Micros>[]> watermark{new std::atomic<Micros>[kMaxPartitions]};
    // Written by the control thread (from the consumer's statistics): the
    // wall time the partition's broker was last heard with nothing more
    // than what was fetched. A partition idles forward only up to there.
    // ... and past which offset it had nothing (Heard::through): the time
    // holds once the shard has read that far.
    std::unique_ptr<std::atomic<int64_t>[]> heard_through{new std::atomic<int64_t>[kMaxPartitions]};
    std::unique_ptr<std::atomic<Micros>[]> heard_until{new std::atomic<Micros>[kMaxPartitions]};
  };

  // `rules` must be this shard's own copy (expressions are single-threaded);
  // `stats` (one per rule) and `queues` (shared by every shard) are owned by
  // the caller and outlive the shard.
  static absl::StatusOr<std::unique_ptr<Shard>> Create(int index, const Config& config, const std::string& bootstrap,
                                                       std::shared_ptr<const RuleSet> rules,
                                                       std::vector<RuleStats*> stats, QueueLabels* queues,
                                                       rd_kafka_t* consumer, Offsets* offsets, const Clock* clock,
                                                       const std::string& transactional_id);
  ~Shard();

  void Start();
  // Asks the thread to drain (finish the batch, checkpoint, commit or publish
  // offsets) and joins it.
  void Stop();

  // Control thread: queue a command; false if the ring is full, and then
  // `command` is untouched, ready for the next attempt.
  [[nodiscard]] bool Post(ShardCommand&& command) { return commands_.TryPush(std::move(command)); }
  uint64_t acked() const { return acked_.load(std::memory_order_acquire); }
  // The queue its partitions are forwarded into.
  rd_kafka_queue_t* queue() const { return queue_.get(); }
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  // Partitions assigned whose state is not yet restored (/readyz).
  int restoring() const { return restoring_count_.load(std::memory_order_acquire); }
  // Valid once failed() is true (or after Stop()).
  const absl::Status& status() const { return fatal_; }

  const ShardCounters& counters() const { return counters_; }
  // Read at scrape time through its atomics.
  const KpiAggregator& kpi() const { return *kpi_; }

 private:
  Shard() = default;
  void Run();
  void DrainCommands();
  // Hands each owned partition's heard_until to its watermarks.
  void ApplyHeard(Micros now);
  void Handle(const rd_kafka_message_t& msg, Micros now);
  void DeadLetter(const rd_kafka_message_t& msg, DeadLetterReason reason, std::string_view detail);
  // A record too large for the producer: its first kDeadLetterPrefixBytes
  // of key and value, with headers saying so and giving the original sizes.
  [[nodiscard]] absl::Status DeadLetterTruncated(const rd_kafka_message_t& msg, DeadLetterReason reason,
                                                 std::string_view detail, std::string_view source);
  // Reads back the state of the partitions just assigned, before any of
  // their events (and tells the engine and KPIs they are not at their end).
  void RestoreAssigned();
  // Pauses the shard's partitions while its producer holds too much the
  // brokers have not taken yet, and resumes them once it has drained.
  void PauseWhileBacklogged();
  // Takes a partition's restored records into the engine and KPIs; `line`,
  // if given, gets what its log line says of them.
  void Restore(int32_t partition, const RestoredState& state, std::string* line);
  // Every commit_interval. Exactly once: writes the changed state and each
  // partition's position into the transaction, adds the input offsets, and
  // commits it (waiting for the brokers). At least once: MarkCheckpoint.
  void Commit();
  // The changed state of every owned partition, each ending with its
  // position record, written to `out`'s partitions.
  void WriteState(const std::function<StateWriter&(int32_t)>& out);
  // At least once, without waiting: stages the changed state and notes each
  // owned partition's next offset under a producer delivery mark.
  void MarkCheckpoint();
  // At least once: a noted checkpoint whose findings and dead letters are
  // all delivered sends its staged state; once that is delivered too, its
  // offsets are published as committable. Stops the shard instead if any
  // delivery failed.
  void PublishDelivered();
  // Waits (revocation, stop): commits the transaction, or flushes the
  // producer and publishes what is processed.
  void Checkpoint();
  void Fail(absl::Status s);

  int index_ = 0;
  Config config_;
  bool exactly_once_ = false;
  rd_kafka_t* consumer_ = nullptr;  // the group's: its metadata goes with the transaction's offsets
  std::unique_ptr<ChangelogReader> restorer_;
  const Clock* clock_ = nullptr;
  Offsets* offsets_ = nullptr;
  std::unique_ptr<Producer> producer_;
  std::unique_ptr<KafkaFindingSink> sink_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<KpiAggregator> kpi_;
  QueueHandle queue_;
  EventDecoder decoder_;
  std::vector<int32_t> owned_;      // partitions this shard owns now
  std::vector<int64_t> next_;       // next offset to process, by partition (-1: none yet)
  std::vector<int64_t> read_to_;    // by partition: next offset read, or the end an EOF reported
  std::vector<int32_t> restoring_;  // assigned, state not yet read back
  std::atomic<int> restoring_count_{0};
  // By partition: input offsets below this are already in the restored state.
  std::vector<int64_t> restored_through_;
  // By partition: the offset of the last position record written.
  std::vector<int64_t> positions_;
  uint64_t produced_at_begin_ = 0;
  bool paused_ = false;  // Producer::produced() when the transaction began
  // Checkpoints noted, oldest first, whose output may still be in flight.
  struct PendingCheckpoint {
    uint64_t mark = 0;                                // Producer::Mark()
    std::vector<std::pair<int32_t, int64_t>> next;  // partition, next offset
    std::unique_ptr<ChangelogBatch> state;          // sent once the findings before `mark` are delivered
  };
  std::deque<PendingCheckpoint> pending_;
  uint64_t failures_seen_ = 0;
  absl::Status fatal_;

  SpscRing<ShardCommand> commands_{1024};
  std::atomic<uint64_t> acked_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> failed_{false};
  ShardCounters counters_;
  std::thread thread_;
};

}  // namespace cxpulse
