// OfflineRun: the rules over recorded events, on the calling thread, as
// `cxpulse test` and `cxpulse replay` run them. Time moves only by the
// events' own times (an idle watermark never follows the wall clock), so the
// same events always give the same findings, however fast they are read.
//
// The events are one partition, and each rule sees them as it would in the
// daemon, whatever the topic's partition count (rule_set.h: RuleScope):
// - per-customer rules in input order, as a shard sees its partition: every
//   event of one customer is on one partition, in the order it was produced;
// - centre-wide rules through an EventTimeMerge, as the centre stage sees
//   the whole topic: in (occurred_at, event_id) order, each event once the
//   watermark has passed it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/time.h"
#include "codec/event_decoder.h"
#include "cx/v1/event.pb.h"
#include "cx/v1/finding.pb.h"
#include "engine/engine.h"
#include "engine/event_time_merge.h"
#include "engine/finding_sink.h"
#include "engine/rule_set.h"

namespace cxpulse {

class OfflineRun final : private FindingSink {
 public:
  // Called for each finding as the rule fires; `finding` is valid only during
  // the call (the engine reuses it). A centre-wide rule's finding comes once
  // the watermark has passed the event that fired it.
  using OnFinding = std::function<void(int rule_index, const cx::v1::Finding& finding)>;

  OfflineRun(std::shared_ptr<const RuleSet> rules, Micros allowed_lateness, OnFinding on_finding);

  // kLate: the event is older than the watermark (the newest event time so
  // far minus the allowed lateness) and was not applied, as in the daemon.
  // `wire`: the event's protobuf encoding if the caller has it (else the
  // run encodes the events a centre-wide rule uses, to hold them).
  [[nodiscard]] Engine::Outcome Process(const cx::v1::InteractionEvent& event, std::string_view wire = {});

  // Moves the watermark to `to`: every event before it reaches the
  // centre-wide rules, every absence timer due before it fires.
  void AdvanceTo(Micros to);

  // The input is over: the events still held for the centre-wide rules
  // (those the watermark has not passed) reach them now, in order. Time does
  // not move on: no absence timer fires that the watermark has not passed.
  void EndOfInput();

  // The input is over and nothing more will come: every held event reaches
  // its rules, and the watermark moves past every deadline, so every
  // pending absence timer fires, stamped with its own due time.
  void AdvancePastEnd();

  const Engine& customer_engine() const { return customer_; }
  const Engine& centre_engine() const { return centre_; }

 private:
  void Emit(int rule_index, const cx::v1::Finding& finding) override { on_finding_(rule_index, finding); }
  // Runs the events the merge releases through the centre-wide rules, then
  // moves their clock to the merged watermark.
  void ReleaseCentre();
  void RunCentre(const EventTimeMerge::Released& released);

  OnFinding on_finding_;
  Engine customer_;
  Engine centre_;
  EventTimeMerge merge_;
  std::string wire_;        // an event to hold, encoded
  EventDecoder decoder_;    // a released event, decoded
  Micros newest_ = 0;  // the newest event time seen, the engines' clock
  uint64_t events_ = 0;
  uint64_t since_tick_ = 0;   // events since the engines' last Tick
  uint64_t keys_at_tick_ = 0;  // keys both engines held after it
};

}  // namespace cxpulse
