// Engine: runs a RuleSet over events, one partition's state at a time, and
// hands findings to a FindingSink. All state (per rule, per key) is owned by
// the one thread that calls into the engine; no locks inside.
#pragma once

#include <cstdint>
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

  // A partition moved away: its state goes with it.
  void DropPartition(int32_t partition);

  Micros WatermarkOf(int32_t partition, Micros wall_now) const;
  // Keys held by a rule, over all partitions.
  size_t KeysHeld(int rule_index) const;
  const RuleSet& rules() const { return *rules_; }

 private:
  struct Entry {
    Micros time = 0;
    std::string event_id;
  };
  // count: at most `threshold` newest entries per key, in a ring.
  struct CountKey {
    std::vector<Entry> ring;
    uint32_t head = 0;  // index of the oldest entry
    uint32_t size = 0;
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
    absl::flat_hash_map<std::string, CountKey> counts;
    absl::flat_hash_map<std::string, Pending> pending;
    std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers;
  };
  struct PartitionState {
    explicit PartitionState(const EngineOptions& o) : watermark(o.allowed_lateness, o.idle_partition_timeout) {}
    Watermark watermark;
    std::vector<RuleState> rules;
    Micros last_sweep = 0;
  };

  PartitionState& StateFor(int32_t partition);
  void ApplyCount(int rule_index, RuleState& state, const cx::v1::InteractionEvent& event, Micros t);
  void ApplyAbsence(int rule_index, RuleState& state, const cx::v1::InteractionEvent& event, Micros t);
  void FireDue(PartitionState& ps, Micros watermark);
  void Sweep(PartitionState& ps, Micros watermark);
  void BuildKey(const Rule& rule, const cx::v1::InteractionEvent& event);
  void EmitFinding(int rule_index, std::string_view key, Micros fired_at, Micros window_start,
                   Micros window_end, int count);

  std::shared_ptr<const RuleSet> rules_;
  EngineOptions options_;
  FindingSink* sink_;
  std::vector<std::unique_ptr<PartitionState>> partitions_;  // by partition id
  std::string key_;  // scratch for the current event's key; reused, so no allocation per event
  std::vector<std::string_view> evidence_;
  cx::v1::Finding finding_;  // reused for every finding
  uint64_t next_seq_ = 0;
};

}  // namespace cxpulse
