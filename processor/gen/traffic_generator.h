// TrafficGenerator: synthetic contact-centre traffic for the demo, tests and benchmarks, from
// a seeded discrete-event simulation of customer journeys (same options, seed and start give
// the same events whatever the Poll cadence). Not thread-safe: one owner thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "cx/v1/event.pb.h"

namespace cxpulse {

// An incident to inject: extra contacts on one reason (and optionally one queue) for a
// while, on top of the normal traffic, e.g. an outage making `outage` calls surge.
struct TrafficSurge {
  std::string reason;             // a known reason code or a new one
  std::string queue;              // empty: the reason's usual queue
  std::chrono::seconds after{0};  // simulated time from the generator's start
  std::chrono::seconds duration{600};
  double extra_contacts_per_second = 50;
};

// An incident to inject: a queue loses most of its agents for a while (their desktops are
// down, a fire drill), so its customers wait far longer and more of them abandon.
struct StaffingDrop {
  std::string queue;              // one of TrafficOptions::queues; an unknown queue is ignored
  std::chrono::seconds after{0};  // simulated time from the generator's start
  std::chrono::seconds duration{600};
  double agents_left = 0.25;  // fraction of the queue's agents still answering, (0, 1]
};

struct TrafficOptions {
  uint64_t seed = 1;
  int customers = 50000;             // distinct customer ids "c000123"
  double contacts_per_second = 200;  // new contacts started per simulated second
  std::vector<std::string> queues = {"billing", "tech_support", "sales", "retention"};
  // Durations inside a journey (handle time, repeat delay, callback due, survey and case
  // delays) are divided by this, so a short demo shows repeat contacts and missed
  // callbacks within seconds. 1 = realistic.
  double time_compression = 1.0;
  // Queue waits (IVR, waiting to be answered or abandoning) stay realistic by default so
  // answer-time targets mean the same in a demo; set to compress them too.
  bool compress_queue_waits = false;
  // An unresolved contact makes the customer come back on the same reason.
  double repeat_probability = 0.25;
  double abandon_probability = 0.08;
  double callback_probability = 0.10;      // abandoned/queued customers asking for a callback
  double callback_miss_probability = 0.2;  // promised callback never attempted
  double survey_probability = 0.3;
  double vip_fraction = 0.05;
  // Skew: this fraction of customers makes `frequent_caller_share` of first contacts.
  double frequent_caller_fraction = 0.02;
  double frequent_caller_share = 0.2;
  double transfer_probability = 0.12;  // an answered contact is transferred at least once
  double outbound_fraction = 0.03;     // contacts the centre starts itself
  int agents_per_queue = 30;
  // A callback is due this long after the request (divided by time_compression).
  std::chrono::seconds callback_window{1800};
  std::chrono::seconds long_wait{120};  // waits past this may turn into a callback request
  std::vector<TrafficSurge> surges;
  std::vector<StaffingDrop> staffing_drops;
};

class TrafficGenerator {
 public:
  TrafficGenerator(TrafficOptions options, std::chrono::system_clock::time_point start);

  TrafficGenerator(const TrafficGenerator&) = delete;
  TrafficGenerator& operator=(const TrafficGenerator&) = delete;

  // Appends to *out, in occurred_at order, every event whose event time is <= now,
  // advancing the simulation to `now`. A `now` earlier than a previous one appends nothing.
  void Poll(std::chrono::system_clock::time_point now, std::vector<cx::v1::InteractionEvent>* out);

  // Events emitted so far.
  uint64_t events_emitted() const { return event_counter_; }

 private:
  enum class StepKind : uint8_t {
    kArrival,
    kRepeatArrival,
    kQueued,
    kAnswered,
    kAbandoned,
    kTransfer,
    kSentiment,
    kEnded,
    kCallbackRequested,
    kCallbackAttempted,
    kSurvey,
    kCaseOpened,
    kCaseClosed,
    kComplaint,
  };

