// RuleSet: the compiled, immutable form of the rule files. Built once on the
// control thread (LoadRuleSet, engine/rule_compiler.h): every expression parsed and type-checked
// against the protobuf descriptors, every rule indexed by the event types it
// reads. Shared read-only after construction; each expression's evaluation
// scratch makes an Expression single-threaded, so a thread that evaluates
// rules owns its own copy of the RuleSet (copying is cheap and allocates only
// scratch buffers).
#pragma once

#include <array>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/time.h"
#include "cx/v1/event.pb.h"
#include "cx/v1/finding.pb.h"
#include "expr/expression.h"

namespace cxpulse {

// The body type of an event as a metric label: "ended", "callback_requested", ...
std::string_view BodyLabel(cx::v1::InteractionEvent::BodyCase body);

// Lower-case short name of an enum value: CHANNEL_VOICE -> "voice".
std::string EnumLabel(const google::protobuf::EnumValueDescriptor* value);

enum class RuleKind { kMatch, kCount, kSum, kRatio, kAbsence, kSequence, kSpike };
std::string_view RuleKindName(RuleKind kind);

// Which events a rule's keys see. The input topic is keyed by customer_id,
// so one partition carries each customer's whole history:
// - kCustomer: every key the rule uses names the customer, a contact or a
//   case, so the partition's events are all the key ever has; a shard's
//   engine runs it on each partition.
// - kCentre: a key spans customers (a queue, a reason), so it must see the
//   whole topic; the centre stage (daemon/centre_stage.h) runs it over all
//   partitions merged in event time, whatever the partition count.
enum class RuleScope { kCustomer, kCentre };
std::string_view RuleScopeName(RuleScope scope);

// The rules one engine runs: all of them (a rule test, a replay's single
// engine), or those of one scope (a shard: kCustomer; the centre stage: kCentre).
enum class ScopeSelector { kAll, kCustomer, kCentre };
inline bool Selects(ScopeSelector selector, RuleScope scope) {
  return selector == ScopeSelector::kAll || (selector == ScopeSelector::kCustomer) == (scope == RuleScope::kCustomer);
}

// Which events a rule (or one side of it) takes: a body type and an optional
// `where` condition; `key` overrides the rule's key for this side (an absence
// rule whose follow-up names the key differently, e.g. case_closed.case_id).
struct Selector {
  int body = 0;
  std::optional<expr::Expression> where;
  std::vector<std::string> key_names;  // as written, one per `key` expression
  std::vector<expr::Expression> key;

  bool Matches(const cx::v1::InteractionEvent& e) const {
    return e.body_case() == body && (!where || where->Matches(e));
  }
};

// absence: what an `on` event does to the key's promise that is still
// pending (not yet past its deadline). A promise already past its deadline is
// reported whatever this says (rules/README.md, "What a repeated event does").
enum class OnRepeat {
  kReplace,  // the new event's deadline replaces it (a rescheduled callback)
  kKeep,     // it stands and the new event is ignored (a second bad survey)
};

struct Rule {
  std::string name;
  std::string version;  // hash of the rule's definition: changes iff the rule does
  std::string source;   // "file:line:col" of the rule, for messages
  cx::v1::Family family = cx::v1::FAMILY_UNSPECIFIED;
  cx::v1::Severity severity = cx::v1::SEVERITY_UNSPECIFIED;
  RuleKind kind = RuleKind::kMatch;
  // `scope:` as written, or inferred from the keys (InferScope).
  RuleScope scope = RuleScope::kCustomer;
  bool scope_explicit = false;

  std::vector<std::string> key_names;  // as written: "customer_id", "case_opened.case_id"
  std::vector<expr::Expression> key;

  // match, count, sum, spike, absence: the triggering events.
  // ratio: the numerator. sequence: unused (see steps).
  Selector on;

  Micros window = 0;     // count, sum, ratio: sliding window; spike: the current-rate window
  double threshold = 0;  // count: events; sum: total (micros for durations); ratio: fraction; spike: factor
  Micros cooldown = 0;   // at most one finding per key per cooldown

  std::optional<expr::Expression> value;  // sum: what is added up
  Selector denominator;                   // ratio
  int64_t min_volume = 0;                 // ratio: denominator events; spike: events in the window

  Selector expect;                                           // absence: the awaited follow-up
  Micros within = 0;                                         // absence, sequence: the bound
  const google::protobuf::FieldDescriptor* deadline_field = nullptr;  // absence: timestamp of `on`'s body
  OnRepeat on_repeat = OnRepeat::kReplace;                            // absence

  std::vector<Selector> steps;  // sequence
  Micros baseline = 0;          // spike: horizon of the key's own baseline rate

  std::string summary;  // template: {customer_id}, {count}, {value}, {window}, {due_at}, ...
  std::map<std::string, std::string> labels;
  std::string escalate_to;

  // How long a key's state can matter; idle keys are dropped after it.
  Micros Horizon() const;
};

// The scope a rule's keys imply: kCustomer when every key it uses (`key`,
// and `expect.key` if given) includes customer_id, contact_id or a field
// whose name ends in case_id (all of one customer, so on one partition);
// otherwise kCentre.
RuleScope InferScope(const std::vector<std::string>& key_names, const std::vector<std::string>& expect_key_names);

// Highest oneof field number of InteractionEvent.body plus one.
inline constexpr int kMaxBodyCase = 64;

class RuleSet {
 public:
  explicit RuleSet(std::vector<Rule> rules);

  const std::vector<Rule>& rules() const { return rules_; }
  // Indices of the rules an event of this body type can touch, in any role,
  // so an event meets only the rules that can use it; `selector` keeps
  // those of one scope.
  const std::vector<int>& RulesFor(int body_case, ScopeSelector selector = ScopeSelector::kAll) const {
    const auto& index = by_body_[static_cast<size_t>(selector)];
    return index[static_cast<size_t>(body_case) < index.size() ? static_cast<size_t>(body_case) : 0];
  }
  int IndexOf(std::string_view name) const;

 private:
  std::vector<Rule> rules_;
  // By ScopeSelector, then by body case.
  std::array<std::array<std::vector<int>, kMaxBodyCase>, 3> by_body_;
};

}  // namespace cxpulse
