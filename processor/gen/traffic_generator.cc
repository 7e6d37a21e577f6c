#include "gen/traffic_generator.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <numbers>
#include <numeric>
#include <utility>

namespace cxpulse {
namespace {

constexpr int64_t kNanosPerSecond = 1'000'000'000;
constexpr double kHour = 3600;

// Reason codes, the queue that usually takes them, how often they occur and how often
// a contact about them ends resolved.
struct ReasonProfile {
  const char* name;
  const char* home_queue;
  double weight;
  double resolve;
};
constexpr ReasonProfile kReasons[] = {
    {"password_reset", "tech_support", 18, 0.88}, {"billing_dispute", "billing", 14, 0.58},
    {"payment_failed", "billing", 12, 0.70},      {"plan_change", "sales", 12, 0.80},
    {"delivery_late", "sales", 11, 0.55},         {"refund_status", "billing", 10, 0.62},
    {"outage", "tech_support", 8, 0.40},          {"cancel_request", "retention", 9, 0.50},
};
constexpr double kNewReasonResolve = 0.5;

// Waits and handle times in realistic seconds.
struct ChannelProfile {
  cx::v1::Channel channel;
  double weight;
  double wait_mean;
  double ivr_max;  // time between contact_started and queued
  double handle_median;
  double abandon_factor;
  bool callback_eligible;
  int max_sentiment_samples;
};
constexpr ChannelProfile kChannels[] = {
    {cx::v1::CHANNEL_VOICE, 0.45, 45, 40, 300, 1.0, true, 3},
    {cx::v1::CHANNEL_CHAT, 0.22, 30, 5, 540, 1.0, true, 3},
    {cx::v1::CHANNEL_EMAIL, 0.10, 1200, 1, 420, 0.1, false, 1},
    {cx::v1::CHANNEL_WEB, 0.10, 40, 5, 360, 1.0, true, 2},
    {cx::v1::CHANNEL_SMS, 0.07, 120, 2, 480, 0.6, false, 1},
    {cx::v1::CHANNEL_SOCIAL, 0.06, 300, 2, 400, 0.5, false, 1},
};

constexpr const char* kResolvedDispositions[] = {"resolved", "resolved", "resolved",
                                                 "information_provided"};
constexpr const char* kUnresolvedDispositions[] = {"follow_up_required", "no_fix_available",
                                                   "customer_disconnected"};
constexpr const char* kEscalatedDisposition = "escalated";

enum ComplaintCategory : int32_t {
  kUnresolvedIssue,
  kWaitTime,
  kTransfers,
  kCallbackMissed,
  kBillingError,
  kAgentConduct,
};
struct ComplaintText {
  const char* category;
  const char* text;
};
constexpr ComplaintText kComplaints[] = {
    {"unresolved_issue", "I have contacted you several times and the problem is still not fixed."},
    {"wait_time", "I waited far too long to speak to anyone."},
    {"transfers", "I was passed from one department to another and back again."},
    {"callback_missed", "You promised to call me back and nobody did."},
    {"billing_error", "I was charged incorrectly and nobody will correct it."},
    {"agent_conduct", "The agent was rude and did not listen."},
};

constexpr const char* kLowScoreComments[] = {"issue still not fixed", "waited too long",
                                             "had to explain everything twice"};
constexpr const char* kHighScoreComments[] = {"quick and helpful", "agent was great",
                                              "sorted first time"};

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

double UnitFromHash(uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }

void AppendNumber(std::string* s, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;  // 24 chars always hold a uint64_t
  s->append(buf, end);
}

std::string CustomerId(uint64_t index) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, index);
  (void)ec;
  std::string id = "c";
  for (auto digits = end - buf; digits < 6; ++digits) id.push_back('0');
  id.append(buf, end);
  return id;
}

void SetTimestamp(int64_t ns, google::protobuf::Timestamp* ts) {
  int64_t seconds = ns / kNanosPerSecond;
  int64_t nanos = ns % kNanosPerSecond;
  if (nanos < 0) {
    nanos += kNanosPerSecond;
    --seconds;
  }
  ts->set_seconds(seconds);
  ts->set_nanos(static_cast<int32_t>(nanos));
}

