#include "engine/engine.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <queue>
#include <type_traits>

#include "common/hash.h"
#include "common/strings.h"
#include "engine/key_table.h"
#include "engine/ring.h"
#include "engine/state_codec.h"

namespace cxpulse {
namespace {

// Key values are joined with the ASCII unit separator, which no id contains.
constexpr char kKeySeparator = '\x1f';

// Idle keys are swept at most this often per partition, bounding the work.
constexpr Micros kSweepInterval = 10 * kMicrosPerSecond;

int64_t FloorDiv(Micros t, Micros width) { return t >= 0 ? t / width : -((-t + width - 1) / width); }

void AppendValue(const expr::Value& v, std::string* out) {
  switch (v.type) {
    case expr::Type::kString: out->append(v.s.data(), v.s.size()); break;
    case expr::Type::kBool: out->append(v.b ? "true" : "false"); break;
    case expr::Type::kDouble: fmt::format_to(std::back_inserter(*out), "{}", v.d); break;
    default: fmt::format_to(std::back_inserter(*out), "{}", v.i); break;
  }
}

// Hex64's text, into a string that keeps its buffer.
void AssignHex64(uint64_t v, std::string* out) {
  char hex[16];
  for (int i = 15; i >= 0; --i, v >>= 4) hex[i] = "0123456789abcdef"[v & 15];
  out->assign(hex, sizeof hex);
}

// ---- Storage for per-key state ----------------------------------------------
// Resident memory per tracked key bounds how many customers one engine can
// follow, and state that comes and goes (keys swept, promises kept, contacts
// transferred for the first time) must reuse memory rather than allocate per
// event. Hence: text in place where std::string would spill (engine/text.h),
// records in slabs with free lists (engine/slab.h), a hash index of 4-byte
// record numbers (engine/key_table.h), and time-ordered rings of events in
// size classes (engine/ring.h). A count key holding one event takes about 76
// bytes in all (tests/bench/memory_bench.cc; about 300 with std::string keys
// and a vector per key).

// ---- Per-key state ------------------------------------------------------------

struct CountKey {
  Ring ring;  // N entries are all a threshold of N ever needs
  Micros cooldown_until = Watermark::kNone;
};

struct Bucket {
  int64_t index = INT64_MIN;
  double a = 0;  // sum: the total; ratio: numerator events
  double b = 0;  // ratio: denominator events
};
constexpr int kBuckets = 12;
constexpr uint32_t kEvidence = 5;

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
  Micros start = 0;
  Micros last_seen = 0;
  Micros cooldown_until = Watermark::kNone;
  uint32_t evidence = Slab<RingEntry>::kNone;  // a block of rings.base(): one entry per step
  uint32_t next_step = 0;
};

struct Pending {
  Micros start = 0;
  Micros due = 0;
  uint64_t seq = 0;  // 0: no promise (a released record)
  Text<16> event_id;
};

// A promise's deadline. It names the record, not the key: a newer promise
// for the key (or the record's reuse by another key) changes the record's
// seq, and the timer is then skipped.
struct Timer {
  Micros due;
  uint64_t seq;
  uint32_t record;
  bool operator>(const Timer& o) const { return due != o.due ? due > o.due : seq > o.seq; }
};

// A count rule's ring holds every event of its window up to this many (or
// its threshold, if higher); beyond, {count} says "at least".
constexpr uint32_t kMostCounted = 256;

// How many entries a ring of this rule starts widening to (its threshold, a
// sequence's steps), and the most it holds.
uint32_t RingBase(const Rule& rule) {
  switch (rule.kind) {
    case RuleKind::kCount: return static_cast<uint32_t>(rule.threshold);
    case RuleKind::kSum:
    case RuleKind::kRatio:
    case RuleKind::kSpike: return kEvidence;
    case RuleKind::kSequence: return static_cast<uint32_t>(rule.steps.size());
    default: return 1;
  }
}
uint32_t RingMost(const Rule& rule) {
  return rule.kind == RuleKind::kCount ? std::max(kMostCounted, RingBase(rule)) : RingBase(rule);
}

// What a key's state holds outside its record (ring and evidence blocks),
// given back before the record goes.
void ReleaseHeld(Micros&, Rings&) {}
void ReleaseHeld(CountKey& k, Rings& r) { k.ring.Release(r); }
void ReleaseHeld(WindowKey& k, Rings& r) { k.evidence.Release(r); }
void ReleaseHeld(SpikeKey& k, Rings& r) { k.evidence.Release(r); }
void ReleaseHeld(SequenceKey& k, Rings& r) {
  if (k.evidence != Slab<RingEntry>::kNone) r.base().Give(k.evidence);
  k.evidence = Slab<RingEntry>::kNone;
}
void ReleaseHeld(Pending&, Rings&) {}

// ---- Changelog records --------------------------------------------------------
// One record per key of a rule, and one for the partition's watermark, in the
// partition's changelog (engine/state_log.h). Keys:
//   rule key:   'e' <rule name> '\0' <key text (values joined by 0x1f)>
//   watermark:  'e'
// Values start with the format version byte, kFormatVersion. Numbers are
// 8 bytes little-endian (times in micros, counts and doubles' bits), counts
// and lengths varints, strings a varint length then the bytes
// (engine/state_codec.h). After the version byte:
//   watermark:  max event time, floor (the watermark as of the last event or of the
//               last Tick, whichever is later: it can never again be below it)
//   rule key:   the rule's version tag (8 bytes: StableHash of Rule::version),
//               the rule's kind (1 byte, RuleKind), then by kind:
//     match:     cooldown until
//     count:     cooldown until, ring
//     sum/ratio: last seen, cooldown until, n <= 12 buckets of (index, total, events), evidence ring
//     spike:     window index, count, baseline, windows seen, last seen, cooldown until, evidence ring
//     sequence:  start, last seen, cooldown until, next step, next step's evidence ids
//     absence:   start, due, event id
//   ring:        n (at most what the rule's rings hold), lossy (0/1), n of (time, event id), oldest first
// A decoder takes only what the engine itself could have built: counts
// within the rule's bounds, times and counts within +-2^62, finite numbers,
// nothing left over; anything else is kMalformed and leaves no state.
// Timer sequence numbers are the engine's own and are not written: a restored
// promise gets a new one (so two promises due at the same instant may fire in
// another order than they would have).
constexpr uint8_t kFormatVersion = 1;
constexpr size_t kRuleHeader = 1 + 8 + 1;  // format version, version tag, kind

void Encode(RecordWriter& w, const Ring& ring, Rings& rings) {
  w.Varint(ring.size);
  w.Byte(ring.lossy);
  for (uint32_t i = 0; i < ring.size; ++i) {
    const RingEntry& e = ring.At(rings, i);
    w.Signed(e.time);
    w.Bytes(e.event_id.view());
  }
}
void Decode(RecordReader& in, Ring& ring, Rings& rings) {
  const uint64_t n = in.Varint(rings.most());
  const uint8_t lossy = in.Byte();
  in.Check(lossy <= 1);
  for (uint64_t i = 0; i < n && in.ok(); ++i) {
    const Micros t = in.Bounded();
    const std::string_view id = in.Bytes();
    if (in.ok()) ring.Push(rings, t, id);
  }
  ring.lossy = lossy & 1;
}

void Encode(RecordWriter& w, const Micros& cooldown_until, Rings&) { w.Signed(cooldown_until); }
void Decode(RecordReader& in, const Rule&, Rings&, Micros& cooldown_until) { cooldown_until = in.Bounded(); }

void Encode(RecordWriter& w, const CountKey& k, Rings& rings) {
  w.Signed(k.cooldown_until);
  Encode(w, k.ring, rings);
}
void Decode(RecordReader& in, const Rule&, Rings& rings, CountKey& k) {
  k.cooldown_until = in.Bounded();
  Decode(in, k.ring, rings);
}

void Encode(RecordWriter& w, const WindowKey& k, Rings& rings) {
  w.Signed(k.last_seen);
  w.Signed(k.cooldown_until);
  w.Varint(static_cast<uint64_t>(std::count_if(k.buckets.begin(), k.buckets.end(),
                                               [](const Bucket& b) { return b.index != INT64_MIN; })));
  for (const Bucket& b : k.buckets) {
    if (b.index == INT64_MIN) continue;
    w.Signed(b.index);
    w.Double(b.a);
    w.Double(b.b);
  }
  Encode(w, k.evidence, rings);
}
void Decode(RecordReader& in, const Rule&, Rings& rings, WindowKey& k) {
  k.last_seen = in.Bounded();
  k.cooldown_until = in.Bounded();
  const uint64_t n = in.Varint(kBuckets);
  for (uint64_t i = 0; i < n && in.ok(); ++i) {
    const int64_t index = in.Bounded();
    Bucket& b = k.buckets[static_cast<size_t>(((index % kBuckets) + kBuckets) % kBuckets)];
    in.Check(b.index == INT64_MIN);  // a bucket's place follows from its index: two cannot share one
    b = Bucket{index, in.Double(), in.Double()};
  }
  Decode(in, k.evidence, rings);
}

void Encode(RecordWriter& w, const SpikeKey& k, Rings& rings) {
  w.Signed(k.window_index);
  w.Signed(k.count);
  w.Double(k.baseline);
  w.Signed(k.windows_seen);
  w.Signed(k.last_seen);
  w.Signed(k.cooldown_until);
  Encode(w, k.evidence, rings);
}
void Decode(RecordReader& in, const Rule& rule, Rings& rings, SpikeKey& k) {
  const int64_t window_index = in.Signed();
  k.window_index = in.Check(window_index == INT64_MIN || std::abs(window_index) <= RecordReader::kBound) ? window_index
                                                                                                       : INT64_MIN;
  k.count = in.Bounded();
  k.baseline = in.Double();
  k.windows_seen = in.Bounded();
  // windows_seen * window is compared with the baseline's horizon.
  in.Check(k.count >= 0 && k.windows_seen >= 0 && k.windows_seen <= RecordReader::kBound / std::max<Micros>(1, rule.window));
  k.last_seen = in.Bounded();
  k.cooldown_until = in.Bounded();
  Decode(in, k.evidence, rings);
}

void Encode(RecordWriter& w, const SequenceKey& k, Rings& rings) {
  w.Signed(k.start);
  w.Signed(k.last_seen);
  w.Signed(k.cooldown_until);
  w.Varint(k.next_step);
  const RingEntry* steps = k.next_step > 0 ? rings.base().Block(k.evidence) : nullptr;
  for (uint32_t i = 0; i < k.next_step; ++i) w.Bytes(steps[i].event_id.view());
}
void Decode(RecordReader& in, const Rule& rule, Rings& rings, SequenceKey& k) {
  k.start = in.Bounded();
  k.last_seen = in.Bounded();
  k.cooldown_until = in.Bounded();
  // A sequence that completes starts over, so at most all steps but the last are matched.
  k.next_step = static_cast<uint32_t>(in.Varint(rule.steps.size() - 1));
  if (!in.ok() || k.next_step == 0) return;
  k.evidence = rings.base().Take();
  RingEntry* steps = rings.base().Block(k.evidence);
  for (uint32_t i = 0; i < k.next_step; ++i) steps[i].event_id.Assign(in.Bytes());
}

void Encode(RecordWriter& w, const Pending& p, Rings&) {
  w.Signed(p.start);
  w.Signed(p.due);
  w.Bytes(p.event_id.view());
}
void Decode(RecordReader& in, const Rule&, Rings&, Pending& p) {
  p.start = in.Bounded();
  p.due = in.Bounded();
  p.event_id.Assign(in.Bytes());
}

}  // namespace

