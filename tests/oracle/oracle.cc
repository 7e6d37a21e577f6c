// The oracle's rules and KPIs, written from the contract's text (issue 9),
// one small function per rule kind; see oracle.h.
#include "oracle/oracle.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <optional>
#include <sstream>

namespace cxpulse::oracle {
namespace {

// ---- time ----------------------------------------------------------------

Micros TimeOf(const google::protobuf::Timestamp& t) { return t.seconds() * kSecond + t.nanos() / 1000; }
Micros LengthOf(const google::protobuf::Duration& d) { return d.seconds() * kSecond + d.nanos() / 1000; }
Micros At(const Event& e) { return TimeOf(e.occurred_at()); }

// Rounds towards minus infinity (event times before 1970 stay correct).
Micros FloorDiv(Micros a, Micros b) {
  Micros q = a / b;
  if (a % b != 0 && ((a < 0) != (b < 0))) --q;
  return q;
}

bool Valid(const Event& e) {
  return e.body_case() != Event::BODY_NOT_SET && e.has_occurred_at() && !e.customer_id().empty();
}

// ---- the shipped pack, hardcoded ------------------------------------------

using Predicate = std::function<bool(const Event&)>;
using KeyOf = std::function<std::vector<std::string>(const Event&)>;

enum class Kind { kMatch, kCount, kRatio, kSpike, kSequence, kAbsence };

// One rule of rules/contact-centre.yaml. Which fields mean something depends
// on the kind (noted per field); the rest stay at their defaults.
struct Rule {
  std::string name;
  Kind kind = Kind::kMatch;
  bool centre = false;           // scope: centre-wide, else per customer (spec section 1)
  Predicate on;                  // match, count, spike: the `on`+`where`; absence: A; ratio: numerator
  Predicate other;               // absence: the `expect` (B); ratio: denominator
  KeyOf key;                     // the key of an `on` (or any step's) event
  KeyOf other_key;               // the key of an `other` event
  std::vector<Predicate> steps;  // sequence
  Micros window = 0;             // count, ratio, spike; sequence: `within`
  Micros baseline = 0;           // spike
  Micros cooldown = 0;           // 0: every evaluation may fire
  int64_t threshold = 0;         // count: threshold; ratio: min_volume; spike: min_count
  double level = 0;              // ratio: threshold; spike: factor
  bool keep_first = false;       // absence on_repeat: keep (else replace)
  // absence: the deadline of an `on` event (`within` or a timestamp field), if it has one.
  std::function<std::optional<Micros>(const Event&)> deadline;
};

Predicate Is(Event::BodyCase body) {
  return [body](const Event& e) { return e.body_case() == body; };
}

KeyOf CustomerKey() {
  return [](const Event& e) { return std::vector<std::string>{e.customer_id()}; };
}

bool Inbound(const Event& e) {
  return e.has_contact_started() && e.contact_started().direction() == cx::v1::DIRECTION_INBOUND;
}

std::vector<Rule> ShippedPack() {
  std::vector<Rule> pack;
  {
    Rule r;
    r.name = "repeat_contact";
    r.kind = Kind::kCount;
    r.on = Is(Event::kEnded);
    r.key = [](const Event& e) { return std::vector<std::string>{e.customer_id(), e.reason()}; };
    r.window = 7 * kDay;
    r.threshold = 3;
    r.cooldown = kDay;
    pack.push_back(r);
  }
  {
    Rule r;
    r.name = "transfer_ping_pong";
    r.kind = Kind::kCount;
    r.on = Is(Event::kTransferred);
    r.key = [](const Event& e) { return std::vector<std::string>{e.contact_id()}; };
    r.window = 30 * kMinute;
    r.threshold = 3;
    r.cooldown = r.window;  // count: the window when not given
    pack.push_back(r);
  }
  {
    Rule r;
    r.name = "reason_surge";
    r.kind = Kind::kSpike;
    r.centre = true;
    r.on = Inbound;
    r.key = [](const Event& e) { return std::vector<std::string>{e.reason()}; };
    r.window = 15 * kMinute;
    r.baseline = 6 * kHour;
    r.level = 3;
    r.threshold = 20;
    r.cooldown = kHour;
    pack.push_back(r);
  }
  {
    Rule r;
    r.name = "queue_abandonment_spike";
    r.kind = Kind::kRatio;
    r.centre = true;
    r.on = Is(Event::kAbandoned);
    r.other = Is(Event::kQueued);
    r.key = r.other_key = [](const Event& e) { return std::vector<std::string>{e.queue()}; };
    r.window = 15 * kMinute;
    r.level = 0.2;
    r.threshold = 30;
    r.cooldown = r.window;  // ratio: the window when not given
    pack.push_back(r);
  }
  {
    Rule r;
    r.name = "answer_time_over_target";
    r.kind = Kind::kMatch;
    r.centre = true;
    r.on = [](const Event& e) {
      if (!e.has_answered()) return false;
      const Micros wait = LengthOf(e.answered().wait());
      return ((e.queue() == "billing" || e.queue() == "retention") && wait > 60 * kSecond) || wait > 120 * kSecond;
    };
    r.key = [](const Event& e) { return std::vector<std::string>{e.queue()}; };
    r.cooldown = 15 * kMinute;
    pack.push_back(r);
  }
  {
    Rule r;
    r.name = "callback_missed";
    r.kind = Kind::kAbsence;
    r.on = Is(Event::kCallbackRequested);
    r.other = Is(Event::kCallbackAttempted);
    r.key = r.other_key = CustomerKey();
    r.deadline = [](const Event& e) -> std::optional<Micros> {
      if (!e.callback_requested().has_due_at()) return std::nullopt;
      return TimeOf(e.callback_requested().due_at());
    };
    r.keep_first = false;  // a rescheduled callback replaces the promise
    pack.push_back(r);
  }
  {
    Rule r;
    r.name = "detractor_not_followed_up";
    r.kind = Kind::kAbsence;
    r.on = [](const Event& e) {
      return e.has_survey() && e.survey().metric() == cx::v1::SURVEY_METRIC_NPS && e.survey().score() <= 6;
    };
    r.other = [](const Event& e) {
      return e.has_contact_started() && e.contact_started().direction() == cx::v1::DIRECTION_OUTBOUND;
    };
    r.key = r.other_key = CustomerKey();
    r.deadline = [](const Event& e) -> std::optional<Micros> { return At(e) + 48 * kHour; };
    r.keep_first = true;  // a second bad survey does not excuse the first
    pack.push_back(r);
  }
  {
    Rule r;
    r.name = "case_sla_breached";
    r.kind = Kind::kAbsence;
    r.on = Is(Event::kCaseOpened);
    r.other = Is(Event::kCaseClosed);
    r.key = [](const Event& e) { return std::vector<std::string>{e.case_opened().case_id()}; };
    r.other_key = [](const Event& e) { return std::vector<std::string>{e.case_closed().case_id()}; };
    r.deadline = [](const Event& e) -> std::optional<Micros> {
      if (!e.case_opened().has_sla_due_at()) return std::nullopt;
      return TimeOf(e.case_opened().sla_due_at());
    };
    r.keep_first = true;
    pack.push_back(r);
  }
  {
    Rule r;
    r.name = "vip_negative_sentiment";
    r.kind = Kind::kMatch;
    r.on = [](const Event& e) { return e.has_sentiment() && e.segment() == "vip" && e.sentiment().score() <= -0.6; };
    r.key = CustomerKey();
    r.cooldown = 4 * kHour;
    pack.push_back(r);
  }
  {
    Rule r;
    r.name = "third_contact_in_a_day";
    r.kind = Kind::kCount;
    r.on = Inbound;
    r.key = CustomerKey();
    r.window = kDay;
    r.threshold = 3;
    r.cooldown = r.window;
    pack.push_back(r);
  }
  {
    Rule r;
    r.name = "complaint";
    r.kind = Kind::kMatch;
    r.on = Is(Event::kComplaint);
    r.key = CustomerKey();
    r.cooldown = kHour;
    pack.push_back(r);
  }
  {
    Rule r;
    r.name = "abandoned_then_complained";
    r.kind = Kind::kSequence;
    r.steps = {Is(Event::kAbandoned), Is(Event::kComplaint)};
    r.key = CustomerKey();
    r.window = kDay;  // within
    r.cooldown = 0;   // sequence: none when not given
    pack.push_back(r);
  }
  return pack;
}

const std::vector<Rule>& Pack() {
  static const std::vector<Rule> pack = ShippedPack();
  return pack;
}

// ---- evaluation, per key ---------------------------------------------------

// One of a key's events as the rule sees it, with the partition it came from.
struct Item {
  const Event* event;
  int partition;
};

// After a finding at F, the key fires again only at a time >= F + cooldown.
// A cooldown of 0 suppresses nothing (spec: "cooldown: 0 means every match fires").
class Cooldown {
 public:
  bool Allows(Micros t) const { return !until_ || t >= *until_; }
  void Start(Micros fired_at, Micros cooldown) {
    if (cooldown > 0) until_ = fired_at + cooldown;
  }

