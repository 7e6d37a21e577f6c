// RuleSet: the compiled, immutable form of the rule files. Built once on the
// control thread (LoadRuleSet), then shared read-only by every shard through a
// shared_ptr<const RuleSet>; nothing in it changes after construction.
#pragma once

#include <array>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/time.h"
#include "cx/v1/event.pb.h"
#include "cx/v1/finding.pb.h"

namespace cxpulse {

// Reads one key field of an event without allocating: a top-level string
// field (customer_id, reason, queue, ...) or an enum field (channel), whose
// value reads as its lower-case short name ("voice").
class FieldReader {
 public:
  FieldReader() = default;
  // Resolves `name` against the InteractionEvent descriptor.
  static absl::StatusOr<FieldReader> Resolve(std::string_view name);

  std::string_view Read(const cx::v1::InteractionEvent& event) const;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  const google::protobuf::FieldDescriptor* field_ = nullptr;
  std::vector<std::string> enum_labels_;  // by enum number, for enum fields
};

// Lower-case short name of a body field or enum value: CHANNEL_VOICE -> "voice".
std::string EnumLabel(const google::protobuf::EnumValueDescriptor* value);

// The body type of an event as a metric label: "ended", "callback_requested", ...
std::string_view BodyLabel(cx::v1::InteractionEvent::BodyCase body);

enum class RuleKind { kCount, kAbsence };

struct Rule {
  std::string name;
  std::string version;  // hash of the rule's definition: changes iff the rule does
  cx::v1::Family family = cx::v1::FAMILY_UNSPECIFIED;
  cx::v1::Severity severity = cx::v1::SEVERITY_UNSPECIFIED;
  RuleKind kind = RuleKind::kCount;
  std::string source;  // "file:line:col" of the rule, for messages

  int on_body = 0;      // InteractionEvent::BodyCase that feeds the rule
  std::vector<FieldReader> key;

  // count: `threshold` events of `on_body` per key within `window`.
  Micros window = 0;
  int threshold = 0;
  Micros cooldown = 0;  // at most one finding per key per cooldown

  // absence: an `on_body` event not followed by an `expect_body` event for the
  // same key before its deadline: `within` after it, or a timestamp field of
  // its body (deadline_field, e.g. callback_requested.due_at).
  int expect_body = 0;
  Micros within = 0;
  const google::protobuf::FieldDescriptor* deadline_field = nullptr;

  std::string summary;  // template: {customer_id}, {count}, {window}, {due_at}, ...
  std::map<std::string, std::string> labels;
  std::string escalate_to;
};

// Highest oneof field number of InteractionEvent.body plus one.
inline constexpr int kMaxBodyCase = 64;

class RuleSet {
 public:
  explicit RuleSet(std::vector<Rule> rules);

  const std::vector<Rule>& rules() const { return rules_; }
  // Indices of the rules an event of this body type can touch (as trigger or
  // as the awaited follow-up), so an event meets only the rules that use it.
  const std::vector<int>& RulesFor(int body_case) const {
    return by_body_[static_cast<size_t>(body_case) < by_body_.size() ? body_case : 0];
  }

 private:
  std::vector<Rule> rules_;
  std::array<std::vector<int>, kMaxBodyCase> by_body_;
};

// Loads every *.yaml / *.yml file in `paths` (files, or directories read in
// name order). On failure the status message holds every error found, one per
// line, each as "file:line:col: message".
absl::StatusOr<std::shared_ptr<const RuleSet>> LoadRuleSet(const std::vector<std::string>& paths);

}  // namespace cxpulse
