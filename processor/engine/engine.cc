#include "engine/engine.h"

#include <algorithm>
#include <cmath>

#include "common/hash.h"
#include "common/strings.h"

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

}  // namespace

void Engine::Ring::Push(Micros t, const std::string& id) {
  const auto cap = static_cast<uint32_t>(slots.size());
  Entry& slot = slots[(head + size) % cap];
  slot.time = t;
  slot.event_id.assign(id);  // reuses the slot's buffer
  if (size < cap) ++size;
  else head = (head + 1) % cap;
  // Events may arrive out of order within the allowed lateness: keep the
  // ring sorted by time so eviction and window_start stay right.
  for (uint32_t i = size - 1; i > 0 && slots[(head + i - 1) % cap].time > slots[(head + i) % cap].time; --i) {
    std::swap(slots[(head + i - 1) % cap], slots[(head + i) % cap]);
  }
}

Engine::Engine(std::shared_ptr<const RuleSet> rules, EngineOptions options, FindingSink* sink)
    : rules_(std::move(rules)),
      options_(options),
      sink_(sink),
      stats_(new RuleStats[rules_->rules().size()]) {
  key_.reserve(256);
  evidence_.reserve(64);
}

Engine::PartitionState& Engine::StateFor(int32_t partition) {
  const auto p = static_cast<size_t>(partition);
  if (p >= partitions_.size()) partitions_.resize(p + 1);
  if (!partitions_[p]) {
    partitions_[p] = std::make_unique<PartitionState>(options_);
    partitions_[p]->rules.resize(rules_->rules().size());
  }
  return *partitions_[p];
}

void Engine::DropPartition(int32_t partition) {
  const auto p = static_cast<size_t>(partition);
  if (p >= partitions_.size() || !partitions_[p]) return;
  for (size_t r = 0; r < partitions_[p]->rules.size(); ++r) {
    const RuleState& s = partitions_[p]->rules[r];
    Forget(static_cast<int>(r), s.cooldowns.size() + s.counts.size() + s.windows.size() + s.spikes.size() +
                                    s.sequences.size() + s.pending.size());
  }
  partitions_[p].reset();
}

Micros Engine::WatermarkOf(int32_t partition, Micros wall_now) const {
  const auto p = static_cast<size_t>(partition);
  if (p >= partitions_.size() || !partitions_[p]) return Watermark::kNone;
  return partitions_[p]->watermark.Current(wall_now);
}

size_t Engine::KeysHeld(int rule_index) const {
  return static_cast<size_t>(stats_[static_cast<size_t>(rule_index)].keys.load(std::memory_order_relaxed));
}

Engine::Outcome Engine::Process(int32_t partition, const cx::v1::InteractionEvent& event, Micros wall_now) {
  PartitionState& ps = StateFor(partition);
  const Micros t = ToMicros(event.occurred_at());
  if (ps.watermark.IsLate(t, wall_now)) return Outcome::kLate;
  ps.watermark.Observe(t, wall_now);
  for (int rule_index : rules_->RulesFor(event.body_case())) {
    Apply(rule_index, ps.rules[static_cast<size_t>(rule_index)], event, t);
  }
  FireDue(ps, ps.watermark.Current(wall_now));
  return Outcome::kProcessed;
}