 private:
  std::optional<Micros> until_;
};

// The rule's view of one key: its events in order, and where findings go.
struct KeyRun {
  const Rule& rule;
  const std::vector<std::string>& key;
  const std::vector<Item>& items;
  std::vector<Finding>* out;

  void Fire(Micros at, int64_t count) const { out->push_back(Finding{rule.name, key, at, count}); }
};

void RunMatch(const KeyRun& run) {
  Cooldown cooldown;
  for (const Item& item : run.items) {
    const Micros t = At(*item.event);
    if (!cooldown.Allows(t)) continue;
    run.Fire(t, 1);
    cooldown.Start(t, run.rule.cooldown);
  }
}

void RunCount(const KeyRun& run) {
  const Rule& rule = run.rule;
  Cooldown cooldown;
  std::vector<Micros> in_window;  // times of the events still in the window
  Micros newest = std::numeric_limits<Micros>::min();
  for (const Item& item : run.items) {
    const Micros t = At(*item.event);
    in_window.push_back(t);
    newest = std::max(newest, t);
    // The window is (newest - W, newest]: older events are forgotten for good.
    std::erase_if(in_window, [&](Micros x) { return x <= newest - rule.window; });
    const auto n = static_cast<int64_t>(in_window.size());
    if (n >= rule.threshold && cooldown.Allows(newest)) {
      run.Fire(newest, n);
      cooldown.Start(newest, rule.cooldown);
    }
  }
}

void RunRatio(const KeyRun& run) {
  const Rule& rule = run.rule;
  const Micros width = rule.window / 12;
  struct Counted {
    Micros bucket;
    bool numerator;
  };
  std::vector<Counted> counted;
  std::optional<Micros> newest;  // the key's newest bucket
  Cooldown cooldown;
  for (const Item& item : run.items) {
    const Event& e = *item.event;
    const Micros t = At(e);
    const Micros i = FloorDiv(t, width);
    if (newest && i < *newest - 11) continue;  // outside every window: adds nothing
    newest = std::max(newest.value_or(i), i);
    counted.push_back({i, rule.on(e)});
    int64_t a = 0, d = 0;
    for (const Counted& c : counted) {
      if (c.bucket < i - 11 || c.bucket > i) continue;
      (c.numerator ? a : d) += 1;
    }
    if (d >= rule.threshold && d > 0 && static_cast<double>(a) / static_cast<double>(d) >= rule.level &&
        cooldown.Allows(t)) {
      run.Fire(t, d);
      cooldown.Start(t, rule.cooldown);
    }
    // Nothing older than newest - 22 can be in a window again (an event more
    // than 11 buckets behind adds nothing, and its window reaches 11 back).
    std::erase_if(counted, [&](const Counted& c) { return c.bucket < *newest - 22; });
  }
}

void RunSpike(const KeyRun& run) {
  const Rule& rule = run.rule;
  const double alpha = static_cast<double>(rule.window) / static_cast<double>(rule.baseline);
  std::optional<Micros> current;  // the current tumbling window's index
  int64_t count = 0;
  double baseline = 0;
  int64_t windows_seen = 0;
  Cooldown cooldown;
  for (const Item& item : run.items) {
    const Micros t = At(*item.event);
    const Micros j = FloorDiv(t, rule.window);
    if (!current) {
      current = j;
    } else if (j > *current) {
      const Micros gap = j - *current;
      if (windows_seen == 0) {
        baseline = static_cast<double>(count);
      } else {
        baseline += alpha * (static_cast<double>(count) - baseline);
      }
      if (gap > 1) baseline *= std::pow(1 - alpha, static_cast<double>(gap - 1));
      windows_seen += gap;
      current = j;
      count = 0;
    } else if (j < *current) {
      continue;  // a window already closed
    }
    count += 1;
    const bool warm = windows_seen * rule.window >= rule.baseline;
    if (warm && cooldown.Allows(t) && count >= rule.threshold &&
        static_cast<double>(count) >= rule.level * std::max(baseline, 1.0)) {
      run.Fire(t, count);
      cooldown.Start(t, rule.cooldown);
    }
  }
}

void RunSequence(const KeyRun& run) {
  const Rule& rule = run.rule;
  const size_t k = rule.steps.size();
  size_t next = 0;  // the step expected next; 0: no match in progress
  Micros start = 0;
  Cooldown cooldown;
  for (const Item& item : run.items) {
    const Event& e = *item.event;
    const Micros t = At(e);
    if (next > 0 && t - start > rule.window) next = 0;  // too slow: start over
    if (next > 0 && rule.steps[next](e)) {
      ++next;
    } else if (rule.steps[0](e)) {
      start = t;
      next = 1;
    }
    if (next == k) {
      next = 0;
      if (cooldown.Allows(t)) {
        run.Fire(t, static_cast<int64_t>(k));
        cooldown.Start(t, rule.cooldown);
      }
    }
  }
}

// `watermark_at_end(partition)`: the final watermark a promise made on that
// partition is judged against; nullopt: every pending promise fires.
void RunAbsence(const KeyRun& run, const std::function<std::optional<Micros>(int)>& watermark_at_end) {
  const Rule& rule = run.rule;
  struct Promise {
    Micros start = 0;
    Micros due = 0;
    int partition = 0;
  };
  // At most one pending promise per key. (A plain flag, not std::optional:
  // GCC 12 warns maybe-uninitialized on the optional's members here.)
  bool is_pending = false;
  Promise pending;
  for (const Item& item : run.items) {
    const Event& e = *item.event;
    const Micros t = At(e);
    if (rule.on(e)) {
      // Already overdue when the next `on` event comes: reported, whatever the policy.
      if (is_pending && pending.due < t) {
        run.Fire(pending.due, 1);
        is_pending = false;
      }
      const std::optional<Micros> due = rule.deadline(e);
      if (!due || *due < t) continue;  // starts no promise
      if (is_pending && rule.keep_first) continue;
      pending = Promise{t, *due, item.partition};  // new, or replacing one not yet due
      is_pending = true;
    } else if (rule.other(e)) {
      // Kept by a follow-up in [start, due]; one exactly at the deadline is in time.
      if (is_pending && pending.start <= t && t <= pending.due) is_pending = false;
    }
  }
  if (!is_pending) return;
  const std::optional<Micros> watermark = watermark_at_end(pending.partition);
  if (!watermark || *watermark > pending.due) run.Fire(pending.due, 1);
}

// The order a centre-wide rule sees events in: (occurred_at, event_id).
bool EventTimeOrder(const Item& a, const Item& b) {
  const Micros ta = At(*a.event), tb = At(*b.event);
  if (ta != tb) return ta < tb;
  return a.event->event_id() < b.event->event_id();  // std::string compares bytes as unsigned
}

void RunRule(const Rule& rule, const std::vector<Item>& stream, const std::map<int, Micros>& watermarks,
             bool flush_at_end, std::vector<Finding>* out) {
  // Each key's events, in the order the rule sees them.
  std::map<std::vector<std::string>, std::vector<Item>> keys;
  for (const Item& item : stream) {
    const Event& e = *item.event;
    if (rule.kind == Kind::kSequence) {
      if (std::any_of(rule.steps.begin(), rule.steps.end(), [&](const Predicate& p) { return p(e); })) {
        keys[rule.key(e)].push_back(item);
      }
    } else if (rule.on(e)) {
      keys[rule.key(e)].push_back(item);
    } else if (rule.other && rule.other(e)) {
      keys[rule.other_key(e)].push_back(item);
    }
  }
  // Lowest final watermark over partitions that had an event: a centre-wide rule's clock.
  std::optional<Micros> lowest;
  for (const auto& [p, w] : watermarks) lowest = std::min(lowest.value_or(w), w);
  auto watermark_at_end = [&](int partition) -> std::optional<Micros> {
    if (flush_at_end) return std::nullopt;
    if (rule.centre) return lowest.value_or(std::numeric_limits<Micros>::min());
    auto it = watermarks.find(partition);
    return it == watermarks.end() ? std::numeric_limits<Micros>::min() : it->second;
  };
  for (const auto& [key, items] : keys) {
    const KeyRun run{rule, key, items, out};
    switch (rule.kind) {
      case Kind::kMatch: RunMatch(run); break;
      case Kind::kCount: RunCount(run); break;
      case Kind::kRatio: RunRatio(run); break;
      case Kind::kSpike: RunSpike(run); break;
      case Kind::kSequence: RunSequence(run); break;
      case Kind::kAbsence: RunAbsence(run, watermark_at_end); break;
    }
  }
}

// ---- KPIs -------------------------------------------------------------------

std::string ChannelName(cx::v1::Channel c) {
  switch (c) {
    case cx::v1::CHANNEL_VOICE: return "voice";
    case cx::v1::CHANNEL_CHAT: return "chat";
    case cx::v1::CHANNEL_EMAIL: return "email";
    case cx::v1::CHANNEL_SMS: return "sms";
    case cx::v1::CHANNEL_SOCIAL: return "social";
    case cx::v1::CHANNEL_WEB: return "web";
    default: return "unspecified";
  }
}

std::string QueueLabel(const Params& params, const std::string& queue) {
  if (queue.empty()) return "unassigned";
  return params.queues.count(queue) > 0 ? queue : "other";
}

// A callback promise for the KPIs (spec section 3), and what became of it.
struct CallbackPromise {
  const Event* request;
  int partition;
  Micros requested;  // r
  Micros due;        // d
  bool kept = false;
  std::optional<Micros> rescheduled_at;  // r2 of the request that rescheduled it
};

}  // namespace

std::string FormatTime(Micros t) {
  const Micros seconds = FloorDiv(t, kSecond);
  const Micros micros = t - seconds * kSecond;
  const std::time_t s = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out = buf;
  if (micros != 0) {
    char frac[16];
    std::snprintf(frac, sizeof frac, ".%06lld", static_cast<long long>(micros));
    out += frac;
  }
  return out + "Z";
}

std::string ToString(const Finding& f) {
  std::ostringstream out;
  out << f.rule << "[";
  for (size_t i = 0; i < f.key.size(); ++i) out << (i > 0 ? "," : "") << f.key[i];
  out << "] at " << FormatTime(f.fired_at) << " count " << f.count;
  return out.str();
}

std::ostream& operator<<(std::ostream& out, const Finding& f) { return out << ToString(f); }

Admission Admit(const std::vector<Event>& events, const PartitionOf& partition_of, Micros allowed_lateness) {
  Admission a;
  std::map<int, Micros> newest;  // per partition: newest occurred_at of an admitted event
  for (const Event& e : events) {
    if (!Valid(e)) continue;
    const int p = partition_of(e);
    const Micros t = At(e);
    auto it = newest.find(p);
    if (it != newest.end() && t < it->second - allowed_lateness) {
      a.late.push_back(&e);
      continue;
    }
    newest[p] = it == newest.end() ? t : std::max(it->second, t);
    a.admitted.push_back(&e);
  }
  for (const auto& [p, t] : newest) a.watermark[p] = t - allowed_lateness;
  return a;
}

const std::vector<std::string>& RuleNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const Rule& r : Pack()) n.push_back(r.name);
    return n;
  }();
  return names;
}

