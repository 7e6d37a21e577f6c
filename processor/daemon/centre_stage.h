// CentreStage: the centre-wide rules (rule_set.h: RuleScope::kCentre) over
// the whole input topic, whatever its partition count. One per process, on
// its own thread, running only while the process's group assignment holds
// partition 0 of the input topic: a lease, so that one member of the group
// runs it. It reads every partition itself, with its own consumer (assigned
// all of them, not a group member; its offsets stored under
// "<group_id>.centre"; where it has none, it starts where the group is),
// merges them in event time (engine/event_time_merge.h),
// runs one Engine over the merged stream and writes its findings with its
// own producer.
//
// Single writer for all of it. The control thread starts it, asks it to
// stop and joins it once it says it has finished, posts new rules through its
// ring, and reads its atomics; it never waits on it, except at the drain.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/time.h"
#include "config/config.h"
#include "codec/event_decoder.h"
#include "daemon/kafka_finding_sink.h"
#include "daemon/spsc_ring.h"
#include "engine/engine.h"
#include "engine/event_time_merge.h"
#include "kafka/client.h"

namespace cxpulse {

// New rules for the centre stage: its own copy, and their statistics.
struct CentreCommand {
  std::shared_ptr<const RuleSet> rules;
  std::vector<RuleStats*> stats;
};

class CentreStage {
 public:
  static absl::StatusOr<std::unique_ptr<CentreStage>> Create(const Config& config, const std::string& bootstrap,
                                                             const Clock* clock);
  // Asks the thread to stop and joins it.
  ~CentreStage();

  // Control thread, only while !running(): starts the thread on `rules`
  // (its own copy: expressions are single-threaded) with `stats` (one per
  // rule, owned by the caller, outliving the stage). It starts afresh: its
  // rule state begins empty and it reads on from the committed offsets.
  void Start(std::shared_ptr<const RuleSet> rules, std::vector<RuleStats*> stats);
  // Asks the thread to stop (finish its batch, deliver its findings, commit
  // what they cover); returns at once.
  void RequestStop();
  // The thread has ended, asked to or on a failure: Join() will not wait.
  bool finished() const { return finished_.load(std::memory_order_acquire); }
  void Join();
  bool running() const { return thread_.joinable(); }
  // Control thread: new rules, swapped in between two batches; false if the
  // ring is full (try again later).
  [[nodiscard]] bool PostRules(CentreCommand&& command) { return commands_.TryPush(std::move(command)); }

  // Any thread.
  bool active() const { return active_.load(std::memory_order_relaxed); }  // consuming every partition
  bool at_end() const { return at_end_.load(std::memory_order_relaxed); }  // every partition at its end
  // The merged watermark: the centre rules' clock (Watermark::kNone before it is known).
  Micros watermark() const { return watermark_.load(std::memory_order_relaxed); }
  int64_t held() const { return held_.load(std::memory_order_relaxed); }
  uint64_t late() const { return late_.load(std::memory_order_relaxed); }
  uint64_t forced() const { return forced_.load(std::memory_order_relaxed); }
  uint64_t transactions() const { return transactions_.load(std::memory_order_relaxed); }  // committed
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  // Valid once failed() is true.
  const absl::Status& status() const { return fatal_; }

  CentreStage(const CentreStage&) = delete;
  CentreStage& operator=(const CentreStage&) = delete;

 private:
  CentreStage() = default;
  // One run of the thread, from Start to its end.
  void Run(std::shared_ptr<const RuleSet> rules, std::vector<RuleStats*> stats);
  absl::Status Consume(std::shared_ptr<const RuleSet> rules, std::vector<RuleStats*> stats);
  absl::StatusOr<KafkaHandle> NewConsumer() const;
  absl::StatusOr<int32_t> PartitionCount(rd_kafka_t* consumer) const;
  // Where to start reading each partition: where the restored state says,
  // else from this stage's committed offset, else the group's (where its
  // shards are), else the beginning.
  PartitionList StartOffsets(int32_t partitions) const;
  // Reads the stage's last snapshot back from the changelog into the engine.
  absl::Status RestoreState(int32_t partitions, Micros now);
  // The engine's state, the release point and where to read on, in one record.
  std::string Snapshot(const std::vector<int64_t>& starts);
  void Handle(const rd_kafka_message_t& msg, Micros now);
  // Runs one released event through the rules.
  void Apply(const EventTimeMerge::Released& released, Micros now);
  // Every event the merge lets go, then the rules' clock to the merged watermark.
  void Release(Micros now);
  // (Re)creates the producer and the finding sink on it: transactional with
  // exactly-once delivery.
  absl::Status NewProducer();
  // The offset each partition is read on from once the released events are
  // committed: below its lowest held offset.
  std::vector<int64_t> CheckpointOffsets();
  // Exactly once: takes the transactional id (fencing the stage before) on
  // the first run, then begins this run's first transaction.
  absl::Status BeginTransactions();
  // Exactly once: the findings since the last commit, the snapshot and the
  // offsets they cover in one transaction; then the next begins, unless
  // this is the run's `last`.
  void CommitTransaction(bool last = false);
  // At least once: notes, under a delivery mark, the offsets the released events cover.
  void MarkCheckpoint();
  // Commits the noted offsets whose findings are all delivered.
  void CommitDelivered(bool wait);
  void PublishGauges();
  void Fail(absl::Status s);

