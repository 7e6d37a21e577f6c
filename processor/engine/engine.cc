#include "engine/engine.h"
#include "common/strings.h"

#include <algorithm>

#include "common/hash.h"

namespace cxpulse {
namespace {

// Key values are joined with the ASCII unit separator, which no id contains.
constexpr char kKeySeparator = '\x1f';

// Idle keys are swept at most this often per partition, bounding the work.
constexpr Micros kSweepInterval = 10 * kMicrosPerSecond;

// Replaces {name} in a summary template. Runs only when a rule fires.
std::string Render(std::string_view tmpl, const Rule& rule, const std::vector<std::string_view>& key_values,
                   int count, Micros window_start, Micros window_end) {
  std::string out;
  out.reserve(tmpl.size() + 32);
  size_t i = 0;
  while (i < tmpl.size()) {
    const size_t open = tmpl.find('{', i);
    const size_t close = open == std::string_view::npos ? open : tmpl.find('}', open);
    if (close == std::string_view::npos) {
      out.append(tmpl.substr(i));
      break;
    }
    out.append(tmpl.substr(i, open - i));
    const std::string_view name = tmpl.substr(open + 1, close - open - 1);
    bool found = false;
    for (size_t k = 0; k < rule.key.size(); ++k) {
      if (rule.key[k].name() == name) {
        out.append(key_values[k]);
        found = true;
      }
    }
    if (!found) {
      if (name == "rule") Append(&out, rule.name);
      else if (name == "count") Append(&out, count);
      else if (name == "window") Append(&out, FormatDuration(rule.window > 0 ? rule.window : window_end - window_start));
      else if (name == "due_at") Append(&out, FormatTime(window_end));
      else if (name == "since") Append(&out, FormatTime(window_start));
      else Append(&out, "{", name, "}");  // unknown names stay visible
    }
    i = close + 1;
  }
  return out;
}

}  // namespace

Engine::Engine(std::shared_ptr<const RuleSet> rules, EngineOptions options, FindingSink* sink)
    : rules_(std::move(rules)), options_(options), sink_(sink) {
  key_.reserve(256);
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
  if (p < partitions_.size()) partitions_[p].reset();
}

Micros Engine::WatermarkOf(int32_t partition, Micros wall_now) const {
  const auto p = static_cast<size_t>(partition);
  if (p >= partitions_.size() || !partitions_[p]) return Watermark::kNone;
  return partitions_[p]->watermark.Current(wall_now);
}

size_t Engine::KeysHeld(int rule_index) const {
  size_t n = 0;
  for (const auto& ps : partitions_) {
    if (!ps) continue;
    const RuleState& rs = ps->rules[static_cast<size_t>(rule_index)];
    n += rs.counts.size() + rs.pending.size();
  }
  return n;
}

Engine::Outcome Engine::Process(int32_t partition, const cx::v1::InteractionEvent& event, Micros wall_now) {
  PartitionState& ps = StateFor(partition);
  const Micros t = ToMicros(event.occurred_at());
  if (ps.watermark.IsLate(t, wall_now)) return Outcome::kLate;
  ps.watermark.Observe(t, wall_now);

  for (int rule_index : rules_->RulesFor(event.body_case())) {
    RuleState& state = ps.rules[static_cast<size_t>(rule_index)];
    const Rule& rule = rules_->rules()[static_cast<size_t>(rule_index)];
    if (rule.kind == RuleKind::kCount) ApplyCount(rule_index, state, event, t);
    else ApplyAbsence(rule_index, state, event, t);
  }
  FireDue(ps, ps.watermark.Current(wall_now));
  return Outcome::kProcessed;
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

void Engine::BuildKey(const Rule& rule, const cx::v1::InteractionEvent& event) {
  key_.clear();
  for (size_t i = 0; i < rule.key.size(); ++i) {
    if (i > 0) key_.push_back(kKeySeparator);
    key_.append(rule.key[i].Read(event));
  }
}

void Engine::ApplyCount(int rule_index, RuleState& state, const cx::v1::InteractionEvent& event, Micros t) {
  const Rule& rule = rules_->rules()[static_cast<size_t>(rule_index)];
  BuildKey(rule, event);
  auto it = state.counts.find(key_);
  if (it == state.counts.end()) {
    it = state.counts.emplace(key_, CountKey{}).first;
    it->second.ring.resize(static_cast<size_t>(rule.threshold));
  }
  CountKey& ck = it->second;
  const auto cap = static_cast<uint32_t>(ck.ring.size());
  // Forget entries that left the window, oldest first.
  while (ck.size > 0 && ck.ring[ck.head].time <= t - rule.window) {
    ck.head = (ck.head + 1) % cap;
    --ck.size;
  }
  // Append; when full, the oldest is overwritten: N entries are all a
  // threshold of N ever needs.
  const uint32_t slot = (ck.head + ck.size) % cap;
  ck.ring[slot].time = t;
  ck.ring[slot].event_id.assign(event.event_id());
  if (ck.size < cap) ++ck.size;
  else ck.head = (ck.head + 1) % cap;

  if (ck.size < static_cast<uint32_t>(rule.threshold) || t < ck.cooldown_until) return;
  ck.cooldown_until = t + rule.cooldown;
  evidence_.clear();
  for (uint32_t i = 0; i < ck.size; ++i) evidence_.push_back(ck.ring[(ck.head + i) % cap].event_id);
  EmitFinding(rule_index, key_, t, ck.ring[ck.head].time, t, static_cast<int>(ck.size));
}

void Engine::ApplyAbsence(int rule_index, RuleState& state, const cx::v1::InteractionEvent& event, Micros t) {
  const Rule& rule = rules_->rules()[static_cast<size_t>(rule_index)];
  BuildKey(rule, event);
  if (event.body_case() == rule.on_body) {
    Micros due = t + rule.within;
    if (rule.deadline_field != nullptr) {
      const auto* reflection = event.GetReflection();
      const auto* body_field = event.GetDescriptor()->FindFieldByNumber(rule.on_body);
      const google::protobuf::Message& body = reflection->GetMessage(event, body_field);
      const auto& ts = static_cast<const google::protobuf::Timestamp&>(
          body.GetReflection()->GetMessage(body, rule.deadline_field));
      due = ToMicros(ts);
    }
    // A newer promise for the same key replaces the older one.
    Pending& p = state.pending[key_];
    p.start = t;
    p.due = due;
    p.seq = ++next_seq_;
    p.event_id.assign(event.event_id());
    state.timers.push(Timer{due, p.seq, key_});
    return;
  }
  // The awaited follow-up: it keeps the promise only if it came in time.
  auto it = state.pending.find(key_);
  if (it != state.pending.end() && t >= it->second.start && t <= it->second.due) state.pending.erase(it);
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
        evidence_.clear();
        evidence_.push_back(it->second.event_id);
        EmitFinding(static_cast<int>(r), timer.key, timer.due, it->second.start, timer.due, 1);
        state.pending.erase(it);
      }
      state.timers.pop();
    }
  }
}

