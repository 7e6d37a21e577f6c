// Daemon: one cxpulse process. The calling (control) thread runs a
// Boost.Asio io_context that owns signals, timers, the admin endpoint and
// the status line; the event path runs on its own pipeline thread. They share
// only atomics and prometheus-cpp's thread-safe handles.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/time.h"
#include "config/config.h"
#include "kafka/client.h"

namespace cxpulse {

struct DaemonOptions {
  Config config;
  // Stop by itself after this long (the demo's --duration); 0 = until a signal.
  Micros duration = 0;
  // Print a live line (events/s, findings by rule, lag) this often; 0 = never.
  Micros status_interval = 0;
  // Shard threads; 0 = one per core.
  int shards = 0;
  // Exit 0 once every assigned partition is at its end (backfills, benchmarks).
  bool exit_when_idle = false;
};

// Starts an in-process mock cluster with the config's topics. Used for
// `brokers: embedded` and by the demo.
absl::StatusOr<std::unique_ptr<EmbeddedCluster>> StartEmbeddedCluster(const KafkaConfig& kafka);

// Runs until SIGINT/SIGTERM (or the duration), then drains. Returns the
// process exit code: 0 clean, 1 failed to start, 3 could not go on safely.
// `bootstrap` overrides config.kafka.brokers (the embedded cluster's address).
int RunDaemon(const DaemonOptions& options, const std::string& bootstrap);

}  // namespace cxpulse
