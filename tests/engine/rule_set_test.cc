#include "engine/rule_compiler.h"
#include "engine/rule_set.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "common/strings.h"

#include "support/temp_dir.h"

namespace cxpulse {
namespace {

std::string LoadError(const std::string& yaml, std::string* file = nullptr) {
  static testing::TempDir dir;
  static int n = 0;
  const std::string path = dir.Write("r" + std::to_string(++n) + ".yaml", yaml);
  if (file != nullptr) *file = path;
  auto rules = LoadRuleSet({path});
  return rules.ok() ? "" : std::string(Message(rules.status()));
}

constexpr char kGood[] = R"(rules:
  - name: repeat_contact
    family: prevention
    kind: count
    on: ended
    key: [customer_id, reason]
    window: 7d
    threshold: 3
    severity: warning
)";

TEST(RuleSetTest, LoadsAValidRuleAndIndexesItByEventType) {
  testing::TempDir dir;
  auto rules = LoadRuleSet({dir.Write("a.yaml", kGood)});
  ASSERT_TRUE(rules.ok()) << Message(rules.status());
  ASSERT_EQ((*rules)->rules().size(), 1u);
  const Rule& r = (*rules)->rules()[0];
  EXPECT_EQ(r.window, 7 * 86400 * kMicrosPerSecond);
  EXPECT_EQ(r.cooldown, r.window);  // default
  EXPECT_EQ(r.version.size(), 12u);
  EXPECT_EQ((*rules)->RulesFor(cx::v1::InteractionEvent::kEnded), std::vector<int>{0});
  EXPECT_TRUE((*rules)->RulesFor(cx::v1::InteractionEvent::kSurvey).empty());
}

TEST(RuleSetTest, VersionChangesOnlyWithTheDefinition) {
  testing::TempDir dir;
  auto a = LoadRuleSet({dir.Write("a.yaml", kGood)});
  auto b = LoadRuleSet({dir.Write("b.yaml", std::string(kGood) + "\n# a comment\n")});
  std::string changed = kGood;
  changed.replace(changed.find("threshold: 3"), 12, "threshold: 4");
  auto c = LoadRuleSet({dir.Write("c.yaml", changed)});
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ((*a)->rules()[0].version, (*b)->rules()[0].version);
  EXPECT_NE((*a)->rules()[0].version, (*c)->rules()[0].version);
}

TEST(RuleSetTest, ErrorsNameFileLineAndColumn) {
  std::string file;
  std::string yaml = kGood;
  yaml.replace(yaml.find("window: 7d"), 10, "window: 7x");
  const std::string error = LoadError(yaml, &file);
  EXPECT_EQ(error,
            file + ":7:13: bad duration \"7x\": a unit (ms, s, m, h, d, w) must follow each number");
}

TEST(RuleSetTest, ReportsEveryKindOfMistake) {
  struct Case {
    std::string from, to, expected;
  };
  const std::vector<Case> cases = {
      {"key: [customer_id, reason]", "key: [customer_id, colour]", ":6:24: unknown field \"colour\""},
      {"on: ended", "on: hung_up", ":5:9: unknown event type \"hung_up\""},
      {"family: prevention", "family: misc", ":3:13: unknown family \"misc\""},
      {"severity: warning", "severity: loud", ":9:15: unknown severity \"loud\""},
      {"threshold: 3", "threshold: three", ":8:16: \"threshold\" must be an integer"},
      {"kind: count", "kind: magic", ":4:11: unknown rule kind \"magic\""},
      {"window: 7d", "windw: 7d", ":7:5: unknown rule field \"windw\""},
      {"window: 7d", "within: 7d", ":7:5: \"within\" does not apply to count rules"},
      {"on: ended", "on: ended\n    where: survey.score > \"high\"", ":6:12: type mismatch"},
      {"on: ended", "on: ended\n    where: ended.handle_time > 5", ":6:12: type mismatch"},
      {"on: ended", "on: ended\n    where: survey.score > 3", ":6:12: the expression reads survey fields but applies to ended events"},
      {"on: ended", "on: ended\n    where: channel == \"pigeon\"", ":6:23: channel has no value \"pigeon\""},
      {"on: ended", "on: ended\n    where: ended.handle_time", ":6:12: \"where\" must be a condition"},
      {"on: ended", "on: ended\n    where: 'ended.handle_time > 5x'", ":6:33: "},
      {"severity: warning", "severity: warning\n    summary: \"{customer_id} {colour}\"", ":10:14: unknown placeholder {colour}"},
  };
  for (const Case& c : cases) {
    std::string yaml = kGood;
    yaml.replace(yaml.find(c.from), c.from.size(), c.to);
    std::string file;
    const std::string error = LoadError(yaml, &file);
    EXPECT_TRUE(error.starts_with(file + c.expected)) << "got: " << error << "\nwant: " << file << c.expected;
  }
}

TEST(RuleSetTest, AbsenceNeedsABoundAndATimestampDeadline) {
  const std::string base = R"(rules:
  - name: callback_missed
    family: gap
    kind: absence
    on: callback_requested
    expect: callback_attempted
    key: customer_id
    severity: critical
)";
  std::string file;
  std::string error = LoadError(base, &file);
  EXPECT_TRUE(error.starts_with(file + ":2:5: an absence rule needs a bound")) << error;
  error = LoadError(base + "    deadline: callback_requested.connected\n", &file);
  EXPECT_TRUE(error.starts_with(file + ":9:15: unknown field \"connected\" in CallbackRequested")) << error;
  error = LoadError(base + "    deadline: ended.handle_time\n", &file);
  EXPECT_TRUE(error.starts_with(file + ":9:15: \"deadline\" must name a timestamp of the \"on\" event")) << error;
  EXPECT_EQ(LoadError(base + "    deadline: callback_requested.due_at\n"), "");
  EXPECT_EQ(LoadError(base + "    within: 2h\n"), "");
  // on_repeat: one of two words, with its position when it is neither.
  error = LoadError(base + "    within: 2h\n    on_repeat: first\n", &file);
  EXPECT_EQ(error, file + ":10:16: unknown on_repeat \"first\"; one of: replace, keep");
  EXPECT_EQ(LoadError(base + "    within: 2h\n    on_repeat: keep\n"), "");
  EXPECT_EQ(LoadError(base + "    within: 2h\n    on_repeat: replace\n"), "");
}