void Engine::Sweep(PartitionState& ps, Micros watermark) {
  for (size_t r = 0; r < ps.rules.size(); ++r) {
    const Rule& rule = rules_->rules()[r];
    if (rule.kind != RuleKind::kCount) continue;
    // A key whose newest entry left the window and whose cooldown is over
    // holds nothing a future event could use.
    absl::erase_if(ps.rules[r].counts, [&](const auto& kv) {
      const CountKey& ck = kv.second;
      const Micros newest = ck.size == 0 ? Watermark::kNone
                                         : ck.ring[(ck.head + ck.size - 1) % ck.ring.size()].time;
      return newest <= watermark - rule.window && ck.cooldown_until <= watermark;
    });
  }
}

void Engine::EmitFinding(int rule_index, std::string_view key, Micros fired_at, Micros window_start,
                         Micros window_end, int count) {
  const Rule& rule = rules_->rules()[static_cast<size_t>(rule_index)];
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
    kf->set_field(rule.key[i].name());
    kf->set_value(std::string(values[i]));
    id.Add(values[i]);
  }
  id.Add(window_start).Add(window_end);
  finding_.set_finding_id(Hex64(id.value()));
  SetTimestamp(fired_at, finding_.mutable_fired_at());
  SetTimestamp(window_start, finding_.mutable_window_start());
  SetTimestamp(window_end, finding_.mutable_window_end());
  for (std::string_view e : evidence_) finding_.add_evidence_event_ids(std::string(e));
  finding_.set_summary(Render(rule.summary, rule, values, count, window_start, window_end));
  for (const auto& [k, v] : rule.labels) (*finding_.mutable_labels())[k] = v;
  finding_.set_escalate_to(rule.escalate_to);
  sink_->Emit(rule_index, finding_);
}

}  // namespace cxpulse
