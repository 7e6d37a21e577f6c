// Restore time of N customers' state (default 1M), as an operator sees it:
// the changelog of a compacted topic holding that state, and a real `cxpulse
// run` with a fresh group restoring it at assignment. Issue 10's target: 1M
// customers within 5 s on this machine.
//
// The bench hosts a mock cluster (input and changelog topics, P partitions),
// builds the customers' state (customer_journeys.h) with the shard's own
// engine and KPIs, customers spread over the partitions, and writes each
// partition's checkpoint once, as compaction would leave it, ending with its
// position record. Then it starts `cxpulse run --exit-when-idle` on the empty
// input and reads its restore log lines: per shard, the seconds from the
// assignment to the state restored (the shards restore side by side), and
// the records and bytes taken. It fails if any record written is not taken.
// The reference, in the same run: kcat reading the whole changelog.
//
// Run: build/tests/restore_bench [--customers N] [--partitions P] [--shards S] [--delivery D]
//                             [--kcat PATH] [--cxpulse PATH]
// (the mock broker serves from the same cores as the daemon).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <regex>
#include <string>

#include "CLI/CLI.hpp"
#include "common/strings.h"
#include "daemon/changelog.h"
#include "engine/engine.h"
#include "engine/rule_compiler.h"
#include "kpi/kpi.h"
#include "kpi/queue_labels.h"
#include "support/child_process.h"
#include "support/embedded_cluster.h"
#include "support/temp_dir.h"
#include "bench/customer_journeys.h"

