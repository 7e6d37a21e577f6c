#include "engine/rule_set.h"

#include <algorithm>
#include <array>

#include "absl/strings/ascii.h"

namespace cxpulse {
namespace {

const google::protobuf::Descriptor* EventDescriptor() { return cx::v1::InteractionEvent::descriptor(); }

// A key field that stays on one partition: the input is keyed by
// customer_id, and a contact or a case belongs to one customer.
bool FollowsTheCustomer(std::string_view key_name) {
  const bool path = !key_name.empty() && std::all_of(key_name.begin(), key_name.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.';
  });
  if (!path) return false;  // an expression over fields, not a field
  const size_t dot = key_name.rfind('.');
  const std::string_view field = dot == std::string_view::npos ? key_name : key_name.substr(dot + 1);
  return key_name == "customer_id" || key_name == "contact_id" || field.ends_with("case_id");
}

}  // namespace

std::string_view RuleScopeName(RuleScope scope) { return scope == RuleScope::kCustomer ? "customer" : "centre"; }

RuleScope InferScope(const std::vector<std::string>& key_names, const std::vector<std::string>& expect_key_names) {
  auto follows = [](const std::vector<std::string>& names) {
    return std::any_of(names.begin(), names.end(), [](const std::string& n) { return FollowsTheCustomer(n); });
  };
  const bool customer = follows(key_names) && (expect_key_names.empty() || follows(expect_key_names));
  return customer ? RuleScope::kCustomer : RuleScope::kCentre;
}

std::string_view RuleKindName(RuleKind kind) {
  switch (kind) {
    case RuleKind::kMatch: return "match";
    case RuleKind::kCount: return "count";
    case RuleKind::kSum: return "sum";
    case RuleKind::kRatio: return "ratio";
    case RuleKind::kAbsence: return "absence";
    case RuleKind::kSequence: return "sequence";
    case RuleKind::kSpike: return "spike";
  }
  return "unknown";
}

Micros Rule::Horizon() const {
  switch (kind) {
    case RuleKind::kMatch: return cooldown;
    case RuleKind::kCount:
    case RuleKind::kSum:
    case RuleKind::kRatio: return std::max(window, cooldown);
    case RuleKind::kSequence: return std::max(within, cooldown);
    case RuleKind::kSpike: return std::max(baseline + window, cooldown);
    case RuleKind::kAbsence: return within;
  }
  return window;
}

std::string EnumLabel(const google::protobuf::EnumValueDescriptor* value) {
  // CHANNEL_VOICE in enum Channel -> "voice"
  std::string name = value->name();
  std::string prefix;
  for (char c : value->type()->name()) {
    if (!prefix.empty() && absl::ascii_isupper(static_cast<unsigned char>(c))) prefix += '_';
    prefix += absl::ascii_toupper(static_cast<unsigned char>(c));
  }
  prefix += '_';
  if (name.starts_with(prefix)) name = name.substr(prefix.size());
  return absl::AsciiStrToLower(name);
}

std::string_view BodyLabel(cx::v1::InteractionEvent::BodyCase body) {
  static const std::array<std::string, kMaxBodyCase> kLabels = [] {
    std::array<std::string, kMaxBodyCase> labels;
    labels.fill("unknown");
    const auto* oneof = EventDescriptor()->FindOneofByName("body");
    for (int i = 0; i < oneof->field_count(); ++i) {
      labels[static_cast<size_t>(oneof->field(i)->number())] = oneof->field(i)->name();
    }
    labels[0] = "none";
    return labels;
  }();
  const auto i = static_cast<size_t>(body);
  return i < kLabels.size() ? std::string_view(kLabels[i]) : std::string_view("unknown");
}

RuleSet::RuleSet(std::vector<Rule> rules) : rules_(std::move(rules)) {
  for (size_t i = 0; i < rules_.size(); ++i) {
    const Rule& r = rules_[i];
    std::vector<int> bodies = {r.on.body, r.denominator.body, r.expect.body};
    for (const Selector& s : r.steps) bodies.push_back(s.body);
    std::sort(bodies.begin(), bodies.end());
    bodies.erase(std::unique(bodies.begin(), bodies.end()), bodies.end());
    for (int b : bodies) {
      if (b <= 0 || b >= kMaxBodyCase) continue;
      for (ScopeSelector selector : {ScopeSelector::kAll, ScopeSelector::kCustomer, ScopeSelector::kCentre}) {
        if (Selects(selector, r.scope)) {
          by_body_[static_cast<size_t>(selector)][static_cast<size_t>(b)].push_back(static_cast<int>(i));
        }
      }
    }
  }
}

int RuleSet::IndexOf(std::string_view name) const {
  for (size_t i = 0; i < rules_.size(); ++i) {
    if (rules_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace cxpulse