std::vector<Finding> Findings(const std::vector<Event>& events, const PartitionOf& partition_of, const Params& params,
                              bool flush_at_end) {
  const Admission admission = Admit(events, partition_of, params.allowed_lateness);
  std::vector<Item> arrival;
  for (const Event* e : admission.admitted) arrival.push_back({e, partition_of(*e)});
  std::vector<Item> event_time = arrival;
  std::stable_sort(event_time.begin(), event_time.end(), EventTimeOrder);

  std::vector<Finding> out;
  for (const Rule& rule : Pack()) {
    RunRule(rule, rule.centre ? event_time : arrival, admission.watermark, flush_at_end, &out);
  }
  std::sort(out.begin(), out.end());
  return out;
}

const std::vector<std::string>& KpiNames() {
  static const std::vector<std::string> names = {
      "offered",        "answered",    "answered_within_target", "abandoned",     "wait_seconds",   "handled",
      "handle_seconds", "contacts",    "repeat_contacts",        "callbacks_due", "callbacks_made", "callbacks_missed",
      "csat_responses", "csat_points", "nps_responses",          "nps_promoters", "nps_detractors"};
  return names;
}

Micros KpiWindowEnd(const Admission& admission, Micros bucket) {
  if (admission.watermark.empty()) return 0;
  Micros lowest = std::numeric_limits<Micros>::max();
  for (const auto& [p, w] : admission.watermark) lowest = std::min(lowest, w);
  return FloorDiv(lowest, bucket) * bucket;
}

