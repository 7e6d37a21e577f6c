#include "engine/offline_run.h"

#include <algorithm>
#include <limits>
#include <utility>

namespace cxpulse {
namespace {

// Far enough that every deadline is before it, near enough not to overflow.
constexpr Micros kEndOfTime = std::numeric_limits<Micros>::max() / 4;

// The centre-wide rules take the merged stream in order, their clock moved
// to the merged watermark. Their engine keeps the run's lateness (not the
// daemon's 0, which would be the same while events come): EndOfInput's
// events, at or above the watermark, then leave it where the per-customer
// rules' clock is.
EngineOptions OfflineOptions(Micros allowed_lateness, ScopeSelector scope) {
  EngineOptions options;
  options.allowed_lateness = allowed_lateness;
  options.idle_partition_timeout = kEndOfTime;  // time moves only by events
  options.scope = scope;
  return options;
}

// The engines' Tick drops idle keys, as the daemon's shards do between
// batches, so a long replay holds what the daemon would. A sweep visits every
// key held, so it comes once the events since the last are at least as
// many as the keys held (and kTickEvery): about one key visit an event
// however fast the input is read. Paced by event time alone (a sweep each
// 10 s of it) a replay, which reads hours of traffic a second, spent more in
// sweeps than in its rules. Findings do not depend on it: a key is swept only
// once its state can no longer make a difference (engine.cc, Sweep), bar a
// spike key idle past its whole baseline, which restarts warming up.
constexpr uint64_t kTickEvery = 4096;

}  // namespace

OfflineRun::OfflineRun(std::shared_ptr<const RuleSet> rules, Micros allowed_lateness, OnFinding on_finding)
    : on_finding_(std::move(on_finding)),
      customer_(rules, OfflineOptions(allowed_lateness, ScopeSelector::kCustomer), this),
      centre_(rules, OfflineOptions(allowed_lateness, ScopeSelector::kCentre), this),
      merge_(EventTimeMerge::Options{.allowed_lateness = allowed_lateness,
                                     .idle_timeout = kEndOfTime,
                                     .capacity = std::numeric_limits<size_t>::max()},
             1) {}

Engine::Outcome OfflineRun::Process(const cx::v1::InteractionEvent& event, std::string_view wire) {
  // The engines' "wall clock" is event time: it paces Tick's sweeps, never the watermark.
  newest_ = std::max(newest_, ToMicros(event.occurred_at()));
  // The customer engine and the merge keep the same watermark for the one
  // partition (same lateness, same events), so they agree on what is late.
  if (customer_.Process(0, event, newest_) == Engine::Outcome::kLate) return Engine::Outcome::kLate;
  const bool keep = !centre_.rules().RulesFor(event.body_case(), ScopeSelector::kCentre).empty();
  if (keep && wire.empty()) {
    event.SerializeToString(&wire_);
    wire = wire_;
  }
  (void)merge_.Push(0, static_cast<int64_t>(events_), event, keep ? wire : std::string_view(), keep, newest_);
  ReleaseCentre();
  ++events_;
  if (++since_tick_ >= std::max<uint64_t>(kTickEvery, keys_at_tick_)) {
    customer_.Tick(newest_);
    centre_.Tick(newest_);
    since_tick_ = 0;
    keys_at_tick_ = 0;
    for (const Engine* engine : {&customer_, &centre_}) {
      for (size_t r = 0; r < engine->rules().rules().size(); ++r) keys_at_tick_ += engine->KeysHeld(static_cast<int>(r));
    }
  }
  return Engine::Outcome::kProcessed;
}

void OfflineRun::RunCentre(const EventTimeMerge::Released& released) {
  const cx::v1::InteractionEvent* event = decoder_.Decode(released.encoded.data(), released.encoded.size());
  if (event == nullptr) return;
  (void)centre_.Process(0, *event, newest_);  // in order, at or above the merged watermark: never late
}

void OfflineRun::ReleaseCentre() {
  while (const EventTimeMerge::Released* r = merge_.Next(newest_)) RunCentre(*r);
  if (merge_.watermark() != Watermark::kNone) centre_.AdvanceWatermark(0, merge_.watermark(), newest_);
}

void OfflineRun::AdvanceTo(Micros to) {
  customer_.AdvanceWatermark(0, to, newest_);
  merge_.AdvancePartition(0, to, newest_);
  ReleaseCentre();
}

void OfflineRun::EndOfInput() {
  while (const EventTimeMerge::Released* r = merge_.NextAtEnd()) RunCentre(*r);
}

void OfflineRun::AdvancePastEnd() {
  AdvanceTo(kEndOfTime);
  EndOfInput();  // nothing is left below the end of time; for form
}

}  // namespace cxpulse