struct Engine::RuleState {
  KeyTable<Micros> cooldowns;  // match
  KeyTable<CountKey> counts;
  KeyTable<WindowKey> windows;
  KeyTable<SpikeKey> spikes;
  KeyTable<SequenceKey> sequences;
  KeyTable<Pending> pending;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers;
  Rings rings;

  // Calls f with the one table a rule of this kind keeps its keys in.
  template <typename F>
  auto Visit(RuleKind kind, F&& f) {
    switch (kind) {
      case RuleKind::kMatch: return f(cooldowns);
      case RuleKind::kCount: return f(counts);
      case RuleKind::kSum:
      case RuleKind::kRatio: return f(windows);
      case RuleKind::kSpike: return f(spikes);
      case RuleKind::kSequence: return f(sequences);
      case RuleKind::kAbsence: break;
    }
    return f(pending);
  }

  size_t keys() const {
    return cooldowns.size() + counts.size() + windows.size() + spikes.size() + sequences.size() + pending.size();
  }
};

std::unique_ptr<Engine::RuleState> Engine::NewRuleState(const Rule& rule) const {
  if (!Selects(options_.scope, rule.scope)) return nullptr;
  auto state = std::make_unique<RuleState>();
  state->rings = Rings(RingBase(rule), RingMost(rule));
  if (options_.track_changes) state->Visit(rule.kind, [](auto& table) { table.TrackChanges(); });
  return state;
}