void SetDuration(int64_t ns, google::protobuf::Duration* d) {
  d->set_seconds(ns / kNanosPerSecond);
  d->set_nanos(static_cast<int32_t>(ns % kNanosPerSecond));
}

double Clamp01(double p) { return std::clamp(std::isfinite(p) ? p : 0.0, 0.0, 1.0); }

TrafficOptions Sanitize(TrafficOptions o) {
  o.customers = std::max(1, o.customers);
  if (!(o.contacts_per_second >= 0) || !std::isfinite(o.contacts_per_second))
    o.contacts_per_second = 0;
  if (!(o.time_compression > 0) || !std::isfinite(o.time_compression)) o.time_compression = 1;
  if (o.queues.empty()) o.queues.push_back("general");
  o.repeat_probability = Clamp01(o.repeat_probability);
  o.abandon_probability = Clamp01(o.abandon_probability);
  o.callback_probability = Clamp01(o.callback_probability);
  o.callback_miss_probability = Clamp01(o.callback_miss_probability);
  o.survey_probability = Clamp01(o.survey_probability);
  o.vip_fraction = Clamp01(o.vip_fraction);
  o.frequent_caller_fraction = Clamp01(o.frequent_caller_fraction);
  o.frequent_caller_share = Clamp01(o.frequent_caller_share);
  o.transfer_probability = Clamp01(o.transfer_probability);
  o.outbound_fraction = Clamp01(o.outbound_fraction);
  o.agents_per_queue = std::max(1, o.agents_per_queue);
  if (o.callback_window.count() <= 0) o.callback_window = std::chrono::seconds(1800);
  if (o.long_wait.count() <= 0) o.long_wait = std::chrono::seconds(120);
  for (StaffingDrop& d : o.staffing_drops) {
    d.agents_left = std::isfinite(d.agents_left) ? std::clamp(d.agents_left, 0.01, 1.0) : 1.0;
  }
  return o;
}

