// `cxpulse replay` as on-call staff run it before a rule change goes live: the
// real binary over recorded events, its findings read back, its summary read.
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "common/strings.h"
#include "common/time.h"
#include "cx/v1/finding.pb.h"
#include "support/command.h"
#include "support/events.h"
#include "support/temp_dir.h"

namespace cxpulse {
namespace {

using testing::CommandRun;
using testing::Cxpulse;
using testing::ReadFile;
using testing::ReadLines;

// c1 ends three contacts about billing (repeat_contact, at the third); c2 is
// promised a callback at 10:00 that never comes (callback_missed, once the end
// of the input moves the watermark past it); c3's callback is made in time.
constexpr char kEvents[] =
    R"({"eventId":"e1","occurredAt":"2026-03-01T09:00:00Z","customerId":"c1","reason":"billing","ended":{}}
{"eventId":"e2","occurredAt":"2026-03-01T09:10:00Z","customerId":"c1","reason":"billing","ended":{}}
{"eventId":"e3","occurredAt":"2026-03-01T09:20:00Z","customerId":"c2","callbackRequested":{"dueAt":"2026-03-01T10:00:00Z"}}
{"eventId":"e4","occurredAt":"2026-03-01T09:25:00Z","customerId":"c3","callbackRequested":{"dueAt":"2026-03-01T09:50:00Z"}}
{"eventId":"e5","occurredAt":"2026-03-01T09:30:00Z","customerId":"c1","reason":"billing","ended":{}}
{"eventId":"e6","occurredAt":"2026-03-01T09:40:00Z","customerId":"c3","callbackAttempted":{"connected":true}}
)";

// c5 ends two contacts about tech; c1 complains.
constexpr char kMoreEvents[] =
    R"({"eventId":"e7","occurredAt":"2026-03-01T09:45:00Z","customerId":"c5","reason":"tech","ended":{}}
{"eventId":"e8","occurredAt":"2026-03-01T09:50:00Z","customerId":"c5","reason":"tech","ended":{}}
{"eventId":"e9","occurredAt":"2026-03-01T09:55:00Z","customerId":"c1","complaint":{"category":"billing"}}
)";

std::vector<cx::v1::Finding> ReadFindings(const std::string& path) {
  return testing::ReadJsonLines<cx::v1::Finding>(path);
}

std::string Key(const cx::v1::Finding& f) {
  std::string out;
  for (const auto& k : f.key()) Append(&out, out.empty() ? "" : ",", k.field(), "=", k.value());
  return out;
}

std::vector<std::string> Evidence(const cx::v1::Finding& f) {
  return {f.evidence_event_ids().begin(), f.evidence_event_ids().end()};
}

bool HasLine(const std::string& output, const std::string& pattern) {
  return std::regex_search(output, std::regex("(^|\n)" + pattern + "(\n|$)"));
}

TEST(ReplayCommandTest, RecordedEventsGiveTheirFindingsAndPendingTimersFireAtTheEnd) {
  testing::TempDir dir;
  const std::string input = dir.Write("events.jsonl", kEvents);
  const std::string output = dir.path() + "/findings.jsonl";
  const CommandRun r = Cxpulse(dir, {"replay", "--rules", CXPULSE_RULES_DIR, "--input", input, "--output", output});
  EXPECT_EQ(r.code, 0) << r.output;

  const std::vector<cx::v1::Finding> findings = ReadFindings(output);
  ASSERT_EQ(findings.size(), 2u) << ReadFile(output);
  EXPECT_EQ(findings[0].rule(), "repeat_contact");
  EXPECT_EQ(Key(findings[0]), "customer_id=c1,reason=billing");
  EXPECT_EQ(Evidence(findings[0]), (std::vector<std::string>{"e1", "e2", "e5"}));
  EXPECT_EQ(FormatTime(ToMicros(findings[0].fired_at())), "2026-03-01T09:30:00Z");
  EXPECT_EQ(findings[1].rule(), "callback_missed");
  EXPECT_EQ(Key(findings[1]), "customer_id=c2");
  EXPECT_EQ(Evidence(findings[1]), std::vector<std::string>{"e3"});
  EXPECT_EQ(FormatTime(ToMicros(findings[1].fired_at())), "2026-03-01T10:00:00Z");
  EXPECT_EQ(findings[1].escalate_to(), "team-lead");

  EXPECT_NE(r.output.find("replay: 6 events read from " + input + ", 0 bad lines, 0 late"), std::string::npos)
      << r.output;
  EXPECT_TRUE(HasLine(r.output, "repeat_contact +1")) << r.output;
  EXPECT_TRUE(HasLine(r.output, "callback_missed +1")) << r.output;
  EXPECT_TRUE(HasLine(r.output, "complaint +0")) << r.output;
  EXPECT_TRUE(HasLine(r.output, "total +2")) << r.output;
}

