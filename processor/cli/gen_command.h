// `cxpulse gen`: synthetic contact-centre traffic (TrafficGenerator) written to a Kafka
// topic, keyed by customer_id, or to a file as JSON lines or length-delimited protobuf,
// with incidents injected on the command line. Runs on the main thread only.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace cxpulse {

class GenCommand {
 public:
  // Registers `gen` and its options on `app`; parsing fills this object.
  explicit GenCommand(CLI::App& app);

  GenCommand(const GenCommand&) = delete;
  GenCommand& operator=(const GenCommand&) = delete;

  bool parsed() const { return command_->parsed(); }
  // Generates until --events or --duration (or SIGINT/SIGTERM); returns the exit code:
  // 0 everything written (and, to Kafka, delivered), 1 anything was not.
  int Run() const;

 private:
  CLI::App* command_;
  std::string brokers_;
  std::string topic_ = "cx.interactions";
  std::vector<std::string> kafka_properties_;
  std::string output_;
  std::string format_ = "jsonl";
  uint64_t events_ = 0;
  std::string duration_;
  double rate_ = 200;
  int customers_ = 50000;
  uint64_t seed_ = 1;
  std::string start_ = "now";
  bool realtime_ = false;
  double time_compression_ = 1;
  std::vector<std::string> incidents_;
};

}  // namespace cxpulse
