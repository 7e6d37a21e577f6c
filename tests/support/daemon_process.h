// A `cxpulse run` (or any cxpulse command that serves /metrics) as a child
// process, with the admin port it printed, scraped as Prometheus would.
// Used by the test's main thread.
#pragma once

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "support/child_process.h"
#include "support/http_get.h"
#include "support/metrics_text.h"

namespace cxpulse::testing {

struct RunningDaemon {
  std::unique_ptr<ChildProcess> process;
  int port = 0;  // 0: it never said where its metrics are

  std::vector<SampleLine> Scrape() const { return ParseExposition(HttpGet(port, "/metrics").body); }
};

// Waits for a starting daemon's "metrics on" line: its admin port, 0 if it never said.
inline int AdminPort(ChildProcess& daemon, std::chrono::seconds timeout = std::chrono::seconds(30)) {
  const auto port = daemon.WaitFor(R"(metrics on http://127\.0\.0\.1:(\d+)/metrics)", timeout);
  return port ? std::stoi(*port) : 0;
}

// Starts `argv` with its output in `log` and waits for its "metrics on" line.
inline RunningDaemon StartDaemon(const std::vector<std::string>& argv, const std::string& log,
                                 std::chrono::seconds timeout = std::chrono::seconds(30)) {
  RunningDaemon d{std::make_unique<ChildProcess>(argv, log)};
  d.port = AdminPort(*d.process, timeout);
  return d;
}

// The input partitions a daemon holds: one consumer-lag series each.
inline std::set<int> AssignedPartitions(const std::vector<SampleLine>& samples) {
  std::set<int> out;
  for (const SampleLine& s : samples) {
    if (s.name == "cxpulse_consumer_lag_messages" && s.labels.count("partition")) {
      out.insert(std::stoi(s.labels.at("partition")));
    }
  }
  return out;
}

}  // namespace cxpulse::testing
