// A `cxpulse run` kept running as a supervisor (systemd, Kubernetes) would:
// when it exits, its exit code and the line saying why are kept, and it is
// started again with the same arguments. Used by the test's main thread.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "support/daemon_process.h"

namespace cxpulse::testing {

class SupervisedDaemon {
 public:
  struct Exit {
    int code = 0;
    std::string reason;  // its last "stopped: ..." line, or the log's tail
    std::string log;     // all it printed
  };

  SupervisedDaemon(std::vector<std::string> argv, std::string log_prefix)
      : argv_(std::move(argv)), log_prefix_(std::move(log_prefix)) {}

  // False if it did not say where its metrics are.
  bool Start() {
    daemon_ = StartDaemon(argv_, log_prefix_ + "-" + std::to_string(starts_++) + ".log");
    return daemon_.port != 0;
  }

  // If it has exited: notes why and starts it again. False if the restart
  // did not come up.
  bool Check() {
    const int code = daemon_.process->Wait(std::chrono::seconds(0));
    if (code < 0) return true;
    const std::string log = daemon_.process->Output();
    exits_.push_back({code, StopReason(log), log});
    return Start();
  }

  // SIGTERM (a drain); its exit code, -1 if it did not exit within `timeout`.
  int Stop(std::chrono::seconds timeout) {
    daemon_.process->Signal(SIGTERM);
    return daemon_.process->Wait(timeout);
  }

  const RunningDaemon& current() const { return daemon_; }
  const std::vector<Exit>& exits() const { return exits_; }

 private:
  static std::string StopReason(const std::string& log) {
    const size_t at = log.rfind("stopped: ");
    if (at != std::string::npos) return log.substr(at, log.find('\n', at) - at);
    return "no \"stopped:\" line; log ends: " + log.substr(log.size() > 2000 ? log.size() - 2000 : 0);
  }

  std::vector<std::string> argv_;
  std::string log_prefix_;
  int starts_ = 0;
  RunningDaemon daemon_;
  std::vector<Exit> exits_;
};

}  // namespace cxpulse::testing