TEST(ReplayCommandTest, ABadLineIsReportedWithItsNumberAndTheRestIsReplayed) {
  testing::TempDir dir;
  std::string events = kEvents;
  // Line 3 is not JSON; line 5 is an event with no body.
  events.insert(events.find("{\"eventId\":\"e3\""), "this is not json\n");
  events.insert(events.find("{\"eventId\":\"e4\""),
                R"({"eventId":"x","occurredAt":"2026-03-01T09:21:00Z","customerId":"c9"})" "\n");
  const std::string input = dir.Write("events.jsonl", events);
  const std::string output = dir.path() + "/findings.jsonl";
  const CommandRun r = Cxpulse(dir, {"replay", "--rules", CXPULSE_RULES_DIR, "--input", input, "--output", output});
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_TRUE(HasLine(r.output, input + ":3: not a cx\\.v1\\.InteractionEvent: .*")) << r.output;
  EXPECT_TRUE(HasLine(r.output, input + ":5: event has no body")) << r.output;
  EXPECT_NE(r.output.find("6 events read from " + input + ", 2 bad lines"), std::string::npos) << r.output;
  const std::vector<cx::v1::Finding> findings = ReadFindings(output);
  ASSERT_EQ(findings.size(), 2u) << ReadFile(output);
  EXPECT_EQ(findings[0].rule(), "repeat_contact");
  EXPECT_EQ(findings[1].rule(), "callback_missed");
}

// The shipped pack with repeat_contact at two contacts instead of three, and
// `complaint` renamed: what a rule change on recorded traffic shows.
std::string ChangedPack(const testing::TempDir& dir) {
  std::string pack = ReadFile(std::string(CXPULSE_RULES_DIR) + "/contact-centre.yaml");
  const std::string threshold = "threshold: 3\n    cooldown: 1d\n";
  const std::string name = "- name: complaint\n";
  EXPECT_NE(pack.find(threshold), std::string::npos);
  EXPECT_NE(pack.find(name), std::string::npos);
  pack.replace(pack.find(threshold), threshold.size(), "threshold: 2\n    cooldown: 1d\n");
  pack.replace(pack.find(name), name.size(), "- name: complaint_any\n");
  std::filesystem::create_directory(dir.path() + "/changed");
  dir.Write("changed/contact-centre.yaml", pack);
  return dir.path() + "/changed";
}

TEST(ReplayCommandTest, ABaselineGivesPerRuleCountsAndTheirDifference) {
  testing::TempDir dir;
  const std::string input = dir.Write("events.jsonl", std::string(kEvents) + kMoreEvents);
  const std::string changed = ChangedPack(dir);
  const std::string output = dir.path() + "/findings.jsonl";
  const CommandRun r = Cxpulse(dir, {"replay", "--rules", changed, "--baseline", CXPULSE_RULES_DIR, "--input", input,
                                     "--output", output});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(HasLine(r.output, "rule +baseline +new +difference")) << r.output;
  // Baseline: c1 at the third contact. New: c1 at the second (then its cooldown), c5 at the second.
  EXPECT_TRUE(HasLine(r.output, "repeat_contact +1 +2 +\\+1  changed")) << r.output;
  EXPECT_TRUE(HasLine(r.output, "callback_missed +1 +1 +0")) << r.output;
  EXPECT_TRUE(HasLine(r.output, "complaint_any +- +1 +\\+1  added")) << r.output;
  EXPECT_TRUE(HasLine(r.output, "complaint +1 +- +-1  removed")) << r.output;
  EXPECT_TRUE(HasLine(r.output, "total +3 +4 +\\+1")) << r.output;
  // The findings written are the new rules'.
  const std::vector<cx::v1::Finding> findings = ReadFindings(output);
  ASSERT_EQ(findings.size(), 4u) << ReadFile(output);
  EXPECT_EQ(findings[0].rule(), "repeat_contact");
  EXPECT_EQ(Evidence(findings[0]), (std::vector<std::string>{"e1", "e2"}));

  // --diff: only what one run gave and the other did not; callback_missed is the same in both.
  const CommandRun d = Cxpulse(dir, {"replay", "--rules", changed, "--baseline", CXPULSE_RULES_DIR, "--input", input,
                                     "--output", output, "--diff"});
  EXPECT_EQ(d.code, 0) << d.output;
  std::vector<std::string> added, removed;
  for (const std::string& line : ReadLines(output)) {
    cx::v1::Finding f;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line.substr(2), &f).ok()) << line;
    (line.starts_with("+ ") ? added : removed).push_back(Cat(f.rule(), " ", Key(f)));
    EXPECT_TRUE(line.starts_with("+ ") || line.starts_with("- ")) << line;
  }
  EXPECT_EQ(added, (std::vector<std::string>{"repeat_contact customer_id=c1,reason=billing",
                                             "repeat_contact customer_id=c5,reason=tech",
                                             "complaint_any customer_id=c1"}));
  EXPECT_EQ(removed,
            (std::vector<std::string>{"repeat_contact customer_id=c1,reason=billing", "complaint customer_id=c1"}));
}

