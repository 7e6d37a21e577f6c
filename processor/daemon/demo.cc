#include "daemon/demo.h"
#include "common/strings.h"

#include <atomic>
#include <thread>

#include "daemon/daemon.h"
#include "gen/traffic_generator.h"
#include "kafka/client.h"
#include "spdlog/spdlog.h"

namespace cxpulse {

int RunDemo(const DemoOptions& options) {
  DaemonOptions daemon;
  daemon.config.rules_path = options.rules_path;
  daemon.config.admin_address = options.admin_address;
  daemon.config.kafka.embedded_partitions = options.partitions;
  daemon.config.kafka.group_id = "cxpulse-demo";
  // The generator's event time is the wall clock; a little lateness covers
  // the producer's batching.
  daemon.config.engine.allowed_lateness = 5 * kMicrosPerSecond;
  daemon.config.engine.idle_partition_timeout = 5 * kMicrosPerSecond;
  daemon.duration = options.duration;
  daemon.status_interval = 5 * kMicrosPerSecond;

  absl::StatusOr<std::unique_ptr<EmbeddedCluster>> cluster = StartEmbeddedCluster(daemon.config.kafka);
  if (!cluster.ok()) {
    spdlog::error("{}", Message(cluster.status()));
    return 1;
  }
  const std::string bootstrap = (*cluster)->bootstrap_servers();
  spdlog::info("embedded Kafka on {} (topics {} x{}, {}, {})", bootstrap, daemon.config.kafka.input_topic,
               options.partitions, daemon.config.kafka.findings_topic, daemon.config.kafka.dead_letter_topic);

  absl::StatusOr<std::unique_ptr<Producer>> producer = Producer::Create({{"bootstrap.servers", bootstrap}});
  if (!producer.ok()) {
    spdlog::error("{}", Message(producer.status()));
    return 1;
  }

  std::atomic<bool> stop_traffic{false};
  std::thread traffic([&] {
    TrafficOptions t;
    t.seed = options.seed;
    t.contacts_per_second = options.contacts_per_second;
    t.time_compression = options.time_compression;
    t.customers = options.customers;
    // Start the simulation in the past so the demo opens on a contact centre
    // in full swing (queues waiting, customers calling back), not an empty one.
    TrafficGenerator gen(t, std::chrono::system_clock::now() - options.warm_up);
    std::vector<cx::v1::InteractionEvent> events;
    std::string buffer;
    const std::string& topic = daemon.config.kafka.input_topic;
    while (!stop_traffic.load(std::memory_order_relaxed)) {
      events.clear();
      gen.Poll(std::chrono::system_clock::now(), &events);
      for (const auto& e : events) {
        e.SerializeToString(&buffer);
        if (absl::Status s = (*producer)->Produce(topic, RD_KAFKA_PARTITION_UA, e.customer_id(), buffer); !s.ok()) {
          spdlog::warn("traffic: {}", Message(s));
        }
      }
      (*producer)->Poll();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    (void)(*producer)->Flush(5000);
  });

  const int code = RunDaemon(daemon, bootstrap);
  stop_traffic = true;
  traffic.join();
  return code;
}

}  // namespace cxpulse