std::map<KpiCell, KpiValues> Kpis(const std::vector<Event>& events, const PartitionOf& partition_of,
                                  const Params& params, Micros window_end) {
  const Admission admission = Admit(events, partition_of, params.allowed_lateness);
  std::map<KpiCell, KpiValues> out;
  // Counts `value` for the cell of `e` at time `at`, in every window whose
  // buckets [E - W, E) hold `at`'s bucket.
  auto add = [&](const Event& e, Micros at, const std::string& name, double value) {
    const Micros bucket_start = FloorDiv(at, params.kpi_bucket) * params.kpi_bucket;
    for (const auto& [label, length] : params.windows) {
      if (bucket_start < window_end - length || bucket_start >= window_end) continue;
      out[KpiCell{QueueLabel(params, e.queue()), ChannelName(e.channel()), label}][name] += value;
    }
  };
  auto seconds = [](Micros d) { return static_cast<double>(d) / static_cast<double>(kSecond); };

  std::map<std::string, Micros> last_contact;  // customer: newest occurred_at of its contact_started so far
  std::vector<CallbackPromise> promises;
  std::map<std::string, size_t> current;        // customer: index of its current promise
  for (const Event* ep : admission.admitted) {  // arrival order
    const Event& e = *ep;
    const Micros t = At(e);
    switch (e.body_case()) {
      case Event::kQueued: add(e, t, "offered", 1); break;
      case Event::kAnswered: {
        const Micros wait = LengthOf(e.answered().wait());
        auto sl = params.sl_threshold.find(e.queue());
        const Micros threshold = sl != params.sl_threshold.end() ? sl->second : params.default_sl_threshold;
        add(e, t, "answered", 1);
        if (wait <= threshold) add(e, t, "answered_within_target", 1);
        add(e, t, "wait_seconds", seconds(wait));
        break;
      }
      case Event::kAbandoned: add(e, t, "abandoned", 1); break;
      case Event::kEnded:
        add(e, t, "handled", 1);
        add(e, t, "handle_seconds", seconds(LengthOf(e.ended().handle_time())));
        break;
      case Event::kContactStarted: {
        add(e, t, "contacts", 1);
        auto it = last_contact.find(e.customer_id());
        if (it != last_contact.end() && std::abs(t - it->second) <= params.repeat_window) {
          add(e, t, "repeat_contacts", 1);
        }
        last_contact[e.customer_id()] = it == last_contact.end() ? t : std::max(it->second, t);
        break;
      }
      case Event::kCallbackAttempted: {
        add(e, t, "callbacks_made", 1);
        auto it = current.find(e.customer_id());
        if (it != current.end()) {
          CallbackPromise& p = promises[it->second];
          if (p.requested <= t && t <= p.due + params.callback_grace) {
            p.kept = true;
            current.erase(it);
          }
        }
        break;
      }
      case Event::kCallbackRequested: {
        if (!e.callback_requested().has_due_at()) break;
        const Micros due = TimeOf(e.callback_requested().due_at());
        if (due < t || due > t + 30 * kDay) break;  // not a promise: ignored entirely
        auto it = current.find(e.customer_id());
        if (it != current.end()) {
          CallbackPromise& p = promises[it->second];
          // Overdue (past due + grace) it stays broken; otherwise it is rescheduled.
          if (t <= p.due + params.callback_grace) p.rescheduled_at = t;
        }
        current[e.customer_id()] = promises.size();
        promises.push_back(CallbackPromise{&e, partition_of(e), t, due});
        break;
      }
      case Event::kSurvey:
        if (e.survey().metric() == cx::v1::SURVEY_METRIC_CSAT) {
          add(e, t, "csat_responses", 1);
          add(e, t, "csat_points", e.survey().score());
        } else if (e.survey().metric() == cx::v1::SURVEY_METRIC_NPS) {
          add(e, t, "nps_responses", 1);
          if (e.survey().score() >= 9) add(e, t, "nps_promoters", 1);
          if (e.survey().score() <= 6) add(e, t, "nps_detractors", 1);
        }
        break;
      default: break;
    }
  }
  // Callback timers: each counts once its partition's final watermark is past it.
  for (const CallbackPromise& p : promises) {
    const Micros watermark = admission.watermark.at(p.partition);
    const bool rescheduled_before_due = p.rescheduled_at && *p.rescheduled_at < p.due;
    if (!rescheduled_before_due && watermark > p.due) add(*p.request, p.due, "callbacks_due", 1);
    const Micros missed_at = p.due + params.callback_grace;
    if (!p.kept && !p.rescheduled_at && watermark > missed_at) add(*p.request, missed_at, "callbacks_missed", 1);
  }
  return out;
}

}  // namespace cxpulse::oracle
