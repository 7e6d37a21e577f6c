// `cxpulse check` and `cxpulse test` as on-call staff run them: exit codes
// and the messages they print.
#include <gtest/gtest.h>

#include "support/command.h"
#include "support/temp_dir.h"

namespace cxpulse {
namespace {

using testing::CommandRun;
using testing::Cxpulse;

constexpr char kRule[] = R"(rules:
  - name: vip_negative_sentiment
    family: escalation
    kind: match
    on: sentiment
    where: segment == "vip" and sentiment.score <= -0.6
    key: [customer_id]
    severity: critical
)";

TEST(CheckCommandTest, AValidFileExitsZero) {
  testing::TempDir dir;
  const CommandRun r = Cxpulse(dir, {"check", dir.Write("ok.yaml", kRule)});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output, "ok: 1 rule(s)\n");
}

TEST(CheckCommandTest, EveryErrorIsPrintedWithItsPositionAndExitsOne) {
  testing::TempDir dir;
  std::string bad = kRule;
  bad.replace(bad.find("sentiment.score <= -0.6"), 23, "sentiment.score <= \"low\"");
  bad += "  - name: vip_negative_sentiment\n    family: gap\n    kind: absence\n    on: survey\n"
         "    expect: survey\n    key: customer_id\n    severity: info\n";
  const std::string file = dir.Write("bad.yaml", bad);
  const CommandRun r = Cxpulse(dir, {"check", file});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find(file + ":6:33: type mismatch: sentiment.score is double, \"low\" is string"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(file + ":9:5: an absence rule needs a bound"), std::string::npos) << r.output;
}

TEST(CheckCommandTest, AMissingPathIsAnError) {
  testing::TempDir dir;
  const CommandRun r = Cxpulse(dir, {"check", dir.path() + "/nope"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("no such rule file or directory"), std::string::npos) << r.output;
}

constexpr char kTest[] = R"(rule_files: [rules.yaml]
tests:
  - name: a VIP at -0.8
    events:
      - {at: 0s, customer_id: c1, segment: vip, sentiment: {score: -0.8}}
      - {at: 1m, customer_id: c2, segment: standard, sentiment: {score: -0.9}}
    expect:
      - {rule: vip_negative_sentiment, key: {customer_id: c1}, at: 0s}
)";

TEST(TestCommandTest, PassingTestsExitZeroWithACount) {
  testing::TempDir dir;
  dir.Write("rules.yaml", kRule);
  const CommandRun r = Cxpulse(dir, {"test", dir.Write("rules_test.yaml", kTest)});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("ok    "), std::string::npos);
  EXPECT_NE(r.output.find("\n1 passed, 0 failed\n"), std::string::npos) << r.output;
}

TEST(TestCommandTest, AFailureShowsWhatWasExpectedAndWhatCame) {
  testing::TempDir dir;
  dir.Write("rules.yaml", kRule);
  std::string t = kTest;
  t.replace(t.find("key: {customer_id: c1}"), 22, "key: {customer_id: c2}");
  const CommandRun r = Cxpulse(dir, {"test", dir.Write("rules_test.yaml", t)});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("FAIL  "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("expected, not produced: vip_negative_sentiment {customer_id: c2} at 0s"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("produced, not expected: vip_negative_sentiment {customer_id: c1} at 0s"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("\n0 passed, 1 failed\n"), std::string::npos) << r.output;
}

TEST(TestCommandTest, ABadEventIsPositioned) {
  testing::TempDir dir;
  dir.Write("rules.yaml", kRule);
  std::string t = kTest;
  t.replace(t.find("segment: vip"), 12, "segmnt: vip");
  const std::string file = dir.Write("rules_test.yaml", t);
  const CommandRun r = Cxpulse(dir, {"test", file});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find(file + ":5:35: unknown field \"segmnt\" in InteractionEvent"), std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace cxpulse