struct Engine::PartitionState {
  explicit PartitionState(const EngineOptions& o) : watermark(o.allowed_lateness, o.idle_partition_timeout) {}
  Watermark watermark;
  // By rule index, null for a rule outside the engine's scope; held by
  // pointer because a RuleState cannot move (its tables hand out stable
  // records) but must change places on a reload.
  std::vector<std::unique_ptr<RuleState>> rules;
  Micros last_sweep = 0;

  // Checkpoints (EngineOptions::track_changes).
  // The watermark Tick last fired timers at: past the floor when the
  // partition idled forward, and where a restored watermark must start.
  Micros ticked_to = Watermark::kNone;
  // The watermark record as last written (or restored).
  Micros saved_max_event_time = Watermark::kNone;
  Micros saved_floor = Watermark::kNone;
  // The state of rules a reload removed or changed, kept until the next
  // checkpoint writes a tombstone for each of its keys.
  struct Retired {
    std::string rule;
    RuleKind kind;
    std::unique_ptr<RuleState> state;
  };
  std::vector<Retired> retired;
};

struct Engine::Fire {
  Micros at = 0;
  Micros window_start = 0;
  Micros window_end = 0;
  int64_t count = 0;
  double value = 0;
  double ratio = 0;
  double baseline = 0;
  bool count_is_lower_bound = false;
};

Engine::Engine(std::shared_ptr<const RuleSet> rules, EngineOptions options, FindingSink* sink,
               std::vector<RuleStats*> stats)
    : rules_(std::move(rules)), options_(options), sink_(sink) {
  key_.reserve(256);
  Prepare(std::move(stats));
}

void Engine::Prepare(std::vector<RuleStats*> stats) {
  const size_t n = rules_->rules().size();
  if (stats.size() != n) {
    owned_stats_.reset(new RuleStats[n]);
    stats.clear();
    for (size_t i = 0; i < n; ++i) stats.push_back(&owned_stats_[i]);
  }
  stats_ = std::move(stats);
  findings_.clear();
  window_text_.clear();
  summaries_.clear();
  absence_rules_.clear();
  version_tags_.clear();
  findings_.reserve(n);
  size_t most_evidence = kEvidence, most_key_values = 1;
  for (const Rule& rule : rules_->rules()) {
    most_evidence = std::max<size_t>(most_evidence, RingMost(rule));
    most_key_values = std::max(most_key_values, rule.key.size() + 1);
    cx::v1::Finding& f = findings_.emplace_back();
    f.set_rule(rule.name);
    f.set_rule_version(rule.version);
    f.set_family(rule.family);
    f.set_severity(rule.severity);
    for (const std::string& name : rule.key_names) f.add_key()->set_field(name);
    for (const auto& [k, v] : rule.labels) (*f.mutable_labels())[k] = v;
    f.set_escalate_to(rule.escalate_to);
    window_text_.push_back(rule.window > 0 ? FormatDuration(rule.window) : std::string());
    summaries_.emplace_back(rule.summary, rule.key_names);
    version_tags_.push_back(StableHash().Add(rule.version).value());
    if (rule.kind == RuleKind::kAbsence && Selects(options_.scope, rule.scope)) {
      absence_rules_.push_back(findings_.size() - 1);
    }
  }
  evidence_.reserve(most_evidence);
  key_values_.reserve(most_key_values);
}

Engine::~Engine() = default;

Engine::PartitionState& Engine::StateFor(int32_t partition) {
  const auto p = static_cast<size_t>(partition);
  if (p >= partitions_.size()) partitions_.resize(p + 1);
  if (!partitions_[p]) {
    partitions_[p] = std::make_unique<PartitionState>(options_);
    for (const Rule& rule : rules_->rules()) partitions_[p]->rules.push_back(NewRuleState(rule));
  }
  return *partitions_[p];
}

void Engine::SetAtEnd(int32_t partition, bool at_end, Micros wall_now) {
  StateFor(partition).watermark.SetAtEnd(at_end, wall_now);
}

void Engine::HeardUntil(int32_t partition, Micros heard_at, Micros wall_now) {
  StateFor(partition).watermark.HeardUntil(heard_at, wall_now);
}

void Engine::DropPartition(int32_t partition) {
  const auto p = static_cast<size_t>(partition);
  if (p >= partitions_.size() || !partitions_[p]) return;
  for (size_t r = 0; r < rules_->rules().size(); ++r) {
    if (const RuleState* s = partitions_[p]->rules[r].get()) Forget(static_cast<int>(r), s->keys());
  }
  partitions_[p].reset();
}

