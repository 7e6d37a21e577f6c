// `cxpulse mock-kafka`: librdkafka's mock cluster (real Kafka protocol on loopback) in
// this process, with the given topics, until SIGINT/SIGTERM or --duration. The bootstrap
// servers are the first line on stdout, so scripts, benchmarks, kcat and `cxpulse run` can
// share one Kafka without installing one. Runs on the main thread only.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace cxpulse {

class MockKafkaCommand {
 public:
  // Registers `mock-kafka` and its options on `app`; parsing fills this object.
  explicit MockKafkaCommand(CLI::App& app);

  MockKafkaCommand(const MockKafkaCommand&) = delete;
  MockKafkaCommand& operator=(const MockKafkaCommand&) = delete;

  bool parsed() const { return command_->parsed(); }
  // Serves until stopped; returns the exit code: 0 stopped as asked, 1 could not start.
  int Run() const;

 private:
  CLI::App* command_;
  std::vector<std::string> topics_;
  int brokers_ = 1;
  std::string duration_;
};

}  // namespace cxpulse