namespace cxpulse {
namespace {

class NoFindings final : public FindingSink {
 public:
  void Emit(int, const cx::v1::Finding&) override {}
};

Micros WallNow() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Written {
  uint64_t records = 0, bytes = 0;
};

// The state of `customers` customers, customer c on partition c % partitions,
// checkpointed once into `topic`.
absl::StatusOr<Written> WriteChangelog(const std::string& bootstrap, const std::string& topic, size_t customers,
                                       int partitions) {
  auto rules = LoadRuleSet({CXPULSE_RULES_DIR});
  if (!rules.ok()) return rules.status();
  const Micros now = WallNow();
  NoFindings sink;
  EngineOptions options;
  options.scope = ScopeSelector::kCustomer;
  options.track_changes = true;
  Engine engine(*rules, options, &sink);
  KpiConfig kpi_config;
  QueueLabels queues(kpi_config);
  KpiAggregator kpi(kpi_config, &queues, options.allowed_lateness, options.idle_partition_timeout, true);
  // Event time within the last hour, so the callbacks are due an hour from now.
  bench::ForEachJourneyEvent(customers, now - 3600 * kMicrosPerSecond,
                             [&](size_t c, const cx::v1::InteractionEvent& e) {
                               const auto p = static_cast<int32_t>(c % static_cast<size_t>(partitions));
                               if (engine.Process(p, e, now) == Engine::Outcome::kProcessed) kpi.Record(e, p, now);
                             });
  auto producer = Producer::Create({{"bootstrap.servers", bootstrap}, {"linger.ms", "20"}});
  if (!producer.ok()) return producer.status();
  Written written;
  for (int32_t p = 0; p < partitions; ++p) {
    ChangelogWriter w(producer->get(), topic, p);
    engine.Checkpoint(p, w);
    kpi.Checkpoint(p, w);
    w.Put(kPositionKey, EncodePosition(0));
    if (!w.status().ok()) return w.status();
    written.records += w.records();
    written.bytes += w.bytes();
    (*producer)->Poll();
  }
  if (absl::Status s = (*producer)->Flush(120'000); !s.ok()) return s;
  if ((*producer)->delivery_failures() > 0) return absl::UnavailableError("changelog records not delivered");
  return written;
}

int Main(int argc, char** argv) {
  size_t customers = 1'000'000;
  int partitions = 64, shards = 2;
  std::string delivery = "exactly_once";
  std::string kcat = "/usr/bin/kcat";
  std::string cxpulse = CXPULSE_BINARY;
  std::string properties;  // kafka.properties, as YAML flow: "{fetch.wait.max.ms: 5}"
  CLI::App app("restore time of N customers' state, through a real cxpulse run");
  app.add_option("--customers", customers);
  app.add_option("--partitions", partitions);
  app.add_option("--shards", shards);
  app.add_option("--delivery", delivery)->check(CLI::IsMember({"exactly_once", "at_least_once"}));
  app.add_option("--kcat", kcat, "the reference reader");
  app.add_option("--cxpulse", cxpulse, "the binary that restores (another build's, to compare)");
  app.add_option("--kafka-properties", properties, "the daemon's kafka.properties, as YAML: {k: v, ...}");
  CLI11_PARSE(app, argc, argv);

  const std::string group = "rb";
  auto cluster = testing::StartCluster(
      {{"cx.interactions", partitions}, {"cx.findings", 1}, {"cx.deadletter", 1}, {group + "-changelog", partitions}});
  if (!cluster) return std::fprintf(stderr, "restore_bench: mock cluster did not start\n"), 1;
  const auto written_at = std::chrono::steady_clock::now();
  absl::StatusOr<Written> written =
      WriteChangelog(cluster->bootstrap_servers(), group + "-changelog", customers, partitions);
  if (!written.ok()) return std::fprintf(stderr, "restore_bench: %s\n", written.status().ToString().c_str()), 1;
  std::printf("changelog: %zu customers over %d partitions, %llu records, %llu bytes (%.0f a customer), written in %.1fs\n",
              customers, partitions, static_cast<unsigned long long>(written->records),
              static_cast<unsigned long long>(written->bytes),
              static_cast<double>(written->bytes) / static_cast<double>(customers),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - written_at).count());

  testing::TempDir dir;
  const std::string config = dir.Write(
      "cxpulse.yaml", Cat("kafka:\n  brokers: ", cluster->bootstrap_servers(), "\n  group_id: ", group,
                          properties.empty() ? "" : Cat("\n  properties: ", properties), "\nrules: ", CXPULSE_RULES_DIR, "\nadmin: {address: 127.0.0.1:0}\n",
                          "engine:\n  idle_partition_timeout: 1s\n  delivery: ", delivery, "\n"));
  const std::string log = dir.path() + "/daemon.log";
  testing::ChildProcess daemon({cxpulse, "run", "--config", config, "--shards", std::to_string(shards),
                                "--exit-when-idle"},
                               log);
  const int code = daemon.Wait(std::chrono::seconds(600));
  const std::string out = daemon.Output();
  if (code != 0) return std::fprintf(stderr, "restore_bench: cxpulse exited %d:\n%s\n", code, out.c_str()), 1;

  // "shard 1: restored cx.interactions [5] (3.120s with the shard's other
  // assigned partitions): 41234 records taken of 41234 read (4000000 bytes), ..."
  const std::regex line(R"(shard (\d+): restored \S+ \[\d+\] \(([\d.]+)s with [^)]*\): (\d+) records taken of (\d+) read \((\d+) bytes\))");
  std::map<int, double> seconds;
  uint64_t taken = 0, read = 0, bytes = 0;
  for (auto it = std::sregex_iterator(out.begin(), out.end(), line); it != std::sregex_iterator(); ++it) {
    seconds[std::stoi((*it)[1])] = std::stod((*it)[2]);
    taken += std::stoull((*it)[3]);
    read += std::stoull((*it)[4]);
    bytes += std::stoull((*it)[5]);
  }
  double slowest = 0;
  for (const auto& [shard, s] : seconds) {
    std::printf("shard %d: restored in %.3fs\n", shard, s);
    slowest = std::max(slowest, s);
  }
  std::printf("restored: %llu records taken of %llu read, %llu bytes; %zu customers in %.3fs (the slowest shard)\n",
              static_cast<unsigned long long>(taken), static_cast<unsigned long long>(read),
              static_cast<unsigned long long>(bytes), customers, slowest);
  // The reference, in the same run: kcat reading the same changelog to its end.
  if (access(kcat.c_str(), X_OK) == 0) {
    const auto started = std::chrono::steady_clock::now();
    testing::ChildProcess reader(
        {kcat, "-C", "-b", cluster->bootstrap_servers(), "-t", group + "-changelog", "-o", "beginning", "-e", "-q"},
        "/dev/null");
    const int kcat_code = reader.Wait(std::chrono::seconds(600));
    const double kcat_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (kcat_code != 0) return std::fprintf(stderr, "restore_bench: kcat exited %d\n", kcat_code), 1;
    std::printf("reference: kcat read the changelog to its end in %.3fs; the restore took %.2f times that\n",
                kcat_seconds, slowest / kcat_seconds);
  } else {
    std::printf("reference: no %s (deploy/install-deps.sh installs kcat)\n", kcat.c_str());
  }
  if (taken != written->records) {
    std::fprintf(stderr, "restore_bench: %llu records written, %llu taken:\n%s\n",
                 static_cast<unsigned long long>(written->records), static_cast<unsigned long long>(taken),
                 out.c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace cxpulse

int main(int argc, char** argv) { return cxpulse::Main(argc, argv); }
