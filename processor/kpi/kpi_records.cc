#include "kpi/kpi_records.h"

namespace cxpulse {
namespace {

// Counts are doubles in memory, exact to 2^53: anything beyond is not ours.
constexpr int64_t kMaxCount = int64_t{1} << 53;

void PutByte(uint8_t b, std::string* out) { out->push_back(static_cast<char>(b)); }

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    PutByte(static_cast<uint8_t>(v | 0x80), out);
    v >>= 7;
  }
  PutByte(static_cast<uint8_t>(v), out);
}

// Zigzag, so small negative numbers stay short.
void PutSigned(int64_t v, std::string* out) {
  PutVarint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63), out);
}

void PutString(std::string_view s, std::string* out) {
  PutVarint(s.size(), out);
  out->append(s);
}

void Begin(std::string* out) {
  out->clear();
  PutByte(kKpiRecordVersion, out);
}

// Reads from a value, every step bounds-checked; once a read fails, ok()
// stays false and every later read returns 0.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  bool done() const { return ok_ && in_.empty(); }
  size_t left() const { return in_.size(); }

  uint8_t Byte() {
    if (in_.empty()) return Fail();
    const auto b = static_cast<uint8_t>(in_.front());
    in_.remove_prefix(1);
    return b;
  }
  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const uint8_t b = Byte();
      if (!ok_) return 0;
      if (shift == 63 && b > 1) return Fail();
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    return Fail();
  }
  int64_t Signed() {
    const uint64_t v = Varint();
    return static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1));
  }
  std::string_view String() {
    const uint64_t n = Varint();
    if (n > in_.size()) return Fail(), std::string_view();
    const std::string_view s = in_.substr(0, n);
    in_.remove_prefix(n);
    return s;
  }
  bool Flag(uint8_t flags, int bit) const { return (flags >> bit) & 1; }

 private:
  uint8_t Fail() {
    ok_ = false;
    in_ = {};
    return 0;
  }
  std::string_view in_;
  bool ok_ = true;
};

// kNone if `value` starts with the version this build writes.
RestoreDrop Version(Reader& r) {
  if (r.left() == 0) return RestoreDrop::kMalformed;
  return r.Byte() == kKpiRecordVersion ? RestoreDrop::kNone : RestoreDrop::kUnknownVersion;
}

RestoreDrop Done(const Reader& r) { return r.done() ? RestoreDrop::kNone : RestoreDrop::kMalformed; }

}  // namespace

void KpiRecordKey(KpiRecordKind kind, uint64_t id, std::string* key) {
  key->clear();
  key->push_back(kKpiRecord);
  key->push_back(static_cast<char>(kind));
  if (kind == KpiRecordKind::kClock) return;
  const int bytes = kind == KpiRecordKind::kPromise ? 4 : 8;
  for (int i = bytes - 1; i >= 0; --i) key->push_back(static_cast<char>(id >> (8 * i)));
}

RestoreDrop ParseKpiRecordKey(std::string_view key, KpiRecordId* out) {
  if (key.size() < 2 || key[0] != kKpiRecord) return RestoreDrop::kMalformed;
  size_t bytes = 0;
  switch (static_cast<KpiRecordKind>(key[1])) {
    case KpiRecordKind::kClock: bytes = 0; break;
    case KpiRecordKind::kPromise: bytes = 4; break;
    case KpiRecordKind::kBucket:
    case KpiRecordKind::kCustomer: bytes = 8; break;
    default: return RestoreDrop::kUnknownVersion;  // a kind of record a later build writes
  }
  if (key.size() != 2 + bytes) return RestoreDrop::kMalformed;
  out->kind = static_cast<KpiRecordKind>(key[1]);
  out->id = 0;
  for (size_t i = 2; i < key.size(); ++i) out->id = out->id << 8 | static_cast<uint8_t>(key[i]);
  return RestoreDrop::kNone;
}

void EncodeKpiClock(const KpiClockRecord& r, std::string* value) {
  Begin(value);
  PutSigned(r.max_event_time, value);
  PutSigned(r.watermark, value);
}

RestoreDrop DecodeKpiClock(std::string_view value, KpiClockRecord* out) {
  Reader r(value);
  if (const RestoreDrop v = Version(r); v != RestoreDrop::kNone) return v;
  out->max_event_time = r.Signed();
  out->watermark = r.Signed();
  return Done(r);
}