void Engine::Apply(int r, RuleState& s, const cx::v1::InteractionEvent& e, Micros t) {
  stats_[static_cast<size_t>(r)].evaluations.fetch_add(1, std::memory_order_relaxed);
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

template <typename Map>
typename Map::mapped_type* Engine::KeyState(int rule_index, Map& map) {
  auto it = map.find(key_);
  if (it != map.end()) return &it->second;
  RuleStats& stats = stats_[static_cast<size_t>(rule_index)];
  if (static_cast<size_t>(stats.keys.load(std::memory_order_relaxed)) >= options_.max_keys_per_rule) {
    stats.key_limit_hits.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  stats.keys.fetch_add(1, std::memory_order_relaxed);
  return &map.try_emplace(key_).first->second;
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
  // N entries are all a threshold of N ever needs: the ring is that big.
  if (ck->ring.slots.empty()) ck->ring.slots.resize(static_cast<size_t>(rule.threshold));
  while (ck->ring.size > 0 && ck->ring.At(0).time <= t - rule.window) ck->ring.PopOldest();
  ck->ring.Push(t, e.event_id());
  if (ck->ring.size < static_cast<uint32_t>(rule.threshold) || t < ck->cooldown_until) return;
  ck->cooldown_until = t + rule.cooldown;
  evidence_.clear();
  for (uint32_t i = 0; i < ck->ring.size; ++i) evidence_.push_back(ck->ring.At(i).event_id);
  EmitFinding(r, key_, Fire{.at = t, .window_start = ck->ring.At(0).time, .window_end = t,
                            .count = ck->ring.size, .value = static_cast<double>(ck->ring.size)});
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
  if (wk->evidence.slots.empty()) wk->evidence.slots.resize(kEvidence);
  const Micros width = std::max<Micros>(1, rule.window / kBuckets);
  const int64_t index = FloorDiv(t, width);
  Bucket& b = wk->buckets[static_cast<size_t>(((index % kBuckets) + kBuckets) % kBuckets)];
  if (b.index != index) b = Bucket{index, 0, 0};
  if (is_ratio) {
    if (numerator) b.a += 1;
    if (denominator) b.b += 1;
  } else {
    b.a += rule.value->Evaluate(e).AsNumber();
  }
  if (numerator) wk->evidence.Push(t, e.event_id());
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
    fire.count = wk->evidence.size;
  }
  wk->cooldown_until = t + rule.cooldown;
  evidence_.clear();
  for (uint32_t i = 0; i < wk->evidence.size; ++i) evidence_.push_back(wk->evidence.At(i).event_id);
  EmitFinding(r, key_, fire);
}

void Engine::ApplySpike(int r, RuleState& s, const cx::v1::InteractionEvent& e, Micros t) {
  const Rule& rule = rules_->rules()[static_cast<size_t>(r)];
  if (!rule.on.Matches(e)) return;
  BuildKey(rule.key, e);
  SpikeKey* sk = KeyState(r, s.spikes);
  if (sk == nullptr) return;
  if (sk->evidence.slots.empty()) sk->evidence.slots.resize(kEvidence);
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
  sk->evidence.Push(t, e.event_id());
  sk->last_seen = std::max(sk->last_seen, t);
  // Only a key with a full baseline behind it can spike against it.
  const bool warm = sk->windows_seen * rule.window >= rule.baseline;
  if (!warm || t < sk->cooldown_until || sk->count < rule.min_volume ||
      static_cast<double>(sk->count) < rule.threshold * std::max(sk->baseline, 1.0)) {
    return;
  }
  sk->cooldown_until = t + rule.cooldown;
  evidence_.clear();
  for (uint32_t i = 0; i < sk->evidence.size; ++i) evidence_.push_back(sk->evidence.At(i).event_id);
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
    sq->evidence[sq->next_step] = e.event_id();
    ++sq->next_step;
  } else if (rule.steps[0].Matches(e)) {
    sq->evidence.resize(rule.steps.size());
    sq->evidence[0] = e.event_id();
    sq->start = t;
    sq->next_step = 1;
  }
  if (sq->next_step < rule.steps.size()) return;
  sq->next_step = 0;
  if (t < sq->cooldown_until) return;
  sq->cooldown_until = t + rule.cooldown;
  evidence_.assign(sq->evidence.begin(), sq->evidence.end());
  EmitFinding(r, key_, Fire{.at = t, .window_start = sq->start, .window_end = t,
                            .count = static_cast<int64_t>(rule.steps.size())});
}

void Engine::ApplyAbsence(int r, RuleState& s, const cx::v1::InteractionEvent& e, Micros t) {
  const Rule& rule = rules_->rules()[static_cast<size_t>(r)];
  if (rule.on.Matches(e)) {
    BuildKey(rule.key, e);
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
    // A newer promise for the same key replaces the older one.
    Pending* p = KeyState(r, s.pending);
    if (p == nullptr) return;
    p->start = t;
    p->due = due;
    p->seq = ++next_seq_;
    p->event_id.assign(e.event_id());
    s.timers.push(Timer{due, p->seq, key_});
  }
  if (rule.expect.Matches(e)) {
    // The awaited follow-up keeps the promise only if it came in time.
    BuildKey(rule.expect.key.empty() ? rule.key : rule.expect.key, e);
    auto it = s.pending.find(key_);
    if (it != s.pending.end() && t >= it->second.start && t <= it->second.due) {
      s.pending.erase(it);
      Forget(r, 1);
    }
  }
}

void Engine::FireDue(PartitionState& ps, Micros watermark) {
  for (size_t r = 0; r < ps.rules.size(); ++r) {
    RuleState& state = ps.rules[r];
    // Strictly past the deadline: a follow-up stamped exactly at the deadline
    // is still on time and may still arrive.
    while (!state.timers.empty() && state.timers.top().due < watermark) {
      const Timer& timer = state.timers.top();
      auto it = state.pending.find(timer.key);
      if (it != state.pending.end() && it->second.seq == timer.seq) {
        evidence_.assign(1, it->second.event_id);
        EmitFinding(static_cast<int>(r), timer.key,
                    Fire{.at = timer.due, .window_start = it->second.start, .window_end = timer.due, .count = 1});
        state.pending.erase(it);
        Forget(static_cast<int>(r), 1);
      }
      state.timers.pop();
    }
  }
}

