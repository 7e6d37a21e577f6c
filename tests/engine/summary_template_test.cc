#include "engine/summary_template.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace cxpulse {
namespace {

std::string Render(std::string_view text, const SummaryTemplate::Values& v,
                   const std::vector<std::string>& key_names = {"customer_id", "reason"}) {
  std::string out = "left over from the previous finding";
  SummaryTemplate(text, key_names).Render(v, &out);
  return out;
}

TEST(SummaryTemplateTest, SplitsTextAndPlaceholdersOnce) {
  const SummaryTemplate t("{customer_id} called {count} times about {reason}", {"customer_id", "reason"});
  ASSERT_EQ(t.pieces().size(), 5u);
  EXPECT_EQ(t.pieces()[0].part, SummaryTemplate::Part::kKey);
  EXPECT_EQ(t.pieces()[0].key, 0u);
  EXPECT_EQ(t.pieces()[1].text, " called ");
  EXPECT_EQ(t.pieces()[2].part, SummaryTemplate::Part::kCount);
  EXPECT_EQ(t.pieces()[4].part, SummaryTemplate::Part::kKey);
  EXPECT_EQ(t.pieces()[4].key, 1u);
}

TEST(SummaryTemplateTest, RendersEveryPlaceholder) {
  const std::vector<std::string_view> keys = {"c1", "billing"};
  SummaryTemplate::Values v{.keys = &keys, .rule = "repeat_contact", .count = 3, .value = 2.5, .ratio = 0.2049,
                            .baseline = 1.25, .window = "7d", .window_start = 1'790'000'000'000'000,
                            .window_end = 1'790'000'000'250'000, .severity = "SEVERITY_HIGH"};
  EXPECT_EQ(Render("{customer_id}/{reason}: {rule} {count} {value} {ratio} {baseline} {window} {severity}", v),
            "c1/billing: repeat_contact 3 2.5 20.5% 1.2 7d SEVERITY_HIGH");
  EXPECT_EQ(Render("since {since}, due {due_at}", v),
            "since 2026-09-21T14:13:20Z, due 2026-09-21T14:13:20.250Z");
  v.count_is_lower_bound = true;
  v.window = "";  // a rule without a window of its own: the finding's span
  EXPECT_EQ(Render("{count} in {window}", v), "at least 3 in 250ms");
}

TEST(SummaryTemplateTest, UnclosedBracesAreTextAndKeysComeBeforeBuiltins) {
  const std::vector<std::string_view> keys = {"q1"};
  const SummaryTemplate::Values v{.keys = &keys, .rule = "r", .count = 4};
  EXPECT_EQ(Render("{count}{count} {count", v), "44 {count");
  EXPECT_EQ(Render("no placeholders", v), "no placeholders");
  EXPECT_EQ(Render("", v), "");
  EXPECT_EQ(Render("{count} by {rule}", v, {"count"}), "q1 by r");  // a key field named like a built-in
  EXPECT_EQ(Render("[{nope}]", v), "[]");  // the loader refuses these; rendered as nothing
}

}  // namespace
}  // namespace cxpulse