  Config config_;
  std::string bootstrap_;
  const Clock* clock_ = nullptr;
  bool exactly_once_ = false;
  std::unique_ptr<Producer> producer_;
  std::unique_ptr<KafkaFindingSink> sink_;
  bool transactions_ready_ = false;  // InitTransactions done on producer_
  bool in_transaction_ = false;
  bool fenced_ = false;              // another member took the stage over
  uint64_t produced_at_begin_ = 0;   // producer_->produced() when the transaction began

  // One run's state, made by Consume and owned by the thread.
  KafkaHandle consumer_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<EventTimeMerge> merge_;
  EventDecoder decoder_;          // records as they arrive
  EventDecoder release_decoder_;  // held events as the merge lets them go
  std::vector<int64_t> next_;     // by partition: next offset to read (-1: none read yet)
  std::vector<bool> ends_;        // by partition: at its end
  std::vector<int64_t> lowest_;   // scratch: the merge's lowest held offsets
  struct PendingCheckpoint {
    uint64_t mark = 0;            // Producer::Mark()
    std::vector<int64_t> offsets;  // by partition; -1: nothing to commit
    std::string snapshot;          // sent once the findings before `mark` are delivered
  };
  // Durable state (daemon/changelog.h): the stage's snapshot is one record in
  // changelog partition 0. With exactly-once delivery it commits in one
  // transaction with the findings before it and the offsets it covers; at
  // least once, it is written once those findings are delivered. The merge
  // lets events go in a total order (time, event id, partition, offset); a
  // snapshot holds the last one let go, and where each partition is to be
  // read on from (below its lowest held offset). After a restore, an event
  // read again that is at or before that point is already in the state.
  struct ReleasePoint {
    Micros time = Watermark::kNone;
    std::string event_id;
    int32_t partition = -1;
    int64_t offset = -1;
    bool Covers(Micros t, std::string_view id, int32_t p, int64_t o) const;
  };
  ReleasePoint released_;   // the last event this run let go
  ReleasePoint restored_;   // the restored snapshot's
  bool skipping_ = false;   // restored_ is set
  std::vector<int64_t> restored_starts_;  // by partition; -1: not in the snapshot
  absl::flat_hash_map<std::string, std::string> state_;  // the engine's records, as its checkpoints leave them
  uint64_t skipped_ = 0;
  std::deque<PendingCheckpoint> pending_;
  std::vector<int64_t> committed_;  // by partition: last offset sent in a commit
  uint64_t failures_seen_ = 0;
  uint64_t late_base_ = 0;     // late_ before this run
  uint64_t forced_base_ = 0;
  uint64_t engine_late_ = 0;   // released events the engine found late: none, by construction
  Micros last_forced_log_ = 0;
  uint64_t forced_logged_ = 0;
  absl::Status fatal_;

  SpscRing<CentreCommand> commands_{16};
  std::atomic<bool> stop_{false};
  std::atomic<bool> finished_{false};
  std::atomic<bool> failed_{false};
  std::atomic<bool> active_{false};
  std::atomic<bool> at_end_{false};
  std::atomic<Micros> watermark_{Watermark::kNone};
  std::atomic<int64_t> held_{0};
  std::atomic<uint64_t> late_{0};
  std::atomic<uint64_t> forced_{0};
  std::atomic<uint64_t> transactions_{0};
  std::thread thread_;
};

}  // namespace cxpulse
