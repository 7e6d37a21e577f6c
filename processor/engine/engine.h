// Engine: runs a RuleSet over events, one partition's state at a time, and
// hands findings to a FindingSink. All state (per rule, per key) is owned by
// the one thread that calls into the engine; no locks inside. The per-rule
// statistics are atomics written only by that thread, read by any. Once warm,
// processing an event allocates nothing, findings included; per-key state is
// laid out for memory (engine.cc: "Storage for per-key state"). Checkpoint
// and Restore carry that state through a changelog (engine/state_log.h;
// the records' layout: engine.cc, "Changelog records").
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/time.h"
#include "cx/v1/event.pb.h"
#include "cx/v1/finding.pb.h"
#include "engine/finding_sink.h"
#include "engine/rule_set.h"
#include "engine/state_log.h"
#include "engine/summary_template.h"
#include "engine/watermark.h"

namespace cxpulse {

struct EngineOptions {
  Micros allowed_lateness = 30 * kMicrosPerSecond;
  Micros idle_partition_timeout = 10 * kMicrosPerSecond;
  // Keys one rule may hold in this engine; beyond it new keys are not
  // tracked (and counted in RuleStats::key_limit_hits), so memory is bounded.
  size_t max_keys_per_rule = 2'000'000;
  // The rules this engine runs (rule_set.h: RuleScope). The others are not
  // evaluated, hold no state and leave their statistics alone: a shard's
  // engine runs the per-customer rules, the centre stage's the centre-wide ones.
  ScopeSelector scope = ScopeSelector::kAll;
  // Keep, per partition, the state records changed since its last
  // Checkpoint. Off: Checkpoint writes nothing, and events pay nothing for it.
  bool track_changes = false;
};

// Per rule, written by the engine's thread, readable from any (relaxed).
struct RuleStats {
  // One evaluation in this many is timed, and counts for this many: reading
  // the clock around every one would cost more than most rules do.
  static constexpr uint64_t kTimingSample = 16;
  std::atomic<uint64_t> evaluations{0};
  std::atomic<uint64_t> evaluation_nanos{0};  // estimated, from the timed sample
  std::atomic<uint64_t> findings{0};
  std::atomic<uint64_t> key_limit_hits{0};
  std::atomic<int64_t> keys{0};
};

class Engine final {
 public:
  // `stats`, one per rule of `rules`, are owned by the caller and must
  // outlive the engine (the daemon keeps them per rule name, so they survive
  // reloads); empty: the engine keeps its own.
  Engine(std::shared_ptr<const RuleSet> rules, EngineOptions options, FindingSink* sink,
         std::vector<RuleStats*> stats = {});

  // Hot reload, between batches: runs `rules` (those of the engine's scope) from now on. A rule whose name
  // and version are unchanged keeps its state (windows, pending promises,
  // cooldowns); a new or changed rule starts empty; a removed rule's state
  // is dropped. `stats` as in the constructor.
  void SwapRules(std::shared_ptr<const RuleSet> rules, std::vector<RuleStats*> stats = {});

  enum class Outcome { kProcessed, kLate };

  // Runs the rules that use this event's type. A late event (older than the
  // partition's watermark) is not applied; the caller routes it elsewhere.
  [[nodiscard]] Outcome Process(int32_t partition, const cx::v1::InteractionEvent& event, Micros wall_now);

  // Fires absence timers the watermarks have passed, including those of idle
  // partitions whose watermark follows the wall clock; expires idle keys.
  void Tick(Micros wall_now);

  // Moves a partition's watermark to `to` and fires what it passes (the end
  // of a replay or of a rule test).
  void AdvanceWatermark(int32_t partition, Micros to, Micros wall_now);

  // The consumer reached the partition's end (true) or read a record of it
  // (false): only a partition at its end lets its watermark idle forward.
  void SetAtEnd(int32_t partition, bool at_end, Micros wall_now);
  // The partition's broker was last heard with nothing more at `heard_at`
  // (Watermark::HeardUntil): its idle advance stops there.
  void HeardUntil(int32_t partition, Micros heard_at, Micros wall_now);

  // A partition moved away: its state goes with it.
  void DropPartition(int32_t partition);

  // Writes what changed in the partition's state since its previous
  // Checkpoint (EngineOptions::track_changes): a Put for each key whose
  // state changed and for the partition's watermark, an Erase for each key
  // whose state went (swept, a promise kept or broken, a rule reloaded away).
  void Checkpoint(int32_t partition, StateWriter& out);

  // Takes up one record of a partition's changelog, the latest value of its
  // key, before the partition's first event; a record it does not take, it
  // says why. Any bytes are safe to pass. Restored state counts as written:
  // the next Checkpoint writes only what changes after it.
  [[nodiscard]] RestoreDrop Restore(int32_t partition, std::string_view key, std::string_view value, Micros wall_now);

