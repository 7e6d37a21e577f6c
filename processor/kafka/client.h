// Thin RAII over librdkafka's C API: client handles built from a property map,
// and a producer that counts delivery failures. A handle is used by the thread
// that owns it; librdkafka's own threads do the network I/O.
#pragma once

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cxpulse {

struct KafkaDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
  void operator()(rd_kafka_topic_partition_list_t* l) const { rd_kafka_topic_partition_list_destroy(l); }
  void operator()(rd_kafka_queue_t* q) const { rd_kafka_queue_destroy(q); }
  void operator()(rd_kafka_headers_t* h) const { rd_kafka_headers_destroy(h); }
};
using KafkaHandle = std::unique_ptr<rd_kafka_t, KafkaDeleter>;
using PartitionList = std::unique_ptr<rd_kafka_topic_partition_list_t, KafkaDeleter>;
using QueueHandle = std::unique_ptr<rd_kafka_queue_t, KafkaDeleter>;

using KafkaProperties = std::map<std::string, std::string>;

// Sets every property on a new conf; an unknown property or bad value is an
// error naming it. `configure` runs before the handle is created, for
// callbacks and opaques that cannot be strings.
absl::StatusOr<rd_kafka_conf_t*> NewKafkaConf(const KafkaProperties& properties);
absl::StatusOr<KafkaHandle> NewKafkaClient(rd_kafka_type_t type, rd_kafka_conf_t* conf);

// A producer for one thread. Delivery failures (after librdkafka's own
// retries) are counted; the caller decides what a failure means.
class Producer {
 public:
  static absl::StatusOr<std::unique_ptr<Producer>> Create(const KafkaProperties& properties);

  using Header = std::pair<std::string_view, std::string_view>;
  // Copies key and value (a value whose data() is null is a tombstone);
  // queues the message. Fails only if the local queue is full after waiting
  // for it to drain, or the topic is unknown; or, with OutOfRange, if the
  // message is larger than the producer's message.max.bytes (nothing is
  // queued then: the caller may send a smaller one).
  [[nodiscard]] absl::Status Produce(std::string_view topic, int32_t partition, std::string_view key,
                                     std::string_view value, const std::vector<Header>& headers = {});
  // Serves delivery reports; call often from the owning thread.
  void Poll() { rd_kafka_poll(rk_.get(), 0); }
  // Waits until every queued message is delivered or failed.
  [[nodiscard]] absl::Status Flush(int timeout_ms);
  uint64_t delivery_failures() const { return failures_.load(std::memory_order_relaxed); }
  // Messages queued so far. Owning thread only.
  uint64_t produced() const { return produced_; }
  rd_kafka_t* handle() const { return rk_.get(); }

  // Delivery marks, for checkpoints that do not wait: Mark() closes the group
  // of messages produced since the previous mark and returns its id;
  // DeliveredThrough(m) is true once every message produced before Mark()
  // returned m has had its delivery report (served by Poll or Flush; a failed
  // one is counted in delivery_failures()). Owning thread only.
  uint64_t Mark();
  bool DeliveredThrough(uint64_t mark) const { return mark < first_open_; }

  // Transactions, for a producer created with a `transactional.id`. A
  // failure's code says what the caller may do: kUnavailable, retry the same
  // call; kAborted, the transaction must be aborted; anything else is fatal
  // for this producer (kFailedPrecondition: fenced by a newer instance).
  [[nodiscard]] absl::Status InitTransactions(int timeout_ms);
  [[nodiscard]] absl::Status BeginTransaction();
  // Commits `offsets` (next offsets to read) of `consumer`'s group with the
  // transaction, under the group's current generation (KIP-447), so a member
  // that lost the partitions in a rebalance cannot commit them.
  [[nodiscard]] absl::Status SendOffsets(rd_kafka_t* consumer, const rd_kafka_topic_partition_list_t* offsets,
                                         int timeout_ms);
  [[nodiscard]] absl::Status CommitTransaction(int timeout_ms);
  [[nodiscard]] absl::Status AbortTransaction(int timeout_ms);

 private:
  Producer() = default;
  static void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque);
  void ReleaseDelivered();
  KafkaHandle rk_;
  std::atomic<uint64_t> failures_{0};
  // Messages awaiting their delivery report, by mark: in_flight_[i] for mark
  // first_open_ + i; the last one is the mark still open.
  uint64_t produced_ = 0;
  uint64_t first_open_ = 0;
  std::deque<uint64_t> in_flight_{0};
  std::string topic_name_;  // Produce's scratch
};

// librdkafka's mock cluster: real Kafka protocol on loopback, in this process.
// The demo and the tests use it; `brokers: embedded` in the config starts one.
class EmbeddedCluster {
 public:
  static absl::StatusOr<std::unique_ptr<EmbeddedCluster>> Start(int brokers = 1);
  ~EmbeddedCluster();

  const std::string& bootstrap_servers() const { return bootstraps_; }
  [[nodiscard]] absl::Status CreateTopic(const std::string& name, int partitions);
  rd_kafka_mock_cluster_t* mock() const { return mock_; }

 private:
  EmbeddedCluster() = default;
  KafkaHandle owner_;  // the mock cluster needs a client handle to live in
  rd_kafka_mock_cluster_t* mock_ = nullptr;
  std::string bootstraps_;
};

}  // namespace cxpulse
