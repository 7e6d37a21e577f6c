// Pipeline: the event path's control side. Runs on its own thread (the
// Kafka control thread, daemon.cc), apart from the admin endpoint's, so a
// rebalance or a commit that waits on the brokers never holds up /healthz,
// /readyz or /metrics: those, and a reload, may be called from another
// thread (under `control_`, or from atomics). It owns the group consumer, forwards each assigned partition's queue to the
// shard that owns it (partition % shards), serves rebalances, commits the
// offsets shards mark committable (at-least-once), and computes lag. The
// shards do the event work on their own threads (daemon/shard.h), the
// per-customer rules; the centre stage (daemon/centre_stage.h) runs the
// centre-wide rules while this process holds partition 0.
#pragma once

#include <deque>
#include <map>
#include <mutex>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/time.h"
#include "config/config.h"
#include "daemon/centre_stage.h"
#include "daemon/shard.h"
#include "kafka/client.h"
#include "metrics/pipeline_metrics.h"

namespace cxpulse {

class Pipeline {
 public:
  static absl::StatusOr<std::unique_ptr<Pipeline>> Create(const Config& config, const std::string& bootstrap,
                                                          std::shared_ptr<const RuleSet> rules, int shards,
                                                          PipelineMetrics* metrics, const Clock* clock);
  ~Pipeline();

  void Start();
  // Control thread, often (every few ms): serves rebalances, commits every
  // commit_interval, updates lag every second. Returns a shard's failure.
  [[nodiscard]] absl::Status Poll(Micros now);
  // Drains: every shard finishes its batch and flushes, offsets are
  // committed, the group is left. Returns the first failure, if any.
  absl::Status Stop();

  // Hot reload: gives every shard its own copy of `rules` and waits until
  // each has swapped it in between two batches; the centre stage gets its
  // copy through its ring, from the next Poll, without waiting. State of rules whose name and
  // version are unchanged is kept.
  void Reload(std::shared_ptr<const RuleSet> rules);
  std::shared_ptr<const RuleSet> rules() const {
    std::lock_guard lock(control_);
    return rules_;
  }
  // A rule's statistics summed over the shards and the centre stage (kept
  // by rule name, so they run on across reloads).
  struct RuleTotals {
    uint64_t evaluations = 0, findings = 0, key_limit_hits = 0;
    int64_t keys = 0;
    double evaluation_seconds = 0;  // estimated: RuleStats::kTimingSample
  };
  RuleTotals Totals(const std::string& rule) const;

  // True once partitions are assigned and every one is at its end (and,
  // where this process runs the centre stage, every partition is at its end there).
  bool AllAtEnd() const;
  bool assigned() const { return assigned_count_.load(std::memory_order_acquire) > 0; }
  // /readyz: OK once the group has given this process its partitions (none
  // is an answer too: a standby member) and the shards have restored their
  // state; otherwise why not (joining or rebalancing, restoring state,
  // draining, a shard failed).
  absl::Status Readiness() const;
  uint64_t events() const;
  uint64_t dead_letters() const;
  int64_t lag() const { return lag_.load(std::memory_order_relaxed); }
  const std::vector<std::unique_ptr<Shard>>& shards() const { return shards_; }
  const CentreStage& centre() const { return *centre_; }

 private:
  Pipeline() = default;
  static void OnRebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                          void* opaque);
  static void OnCommit(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* offsets,
                       void* opaque);
  void Rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts);
  // The consumer's statistics, once a second: tells each shard up to when
  // its partitions' brokers were heard from (Shard::Offsets::heard_until).
  static int OnStats(rd_kafka_t* rk, char* json, size_t json_len, void* opaque);
  // Posts one command per partition to its owning shard, wakes the shards,
  // and waits until each has acknowledged all of them.
  void PostAndWait(ShardCommand::Kind kind, const std::vector<int32_t>& partitions);
  // Commits what shards mark committable. `handover` (a revoke, the
  // drain): synchronously and unconditionally, since the partition's next
  // owner starts from what is committed now.
  void Commit(bool handover);
  void UpdateLag();
  // The changelog topic exists with the input's partition count.
  absl::Status CheckChangelog();
  // Starts the centre stage while this process holds partition 0 (once a
  // previous run has finished), joins a run that has finished, hands it
  // rules a reload could not post, and publishes its gauges. Never waits.
  // With `control_` held.
  void ServeCentre();
  size_t OwnerIndex(int32_t partition) const { return static_cast<size_t>(partition) % shards_.size(); }
  Shard& Owner(int32_t partition) { return *shards_[OwnerIndex(partition)]; }

  // Per shard, per rule name: stable addresses the shard's engine writes to.
  struct StatsTable {
    std::deque<RuleStats> stats;
    std::map<std::string, RuleStats*> by_name;
    std::vector<RuleStats*> For(const RuleSet& rules);
  };

  Config config_;
  // Held by a reload, and by the Kafka control thread while it posts shard
  // commands or serves the centre stage: what the admin thread reads of
  // rules and their statistics, and the shards' command rings (one writer
  // at a time). Never held while waiting on a broker.
  mutable std::mutex control_;
  PipelineMetrics* metrics_ = nullptr;
  const Clock* clock_ = nullptr;
  std::shared_ptr<const RuleSet> rules_;
  std::deque<StatsTable> stats_;  // by shard (a deque: tables never move)
  Shard::Offsets offsets_;
  std::unique_ptr<QueueLabels> queue_labels_;  // KPI labels, shared by the shards
  std::vector<std::unique_ptr<Shard>> shards_;
  std::unique_ptr<CentreStage> centre_;
  StatsTable centre_stats_;
  bool changelog_checked_ = false;
  Micros last_changelog_check_ = INT64_MIN / 2;
  bool centre_wanted_ = false;                    // this process holds partition 0
  std::shared_ptr<const RuleSet> centre_rules_;  // the rules the running centre stage has, or was posted
  uint64_t centre_late_seen_ = 0, centre_forced_seen_ = 0, centre_transactions_seen_ = 0;
  std::vector<int32_t> assigned_;
  std::atomic<int> assigned_count_{0};
  std::vector<int64_t> committed_;  // by partition: last offset the broker confirmed
  uint64_t next_seq_ = 0;
  Micros fetch_wait_ = 500'000;  // fetch.wait.max.ms: how long a broker may hold a fetch
  Micros last_commit_ = 0;
  Micros last_lag_ = 0;
  std::atomic<int64_t> lag_{0};
  absl::Status failure_;
  std::atomic<bool> stopped_{false};
  std::atomic<bool> awaiting_assignment_{true};  // before the first assignment, and after a revoke of everything

  // Declared last so it is destroyed first: closing a consumer may call
  // back into Rebalance, which uses the members above.
  KafkaHandle consumer_;
};

}  // namespace cxpulse
