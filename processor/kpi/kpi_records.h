// The KPIs' changelog records (engine/state_log.h): their keys and versioned
// values, and the bounds-checked reading of both. One record per partition
// clock, per bucket (the partition's non-zero cells in it), per customer
// (newest contact start, current promise) and per pending promise, so a
// checkpoint rewrites only what an interval touched. Cells are written as a
// queue label's name and a channel number: label indexes are per process.
// Pure functions; the KPI aggregator's shard thread calls them.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/time.h"
#include "engine/state_log.h"

namespace cxpulse {

// The byte after kKpiRecord.
enum class KpiRecordKind : char { kClock = 'w', kBucket = 'b', kCustomer = 'c', kPromise = 'q' };
inline constexpr uint8_t kKpiRecordVersion = 1;
// The values a bucket counts per cell (the Kpi enum's count, kpi/kpi.h).
inline constexpr size_t kKpiRecordCounts = 17;

// A key: kKpiRecord, the kind, then the id big-endian (none for the clock).
void KpiRecordKey(KpiRecordKind kind, uint64_t id, std::string* key);

struct KpiClockRecord {
  Micros max_event_time = 0;  // the newest event time seen
  Micros watermark = 0;       // as of the last Tick: every timer before it has fired
};
struct KpiCellCounts {
  std::string_view queue;  // the label's name
  uint8_t channel = 0;
  std::array<int64_t, kKpiRecordCounts> counts{};  // integers: the sums are in microseconds
};
struct KpiCustomerRecord {
  bool has_last_start = false;
  bool has_current = false;
  Micros last_start = 0;
  uint32_t current = 0;  // the promise id (the partition's own)
};
struct KpiPromiseRecord {
  Micros requested = 0;
  Micros due = 0;
  uint64_t customer = 0;
  std::string_view queue;
  uint8_t channel = 0;
  bool kept = false;
  bool rescheduled = false;
  bool rescheduled_before_due = false;
  bool due_fired = false;
};

// Each replaces *value with the record's versioned bytes.
void EncodeKpiClock(const KpiClockRecord& r, std::string* value);
void EncodeKpiCustomer(const KpiCustomerRecord& r, std::string* value);
void EncodeKpiPromise(const KpiPromiseRecord& r, std::string* value);
// A bucket's value is built a cell at a time: Begin, then each cell.
void BeginKpiBucket(size_t cells, std::string* value);
void AppendKpiCell(const KpiCellCounts& cell, std::string* value);

// A parsed key: its kind and id. kNone, or why the key is not one this build reads.
struct KpiRecordId {
  KpiRecordKind kind = KpiRecordKind::kClock;
  uint64_t id = 0;
};
RestoreDrop ParseKpiRecordKey(std::string_view key, KpiRecordId* out);

// kNone and the record, or why not. Strings in the result view `value`.
RestoreDrop DecodeKpiClock(std::string_view value, KpiClockRecord* out);
RestoreDrop DecodeKpiCustomer(std::string_view value, KpiCustomerRecord* out);
RestoreDrop DecodeKpiPromise(std::string_view value, KpiPromiseRecord* out);
RestoreDrop DecodeKpiBucket(std::string_view value, std::vector<KpiCellCounts>* out);

}  // namespace cxpulse
