// OfflineRun: the Engine over recorded events, on the calling thread, as
// `cxpulse test` and `cxpulse replay` run it. Time moves only by the events'
// own times (an idle watermark never follows the wall clock), so the same
// events always give the same findings, however fast they are read.
//
// One partition, not the daemon's N. In the daemon an event's Kafka key is its
// customer_id, so every rule keyed by customer sees a customer's whole history
// on one partition: exactly what it sees here. Rules keyed by something else
// (queue, reason, contact) see, in the daemon, each partition's share of the
// traffic, which depends on how many partitions the topic has; one partition
// gives them the whole stream, what the rule file says, whatever the topic.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "common/time.h"
#include "cx/v1/event.pb.h"
#include "cx/v1/finding.pb.h"
#include "engine/engine.h"
#include "engine/finding_sink.h"
#include "engine/rule_set.h"

namespace cxpulse {

class OfflineRun final : private FindingSink {
 public:
  // Called for each finding as the rule fires; `finding` is valid only during
  // the call (the engine reuses it).
  using OnFinding = std::function<void(int rule_index, const cx::v1::Finding& finding)>;

  OfflineRun(std::shared_ptr<const RuleSet> rules, Micros allowed_lateness, OnFinding on_finding);

  // kLate: the event is older than the watermark (the newest event time so
  // far minus the allowed lateness) and was not applied, as in the daemon.
  [[nodiscard]] Engine::Outcome Process(const cx::v1::InteractionEvent& event);

  // Moves the watermark to `to`: every absence timer due before it fires.
  void AdvanceTo(Micros to);

  // The input is over and nothing more will come: moves the watermark past
  // the last event plus the longest rule horizon, and past every deadline an
  // event named (a callback's due time), so every pending absence timer fires,
  // stamped with its own due time.
  void AdvancePastEnd();

  const Engine& engine() const { return engine_; }

 private:
  void Emit(int rule_index, const cx::v1::Finding& finding) override { on_finding_(rule_index, finding); }

  OnFinding on_finding_;
  Engine engine_;
  Micros newest_ = 0;  // the newest event time seen, the engine's clock
  uint64_t events_ = 0;
};

}  // namespace cxpulse