  Micros WatermarkOf(int32_t partition, Micros wall_now) const;
  size_t KeysHeld(int rule_index) const;
  const RuleStats& Stats(int rule_index) const { return *stats_[static_cast<size_t>(rule_index)]; }
  const RuleSet& rules() const { return *rules_; }

  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  ~Engine();

 private:
  // Rule state and its storage (engine.cc): per partition, per rule, per key.
  struct PartitionState;
  struct RuleState;
  struct Fire;

  // A new rule's state, or null for a rule outside the engine's scope.
  std::unique_ptr<RuleState> NewRuleState(const Rule& rule) const;
  PartitionState& StateFor(int32_t partition);
  void Apply(int rule_index, RuleState& state, const cx::v1::InteractionEvent& event, Micros t);
  void ApplyKind(int rule_index, RuleState& state, const cx::v1::InteractionEvent& event, Micros t);
  void ApplyMatch(int r, RuleState& s, const cx::v1::InteractionEvent& e, Micros t);
  void ApplyCount(int r, RuleState& s, const cx::v1::InteractionEvent& e, Micros t);
  void ApplyWindow(int r, RuleState& s, const cx::v1::InteractionEvent& e, Micros t);
  void ApplySpike(int r, RuleState& s, const cx::v1::InteractionEvent& e, Micros t);
  void ApplySequence(int r, RuleState& s, const cx::v1::InteractionEvent& e, Micros t);
  void ApplyAbsence(int r, RuleState& s, const cx::v1::InteractionEvent& e, Micros t);
  // An absence rule's `on` event: settles the key's broken promise, then
  // starts, replaces or keeps (Rule::on_repeat) the pending one.
  void StartPromise(int r, RuleState& s, const cx::v1::InteractionEvent& e, Micros t);
  // Reports the promise in `record` as broken and forgets it.
  void Breach(int r, RuleState& s, uint32_t record);
  void FireDue(PartitionState& ps, Micros watermark);
  void Sweep(PartitionState& ps, Micros watermark);
  void BuildKey(const std::vector<expr::Expression>& key, const cx::v1::InteractionEvent& event);
  // Checkpoint's parts: the watermark, rules reloaded away, one rule's table.
  void CheckpointWatermark(PartitionState& ps, StateWriter& out);
  void CheckpointRetired(PartitionState& ps, StateWriter& out);
  template <typename Table>
  void CheckpointTable(int rule_index, Table& table, RuleState& s, StateWriter& out);
  RestoreDrop RestoreWatermark(PartitionState& ps, std::string_view value, Micros wall_now);
  template <typename Table>
  RestoreDrop RestoreKey(int rule_index, Table& table, RuleState& s, std::string_view key, std::string_view payload);
  // record_key_ as the changelog key of `key` in the rule named `rule`.
  void SetRecordKey(std::string_view rule, std::string_view key);
  // The current key's record in `table`, created if new; Table::kNone (for
  // KeyState, null) when the rule's key limit is hit.
  template <typename Table>
  uint32_t KeyIndex(int rule_index, Table& table);
  template <typename Table>
  typename Table::Value* KeyState(int rule_index, Table& table);
  void Forget(int rule_index, size_t n) { stats_[static_cast<size_t>(rule_index)]->keys.fetch_sub(static_cast<int64_t>(n), std::memory_order_relaxed); }
  // Per-rule buffers and finding templates for the current rules_.
  void Prepare(std::vector<RuleStats*> stats);
  void EmitFinding(int rule_index, std::string_view key, const Fire& fire);

  std::shared_ptr<const RuleSet> rules_;
  EngineOptions options_;
  FindingSink* sink_;
  std::vector<std::unique_ptr<PartitionState>> partitions_;  // by partition id
  std::vector<RuleStats*> stats_;              // by rule index
  std::unique_ptr<RuleStats[]> owned_stats_;  // when the caller gave none
  // Scratch reused for every event and finding, so steady state allocates
  // nothing (tests/engine/engine_alloc_test.cc).
  std::string key_;                           // the current event's key
  std::vector<std::string_view> evidence_;    // a finding's evidence event ids
  std::vector<std::string_view> key_values_;  // a finding's key, split
  // One finding per rule, its constant fields (rule, labels, key names...)
  // set once; a finding overwrites the rest in place.
  std::vector<cx::v1::Finding> findings_;
  std::vector<std::string> window_text_;  // per rule: its window as "7d", for {window}
  std::vector<SummaryTemplate> summaries_;  // per rule: its summary, parsed once
  std::vector<size_t> absence_rules_;     // the indices of the rules that set timers
  std::vector<uint64_t> version_tags_;    // per rule: its version, as the changelog names it
  std::string record_key_, record_value_;  // Checkpoint's scratch
  uint64_t next_seq_ = 0;
};

}  // namespace cxpulse
