// Engine: runs a RuleSet over events, one partition's state at a time, and
// hands findings to a FindingSink. All state (per rule, per key) is owned by
// the one thread that calls into the engine; no locks inside. The per-rule
// statistics are atomics written only by that thread, read by any.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/time.h"
#include "cx/v1/event.pb.h"
#include "cx/v1/finding.pb.h"
#include "engine/finding_sink.h"
#include "engine/rule_set.h"
#include "engine/watermark.h"

namespace cxpulse {

struct EngineOptions {
  Micros allowed_lateness = 30 * kMicrosPerSecond;
  Micros idle_partition_timeout = 10 * kMicrosPerSecond;
  // Keys one rule may hold in this engine; beyond it new keys are not
  // tracked (and counted in RuleStats::key_limit_hits), so memory is bounded.
  size_t max_keys_per_rule = 2'000'000;
};

// Per rule, written by the engine's thread, readable from any (relaxed).
struct RuleStats {
  std::atomic<uint64_t> evaluations{0};
  std::atomic<uint64_t> findings{0};
  std::atomic<uint64_t> key_limit_hits{0};
  std::atomic<int64_t> keys{0};
};

class Engine final {
 public:
  Engine(std::shared_ptr<const RuleSet> rules, EngineOptions options, FindingSink* sink);

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

  // A partition moved away: its state goes with it.
  void DropPartition(int32_t partition);

  Micros WatermarkOf(int32_t partition, Micros wall_now) const;
  size_t KeysHeld(int rule_index) const;
  const RuleStats& Stats(int rule_index) const { return stats_[static_cast<size_t>(rule_index)]; }
  const RuleSet& rules() const { return *rules_; }

 private:
  struct Entry {
    Micros time = 0;
    std::string event_id;
  };
  // Up to N (time, event id) pairs, oldest first; capacity fixed at creation.
  struct Ring {
    std::vector<Entry> slots;
    uint32_t head = 0;
    uint32_t size = 0;
    void Push(Micros t, const std::string& id);
    const Entry& At(uint32_t i) const { return slots[(head + i) % slots.size()]; }
    void PopOldest() { head = static_cast<uint32_t>((head + 1) % slots.size()), --size; }
  };
  struct CountKey {
    Ring ring;
    Micros cooldown_until = Watermark::kNone;
  };
  struct Bucket {
    int64_t index = INT64_MIN;
    double a = 0;  // sum: the total; ratio: numerator events
    double b = 0;  // ratio: denominator events
  };
  static constexpr int kBuckets = 12;
  static constexpr uint32_t kEvidence = 5;
  struct WindowKey {  // sum, ratio
    std::array<Bucket, kBuckets> buckets;
    Ring evidence;
    Micros last_seen = 0;
    Micros cooldown_until = Watermark::kNone;
  };
  struct SpikeKey {
    int64_t window_index = INT64_MIN;
    int64_t count = 0;
    double baseline = 0;  // events per window, exponentially weighted
    int64_t windows_seen = 0;
    Ring evidence;
    Micros last_seen = 0;
    Micros cooldown_until = Watermark::kNone;
  };
  struct SequenceKey {
    size_t next_step = 0;
    Micros start = 0;
    std::vector<std::string> evidence;
    Micros last_seen = 0;
    Micros cooldown_until = Watermark::kNone;
  };
  struct Pending {
    Micros start = 0;
    Micros due = 0;
    uint64_t seq = 0;
    std::string event_id;
  };
  struct Timer {
    Micros due;
    uint64_t seq;
    std::string key;
    bool operator>(const Timer& o) const { return due != o.due ? due > o.due : seq > o.seq; }
  };
  struct RuleState {
    absl::flat_hash_map<std::string, Micros> cooldowns;  // match
    absl::flat_hash_map<std::string, CountKey> counts;
    absl::flat_hash_map<std::string, WindowKey> windows;
    absl::flat_hash_map<std::string, SpikeKey> spikes;
    absl::flat_hash_map<std::string, SequenceKey> sequences;
    absl::flat_hash_map<std::string, Pending> pending;
    std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers;
  };
  struct PartitionState {
    explicit PartitionState(const EngineOptions& o) : watermark(o.allowed_lateness, o.idle_partition_timeout) {}
    Watermark watermark;
    std::vector<RuleState> rules;
    Micros last_sweep = 0;
  };
  struct Fire {
    Micros at = 0;
    Micros window_start = 0;
    Micros window_end = 0;
    int64_t count = 0;
    double value = 0;
    double ratio = 0;
    double baseline = 0;
  };

  PartitionState& StateFor(int32_t partition);
  void Apply(int rule_index, RuleState& state, const cx::v1::InteractionEvent& event, Micros t);
  void ApplyMatch(int r, RuleState& s, const cx::v1::InteractionEvent& e, Micros t);
  void ApplyCount(int r, RuleState& s, const cx::v1::InteractionEvent& e, Micros t);
  void ApplyWindow(int r, RuleState& s, const cx::v1::InteractionEvent& e, Micros t);
  void ApplySpike(int r, RuleState& s, const cx::v1::InteractionEvent& e, Micros t);
  void ApplySequence(int r, RuleState& s, const cx::v1::InteractionEvent& e, Micros t);
  void ApplyAbsence(int r, RuleState& s, const cx::v1::InteractionEvent& e, Micros t);
  void FireDue(PartitionState& ps, Micros watermark);
  void Sweep(PartitionState& ps, Micros watermark);
  void BuildKey(const std::vector<expr::Expression>& key, const cx::v1::InteractionEvent& event);
  // Finds or creates the key's state; null when the rule's key limit is hit.
  template <typename Map>
  typename Map::mapped_type* KeyState(int rule_index, Map& map);
  void Forget(int rule_index, size_t n) { stats_[static_cast<size_t>(rule_index)].keys.fetch_sub(static_cast<int64_t>(n), std::memory_order_relaxed); }
  void EmitFinding(int rule_index, std::string_view key, const Fire& fire);

  std::shared_ptr<const RuleSet> rules_;
  EngineOptions options_;
  FindingSink* sink_;
  std::vector<std::unique_ptr<PartitionState>> partitions_;  // by partition id
  std::unique_ptr<RuleStats[]> stats_;
  std::string key_;  // scratch for the current event's key; reused, so no allocation per event
  std::vector<std::string_view> evidence_;
  cx::v1::Finding finding_;  // reused for every finding
  uint64_t next_seq_ = 0;
};

}  // namespace cxpulse