void EncodeKpiCustomer(const KpiCustomerRecord& r, std::string* value) {
  Begin(value);
  PutByte(static_cast<uint8_t>(r.has_last_start | r.has_current << 1), value);
  if (r.has_last_start) PutSigned(r.last_start, value);
  if (r.has_current) PutVarint(r.current, value);
}

RestoreDrop DecodeKpiCustomer(std::string_view value, KpiCustomerRecord* out) {
  Reader r(value);
  if (const RestoreDrop v = Version(r); v != RestoreDrop::kNone) return v;
  const uint8_t flags = r.Byte();
  if (flags == 0 || flags > 3) return RestoreDrop::kMalformed;  // a customer with nothing is a tombstone
  out->has_last_start = r.Flag(flags, 0);
  out->has_current = r.Flag(flags, 1);
  if (out->has_last_start) out->last_start = r.Signed();
  if (out->has_current) {
    const uint64_t id = r.Varint();
    if (id == 0 || id > UINT32_MAX) return RestoreDrop::kMalformed;
    out->current = static_cast<uint32_t>(id);
  }
  return Done(r);
}

void EncodeKpiPromise(const KpiPromiseRecord& r, std::string* value) {
  Begin(value);
  PutSigned(r.requested, value);
  PutSigned(r.due, value);
  PutVarint(r.customer, value);
  PutString(r.queue, value);
  PutByte(r.channel, value);
  PutByte(static_cast<uint8_t>(r.kept | r.rescheduled << 1 | r.rescheduled_before_due << 2 | r.due_fired << 3),
          value);
}

RestoreDrop DecodeKpiPromise(std::string_view value, KpiPromiseRecord* out) {
  Reader r(value);
  if (const RestoreDrop v = Version(r); v != RestoreDrop::kNone) return v;
  out->requested = r.Signed();
  out->due = r.Signed();
  out->customer = r.Varint();
  out->queue = r.String();
  out->channel = r.Byte();
  const uint8_t flags = r.Byte();
  if (flags > 15) return RestoreDrop::kMalformed;
  out->kept = r.Flag(flags, 0);
  out->rescheduled = r.Flag(flags, 1);
  out->rescheduled_before_due = r.Flag(flags, 2);
  out->due_fired = r.Flag(flags, 3);
  return Done(r);
}

void BeginKpiBucket(size_t cells, std::string* value) {
  Begin(value);
  PutVarint(cells, value);
}

// A cell: queue, channel, a mask of its non-zero counts, then those counts.
void AppendKpiCell(const KpiCellCounts& cell, std::string* value) {
  PutString(cell.queue, value);
  PutByte(cell.channel, value);
  uint32_t mask = 0;
  for (size_t k = 0; k < kKpiRecordCounts; ++k) mask |= static_cast<uint32_t>(cell.counts[k] != 0) << k;
  PutVarint(mask, value);
  for (size_t k = 0; k < kKpiRecordCounts; ++k) {
    if (cell.counts[k] != 0) PutSigned(cell.counts[k], value);
  }
}

RestoreDrop DecodeKpiBucket(std::string_view value, std::vector<KpiCellCounts>* out) {
  Reader r(value);
  if (const RestoreDrop v = Version(r); v != RestoreDrop::kNone) return v;
  const uint64_t cells = r.Varint();
  if (cells == 0 || cells > r.left() / 3) return RestoreDrop::kMalformed;  // a cell takes 3 bytes at least
  out->clear();
  for (uint64_t c = 0; c < cells && r.ok(); ++c) {
    KpiCellCounts& cell = out->emplace_back();
    cell.queue = r.String();
    cell.channel = r.Byte();
    const uint64_t mask = r.Varint();
    if (mask == 0 || mask >> kKpiRecordCounts != 0) return RestoreDrop::kMalformed;
    for (size_t k = 0; k < kKpiRecordCounts; ++k) {
      if (((mask >> k) & 1) == 0) continue;
      cell.counts[k] = r.Signed();
      if (cell.counts[k] == 0 || cell.counts[k] > kMaxCount || cell.counts[k] < -kMaxCount) {
        return RestoreDrop::kMalformed;
      }
    }
  }
  return Done(r);
}

}  // namespace cxpulse