Micros Engine::WatermarkOf(int32_t partition, Micros wall_now) const {
  const auto p = static_cast<size_t>(partition);
  if (p >= partitions_.size() || !partitions_[p]) return Watermark::kNone;
  return partitions_[p]->watermark.Current(wall_now);
}

size_t Engine::KeysHeld(int rule_index) const {
  return static_cast<size_t>(stats_[static_cast<size_t>(rule_index)]->keys.load(std::memory_order_relaxed));
}

void Engine::SwapRules(std::shared_ptr<const RuleSet> rules, std::vector<RuleStats*> stats) {
  const std::vector<Rule>& old_rules = rules_->rules();
  const std::vector<Rule>& new_rules = rules->rules();
  // Where each new rule's state comes from: the old rule of the same name
  // and version, or nowhere.
  std::vector<int> from(new_rules.size(), -1);
  std::vector<bool> kept(old_rules.size(), false);
  for (size_t i = 0; i < new_rules.size(); ++i) {
    for (size_t j = 0; j < old_rules.size(); ++j) {
      if (!kept[j] && old_rules[j].name == new_rules[i].name && old_rules[j].version == new_rules[i].version) {
        from[i] = static_cast<int>(j);
        kept[j] = true;
        break;
      }
    }
  }
  for (auto& ps : partitions_) {
    if (!ps) continue;
    std::vector<std::unique_ptr<RuleState>> moved;
    for (size_t i = 0; i < new_rules.size(); ++i) {
      moved.push_back(from[i] >= 0 ? std::move(ps->rules[static_cast<size_t>(from[i])]) : NewRuleState(new_rules[i]));
    }
    // Dropped state leaves its old rule's key count, and the changelog at
    // the next checkpoint.
    for (size_t j = 0; j < old_rules.size(); ++j) {
      if (kept[j] || !ps->rules[j]) continue;
      Forget(static_cast<int>(j), ps->rules[j]->keys());
      if (options_.track_changes) ps->retired.push_back({old_rules[j].name, old_rules[j].kind, std::move(ps->rules[j])});
    }
    ps->rules = std::move(moved);
  }
  // Kept state moves its key count to the new stats, when they differ.
  std::vector<int64_t> carried(new_rules.size(), 0);
  for (size_t i = 0; i < new_rules.size(); ++i) {
    if (from[i] >= 0) carried[i] = stats_[static_cast<size_t>(from[i])]->keys.load(std::memory_order_relaxed);
  }
  std::vector<RuleStats*> old_stats = stats_;
  std::unique_ptr<RuleStats[]> old_owned = std::move(owned_stats_);
  rules_ = std::move(rules);
  Prepare(std::move(stats));
  for (size_t i = 0; i < new_rules.size(); ++i) {
    if (from[i] < 0 || stats_[i] == old_stats[static_cast<size_t>(from[i])]) continue;
    old_stats[static_cast<size_t>(from[i])]->keys.fetch_sub(carried[i], std::memory_order_relaxed);
    stats_[i]->keys.fetch_add(carried[i], std::memory_order_relaxed);
  }
}

Engine::Outcome Engine::Process(int32_t partition, const cx::v1::InteractionEvent& event, Micros wall_now) {
  PartitionState& ps = StateFor(partition);
  const Micros t = ToMicros(event.occurred_at());
  if (ps.watermark.IsLate(t, wall_now)) return Outcome::kLate;
  ps.watermark.Observe(t, wall_now);
  for (int rule_index : rules_->RulesFor(event.body_case(), options_.scope)) {
    Apply(rule_index, *ps.rules[static_cast<size_t>(rule_index)], event, t);
  }
  FireDue(ps, ps.watermark.Current(wall_now));
  return Outcome::kProcessed;
}

void Engine::Apply(int r, RuleState& s, const cx::v1::InteractionEvent& e, Micros t) {
  RuleStats& stats = *stats_[static_cast<size_t>(r)];
  // Single writer: a load and a store, no locked read-modify-write.
  const uint64_t n = stats.evaluations.load(std::memory_order_relaxed);
  stats.evaluations.store(n + 1, std::memory_order_relaxed);
  if (n % RuleStats::kTimingSample != 0) return ApplyKind(r, s, e, t);
  const auto started = std::chrono::steady_clock::now();
  ApplyKind(r, s, e, t);
  const auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - started);
  stats.evaluation_nanos.store(stats.evaluation_nanos.load(std::memory_order_relaxed) +
                                   static_cast<uint64_t>(nanos.count()) * RuleStats::kTimingSample,
                               std::memory_order_relaxed);
}

void Engine::ApplyKind(int r, RuleState& s, const cx::v1::InteractionEvent& e, Micros t) {
  switch (rules_->rules()[static_cast<size_t>(r)].kind) {
    case RuleKind::kMatch: return ApplyMatch(r, s, e, t);
    case RuleKind::kCount: return ApplyCount(r, s, e, t);
    case RuleKind::kSum:
    case RuleKind::kRatio: return ApplyWindow(r, s, e, t);
    case RuleKind::kSpike: return ApplySpike(r, s, e, t);
    case RuleKind::kSequence: return ApplySequence(r, s, e, t);
    case RuleKind::kAbsence: return ApplyAbsence(r, s, e, t);
  }
}

void Engine::Tick(Micros wall_now) {
  for (auto& ps : partitions_) {
    if (!ps) continue;
    const Micros wm = ps->watermark.Current(wall_now);
    FireDue(*ps, wm);
    ps->ticked_to = std::max(ps->ticked_to, wm);
    if (wall_now - ps->last_sweep >= kSweepInterval) {
      Sweep(*ps, wm);
      ps->last_sweep = wall_now;
    }
  }
}

void Engine::AdvanceWatermark(int32_t partition, Micros to, Micros wall_now) {
  PartitionState& ps = StateFor(partition);
  ps.watermark.AdvanceTo(to, wall_now);
  FireDue(ps, ps.watermark.Current(wall_now));
}