void Engine::Sweep(PartitionState& ps, Micros watermark) {
  for (size_t r = 0; r < ps.rules.size(); ++r) {
    const Rule& rule = rules_->rules()[r];
    RuleState& s = ps.rules[r];
    const Micros horizon = watermark - rule.Horizon();
    size_t erased = 0;
    erased += absl::erase_if(s.cooldowns, [&](const auto& kv) { return kv.second <= watermark; });
    erased += absl::erase_if(s.counts, [&](const auto& kv) {
      const Ring& ring = kv.second.ring;
      const Micros newest = ring.size == 0 ? Watermark::kNone : ring.At(ring.size - 1).time;
      return newest <= watermark - rule.window && kv.second.cooldown_until <= watermark;
    });
    auto idle = [&](const auto& kv) { return kv.second.last_seen <= horizon && kv.second.cooldown_until <= watermark; };
    erased += absl::erase_if(s.windows, idle);
    erased += absl::erase_if(s.spikes, idle);
    erased += absl::erase_if(s.sequences, idle);
    Forget(static_cast<int>(r), erased);
  }
}

void Engine::EmitFinding(int rule_index, std::string_view key, const Fire& fire) {
  const Rule& rule = rules_->rules()[static_cast<size_t>(rule_index)];
  stats_[static_cast<size_t>(rule_index)].findings.fetch_add(1, std::memory_order_relaxed);
  std::vector<std::string_view> values;
  for (size_t start = 0;;) {
    const size_t end = key.find(kKeySeparator, start);
    values.push_back(key.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  values.resize(rule.key.size());

  finding_.Clear();
  finding_.set_rule(rule.name);
  finding_.set_rule_version(rule.version);
  finding_.set_family(rule.family);
  finding_.set_severity(rule.severity);
  StableHash id;
  id.Add(rule.name);
  for (size_t i = 0; i < rule.key.size(); ++i) {
    auto* kf = finding_.add_key();
    kf->set_field(rule.key_names[i]);
    kf->set_value(std::string(values[i]));
    id.Add(values[i]);
  }
  id.Add(fire.window_start).Add(fire.window_end);
  for (std::string_view e : evidence_) id.Add(e);
  finding_.set_finding_id(Hex64(id.value()));
  SetTimestamp(fire.at, finding_.mutable_fired_at());
  SetTimestamp(fire.window_start, finding_.mutable_window_start());
  SetTimestamp(fire.window_end, finding_.mutable_window_end());
  for (std::string_view e : evidence_) finding_.add_evidence_event_ids(std::string(e));

  // Renders {name} placeholders; the loader has checked every name.
  std::string summary;
  const std::string& tmpl = rule.summary;
  for (size_t i = 0; i < tmpl.size();) {
    const size_t open = tmpl.find('{', i);
    const size_t close = open == std::string::npos ? open : tmpl.find('}', open);
    if (close == std::string::npos) {
      summary.append(tmpl, i);
      break;
    }
    summary.append(tmpl, i, open - i);
    const std::string_view name(tmpl.data() + open + 1, close - open - 1);
    auto k = std::find(rule.key_names.begin(), rule.key_names.end(), name);
    if (k != rule.key_names.end()) summary.append(values[static_cast<size_t>(k - rule.key_names.begin())]);
    else if (name == "rule") summary.append(rule.name);
    else if (name == "count") Append(&summary, fire.count);
    else if (name == "value") Append(&summary, fire.value);
    else if (name == "ratio") Append(&summary, fmt::format("{:.1f}%", fire.ratio * 100));
    else if (name == "baseline") Append(&summary, fmt::format("{:.1f}", fire.baseline));
    else if (name == "window") Append(&summary, FormatDuration(rule.window > 0 ? rule.window : fire.window_end - fire.window_start));
    else if (name == "due_at") Append(&summary, FormatTime(fire.window_end));
    else if (name == "since") Append(&summary, FormatTime(fire.window_start));
    else if (name == "severity") Append(&summary, cx::v1::Severity_Name(rule.severity));
    i = close + 1;
  }
  finding_.set_summary(std::move(summary));
  for (const auto& [k, v] : rule.labels) (*finding_.mutable_labels())[k] = v;
  finding_.set_escalate_to(rule.escalate_to);
  sink_->Emit(rule_index, finding_);
}

}  // namespace cxpulse
