#include "ruletest/rule_test.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "absl/strings/str_join.h"
#include "common/strings.h"
#include "common/yaml_errors.h"
#include "common/yaml_message.h"
#include "engine/offline_run.h"
#include "engine/rule_compiler.h"
#include "google/protobuf/util/time_util.h"

namespace cxpulse {
namespace {

// 2026-01-05T09:00:00Z, a Monday morning: the default `start` of a test.
constexpr Micros kDefaultStart = 1'767'603'600LL * kMicrosPerSecond;

struct Expected {
  std::string rule;
  std::map<std::string, std::string> key;
  std::optional<Micros> at;  // offset from start
  std::optional<std::vector<std::string>> evidence;
  std::optional<std::string> summary;
  std::string where;  // file:line:col
};

std::string Describe(const cx::v1::Finding& f, Micros start) {
  std::vector<std::string> key;
  for (const auto& k : f.key()) key.push_back(Cat(k.field(), ": ", k.value()));
  return Cat(f.rule(), " {", absl::StrJoin(key, ", "), "} at ", FormatDuration(ToMicros(f.fired_at()) - start),
             " evidence [", absl::StrJoin(f.evidence_event_ids(), ", "), "] \"", f.summary(), "\"");
}

std::string Describe(const Expected& e) {
  std::vector<std::string> key;
  for (const auto& [k, v] : e.key) key.push_back(Cat(k, ": ", v));
  std::string out = Cat(e.rule, " {", absl::StrJoin(key, ", "), "}");
  if (e.at) Append(&out, " at ", FormatDuration(*e.at));
  if (e.evidence) Append(&out, " evidence [", absl::StrJoin(*e.evidence, ", "), "]");
  if (e.summary) Append(&out, " \"", *e.summary, "\"");
  return out;
}

bool Matches(const Expected& e, const cx::v1::Finding& f, Micros start) {
  if (e.rule != f.rule()) return false;
  for (const auto& [field, value] : e.key) {
    bool found = false;
    for (const auto& k : f.key()) found = found || (k.field() == field && k.value() == value);
    if (!found) return false;
  }
  if (e.at && ToMicros(f.fired_at()) - start != *e.at) return false;
  if (e.evidence && std::vector<std::string>(f.evidence_event_ids().begin(), f.evidence_event_ids().end()) != *e.evidence) {
    return false;
  }
  return !e.summary || *e.summary == f.summary();
}

absl::Status ParseExpected(const std::string& file, const YAML::Node& node, Expected* e) {
  e->where = Where(file, node.Mark());
  if (!node.IsMap()) return ErrorAt(file, node, "an expected finding is a mapping with rule, key, at");
  for (const auto& kv : node) {
    const std::string& k = kv.first.Scalar();
    const YAML::Node& v = kv.second;
    if (k == "rule") {
      e->rule = v.Scalar();
    } else if (k == "key") {
      if (!v.IsMap()) return ErrorAt(file, v, "\"key\" is a mapping of key field to value");
      for (const auto& f : v) e->key[f.first.Scalar()] = f.second.Scalar();
    } else if (k == "at") {
      absl::StatusOr<Micros> d = ParseDuration(v.Scalar());
      if (!d.ok()) return ErrorAt(file, v, Message(d.status()));
      e->at = *d;
    } else if (k == "evidence") {
      if (!v.IsSequence()) return ErrorAt(file, v, "\"evidence\" is a list of event ids");
      e->evidence.emplace();
      for (const auto& id : v) e->evidence->push_back(id.Scalar());
    } else if (k == "summary") {
      e->summary = v.Scalar();
    } else {
      return ErrorAt(file, kv.first, Cat("unknown field \"", k, "\"; one of: rule, key, at, evidence, summary"));
    }
  }
  if (e->rule.empty()) return ErrorAt(file, node, "expected finding needs \"rule\"");
  return absl::OkStatus();
}

class FileRunner {
 public:
  FileRunner(std::string file, std::ostream& out, RuleTestSummary* summary)
      : file_(std::move(file)), out_(out), summary_(summary) {}

  void Run() {
    YAML::Node root;
    try {
      root = YAML::LoadFile(file_);
    } catch (const YAML::Exception& e) {
      return Error(Cat(Where(file_, e.mark), ": ", e.msg));
    }
    if (!root.IsMap() || !root["rule_files"] || !root["tests"] || !root["tests"].IsSequence()) {
      return Error(Cat(Where(file_, root.Mark()), ": a rule test file has \"rule_files\" and a \"tests\" list"));
    }
    std::vector<std::string> rule_paths;
    const auto dir = std::filesystem::path(file_).parent_path();
    for (const auto& f : root["rule_files"]) rule_paths.push_back((dir / f.Scalar()).lexically_normal().string());
    absl::StatusOr<std::shared_ptr<const RuleSet>> rules = LoadRuleSet(rule_paths);
    if (!rules.ok()) return Error(std::string(Message(rules.status())));
    for (const YAML::Node& test : root["tests"]) RunTest(*rules, test);
  }

 private:
  void Error(const std::string& message) {
    out_ << "ERROR " << message << "\n";
    ++summary_->errors;
  }

