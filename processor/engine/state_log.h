// The state a finding or a KPI depends on, as records of one input
// partition's changelog (daemon/changelog.h writes them to a compacted topic
// co-partitioned with the input, and reads them back on assignment).
//
// Every owner of state (the rule engine, the KPIs, the daemon's own position
// record) names its records with a first byte of its own, so one partition's
// changelog holds them side by side; a record's key is unique within its
// partition and compaction keeps its latest value. A checkpoint writes only
// what changed since the previous one (a dirty set per commit interval, as
// Kafka Streams' record cache does), and a tombstone for state that went.
//
// Values start with a format version byte; a reader meeting a version it
// does not know, a rule that changed or went, or bytes it cannot decode
// drops that record with a reason (RestoreDrop), counted and logged by the
// daemon, and never stops.
#pragma once

#include <string_view>

namespace cxpulse {

// Key prefixes, one per owner of state.
inline constexpr char kEngineRecord = 'e';
inline constexpr char kKpiRecord = 'k';
inline constexpr char kPositionRecord = 'p';  // the daemon's: the input offset the state reflects
// The centre stage's whole state in one record, in changelog partition 0
// (daemon/centre_stage.h): whole, so it needs no position record of its own.
inline constexpr char kCentreRecord = 'c';

// Where a checkpoint writes a partition's changed records.
class StateWriter {
 public:
  virtual ~StateWriter() = default;
  // The latest value of `key`.
  virtual void Put(std::string_view key, std::string_view value) = 0;
  // `key` holds no state any more: a tombstone, so compaction forgets it.
  virtual void Erase(std::string_view key) = 0;
};

// Passes every write on to `to`, counting them: whether a checkpoint wrote anything.
class CountingWriter final : public StateWriter {
 public:
  explicit CountingWriter(StateWriter& to) : to_(to) {}
  void Put(std::string_view key, std::string_view value) override { ++count_, to_.Put(key, value); }
  void Erase(std::string_view key) override { ++count_, to_.Erase(key); }
  uint64_t count() const { return count_; }

 private:
  StateWriter& to_;
  uint64_t count_ = 0;
};

// Why a restored record was not taken.
enum class RestoreDrop {
  kNone,            // taken
  kRuleRemoved,     // no loaded rule has its name
  kRuleChanged,     // the rule of that name has another version: it starts empty
  kUnknownVersion,  // written in a format version this build does not read
  kMalformed,       // does not decode
  kKeyLimit,        // the rule holds max_keys_per_rule keys already
  kCount
};

inline std::string_view RestoreDropName(RestoreDrop d) {
  switch (d) {
    case RestoreDrop::kNone: return "none";
    case RestoreDrop::kRuleRemoved: return "rule_removed";
    case RestoreDrop::kRuleChanged: return "rule_changed";
    case RestoreDrop::kUnknownVersion: return "unknown_version";
    case RestoreDrop::kMalformed: return "malformed";
    case RestoreDrop::kKeyLimit: return "key_limit";
    case RestoreDrop::kCount: break;
  }
  return "unknown";
}

}  // namespace cxpulse