void Engine::BuildKey(const std::vector<expr::Expression>& key, const cx::v1::InteractionEvent& event) {
  key_.clear();
  for (size_t i = 0; i < key.size(); ++i) {
    if (i > 0) key_.push_back(kKeySeparator);
    AppendValue(key[i].Evaluate(event), &key_);
  }
}

template <typename Table>
uint32_t Engine::KeyIndex(int rule_index, Table& table) {
  const uint32_t found = table.Find(key_);
  if (found != Table::kNone) {
    table.Touch(found);
    return found;
  }
  RuleStats& stats = *stats_[static_cast<size_t>(rule_index)];
  if (static_cast<size_t>(stats.keys.load(std::memory_order_relaxed)) >= options_.max_keys_per_rule) {
    stats.key_limit_hits.fetch_add(1, std::memory_order_relaxed);
    return Table::kNone;
  }
  stats.keys.fetch_add(1, std::memory_order_relaxed);
  const uint32_t inserted = table.Insert(key_);
  table.Touch(inserted);
  return inserted;
}

template <typename Table>
typename Table::Value* Engine::KeyState(int rule_index, Table& table) {
  const uint32_t i = KeyIndex(rule_index, table);
  return i == Table::kNone ? nullptr : &table.At(i);
}

void Engine::ApplyMatch(int r, RuleState& s, const cx::v1::InteractionEvent& e, Micros t) {
  const Rule& rule = rules_->rules()[static_cast<size_t>(r)];
  if (!rule.on.Matches(e)) return;
  BuildKey(rule.key, e);
  if (rule.cooldown > 0) {
    Micros* until = KeyState(r, s.cooldowns);
    if (until == nullptr) return;
    if (*until != 0 && t < *until) return;
    *until = t + rule.cooldown;
  }
  evidence_.assign(1, e.event_id());
  EmitFinding(r, key_, Fire{.at = t, .window_start = t, .window_end = t, .count = 1});
}

void Engine::ApplyCount(int r, RuleState& s, const cx::v1::InteractionEvent& e, Micros t) {
  const Rule& rule = rules_->rules()[static_cast<size_t>(r)];
  if (!rule.on.Matches(e)) return;
  BuildKey(rule.key, e);
  CountKey* ck = KeyState(r, s.counts);
  if (ck == nullptr) return;
  Ring& ring = ck->ring;
  // The window ends at the key's newest event, which is this one unless it
  // arrived out of order: (newest - window, newest].
  const Micros newest = ring.size == 0 ? t : std::max(t, ring.At(s.rings, ring.size - 1u).time);
  if (ring.size > 0 && ring.At(s.rings, 0).time <= newest - rule.window) {
    while (ring.size > 0 && ring.At(s.rings, 0).time <= newest - rule.window) ring.PopOldest(s.rings);
    ring.Fit(s.rings);
  }
  if (t <= newest - rule.window) return;  // out of order, and already out of the window
  ring.Push(s.rings, t, e.event_id());
  if (ring.size < static_cast<uint32_t>(rule.threshold) || newest < ck->cooldown_until) return;
  if (rule.cooldown > 0) ck->cooldown_until = newest + rule.cooldown;  // 0: no cooldown at all
  evidence_.clear();
  for (uint32_t i = 0; i < ring.size; ++i) evidence_.push_back(ring.At(s.rings, i).event_id.view());
  EmitFinding(r, key_, Fire{.at = newest, .window_start = ring.At(s.rings, 0).time, .window_end = newest,
                            .count = ring.size, .value = static_cast<double>(ring.size),
                            .count_is_lower_bound = ring.lossy != 0});
}

void Engine::ApplyWindow(int r, RuleState& s, const cx::v1::InteractionEvent& e, Micros t) {
  const Rule& rule = rules_->rules()[static_cast<size_t>(r)];
  const bool is_ratio = rule.kind == RuleKind::kRatio;
  const bool numerator = rule.on.Matches(e);
  const bool denominator = is_ratio && rule.denominator.Matches(e);
  if (!numerator && !denominator) return;
  BuildKey(rule.key, e);
  WindowKey* wk = KeyState(r, s.windows);
  if (wk == nullptr) return;
  const Micros width = std::max<Micros>(1, rule.window / kBuckets);
  const int64_t index = FloorDiv(t, width);
  Bucket& b = wk->buckets[static_cast<size_t>(((index % kBuckets) + kBuckets) % kBuckets)];
  if (b.index != index) b = Bucket{index, 0, 0};
  if (is_ratio) {
    if (numerator) b.a += 1;
    if (denominator) b.b += 1;
  } else {
    b.a += rule.value->Evaluate(e).AsNumber();
    b.b += 1;  // a sum's {count}: the events it added up
  }
  if (numerator) wk->evidence.Push(s.rings, t, e.event_id());
  wk->last_seen = std::max(wk->last_seen, t);

  // The window is the buckets of the last `window`, this one included.
  double a = 0, d = 0;
  for (const Bucket& x : wk->buckets) {
    if (x.index > index - kBuckets && x.index <= index) {
      a += x.a;
      d += x.b;
    }
  }
  if (t < wk->cooldown_until) return;
  Fire fire{.at = t, .window_start = (index - kBuckets + 1) * width, .window_end = t};
  if (is_ratio) {
    if (d < static_cast<double>(rule.min_volume) || d <= 0 || a / d < rule.threshold) return;
    fire.count = static_cast<int64_t>(d);
    fire.value = a;
    fire.ratio = a / d;
  } else {
    if (a < rule.threshold) return;
    fire.value = a;
    fire.count = static_cast<int64_t>(d);
  }
  if (rule.cooldown > 0) wk->cooldown_until = t + rule.cooldown;
  evidence_.clear();
  for (uint32_t i = 0; i < wk->evidence.size; ++i) evidence_.push_back(wk->evidence.At(s.rings, i).event_id.view());
  EmitFinding(r, key_, fire);
}