TEST(RuleSetTest, ErrorsInsideABlockExpressionPointAtTheirLine) {
  std::string yaml = kGood;
  yaml.replace(yaml.find("on: ended"), 9, "on: ended\n    where: >-\n      not ended.resolved\n      and ended.colour == 1");
  std::string file;
  const std::string error = LoadError(yaml, &file);
  EXPECT_TRUE(error.starts_with(file + ":8:11: unknown field \"ended.colour\"; ended has: handle_time, resolved, disposition")) << error;
}

TEST(RuleSetTest, SequencesNeedStepsAndABound) {
  const std::string base = R"(rules:
  - name: s
    family: escalation
    kind: sequence
    key: customer_id
    severity: critical
)";
  std::string file;
  std::string error = LoadError(base + "    steps: [abandoned, complaint]\n", &file);
  EXPECT_TRUE(error.starts_with(file + ":2:5: a sequence rule needs a bound")) << error;
  error = LoadError(base + "    steps: [abandoned]\n    within: 1h\n", &file);
  EXPECT_TRUE(error.starts_with(file + ":7:12: a sequence rule needs \"steps\"")) << error;
  EXPECT_EQ(LoadError(base + "    steps: [abandoned, {on: complaint, where: complaint.category == \"legal\"}]\n    within: 1h\n"), "");
}

