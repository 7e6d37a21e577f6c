// The demo: the whole system in one process with nothing installed. An
// embedded Kafka (librdkafka's mock cluster), the traffic generator writing
// into the input topic on its own thread, and the daemon consuming it.
#pragma once

#include <chrono>
#include <string>

#include "common/time.h"

namespace cxpulse {

struct DemoOptions {
  std::string rules_path;
  std::string admin_address = "127.0.0.1:9464";
  Micros duration = 0;  // 0: until Ctrl-C
  double contacts_per_second = 200;
  // Journeys run this much faster than real time, so repeat contacts and
  // missed callbacks show up within a short demo.
  double time_compression = 60;
  int partitions = 8;
  // A small base makes repeat contacts show up within a short demo.
  int customers = 5000;
  uint64_t seed = 1;
  std::chrono::seconds warm_up{90};
};

int RunDemo(const DemoOptions& options);

}  // namespace cxpulse