void Engine::ApplySpike(int r, RuleState& s, const cx::v1::InteractionEvent& e, Micros t) {
  const Rule& rule = rules_->rules()[static_cast<size_t>(r)];
  if (!rule.on.Matches(e)) return;
  BuildKey(rule.key, e);
  SpikeKey* sk = KeyState(r, s.spikes);
  if (sk == nullptr) return;
  const int64_t index = FloorDiv(t, rule.window);
  // Each closed window updates the baseline, an exponentially weighted mean
  // of events per window with a horizon of `baseline`; empty windows count.
  const double alpha = static_cast<double>(rule.window) / static_cast<double>(rule.baseline);
  if (sk->window_index == INT64_MIN) {
    sk->window_index = index;
  } else if (index > sk->window_index) {
    const int64_t gap = index - sk->window_index;
    // The first closed window seeds the baseline; after that it is a
    // weighted mean (seeding with 0 would bias it low for a whole horizon).
    if (sk->windows_seen == 0) sk->baseline = static_cast<double>(sk->count);
    else sk->baseline += alpha * (static_cast<double>(sk->count) - sk->baseline);
    if (gap > 1) sk->baseline *= std::pow(1 - alpha, static_cast<double>(gap - 1));
    sk->windows_seen += gap;
    sk->window_index = index;
    sk->count = 0;
  }
  if (index < sk->window_index) return;  // an event of an already closed window (within lateness)
  ++sk->count;
  sk->evidence.Push(s.rings, t, e.event_id());
  sk->last_seen = std::max(sk->last_seen, t);
  // Only a key with a full baseline behind it can spike against it.
  const bool warm = sk->windows_seen * rule.window >= rule.baseline;
  if (!warm || t < sk->cooldown_until || sk->count < rule.min_volume ||
      static_cast<double>(sk->count) < rule.threshold * std::max(sk->baseline, 1.0)) {
    return;
  }
  if (rule.cooldown > 0) sk->cooldown_until = t + rule.cooldown;
  evidence_.clear();
  for (uint32_t i = 0; i < sk->evidence.size; ++i) evidence_.push_back(sk->evidence.At(s.rings, i).event_id.view());
  EmitFinding(r, key_, Fire{.at = t, .window_start = index * rule.window, .window_end = t, .count = sk->count,
                            .value = static_cast<double>(sk->count), .baseline = sk->baseline});
}

void Engine::ApplySequence(int r, RuleState& s, const cx::v1::InteractionEvent& e, Micros t) {
  const Rule& rule = rules_->rules()[static_cast<size_t>(r)];
  bool any = false;
  for (const Selector& step : rule.steps) any = any || step.Matches(e);
  if (!any) return;
  BuildKey(rule.key, e);
  SequenceKey* sq = KeyState(r, s.sequences);
  if (sq == nullptr) return;
  sq->last_seen = std::max(sq->last_seen, t);
  if (sq->next_step > 0 && t - sq->start > rule.within) sq->next_step = 0;  // too slow: start over
  if (sq->next_step > 0 && rule.steps[sq->next_step].Matches(e)) {
    s.rings.base().Block(sq->evidence)[sq->next_step].event_id.Assign(e.event_id());
    ++sq->next_step;
  } else if (rule.steps[0].Matches(e)) {
    if (sq->evidence == Slab<RingEntry>::kNone) sq->evidence = s.rings.base().Take();
    s.rings.base().Block(sq->evidence)[0].event_id.Assign(e.event_id());
    sq->start = t;
    sq->next_step = 1;
  }
  if (sq->next_step < rule.steps.size()) return;
  sq->next_step = 0;
  if (t < sq->cooldown_until) return;
  if (rule.cooldown > 0) sq->cooldown_until = t + rule.cooldown;
  const RingEntry* steps = s.rings.base().Block(sq->evidence);
  evidence_.clear();
  for (size_t i = 0; i < rule.steps.size(); ++i) evidence_.push_back(steps[i].event_id.view());
  EmitFinding(r, key_, Fire{.at = t, .window_start = sq->start, .window_end = t,
                            .count = static_cast<int64_t>(rule.steps.size())});
}

void Engine::ApplyAbsence(int r, RuleState& s, const cx::v1::InteractionEvent& e, Micros t) {
  const Rule& rule = rules_->rules()[static_cast<size_t>(r)];
  if (rule.on.Matches(e)) StartPromise(r, s, e, t);
  if (rule.expect.Matches(e)) {
    // The awaited follow-up keeps the promise only if it came in time.
    BuildKey(rule.expect.key.empty() ? rule.key : rule.expect.key, e);
    const uint32_t record = s.pending.Find(key_);
    if (record == KeyTable<Pending>::kNone) return;
    const Pending& p = s.pending.At(record);
    if (t >= p.start && t <= p.due) {
      s.pending.Erase(record);
      Forget(r, 1);
    }
  }
}

void Engine::StartPromise(int r, RuleState& s, const cx::v1::InteractionEvent& e, Micros t) {
  const Rule& rule = rules_->rules()[static_cast<size_t>(r)];
  BuildKey(rule.key, e);
  uint32_t record = s.pending.Find(key_);
  if (record != KeyTable<Pending>::kNone) {
    // A promise past its deadline is broken whatever comes now: reported,
    // never replaced (its timer may not have fired yet, the watermark
    // trailing this event by the allowed lateness).
    if (s.pending.At(record).due < t) {
      Breach(r, s, record);
      record = KeyTable<Pending>::kNone;
    } else if (rule.on_repeat == OnRepeat::kKeep) {
      return;  // the first deadline stands
    }
  }
  Micros due = t + rule.within;
  if (rule.deadline_field != nullptr) {
    const auto* reflection = e.GetReflection();
    const auto* body_field = e.GetDescriptor()->FindFieldByNumber(rule.on.body);
    const google::protobuf::Message& body = reflection->GetMessage(e, body_field);
    // A promise without a due time, or due before it was made, is not a
    // promise this rule can hold anyone to.
    if (!body.GetReflection()->HasField(body, rule.deadline_field)) return;
    due = ToMicros(static_cast<const google::protobuf::Timestamp&>(
        body.GetReflection()->GetMessage(body, rule.deadline_field)));
    if (due < t) return;
  }
  // on_repeat: replace, or no promise pending: this event's promise is the key's.
  if (record == KeyTable<Pending>::kNone) record = KeyIndex(r, s.pending);
  if (record == KeyTable<Pending>::kNone) return;
  Pending& p = s.pending.At(record);
  p.start = t;
  p.due = due;
  p.seq = ++next_seq_;
  p.event_id.Assign(e.event_id());
  s.timers.push(Timer{due, p.seq, record});
}

