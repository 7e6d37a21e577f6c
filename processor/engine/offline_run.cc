#include "engine/offline_run.h"

#include <algorithm>
#include <limits>
#include <utility>

namespace cxpulse {
namespace {

// Far enough that every deadline is before it, near enough not to overflow.
constexpr Micros kEndOfTime = std::numeric_limits<Micros>::max() / 4;

EngineOptions OfflineOptions(Micros allowed_lateness) {
  EngineOptions options;
  options.allowed_lateness = allowed_lateness;
  options.idle_partition_timeout = kEndOfTime;  // time moves only by events
  return options;
}

// Every this many events the engine's Tick drops idle keys, as the daemon's
// shards do between batches, so a long replay holds what the daemon would.
constexpr uint64_t kTickEvery = 4096;

}  // namespace

OfflineRun::OfflineRun(std::shared_ptr<const RuleSet> rules, Micros allowed_lateness, OnFinding on_finding)
    : on_finding_(std::move(on_finding)), engine_(std::move(rules), OfflineOptions(allowed_lateness), this) {}

Engine::Outcome OfflineRun::Process(const cx::v1::InteractionEvent& event) {
  // The engine's "wall clock" is event time: it paces Tick's sweeps, never the watermark.
  newest_ = std::max(newest_, ToMicros(event.occurred_at()));
  const Engine::Outcome outcome = engine_.Process(0, event, newest_);
  if (++events_ % kTickEvery == 0) engine_.Tick(newest_);
  return outcome;
}

void OfflineRun::AdvanceTo(Micros to) { engine_.AdvanceWatermark(0, to, newest_); }

void OfflineRun::AdvancePastEnd() { AdvanceTo(kEndOfTime); }

}  // namespace cxpulse