TEST(ReplayCommandTest, DelimitedProtobufGivesTheSameFindingsAsTheSameEventsInJsonLines) {
  testing::TempDir dir;
  const std::string start = FormatTime(testing::kT0);
  for (const auto& [file, format] : {std::pair{"events.pb", "proto"}, std::pair{"events.jsonl", "jsonl"}}) {
    const CommandRun g = Cxpulse(dir, {"gen", "--output", dir.path() + "/" + file, "--format", format, "--events",
                                       "2000", "--seed", "11", "--start", start, "--customers", "300", "--rate", "5",
                                       "--time-compression", "50"});
    ASSERT_EQ(g.code, 0) << g.output;
  }
  const CommandRun p = Cxpulse(dir, {"replay", "--rules", CXPULSE_RULES_DIR, "--input", dir.path() + "/events.pb",
                                     "--format", "proto", "--output", dir.path() + "/from-proto.jsonl"});
  ASSERT_EQ(p.code, 0) << p.output;
  const CommandRun j = Cxpulse(dir, {"replay", "--rules", CXPULSE_RULES_DIR, "--input", dir.path() + "/events.jsonl",
                                     "--output", dir.path() + "/from-jsonl.jsonl"});
  ASSERT_EQ(j.code, 0) << j.output;
  EXPECT_NE(p.output.find("replay: 2000 events read"), std::string::npos) << p.output;
  const std::vector<std::string> from_proto = ReadLines(dir.path() + "/from-proto.jsonl");
  EXPECT_GT(from_proto.size(), 20u) << p.output;
  EXPECT_TRUE(HasLine(p.output, "case_sla_breached +[1-9][0-9]*")) << p.output;  // absence timers, at the end too
  EXPECT_EQ(from_proto, ReadLines(dir.path() + "/from-jsonl.jsonl"));
  const std::string total = Cat("total +", from_proto.size());
  EXPECT_TRUE(HasLine(p.output, total)) << p.output;
  EXPECT_TRUE(HasLine(j.output, total)) << j.output;
}

TEST(ReplayCommandTest, RulesThatDoNotLoadExitOneWithTheirPosition) {
  testing::TempDir dir;
  const std::string rules = dir.Write("bad.yaml", R"(rules:
  - name: vip_negative_sentiment
    family: escalation
    kind: match
    on: sentiment
    where: segment == "vip" and sentiment.score <= "low"
    key: [customer_id]
    severity: critical
)");
  const std::string input = dir.Write("events.jsonl", kEvents);
  const CommandRun r = Cxpulse(dir, {"replay", "--rules", rules, "--input", input});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find(rules + ":6:33: type mismatch"), std::string::npos) << r.output;
  const CommandRun b = Cxpulse(dir, {"replay", "--rules", CXPULSE_RULES_DIR, "--baseline", rules, "--input", input});
  EXPECT_EQ(b.code, 1);
  EXPECT_NE(b.output.find(rules + ":6:33: type mismatch"), std::string::npos) << b.output;
}

TEST(ReplayCommandTest, UsageErrorsExitTwo) {
  testing::TempDir dir;
  const std::string input = dir.Write("events.jsonl", kEvents);
  EXPECT_EQ(Cxpulse(dir, {"replay", "--rules", CXPULSE_RULES_DIR}).code, 2);  // no input
  EXPECT_EQ(Cxpulse(dir, {"replay", "--rules", CXPULSE_RULES_DIR, "--input", dir.path() + "/nope"}).code, 2);
  EXPECT_EQ(Cxpulse(dir, {"replay", "--rules", CXPULSE_RULES_DIR, "--input", input, "--diff"}).code, 2);
  EXPECT_EQ(Cxpulse(dir, {"replay", "--rules", CXPULSE_RULES_DIR, "--input", input, "--format", "xml"}).code, 2);
}

}  // namespace
}  // namespace cxpulse