void Engine::Breach(int r, RuleState& s, uint32_t record) {
  const Pending& p = s.pending.At(record);
  evidence_.assign(1, p.event_id.view());
  EmitFinding(r, s.pending.KeyAt(record), Fire{.at = p.due, .window_start = p.start, .window_end = p.due, .count = 1});
  s.pending.Erase(record);  // its timer, if still queued, finds the record's seq changed
  Forget(r, 1);
}

void Engine::FireDue(PartitionState& ps, Micros watermark) {
  // Runs after every event: only absence rules hold timers, so only their
  // states are looked at.
  for (const size_t r : absence_rules_) {
    RuleState& state = *ps.rules[r];
    // Strictly past the deadline: a follow-up stamped exactly at the deadline
    // is still on time and may still arrive.
    while (!state.timers.empty() && state.timers.top().due < watermark) {
      const Timer timer = state.timers.top();
      state.timers.pop();
      if (state.pending.At(timer.record).seq != timer.seq) continue;  // superseded, kept, or the record reused
      Breach(static_cast<int>(r), state, timer.record);
    }
  }
}

void Engine::Sweep(PartitionState& ps, Micros watermark) {
  for (size_t r = 0; r < rules_->rules().size(); ++r) {
    if (!ps.rules[r]) continue;  // outside the engine's scope
    const Rule& rule = rules_->rules()[r];
    RuleState& s = *ps.rules[r];
    const Micros horizon = watermark - rule.Horizon();
    size_t erased = 0;
    erased += s.cooldowns.EraseIf([&](const Micros& until) { return until <= watermark; });
    erased += s.counts.EraseIf([&](CountKey& k) {
      const Micros newest = k.ring.size == 0 ? Watermark::kNone : k.ring.At(s.rings, k.ring.size - 1u).time;
      if (newest > watermark - rule.window || k.cooldown_until > watermark) return false;
      ReleaseHeld(k, s.rings);
      return true;
    });
    auto idle = [&](auto& k) {
      if (k.last_seen > horizon || k.cooldown_until > watermark) return false;
      ReleaseHeld(k, s.rings);
      return true;
    };
    erased += s.windows.EraseIf(idle);
    erased += s.spikes.EraseIf(idle);
    erased += s.sequences.EraseIf(idle);
    Forget(static_cast<int>(r), erased);
  }
}

void Engine::Checkpoint(int32_t partition, StateWriter& out) {
  const auto p = static_cast<size_t>(partition);
  if (!options_.track_changes || p >= partitions_.size() || !partitions_[p]) return;
  PartitionState& ps = *partitions_[p];
  CheckpointWatermark(ps, out);
  // Before the rules' own records: a reloaded rule's tombstones, then its
  // new state's puts for the same keys.
  CheckpointRetired(ps, out);
  for (size_t r = 0; r < ps.rules.size(); ++r) {
    RuleState* s = ps.rules[r].get();
    if (s == nullptr) continue;
    s->Visit(rules_->rules()[r].kind, [&](auto& table) { CheckpointTable(static_cast<int>(r), table, *s, out); });
  }
}

void Engine::CheckpointWatermark(PartitionState& ps, StateWriter& out) {
  const Micros max_event_time = ps.watermark.max_event_time();
  const Micros floor = std::max(ps.watermark.Settled(), ps.ticked_to);
  if (max_event_time == ps.saved_max_event_time && floor == ps.saved_floor) return;
  ps.saved_max_event_time = max_event_time;
  ps.saved_floor = floor;
  record_value_.clear();
  RecordWriter w(&record_value_);
  w.Byte(kFormatVersion);
  w.Signed(max_event_time);
  w.Signed(floor);
  out.Put(std::string_view(&kEngineRecord, 1), record_value_);
}

void Engine::CheckpointRetired(PartitionState& ps, StateWriter& out) {
  for (PartitionState::Retired& retired : ps.retired) {
    auto tombstone = [&](std::string_view key) {
      SetRecordKey(retired.rule, key);
      out.Erase(record_key_);
    };
    retired.state->Visit(retired.kind, [&](auto& table) {
      table.TakeChanges(tombstone, [](uint32_t) {});  // keys erased before the reload
      table.ForEachKey(tombstone);
    });
  }
  ps.retired.clear();
}

template <typename Table>
void Engine::CheckpointTable(int rule_index, Table& table, RuleState& s, StateWriter& out) {
  const Rule& rule = rules_->rules()[static_cast<size_t>(rule_index)];
  table.TakeChanges(
      [&](std::string_view key) {
        SetRecordKey(rule.name, key);
        out.Erase(record_key_);
      },
      [&](uint32_t record) {
        SetRecordKey(rule.name, table.KeyAt(record));
        record_value_.clear();
        RecordWriter w(&record_value_);
        w.Byte(kFormatVersion);
        w.Fixed(version_tags_[static_cast<size_t>(rule_index)]);
        w.Byte(static_cast<uint8_t>(rule.kind));
        Encode(w, table.At(record), s.rings);
        out.Put(record_key_, record_value_);
      });
}

