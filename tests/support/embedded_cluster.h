// An in-process mock Kafka cluster with a test's topics created: the fixture
// of the integration tests that need no cluster outliving the test process.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kafka/client.h"

namespace cxpulse::testing {

// Null if the cluster did not start or a topic could not be created.
inline std::unique_ptr<EmbeddedCluster> StartCluster(const std::vector<std::pair<std::string, int>>& topics,
                                                     int brokers = 1) {
  auto cluster = EmbeddedCluster::Start(brokers);
  if (!cluster.ok()) return nullptr;
  for (const auto& [name, partitions] : topics) {
    if (!(*cluster)->CreateTopic(name, partitions).ok()) return nullptr;
  }
  return *std::move(cluster);
}

}  // namespace cxpulse::testing