  // One scheduled event. Fields a..x mean different things per kind (see the .cc).
  struct Step {
    int64_t at;    // nanoseconds since the epoch
    uint64_t seq;  // ties on `at` break by scheduling order: deterministic output
    int64_t a;
    double x;
    uint32_t contact;
    int32_t b;
    int32_t c;
    StepKind kind;
  };
  struct Later {
    bool operator()(const Step& l, const Step& r) const {
      return l.at != r.at ? l.at > r.at : l.seq > r.seq;
    }
  };

  // A contact in progress; slots are reused once no step refers to them.
  struct Contact {
    std::string contact_id;
    std::string customer_id;
    uint32_t customer = 0;
    uint16_t channel = 0;  // index into the channel table
    uint16_t reason = 0;
    uint16_t queue = 0;
    uint16_t prev_queue = 0;
    int32_t agent = -1;  // index into agent_ids_, -1 before an agent is assigned
    int32_t repeat = 0;  // earlier contacts by this customer on this reason in the chain
    int32_t pending = 0;
    int32_t transfers = 0;
    int32_t callback_attempts = 0;
    int64_t talk_started_at = 0;
    int64_t callback_due = 0;
    bool vip = false;
    bool resolved = false;
    bool long_wait = false;
    bool escalated = false;
  };

  static constexpr uint32_t kNoContact = ~0u;

  void Process(const Step& step, std::vector<cx::v1::InteractionEvent>* out);
  void Schedule(int64_t at, StepKind kind, uint32_t contact, int64_t a = 0, int32_t b = 0,
                int32_t c = 0, double x = 0);
  uint32_t StartContact(int64_t at, uint32_t customer, int reason, int channel, int queue,
                        int repeat, std::vector<cx::v1::InteractionEvent>* out);
  void StartConversation(uint32_t slot, int64_t at);
  void ScheduleRepeat(const Contact& c, int64_t at);
  void ScheduleNextArrival(int stream, int64_t after);
  cx::v1::InteractionEvent* Emit(const Contact& c, int64_t at,
                                 std::vector<cx::v1::InteractionEvent>* out);

  uint32_t PickCustomer();
  int PickAgent(int queue);
  // How many times longer than usual a contact queued on `queue` at `at` waits (>= 1).
  double Understaffing(int queue, int64_t at) const;
  int PickWeighted(const std::vector<double>& cumulative);
  int64_t JourneyNanos(double seconds) const;
  int64_t WaitNanos(double seconds) const;

  double Uniform();  // [0, 1)
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  bool Bernoulli(double p) { return Uniform() < p; }
  uint64_t UniformInt(uint64_t n);  // [0, n)
  double Exponential(double mean);
  double Normal(double mean, double sd);
  double LogNormal(double median, double sigma);

  TrafficOptions options_;
  int64_t start_;    // ns since the epoch
  int64_t sim_now_;  // ns since the epoch: everything up to here has been emitted
  std::mt19937_64 rng_;

  std::vector<std::string> reasons_;
  std::vector<double> reason_cumulative_;
  std::vector<double> reason_resolve_;
  std::vector<int> reason_queue_;
  std::vector<double> channel_cumulative_;
  std::vector<double> queue_wait_factor_;
  std::vector<std::string> agent_ids_;
  double abandon_scale_ = 1;
  uint64_t customer_stride_ = 1;
  uint64_t customer_offset_ = 0;
  uint64_t frequent_customers_ = 1;
  std::vector<int> surge_reason_;
  std::vector<int> surge_queue_;
  struct ActiveDrop {
    int queue;
    int64_t from, to;  // ns since the epoch
    double factor;     // 1 / agents_left
  };
  std::vector<ActiveDrop> drops_;

  std::string event_prefix_;
  std::string contact_prefix_;
  std::string case_prefix_;
  uint64_t event_counter_ = 0;
  uint64_t contact_counter_ = 0;
  uint64_t case_counter_ = 0;
  uint64_t seq_ = 0;

  std::priority_queue<Step, std::vector<Step>, Later> heap_;
  std::vector<Contact> contacts_;
  std::vector<uint32_t> free_contacts_;
};

}  // namespace cxpulse