  void RunTest(const std::shared_ptr<const RuleSet>& rules, const YAML::Node& test) {
    const std::string name = test["name"] ? test["name"].Scalar() : Where(file_, test.Mark());
    const std::string label = Cat(Where(file_, test.Mark()), ": ", name);
    auto fail = [&](const std::string& why) {
      out_ << "FAIL  " << label << "\n" << why;
      ++summary_->failed;
    };
    Micros start = kDefaultStart;
    if (YAML::Node s = test["start"]) {
      google::protobuf::Timestamp ts;
      if (!google::protobuf::util::TimeUtil::FromString(s.Scalar(), &ts)) {
        return fail(Cat("  ", Where(file_, s.Mark()), ": \"start\" takes an RFC 3339 time\n"));
      }
      start = ToMicros(ts);
    }
    Micros allowed_lateness = 0;
    if (YAML::Node l = test["allowed_lateness"]) {
      absl::StatusOr<Micros> d = ParseDuration(l.Scalar());
      if (!d.ok()) return fail(Cat("  ", Where(file_, l.Mark()), ": ", Message(d.status()), "\n"));
      allowed_lateness = *d;
    }
    std::vector<cx::v1::Finding> findings;
    OfflineRun run(rules, allowed_lateness, [&](int, const cx::v1::Finding& f) { findings.push_back(f); });

    int n = 0;
    for (const YAML::Node& ev : test["events"]) {
      ++n;
      cx::v1::InteractionEvent event;
      Micros at = 0;
      if (!ev.IsMap() || !ev["at"]) return fail(Cat("  ", Where(file_, ev.Mark()), ": each event needs \"at\" (an offset such as 5m)\n"));
      absl::StatusOr<Micros> d = ParseDuration(ev["at"].Scalar());
      if (!d.ok()) return fail(Cat("  ", Where(file_, ev["at"].Mark()), ": ", Message(d.status()), "\n"));
      at = *d;
      const std::string id = ev["id"] ? ev["id"].Scalar() : Cat("e", n);
      if (absl::Status s = YamlToMessage(file_, ev, start, &event, {"at", "id"}); !s.ok()) {
        return fail(Cat("  ", Message(s), "\n"));
      }
      event.set_event_id(id);
      SetTimestamp(start + at, event.mutable_occurred_at());
      if (event.body_case() == cx::v1::InteractionEvent::BODY_NOT_SET) {
        return fail(Cat("  ", Where(file_, ev.Mark()), ": the event has no body (ended, survey, ...)\n"));
      }
      if (run.Process(event) == Engine::Outcome::kLate) {
        return fail(Cat("  ", Where(file_, ev.Mark()), ": event ", id,
                        " is behind the watermark; list events in time order or set allowed_lateness\n"));
      }
    }
    if (YAML::Node adv = test["advance"]) {
      absl::StatusOr<Micros> d = ParseDuration(adv.Scalar());
      if (!d.ok()) return fail(Cat("  ", Where(file_, adv.Mark()), ": ", Message(d.status()), "\n"));
      run.AdvanceTo(start + *d);
    }
    // The events still held for the centre-wide rules (the last ones, which
    // no later event's time has passed) reach them; time stays where it is.
    run.EndOfInput();

    std::vector<Expected> expected;
    if (YAML::Node list = test["expect"]) {
      for (const YAML::Node& e : list) {
        Expected x;
        if (absl::Status s = ParseExpected(file_, e, &x); !s.ok()) return fail(Cat("  ", Message(s), "\n"));
        if (rules->IndexOf(x.rule) < 0) return fail(Cat("  ", x.where, ": no rule named \"", x.rule, "\" is loaded\n"));
        expected.push_back(std::move(x));
      }
    }
    std::vector<bool> used(findings.size(), false);
    std::vector<const Expected*> missing;
    for (const Expected& e : expected) {
      bool hit = false;
      for (size_t i = 0; i < findings.size() && !hit; ++i) {
        if (!used[i] && Matches(e, findings[i], start)) used[i] = hit = true;
      }
      if (!hit) missing.push_back(&e);
    }
    std::string why;
    for (const Expected* e : missing) Append(&why, "  expected, not produced: ", Describe(*e), "  (", e->where, ")\n");
    for (size_t i = 0; i < findings.size(); ++i) {
      if (!used[i]) Append(&why, "  produced, not expected: ", Describe(findings[i], start), "\n");
    }
    if (!why.empty()) return fail(why);
    out_ << "ok    " << label << "\n";
    ++summary_->passed;
  }

  std::string file_;
  std::ostream& out_;
  RuleTestSummary* summary_;
};

}  // namespace

RuleTestSummary RunRuleTests(const std::vector<std::string>& files, std::ostream& out) {
  RuleTestSummary summary;
  for (const std::string& f : files) {
    std::error_code ec;
    if (std::filesystem::is_directory(f, ec)) {
      std::vector<std::string> found;
      for (const auto& entry : std::filesystem::directory_iterator(f, ec)) {
        if (entry.path().stem().string().ends_with("_test")) found.push_back(entry.path().string());
      }
      std::sort(found.begin(), found.end());
      for (const auto& t : found) FileRunner(t, out, &summary).Run();
    } else {
      FileRunner(f, out, &summary).Run();
    }
  }
  return summary;
}

}  // namespace cxpulse