void Engine::SetRecordKey(std::string_view rule, std::string_view key) {
  record_key_.assign(1, kEngineRecord);
  record_key_.append(rule.data(), rule.size());
  record_key_.push_back('\0');
  record_key_.append(key.data(), key.size());
}

RestoreDrop Engine::Restore(int32_t partition, std::string_view key, std::string_view value, Micros wall_now) {
  if (partition < 0 || key.empty() || key[0] != kEngineRecord || value.empty()) return RestoreDrop::kMalformed;
  if (static_cast<uint8_t>(value[0]) != kFormatVersion) return RestoreDrop::kUnknownVersion;
  PartitionState& ps = StateFor(partition);
  if (key.size() == 1) return RestoreWatermark(ps, value, wall_now);
  const size_t name_end = key.find('\0', 1);
  if (name_end == std::string_view::npos) return RestoreDrop::kMalformed;
  const int r = rules_->IndexOf(key.substr(1, name_end - 1));
  if (r < 0 || !ps.rules[static_cast<size_t>(r)]) return RestoreDrop::kRuleRemoved;  // or outside this engine's scope
  const Rule& rule = rules_->rules()[static_cast<size_t>(r)];
  if (value.size() < kRuleHeader) return RestoreDrop::kMalformed;
  RecordReader header(value.substr(1, kRuleHeader - 1));
  if (header.Fixed() != version_tags_[static_cast<size_t>(r)]) return RestoreDrop::kRuleChanged;
  if (header.Byte() != static_cast<uint8_t>(rule.kind)) return RestoreDrop::kMalformed;
  RuleState& s = *ps.rules[static_cast<size_t>(r)];
  return s.Visit(rule.kind, [&](auto& table) {
    return RestoreKey(r, table, s, key.substr(name_end + 1), value.substr(kRuleHeader));
  });
}

RestoreDrop Engine::RestoreWatermark(PartitionState& ps, std::string_view value, Micros wall_now) {
  RecordReader in(value.substr(1));
  const Micros max_event_time = in.Bounded();
  const Micros floor = in.Bounded();
  if (!in.Done()) return RestoreDrop::kMalformed;
  ps.watermark.Restore(max_event_time, floor, wall_now);
  ps.saved_max_event_time = ps.watermark.max_event_time();
  ps.saved_floor = floor;
  return RestoreDrop::kNone;
}

template <typename Table>
RestoreDrop Engine::RestoreKey(int rule_index, Table& table, RuleState& s, std::string_view key,
                               std::string_view payload) {
  const Rule& rule = rules_->rules()[static_cast<size_t>(rule_index)];
  RuleStats& stats = *stats_[static_cast<size_t>(rule_index)];
  uint32_t record = table.Find(key);
  if (record == Table::kNone &&
      static_cast<size_t>(stats.keys.load(std::memory_order_relaxed)) >= options_.max_keys_per_rule) {
    return RestoreDrop::kKeyLimit;
  }
  typename Table::Value state{};
  RecordReader in(payload);
  Decode(in, rule, s.rings, state);
  if (!in.Done()) {
    ReleaseHeld(state, s.rings);
    return RestoreDrop::kMalformed;
  }
  if (record == Table::kNone) {
    record = table.Insert(key);
    stats.keys.fetch_add(1, std::memory_order_relaxed);
  } else {
    ReleaseHeld(table.At(record), s.rings);  // a key given twice: the later value stands
  }
  table.At(record) = std::move(state);
  if constexpr (std::is_same_v<typename Table::Value, Pending>) {
    Pending& p = table.At(record);
    p.seq = ++next_seq_;
    s.timers.push(Timer{p.due, p.seq, record});
  }
  return RestoreDrop::kNone;
}

void Engine::EmitFinding(int rule_index, std::string_view key, const Fire& fire) {
  const auto r = static_cast<size_t>(rule_index);
  const Rule& rule = rules_->rules()[r];
  stats_[r]->findings.fetch_add(1, std::memory_order_relaxed);
  key_values_.clear();
  for (size_t start = 0;;) {
    const size_t end = key.find(kKeySeparator, start);
    key_values_.push_back(key.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  key_values_.resize(rule.key.size());

  // The rule's own finding: rule, version, family, severity, key names,
  // labels and escalation were set once; every string below is assigned into
  // the buffer the previous finding left, so a warm finding allocates nothing.
  cx::v1::Finding& f = findings_[r];
  StableHash id;
  id.Add(rule.name);
  for (size_t i = 0; i < rule.key.size(); ++i) {
    f.mutable_key(static_cast<int>(i))->mutable_value()->assign(key_values_[i].data(), key_values_[i].size());
    id.Add(key_values_[i]);
  }
  id.Add(fire.window_start).Add(fire.window_end);
  for (std::string_view e : evidence_) id.Add(e);
  AssignHex64(id.value(), f.mutable_finding_id());
  f.set_count(fire.count);
  f.set_count_is_lower_bound(fire.count_is_lower_bound);
  SetTimestamp(fire.at, f.mutable_fired_at());
  SetTimestamp(fire.window_start, f.mutable_window_start());
  SetTimestamp(fire.window_end, f.mutable_window_end());
  auto* evidence_ids = f.mutable_evidence_event_ids();
  evidence_ids->Clear();  // keeps the strings for reuse
  for (std::string_view e : evidence_) evidence_ids->Add()->assign(e.data(), e.size());

  summaries_[r].Render(SummaryTemplate::Values{.keys = &key_values_,
                                                .rule = rule.name,
                                                .count = fire.count,
                                                .count_is_lower_bound = fire.count_is_lower_bound,
                                                .value = fire.value,
                                                .ratio = fire.ratio,
                                                .baseline = fire.baseline,
                                                .window = window_text_[r],
                                                .window_start = fire.window_start,
                                                .window_end = fire.window_end,
                                                .severity = cx::v1::Severity_Name(rule.severity)},
                       f.mutable_summary());
  sink_->Emit(rule_index, f);
}

}  // namespace cxpulse
