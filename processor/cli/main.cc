// cxpulse: the one binary. Subcommands: run, demo, check, test, replay, gen, mock-kafka.
// Exceptions (CLI11's) stay here at the edge; below, errors are Status values.
#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "cli/gen_command.h"
#include "cli/mock_kafka_command.h"
#include "cli/replay_command.h"
#include "cli/validators.h"
#include "common/time.h"
#include "common/strings.h"
#include "config/config.h"
#include "daemon/daemon.h"
#include "daemon/demo.h"
#include "engine/rule_compiler.h"
#include "engine/rule_set.h"
#include "ruletest/rule_test.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

namespace {

std::string DefaultRulesDir() {
  // From the source tree (make demo), else where the build says rules live.
  if (std::filesystem::is_directory("rules")) return "rules";
  return CXPULSE_RULES_DIR;
}

int Run(const std::string& config_path, int shards, bool exit_when_idle) {
  absl::StatusOr<cxpulse::Config> config = cxpulse::LoadConfig(config_path);
  if (!config.ok()) {
    std::cerr << cxpulse::Message(config.status()) << "\n";
    return 1;
  }
  cxpulse::DaemonOptions options;
  options.config = *config;
  options.shards = shards;
  options.exit_when_idle = exit_when_idle;
  std::unique_ptr<cxpulse::EmbeddedCluster> cluster;
  std::string bootstrap = config->kafka.brokers;
  if (bootstrap == "embedded") {
    absl::StatusOr<std::unique_ptr<cxpulse::EmbeddedCluster>> c = cxpulse::StartEmbeddedCluster(config->kafka);
    if (!c.ok()) {
      std::cerr << cxpulse::Message(c.status()) << "\n";
      return 1;
    }
    cluster = *std::move(c);
    bootstrap = cluster->bootstrap_servers();
    spdlog::info("embedded Kafka on {}", bootstrap);
  }
  return cxpulse::RunDaemon(options, bootstrap);
}

int Check(const std::vector<std::string>& paths) {
  absl::StatusOr<std::shared_ptr<const cxpulse::RuleSet>> rules = cxpulse::LoadRuleSet(paths);
  if (!rules.ok()) {
    std::cerr << cxpulse::Message(rules.status()) << "\n";
    return 1;
  }
  std::cout << "ok: " << (*rules)->rules().size() << " rule(s)\n";
  return 0;
}

int Test(const std::vector<std::string>& paths) {
  const cxpulse::RuleTestSummary s = cxpulse::RunRuleTests(paths, std::cout);
  // The plain closing line test runners and CI read.
  std::cout << s.passed << " passed, " << s.failed + s.errors << " failed\n";
  return s.failed + s.errors == 0 && s.passed > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("cxpulse"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  CLI::App app{"cxpulse: real-time customer-experience event processor for contact centres"};
  app.require_subcommand(1);
  app.set_version_flag("--version", CXPULSE_VERSION);

  std::string config_path;
  CLI::App* run = app.add_subcommand("run", "Run the daemon");
  run->add_option("--config", config_path, "Config file (YAML)")->required()->check(CLI::ExistingFile);
  int run_shards = 0;
  bool exit_when_idle = false;
  run->add_option("--shards", run_shards, "Shard threads (default: one per core)")->check(CLI::Range(0, 256));
  run->add_flag("--exit-when-idle", exit_when_idle,
                "Exit 0 once every assigned partition is at its end (backfills, benchmarks)");

  cxpulse::DemoOptions demo_options;
  std::string demo_duration = "0s";
  CLI::App* demo = app.add_subcommand(
      "demo", "Run everything in one process: embedded Kafka, generated traffic, the daemon, metrics");
  demo->add_option("--duration", demo_duration, "Stop after this long, e.g. 30s (default: until Ctrl-C)")
      ->check(cxpulse::DurationValidator());
  demo->add_option("--rules", demo_options.rules_path, "Rule file or directory (default: rules/)");
  demo->add_option("--metrics", demo_options.admin_address, "Admin/metrics address host:port")
      ->capture_default_str();
  demo->add_option("--rate", demo_options.contacts_per_second, "New contacts per second")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  demo->add_option("--time-compression", demo_options.time_compression,
                   "How much faster than real time journeys run")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 100000.0));
  demo->add_option("--partitions", demo_options.partitions, "Partitions of the input topic")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  demo->add_option("--customers", demo_options.customers, "Distinct customers in the generated traffic")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000000));
  demo->add_option("--seed", demo_options.seed, "Traffic generator seed")->capture_default_str();

  std::vector<std::string> check_paths;
  CLI::App* check = app.add_subcommand("check", "Validate rule files; errors as file:line:col: message");
  check->add_option("RULES", check_paths, "Rule files or directories")->required();

  std::vector<std::string> test_paths;
  CLI::App* test = app.add_subcommand("test", "Run rule unit tests (*_test.yaml): given events, expect findings");
  test->add_option("TESTS", test_paths, "Test files, or directories holding *_test.yaml")->required();

  const cxpulse::GenCommand gen(app);
  const cxpulse::MockKafkaCommand mock_kafka(app);
  const cxpulse::ReplayCommand replay(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; any other usage error exits 2.
    return app.exit(e) == 0 ? 0 : 2;
  }

  if (run->parsed()) return Run(config_path, run_shards, exit_when_idle);
  if (demo->parsed()) {
    demo_options.duration = *cxpulse::ParseDuration(demo_duration);
    if (demo_options.rules_path.empty()) demo_options.rules_path = DefaultRulesDir();
    return cxpulse::RunDemo(demo_options);
  }
  if (check->parsed()) return Check(check_paths);
  if (test->parsed()) return Test(test_paths);
  if (replay.parsed()) return replay.Run();
  if (gen.parsed()) return gen.Run();
  if (mock_kafka.parsed()) return mock_kafka.Run();
  return 2;
}