int64_t ToNanos(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

TrafficGenerator::TrafficGenerator(TrafficOptions options,
                                   std::chrono::system_clock::time_point start)
    : options_(Sanitize(std::move(options))),
      start_(ToNanos(start)),
      sim_now_(start_),
      rng_(options_.seed) {
  const auto& queues = options_.queues;
  const int num_queues = static_cast<int>(queues.size());
  auto queue_index = [&](const std::string& name, int fallback) {
    auto it = std::find(queues.begin(), queues.end(), name);
    return it != queues.end() ? static_cast<int>(it - queues.begin()) : fallback % num_queues;
  };

  double total = 0;
  for (const ReasonProfile& r : kReasons) {
    reasons_.push_back(r.name);
    total += r.weight;
    reason_cumulative_.push_back(total);
    reason_resolve_.push_back(r.resolve);
    reason_queue_.push_back(queue_index(r.home_queue, static_cast<int>(reasons_.size()) - 1));
  }
  // Surge reasons not in the table join it with zero weight: only the surge makes them.
  for (const TrafficSurge& s : options_.surges) {
    auto it = std::find(reasons_.begin(), reasons_.end(), s.reason);
    int reason = static_cast<int>(it - reasons_.begin());
    if (it == reasons_.end()) {
      reasons_.push_back(s.reason);
      reason_cumulative_.push_back(total);
      reason_resolve_.push_back(kNewReasonResolve);
      reason_queue_.push_back(reason % num_queues);
    }
    surge_reason_.push_back(reason);
    surge_queue_.push_back(s.queue.empty() ? reason_queue_[reason] : queue_index(s.queue, reason));
  }

  total = 0;
  double abandon_weight = 0;
  for (const ChannelProfile& c : kChannels) {
    total += c.weight;
    channel_cumulative_.push_back(total);
    abandon_weight += c.weight * c.abandon_factor;
  }
  abandon_scale_ = total / abandon_weight;  // so the overall rate is abandon_probability

  // Some queues are better staffed than others; the factor's mean is 1.
  for (int q = 0; q < num_queues; ++q) {
    queue_wait_factor_.push_back(0.5 + UnitFromHash(SplitMix64(options_.seed * 31 + q)));
  }
  double mean_factor =
      std::accumulate(queue_wait_factor_.begin(), queue_wait_factor_.end(), 0.0) / num_queues;
  for (double& f : queue_wait_factor_) f /= mean_factor;

  for (const StaffingDrop& d : options_.staffing_drops) {
    auto it = std::find(queues.begin(), queues.end(), d.queue);
    if (it == queues.end() || d.duration.count() <= 0) continue;
    const int64_t from = start_ + d.after.count() * kNanosPerSecond;
    drops_.push_back({static_cast<int>(it - queues.begin()), from,
                      from + d.duration.count() * kNanosPerSecond, 1.0 / d.agents_left});
  }

  for (int q = 0; q < num_queues; ++q) {
    for (int k = 0; k < options_.agents_per_queue; ++k) {
      std::string id = "a";
      AppendNumber(&id, static_cast<uint64_t>(q) * 1000 + k);
      agent_ids_.push_back(std::move(id));
    }
  }

  // Frequent callers are indices [0, frequent_customers_) before a permutation that
  // scatters them over the id space.
  const uint64_t n = static_cast<uint64_t>(options_.customers);
  frequent_customers_ =
      std::max<uint64_t>(1, static_cast<uint64_t>(n * options_.frequent_caller_fraction));
  customer_stride_ = (SplitMix64(options_.seed) % n) | 1;
  while (std::gcd(customer_stride_, n) != 1) ++customer_stride_;
  customer_stride_ %= n;
  if (customer_stride_ == 0) customer_stride_ = 1;
  customer_offset_ = SplitMix64(options_.seed + 1) % n;

  event_prefix_ = "e";
  AppendNumber(&event_prefix_, options_.seed);
  event_prefix_ += '-';
  contact_prefix_ = "ct";
  AppendNumber(&contact_prefix_, options_.seed);
  contact_prefix_ += '-';
  case_prefix_ = "case";
  AppendNumber(&case_prefix_, options_.seed);
  case_prefix_ += '-';

  ScheduleNextArrival(0, start_);
  for (size_t i = 0; i < options_.surges.size(); ++i) {
    ScheduleNextArrival(static_cast<int>(i) + 1,
                        start_ + options_.surges[i].after.count() * kNanosPerSecond);
  }
}

void TrafficGenerator::Poll(std::chrono::system_clock::time_point now,
                            std::vector<cx::v1::InteractionEvent>* out) {
  const int64_t now_ns = ToNanos(now);
  if (now_ns <= sim_now_) return;
  // Roughly 6 events per contact; only a hint. Grow geometrically: callers often append
  // many small polls to one vector, and an exact reserve each time would be quadratic.
  const double expected =
      static_cast<double>(now_ns - sim_now_) / kNanosPerSecond * options_.contacts_per_second * 6;
  const size_t wanted = out->size() + static_cast<size_t>(std::min(expected, double{1 << 20}));
  if (wanted > out->capacity()) out->reserve(std::max(wanted, 2 * out->capacity()));
  while (!heap_.empty() && heap_.top().at <= now_ns) {
    Step step = heap_.top();
    heap_.pop();
    Process(step, out);
    if (step.contact != kNoContact && --contacts_[step.contact].pending == 0) {
      free_contacts_.push_back(step.contact);
    }
  }
  sim_now_ = now_ns;
}

void TrafficGenerator::Schedule(int64_t at, StepKind kind, uint32_t contact, int64_t a, int32_t b,
                                int32_t c, double x) {
  if (contact != kNoContact) ++contacts_[contact].pending;
  heap_.push(Step{at, seq_++, a, x, contact, b, c, kind});
}

// Stream 0 is the base traffic; stream i > 0 is surge i - 1.
void TrafficGenerator::ScheduleNextArrival(int stream, int64_t after) {
  double rate = options_.contacts_per_second;
  int64_t end = INT64_MAX;
  if (stream > 0) {
    const TrafficSurge& s = options_.surges[stream - 1];
    rate = s.extra_contacts_per_second;
    end = start_ + (s.after + s.duration).count() * kNanosPerSecond;
  }
  if (!(rate > 0) || !std::isfinite(rate)) return;
  int64_t at = after + static_cast<int64_t>(Exponential(1.0 / rate) * kNanosPerSecond);
  if (at >= end) return;
  Schedule(at, StepKind::kArrival, kNoContact, 0, stream);
}

int64_t TrafficGenerator::JourneyNanos(double seconds) const {
  return static_cast<int64_t>(seconds / options_.time_compression * kNanosPerSecond);
}

int64_t TrafficGenerator::WaitNanos(double seconds) const {
  if (options_.compress_queue_waits) return JourneyNanos(seconds);
  return static_cast<int64_t>(seconds * kNanosPerSecond);
}

double TrafficGenerator::Uniform() { return UnitFromHash(rng_()); }

// The distributions are written out rather than taken from <random>, whose algorithms
// differ between standard libraries: the same seed must give the same traffic everywhere.
// The modulo bias is below 2^-32 for every n used here.
uint64_t TrafficGenerator::UniformInt(uint64_t n) { return rng_() % n; }

double TrafficGenerator::Exponential(double mean) { return -std::log1p(-Uniform()) * mean; }

double TrafficGenerator::Normal(double mean, double sd) {
  double u1 = 1.0 - Uniform();  // (0, 1]
  double u2 = Uniform();
  return mean + sd * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

double TrafficGenerator::LogNormal(double median, double sigma) {
  return median * std::exp(Normal(0, sigma));
}

int TrafficGenerator::PickWeighted(const std::vector<double>& cumulative) {
  double x = Uniform() * cumulative.back();
  auto it = std::upper_bound(cumulative.begin(), cumulative.end(), x);
  return static_cast<int>(std::min<ptrdiff_t>(it - cumulative.begin(), cumulative.size() - 1));
}

uint32_t TrafficGenerator::PickCustomer() {
  const uint64_t n = static_cast<uint64_t>(options_.customers);
  uint64_t index =
      Bernoulli(options_.frequent_caller_share) ? UniformInt(frequent_customers_) : UniformInt(n);
  return static_cast<uint32_t>((index * customer_stride_ + customer_offset_) % n);
}

double TrafficGenerator::Understaffing(int queue, int64_t at) const {
  double factor = 1;
  for (const ActiveDrop& d : drops_) {
    if (d.queue == queue && at >= d.from && at < d.to) factor *= d.factor;
  }
  return factor;
}

int TrafficGenerator::PickAgent(int queue) {
  return queue * options_.agents_per_queue +
         static_cast<int>(UniformInt(static_cast<uint64_t>(options_.agents_per_queue)));
}

cx::v1::InteractionEvent* TrafficGenerator::Emit(const Contact& c, int64_t at,
                                                 std::vector<cx::v1::InteractionEvent>* out) {
  cx::v1::InteractionEvent& e = out->emplace_back();
  std::string id = event_prefix_;
  AppendNumber(&id, ++event_counter_);
  e.set_event_id(std::move(id));
  SetTimestamp(at, e.mutable_occurred_at());
  e.set_customer_id(c.customer_id);
  e.set_contact_id(c.contact_id);
  e.set_channel(kChannels[c.channel].channel);
  e.set_queue(options_.queues[c.queue]);
  if (c.agent >= 0) e.set_agent_id(agent_ids_[c.agent]);
  e.set_reason(reasons_[c.reason]);
  e.set_segment(c.vip ? "vip" : "standard");
  return &e;
}

uint32_t TrafficGenerator::StartContact(int64_t at, uint32_t customer, int reason, int channel,
                                        int queue, int repeat,
                                        std::vector<cx::v1::InteractionEvent>* out) {
  uint32_t slot;
  if (!free_contacts_.empty()) {
    slot = free_contacts_.back();
    free_contacts_.pop_back();
  } else {
    slot = static_cast<uint32_t>(contacts_.size());
    contacts_.emplace_back();
  }
  Contact& c = contacts_[slot];
  c.contact_id = contact_prefix_;
  AppendNumber(&c.contact_id, ++contact_counter_);
  c.customer_id = CustomerId(customer);
  c.customer = customer;
  c.channel = static_cast<uint16_t>(channel);
  c.reason = static_cast<uint16_t>(reason);
  c.queue = c.prev_queue = static_cast<uint16_t>(queue);
  c.agent = -1;
  c.repeat = repeat;
  c.pending = 0;
  c.transfers = 0;
  c.callback_attempts = 0;
  c.talk_started_at = 0;
  c.callback_due = 0;
  c.vip = UnitFromHash(SplitMix64(options_.seed ^ (0x5bd1e995ULL * (customer + 1)))) <
          options_.vip_fraction;
  c.resolved = false;
  c.long_wait = false;
  c.escalated = false;

  // The centre reaches out itself now and then (proactive notice, retention offer):
  // an agent calls, so there is no queue.
  const bool outbound = repeat == 0 && Bernoulli(options_.outbound_fraction);
  if (outbound) c.agent = PickAgent(queue);
  auto* e = Emit(c, at, out);
  e->mutable_contact_started()->set_direction(outbound ? cx::v1::DIRECTION_OUTBOUND
                                                       : cx::v1::DIRECTION_INBOUND);
  if (outbound) {
    StartConversation(slot, at);
  } else {
    Schedule(at + WaitNanos(Uniform(0, kChannels[channel].ivr_max)), StepKind::kQueued, slot);
  }
  return slot;
}

// Schedules what happens while a customer talks to an agent: transfers, sentiment
// samples, and the end, whose outcome is decided now so the samples can lean towards it.
void TrafficGenerator::StartConversation(uint32_t slot, int64_t at) {
  Contact& c = contacts_[slot];
  const ChannelProfile& ch = kChannels[c.channel];
  c.talk_started_at = at;
  const int64_t handle =
      std::max<int64_t>(JourneyNanos(std::max(20.0, LogNormal(ch.handle_median, 0.55))), 1000);

  int transfers = 0;
  if (Bernoulli(options_.transfer_probability)) {
    transfers = 1;
    while (transfers < 4 && Bernoulli(0.3)) ++transfers;  // back and forth: ping-pong
  }
  for (int i = 0; i < transfers; ++i) {
    Schedule(at + handle * (i + 1) / (transfers + 2), StepKind::kTransfer, slot, 0, i);
  }

  double resolve = reason_resolve_[c.reason] - 0.12 * transfers - (c.long_wait ? 0.06 : 0) +
                   (c.repeat > 0 ? 0.05 : 0);
  c.resolved = Bernoulli(std::clamp(resolve, 0.02, 0.98));
  c.escalated = !c.resolved && Bernoulli(0.15);

  int samples = 0;
  if (ch.max_sentiment_samples > 1) {
    samples = 1 + static_cast<int>(UniformInt(static_cast<uint64_t>(ch.max_sentiment_samples)));
  } else if (Bernoulli(0.5)) {
    samples = 1;
  }
  const double mood_start =
      0.05 - (c.long_wait ? 0.3 : 0) - 0.15 * std::min(c.repeat, 3) - (c.vip ? 0.05 : 0);
  const double mood_end = c.resolved ? 0.45 : -0.45;
  for (int i = 0; i < samples; ++i) {
    double frac = static_cast<double>(i + 1) / (samples + 1);
    int transfers_before = static_cast<int>(frac * (transfers + 2));
    double mean = mood_start + (mood_end - mood_start) * frac -
                  0.1 * std::clamp(transfers_before, 0, transfers);
    double score = std::clamp(Normal(mean, 0.3), -1.0, 1.0);
    Schedule(at + static_cast<int64_t>(handle * frac), StepKind::kSentiment, slot, 0, 0, 0, score);
  }
  Schedule(at + handle, StepKind::kEnded, slot);
}

void TrafficGenerator::ScheduleRepeat(const Contact& c, int64_t at) {
  int channel = Bernoulli(0.65) ? c.channel : PickWeighted(channel_cumulative_);
  Schedule(at, StepKind::kRepeatArrival, kNoContact, c.customer, c.reason, channel,
           static_cast<double>(c.repeat + 1));
}

// Step payloads:
//   kArrival: b = stream.  kRepeatArrival: a = customer, b = reason, c = channel, x = repeat.
//   kAnswered, kAbandoned: a = wait (ns).  kTransfer: b = 0 first hop, > 0 back to previous.
//   kSentiment: x = score.  kCaseClosed: a = case number.  kComplaint: b = category.
void TrafficGenerator::Process(const Step& s, std::vector<cx::v1::InteractionEvent>* out) {
  const uint32_t slot = s.contact;
  switch (s.kind) {
    case StepKind::kArrival: {
      int reason, queue;
      if (s.b == 0) {
        reason = PickWeighted(reason_cumulative_);
        queue = reason_queue_[reason];
      } else {
        reason = surge_reason_[s.b - 1];
        queue = surge_queue_[s.b - 1];
      }
      StartContact(s.at, PickCustomer(), reason, PickWeighted(channel_cumulative_), queue, 0, out);
      ScheduleNextArrival(s.b, s.at);
      return;
    }
    case StepKind::kRepeatArrival:
      StartContact(s.at, static_cast<uint32_t>(s.a), s.b, s.c, reason_queue_[s.b],
                   static_cast<int>(s.x), out);
      return;
    default:
      break;
  }

  Contact& c = contacts_[slot];
  const ChannelProfile& ch = kChannels[c.channel];
  switch (s.kind) {
    case StepKind::kQueued: {
      Emit(c, s.at, out)->mutable_queued();
      // Fewer agents: waits grow in proportion, and so does the share who give up.
      const double understaffing = Understaffing(c.queue, s.at);
      const double wait_factor = queue_wait_factor_[c.queue] * (c.vip ? 0.4 : 1.0) * understaffing;
      const double abandon = options_.abandon_probability * abandon_scale_ * ch.abandon_factor *
                             queue_wait_factor_[c.queue] * (c.vip ? 0.5 : 1.0) * understaffing;
      if (Bernoulli(std::min(1.0, abandon))) {
        int64_t wait = WaitNanos(Exponential(ch.wait_mean * 1.2 * wait_factor));
        Schedule(s.at + wait, StepKind::kAbandoned, slot, wait);
        return;
      }
      const double wait = Exponential(ch.wait_mean * wait_factor);
      const double long_wait = static_cast<double>(options_.long_wait.count());
      c.long_wait = wait > long_wait;
      if (c.long_wait && ch.callback_eligible && Bernoulli(options_.callback_probability)) {
        // Tired of waiting, the customer keeps their place by asking to be called back.
        Schedule(s.at + WaitNanos(long_wait), StepKind::kCallbackRequested, slot);
        return;
      }
      int64_t wait_ns = WaitNanos(wait);
      Schedule(s.at + wait_ns, StepKind::kAnswered, slot, wait_ns);
      return;
    }
    case StepKind::kAnswered: {
      c.agent = PickAgent(c.queue);
      SetDuration(s.a, Emit(c, s.at, out)->mutable_answered()->mutable_wait());
      StartConversation(slot, s.at);
      return;
    }
    case StepKind::kAbandoned: {
      SetDuration(s.a, Emit(c, s.at, out)->mutable_abandoned()->mutable_wait());
      c.long_wait = true;
      if (ch.callback_eligible && Bernoulli(options_.callback_probability)) {
        Schedule(s.at, StepKind::kCallbackRequested, slot);
      } else if (Bernoulli(options_.repeat_probability)) {
        ScheduleRepeat(c, s.at + JourneyNanos(std::clamp(LogNormal(600, 0.8), 60.0, 6 * kHour)));
      } else if (Bernoulli(0.01)) {
        Schedule(s.at + JourneyNanos(Uniform(300, 2 * kHour)), StepKind::kComplaint, slot, 0,
                 kWaitTime);
      }
      return;
    }
    case StepKind::kTransfer: {
      const int num_queues = static_cast<int>(options_.queues.size());
      int to = c.prev_queue;
      if (s.b == 0) {
        to = c.queue;
        if (num_queues > 1) {
          to = static_cast<int>(UniformInt(static_cast<uint64_t>(num_queues - 1)));
          if (to >= c.queue) ++to;
        }
      }
      int to_agent = PickAgent(to);
      auto* t = Emit(c, s.at, out)->mutable_transferred();
      t->set_to_queue(options_.queues[to]);
      t->set_to_agent_id(agent_ids_[to_agent]);
      c.prev_queue = c.queue;
      c.queue = static_cast<uint16_t>(to);
      c.agent = to_agent;
      ++c.transfers;
      return;
    }
    case StepKind::kSentiment:
      Emit(c, s.at, out)->mutable_sentiment()->set_score(s.x);
      return;
    case StepKind::kEnded: {
      auto* ended = Emit(c, s.at, out)->mutable_ended();
      SetDuration(s.at - c.talk_started_at, ended->mutable_handle_time());
      ended->set_resolved(c.resolved);
      if (c.resolved) {
        ended->set_disposition(kResolvedDispositions[UniformInt(std::size(kResolvedDispositions))]);
      } else if (c.escalated) {
        ended->set_disposition(kEscalatedDisposition);
      } else {
        ended->set_disposition(
            kUnresolvedDispositions[UniformInt(std::size(kUnresolvedDispositions))]);
      }

      if (Bernoulli(options_.survey_probability)) {
        Schedule(s.at + JourneyNanos(Uniform(60, kHour)), StepKind::kSurvey, slot);
      }
      double case_p = c.escalated ? 0.8 : (c.resolved ? 0.02 : 0.2);
      if (Bernoulli(case_p)) {
        Schedule(s.at + JourneyNanos(Uniform(0, 300)), StepKind::kCaseOpened, slot);
      }
      double complaint_p = c.resolved
                               ? 0.004
                               : 0.03 + 0.03 * std::min(c.repeat, 3) + (c.long_wait ? 0.02 : 0) +
                                     (c.transfers >= 2 ? 0.04 : 0);
      if (Bernoulli(complaint_p)) {
        int32_t category = kUnresolvedIssue;
        if (c.transfers >= 2) {
          category = kTransfers;
        } else if (c.long_wait && Bernoulli(0.5)) {
          category = kWaitTime;
        } else if (Bernoulli(0.1)) {
          category = kAgentConduct;
        } else if (options_.queues[reason_queue_[c.reason]] == "billing" && Bernoulli(0.5)) {
          category = kBillingError;
        }
        Schedule(s.at + JourneyNanos(Uniform(300, 2 * kHour)), StepKind::kComplaint, slot, 0,
                 category);
      }
      if (!c.resolved && Bernoulli(options_.repeat_probability)) {
        // Minutes to hours later, sometimes days.
        ScheduleRepeat(
            c, s.at + JourneyNanos(std::clamp(LogNormal(1.5 * kHour, 1.0), 300.0, 3 * 24 * kHour)));
      }
      return;
    }
    case StepKind::kCallbackRequested: {
      c.callback_due = s.at + JourneyNanos(static_cast<double>(options_.callback_window.count()));
      SetTimestamp(c.callback_due,
                   Emit(c, s.at, out)->mutable_callback_requested()->mutable_due_at());
      if (Bernoulli(options_.callback_miss_probability)) {
        // Nobody calls: the customer tries again after the due time, some complain.
        if (Bernoulli(0.15)) {
          Schedule(c.callback_due + JourneyNanos(Uniform(60, 2 * kHour)), StepKind::kComplaint,
                   slot, 0, kCallbackMissed);
        }
        if (Bernoulli(std::min(1.0, 2 * options_.repeat_probability))) {
          ScheduleRepeat(
              c, c.callback_due + JourneyNanos(std::clamp(LogNormal(900, 0.8), 60.0, 6 * kHour)));
        }
        return;
      }
      Schedule(s.at + static_cast<int64_t>((c.callback_due - s.at) * Uniform(0.05, 0.7)),
               StepKind::kCallbackAttempted, slot);
      return;
    }
    case StepKind::kCallbackAttempted: {
      c.agent = PickAgent(c.queue);
      const bool connected = Bernoulli(0.7);
      Emit(c, s.at, out)->mutable_callback_attempted()->set_connected(connected);
      ++c.callback_attempts;
      if (connected) {
        StartConversation(slot, s.at);
      } else if (c.callback_attempts < 3 && Bernoulli(0.6)) {
        Schedule(s.at + static_cast<int64_t>((c.callback_due - s.at) * Uniform(0.2, 0.9)),
                 StepKind::kCallbackAttempted, slot);
      } else if (Bernoulli(options_.repeat_probability)) {
        ScheduleRepeat(c, s.at + JourneyNanos(std::clamp(LogNormal(1800, 0.8), 60.0, 6 * kHour)));
      }
      return;
    }
    case StepKind::kSurvey: {
      auto* survey = Emit(c, s.at, out)->mutable_survey();
      // Weights of each score, low to high, after a resolved or unresolved contact.
      static constexpr double kCsatResolved[] = {0.03, 0.05, 0.12, 0.35, 0.45};
      static constexpr double kCsatUnresolved[] = {0.30, 0.25, 0.22, 0.15, 0.08};
      static constexpr double kNpsResolved[] = {0.01, 0.01, 0.01, 0.02, 0.02, 0.04,
                                                0.05, 0.12, 0.20, 0.22, 0.30};
      static constexpr double kNpsUnresolved[] = {0.12, 0.08, 0.10, 0.10, 0.10, 0.12,
                                                  0.10, 0.10, 0.08, 0.05, 0.05};
      const bool nps = Bernoulli(0.35);
      const double* weights = nps ? (c.resolved ? kNpsResolved : kNpsUnresolved)
                                  : (c.resolved ? kCsatResolved : kCsatUnresolved);
      const int n = nps ? 11 : 5;
      double x = Uniform();
      int i = 0;
      while (i < n - 1 && x >= weights[i]) x -= weights[i++];
      const int score = nps ? i : i + 1;
      survey->set_metric(nps ? cx::v1::SURVEY_METRIC_NPS : cx::v1::SURVEY_METRIC_CSAT);
      survey->set_score(score);
      const bool low = nps ? score <= 6 : score <= 2;
      const bool high = nps ? score >= 9 : score >= 4;
      if ((low || high) && Bernoulli(0.25)) {
        survey->set_comment(low ? kLowScoreComments[UniformInt(std::size(kLowScoreComments))]
                                : kHighScoreComments[UniformInt(std::size(kHighScoreComments))]);
      }
      return;
    }
    case StepKind::kCaseOpened: {
      const uint64_t number = ++case_counter_;
      const int64_t sla = JourneyNanos((c.vip ? 8 : 24) * kHour);
      auto* opened = Emit(c, s.at, out)->mutable_case_opened();
      std::string id = case_prefix_;
      AppendNumber(&id, number);
      opened->set_case_id(std::move(id));
      SetTimestamp(s.at + sla, opened->mutable_sla_due_at());
      // About one case in five runs past its SLA.
      Schedule(s.at + static_cast<int64_t>(sla * Uniform(0.15, 1.4)), StepKind::kCaseClosed, slot,
               static_cast<int64_t>(number));
      return;
    }
    case StepKind::kCaseClosed: {
      std::string id = case_prefix_;
      AppendNumber(&id, static_cast<uint64_t>(s.a));
      Emit(c, s.at, out)->mutable_case_closed()->set_case_id(std::move(id));
      return;
    }
    case StepKind::kComplaint: {
      auto* complaint = Emit(c, s.at, out)->mutable_complaint();
      complaint->set_category(kComplaints[s.b].category);
      complaint->set_text(kComplaints[s.b].text);
      return;
    }
    case StepKind::kArrival:
    case StepKind::kRepeatArrival:
      return;  // handled above
  }
}

}  // namespace cxpulse
