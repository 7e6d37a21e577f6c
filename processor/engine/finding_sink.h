// FindingSink: where the engine hands a finding when a rule fires. The seam
// tests replace; the daemon's sink writes to the findings topic. Called on the
// thread that runs the engine, which owns the sink for that call.
#pragma once

#include "cx/v1/finding.pb.h"

namespace cxpulse {

class FindingSink {
 public:
  virtual ~FindingSink() = default;
  // `rule_index` is the rule's position in the current RuleSet.
  virtual void Emit(int rule_index, const cx::v1::Finding& finding) = 0;
};

}  // namespace cxpulse