TEST(RuleSetTest, EveryKindCompilesAndIsIndexedByEveryEventTypeItReads) {
  testing::TempDir dir;
  auto rules = LoadRuleSet({dir.Write("kinds.yaml", R"(rules:
  - {name: m, family: escalation, kind: match, on: complaint, key: customer_id, severity: info}
  - {name: s, family: gap, kind: sum, on: ended, value: ended.handle_time, threshold: 1h, window: 1h, key: agent_id, severity: info}
  - {name: r, family: gap, kind: ratio, numerator: abandoned, denominator: queued, threshold: 0.5, window: 1h, key: queue, severity: info}
  - {name: a, family: gap, kind: absence, on: case_opened, expect: {on: case_closed, key: case_closed.case_id}, within: 1d, key: case_opened.case_id, severity: info}
  - {name: q, family: gap, kind: sequence, steps: [queued, abandoned, complaint], within: 1h, key: customer_id, severity: info}
  - {name: p, family: gap, kind: spike, on: queued, window: 5m, baseline: 1h, factor: 2, key: queue, severity: info}
)")});
  ASSERT_TRUE(rules.ok()) << Message(rules.status());
  const RuleSet& rs = **rules;
  using E = cx::v1::InteractionEvent;
  EXPECT_EQ(rs.RulesFor(E::kQueued), (std::vector<int>{2, 4, 5}));
  EXPECT_EQ(rs.RulesFor(E::kAbandoned), (std::vector<int>{2, 4}));
  EXPECT_EQ(rs.RulesFor(E::kComplaint), (std::vector<int>{0, 4}));
  EXPECT_EQ(rs.RulesFor(E::kCaseClosed), (std::vector<int>{3}));
  EXPECT_EQ(rs.rules()[1].threshold, 3600.0 * kMicrosPerSecond);  // a duration threshold, in micros
  EXPECT_EQ(rs.rules()[5].min_volume, 10);                         // min_count's default
}

TEST(RuleSetTest, ScopeFollowsTheKeysUnlessARuleSaysOtherwise) {
  testing::TempDir dir;
  auto rules = LoadRuleSet({dir.Write("scopes.yaml", R"yaml(rules:
  - {name: by_customer, family: gap, kind: count, on: ended, key: [customer_id, reason], window: 1h, threshold: 2, severity: info}
  - {name: by_contact, family: gap, kind: count, on: transferred, key: contact_id, window: 1h, threshold: 2, severity: info}
  - {name: by_case, family: gap, kind: absence, on: case_opened, expect: {on: case_closed, key: case_closed.case_id}, within: 1d, key: case_opened.case_id, severity: info}
  - {name: by_reason, family: gap, kind: spike, on: contact_started, window: 5m, baseline: 1h, factor: 2, key: reason, severity: info}
  - {name: by_queue, family: gap, kind: ratio, numerator: abandoned, denominator: queued, threshold: 0.5, window: 1h, key: [queue, channel], severity: info}
  - {name: expect_by_queue, family: gap, kind: absence, on: case_opened, expect: {on: case_closed, key: queue}, within: 1d, key: case_opened.case_id, severity: info}
  - {name: an_expression, family: gap, kind: match, on: complaint, key: "lower(customer_id)", severity: info}
  - {name: told_centre, family: gap, kind: match, on: complaint, key: customer_id, scope: centre, severity: info}
  - {name: told_customer, family: gap, kind: match, on: answered, key: queue, scope: customer, severity: info}
)yaml")});
  ASSERT_TRUE(rules.ok()) << Message(rules.status());
  std::map<std::string, std::pair<RuleScope, bool>> scope;
  for (const Rule& r : (*rules)->rules()) scope[r.name] = {r.scope, r.scope_explicit};
  using S = RuleScope;
  EXPECT_EQ(scope["by_customer"], std::make_pair(S::kCustomer, false));
  EXPECT_EQ(scope["by_contact"], std::make_pair(S::kCustomer, false));
  EXPECT_EQ(scope["by_case"], std::make_pair(S::kCustomer, false));  // both keys end in case_id
  EXPECT_EQ(scope["by_reason"], std::make_pair(S::kCentre, false));
  EXPECT_EQ(scope["by_queue"], std::make_pair(S::kCentre, false));
  EXPECT_EQ(scope["expect_by_queue"], std::make_pair(S::kCentre, false));  // every key it uses must follow the customer
  EXPECT_EQ(scope["an_expression"], std::make_pair(S::kCentre, false));    // not a field: written out, it would say so
  EXPECT_EQ(scope["told_centre"], std::make_pair(S::kCentre, true));
  EXPECT_EQ(scope["told_customer"], std::make_pair(S::kCustomer, true));
  EXPECT_EQ(RuleScopeName(S::kCentre), "centre");

  // The index by event type, per scope.
  using E = cx::v1::InteractionEvent;
  const RuleSet& rs = **rules;
  EXPECT_EQ(rs.RulesFor(E::kComplaint), (std::vector<int>{6, 7}));
  EXPECT_EQ(rs.RulesFor(E::kComplaint, ScopeSelector::kCustomer), std::vector<int>{});
  EXPECT_EQ(rs.RulesFor(E::kComplaint, ScopeSelector::kCentre), (std::vector<int>{6, 7}));
  EXPECT_EQ(rs.RulesFor(E::kCaseClosed, ScopeSelector::kCustomer), std::vector<int>{2});
  EXPECT_EQ(rs.RulesFor(E::kCaseClosed, ScopeSelector::kCentre), std::vector<int>{5});
  EXPECT_EQ(rs.RulesFor(E::kAnswered, ScopeSelector::kCustomer), std::vector<int>{8});
}

TEST(RuleSetTest, TheShippedPackSplitsAsTheSpecSays) {
  auto rules = LoadRuleSet({CXPULSE_RULES_DIR});
  ASSERT_TRUE(rules.ok()) << Message(rules.status());
  std::set<std::string> centre;
  for (const Rule& r : (*rules)->rules()) {
    if (r.scope == RuleScope::kCentre) centre.insert(r.name);
  }
  EXPECT_EQ(centre, (std::set<std::string>{"reason_surge", "queue_abandonment_spike", "answer_time_over_target"}));
}

TEST(RuleSetTest, AScopeIsCheckedAndChangesTheVersionOnlyWhenItChangesTheScope) {
  std::string file;
  std::string yaml = kGood;
  yaml.replace(yaml.find("severity: warning"), 17, "severity: warning\n    scope: center");
  std::string error = LoadError(yaml, &file);
  EXPECT_EQ(error, file + ":10:12: unknown scope \"center\"; one of: customer, centre");
  yaml = kGood;
  yaml.replace(yaml.find("severity: warning"), 17, "severity: warning\n    scope: [centre]");
  error = LoadError(yaml, &file);
  EXPECT_EQ(error, file + ":10:12: \"scope\" must be a scalar");

  testing::TempDir dir;
  auto version = [&](const std::string& name, const std::string& extra) {
    std::string text = kGood;
    text.replace(text.find("severity: warning"), 17, "severity: warning" + extra);
    auto rules = LoadRuleSet({dir.Write(name, text)});
    EXPECT_TRUE(rules.ok()) << Message(rules.status());
    return rules.ok() ? (*rules)->rules()[0].version : std::string();
  };
  const std::string plain = version("a.yaml", "");
  // Keyed by customer: saying so changes nothing; overriding it does.
  EXPECT_EQ(version("b.yaml", "\n    scope: customer"), plain);
  EXPECT_NE(version("c.yaml", "\n    scope: centre"), plain);
}

TEST(RuleSetTest, DuplicateNamesAcrossFilesAreRefused) {
  testing::TempDir dir;
  const std::string a = dir.Write("a.yaml", kGood);
  const std::string b = dir.Write("b.yaml", kGood);
  auto rules = LoadRuleSet({dir.path()});
  ASSERT_FALSE(rules.ok());
  EXPECT_EQ(std::string(Message(rules.status())),
            b + ":2:11: duplicate rule name \"repeat_contact\" (first defined at " + a + ":2:5)");
}

TEST(RuleSetTest, AllErrorsAreReportedAtOnce) {
  std::string yaml = kGood;
  yaml.replace(yaml.find("on: ended"), 9, "on: nope");
  yaml.replace(yaml.find("window: 7d"), 10, "window: -1");
  const std::string error = LoadError(yaml);
  EXPECT_NE(error.find("unknown event type"), std::string::npos) << error;
  EXPECT_NE(error.find("bad duration"), std::string::npos) << error;
}

TEST(RuleSetTest, BrokenYamlIsPositioned) {
  std::string file;
  const std::string error = LoadError("rules:\n  - name: [unclosed\n", &file);
  EXPECT_TRUE(error.starts_with(file + ":3:1: ")) << error;
}

TEST(RuleSetTest, ShippedPackIsValid) {
  auto rules = LoadRuleSet({CXPULSE_RULES_DIR});
  ASSERT_TRUE(rules.ok()) << Message(rules.status());
  EXPECT_GE((*rules)->rules().size(), 2u);
}

}  // namespace
}  // namespace cxpulse
