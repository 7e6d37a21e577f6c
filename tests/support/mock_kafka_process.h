// `cxpulse mock-kafka` as a child process: a mock Kafka cluster that outlives
// any daemon the test kills, with its topics created at start.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "support/child_process.h"

namespace cxpulse::testing {

class MockKafkaProcess {
 public:
  // `topics`: NAME:PARTITIONS each. bootstrap() is empty if it did not start.
  MockKafkaProcess(const std::vector<std::string>& topics, const std::string& log) {
    std::vector<std::string> argv = {CXPULSE_BINARY, "mock-kafka"};
    for (const std::string& t : topics) {
      argv.push_back("--topic");
      argv.push_back(t);
    }
    process_ = std::make_unique<ChildProcess>(argv, log);
    // Its first line on stdout is the bootstrap list; log lines follow.
    if (auto b = process_->WaitFor(R"((?:^|\n)([A-Za-z0-9.\-]+:\d+(?:,[A-Za-z0-9.\-]+:\d+)*)\n)",
                                   std::chrono::seconds(30))) {
      bootstrap_ = *b;
    }
  }
  ~MockKafkaProcess() {
    process_->Signal(SIGTERM);
    process_->Wait(std::chrono::seconds(10));
  }
  const std::string& bootstrap() const { return bootstrap_; }
  std::string Output() const { return process_->Output(); }

 private:
  std::unique_ptr<ChildProcess> process_;
  std::string bootstrap_;
};

}  // namespace cxpulse::testing
