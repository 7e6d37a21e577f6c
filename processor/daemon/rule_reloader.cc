#include "daemon/rule_reloader.h"

#include <filesystem>

#include "common/strings.h"
#include "engine/rule_compiler.h"
#include "engine/rule_set.h"
#include "spdlog/spdlog.h"

namespace cxpulse {
namespace {

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) Append(&out, fmt::format("\\u{:04x}", static_cast<int>(c)));
        else out += c;
    }
  }
  return out + "\"";
}

}  // namespace

RuleReloader::RuleReloader(std::string rules_path, Pipeline* pipeline, prometheus::Registry& registry,
                           const Clock* clock)
    : rules_path_(std::move(rules_path)), pipeline_(pipeline), clock_(clock) {
  auto& reloads = prometheus::BuildCounter()
                      .Name("cxpulse_rule_reloads_total")
                      .Help("Rule reloads attempted, by result (success, failure).")
                      .Register(registry);
  succeeded_ = &reloads.Add({{"result", "success"}});
  failed_ = &reloads.Add({{"result", "failure"}});
  last_ok_ = &prometheus::BuildGauge()
                  .Name("cxpulse_rule_reload_last_success")
                  .Help("1 if the last reload (or the start) succeeded, 0 if it failed and older rules run.")
                  .Register(registry)
                  .Add({});
  last_success_time_ = &prometheus::BuildGauge()
                            .Name("cxpulse_rule_reload_last_success_timestamp_seconds")
                            .Help("When the running rules were loaded, in seconds since the epoch.")
                            .Register(registry)
                            .Add({});
  last_ok_->Set(1);
  last_at_ = clock_->Now();
  last_success_time_->Set(static_cast<double>(last_at_) / kMicrosPerSecond);
  signature_ = Signature();
}

std::string RuleReloader::Signature() const {
  absl::StatusOr<std::vector<std::string>> files = RuleFiles({rules_path_});
  if (!files.ok()) return std::string(Message(files.status()));
  std::string sig;
  for (const std::string& f : *files) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(f, ec);
    const auto time = std::filesystem::last_write_time(f, ec).time_since_epoch().count();
    Append(&sig, f, ":", size, ":", time, "\n");
  }
  return sig;
}

absl::Status RuleReloader::Reload(std::string_view trigger) {
  signature_ = Signature();
  last_trigger_ = std::string(trigger);
  last_at_ = clock_->Now();
  absl::StatusOr<std::shared_ptr<const RuleSet>> rules = LoadRuleSet({rules_path_});
  if (!rules.ok()) {
    failed_->Increment();
    last_ok_->Set(0);
    last_error_ = std::string(Message(rules.status()));
    spdlog::error("reload ({}) refused; the running rules stay:\n{}", trigger, last_error_);
    return rules.status();
  }
  pipeline_->Reload(*rules);
  succeeded_->Increment();
  last_ok_->Set(1);
  last_success_time_->Set(static_cast<double>(last_at_) / kMicrosPerSecond);
  last_error_.clear();
  spdlog::info("reload ({}): {} rule(s) running", trigger, (*rules)->rules().size());
  return absl::OkStatus();
}

void RuleReloader::ReloadIfChanged() {
  if (Signature() != signature_) (void)Reload("file change");
}

std::string RuleReloader::RulesJson() const {
  std::string out = "{\"rules\":[";
  bool first = true;
  const std::shared_ptr<const RuleSet> rules = pipeline_->rules();  // held: a reload may replace them
  for (const Rule& r : rules->rules()) {
    const Pipeline::RuleTotals t = pipeline_->Totals(r.name);
    Append(&out, first ? "" : ",", "{\"name\":", JsonString(r.name), ",\"version\":", JsonString(r.version),
           ",\"kind\":", JsonString(RuleKindName(r.kind)), ",\"scope\":", JsonString(RuleScopeName(r.scope)), ",\"source\":", JsonString(r.source),
           ",\"evaluations\":", t.evaluations, ",\"evaluation_seconds\":", t.evaluation_seconds, ",\"findings\":", t.findings, ",\"keys\":", t.keys,
           ",\"key_limit_hits\":", t.key_limit_hits, "}");
    first = false;
  }
  Append(&out, "],\"last_reload\":{\"result\":", JsonString(last_error_.empty() ? "success" : "failure"),
         ",\"trigger\":", JsonString(last_trigger_), ",\"at\":", JsonString(FormatTime(last_at_)),
         ",\"error\":", JsonString(last_error_), "}}\n");
  return out;
}

}  // namespace cxpulse
