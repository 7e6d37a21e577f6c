// Pipeline: the event path, on one thread. Consumes the input topic in a
// consumer group, decodes each record, runs the Engine, writes findings,
// copies what it cannot process to the dead-letter topic with the reason in a
// header, and commits input offsets only after the findings they caused are
// delivered (at-least-once; finding ids are deterministic for de-duplication).
// Everything here is owned by the thread that calls Run().
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/time.h"
#include "config/config.h"
#include "cx/v1/event.pb.h"
#include "engine/engine.h"
#include "kafka/client.h"
#include "metrics/pipeline_metrics.h"

namespace cxpulse {

class Pipeline {
 public:
  // `bootstrap` is the resolved broker list (the embedded cluster's, when the
  // config says "embedded").
  static absl::StatusOr<std::unique_ptr<Pipeline>> Create(const Config& config, const std::string& bootstrap,
                                                          std::shared_ptr<const RuleSet> rules,
                                                          PipelineMetrics* metrics, const Clock* clock);
  ~Pipeline();

  // Runs until `stop` becomes true, then drains: finishes the batch, flushes
  // findings, commits, and leaves the group. A non-OK status means the
  // pipeline could not go on safely (e.g. findings could not be delivered);
  // offsets past the undelivered findings are then not committed.
  absl::Status Run(const std::atomic<bool>& stop);

  // Live figures for the status line and /readyz; any thread may read.
  uint64_t events() const { return events_.load(std::memory_order_relaxed); }
  const Engine& engine() const { return *engine_; }
  uint64_t dead_letters() const { return dead_letters_.load(std::memory_order_relaxed); }
  int64_t lag() const { return lag_.load(std::memory_order_relaxed); }
  bool assigned() const { return assigned_.load(std::memory_order_relaxed); }

 private:
  class KafkaFindingSink;
  Pipeline() = default;

  void HandleMessage(const rd_kafka_message_t& msg, Micros now);
  void DeadLetter(const rd_kafka_message_t& msg, DeadLetterReason reason, std::string_view detail);
  [[nodiscard]] absl::Status Commit();
  void UpdateLag();
  static void OnRebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                          void* opaque);
  void Rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts);

  Config config_;
  PipelineMetrics* metrics_ = nullptr;
  const Clock* clock_ = nullptr;
  std::unique_ptr<Producer> producer_;
  std::unique_ptr<KafkaFindingSink> sink_;
  std::unique_ptr<Engine> engine_;
  cx::v1::InteractionEvent event_;  // reused: decoding into it keeps its buffers

  // Next offset to commit per assigned partition (-1: nothing processed yet).
  std::vector<int64_t> next_offset_;
  std::vector<int32_t> assigned_partitions_;
  // Set when the pipeline can no longer go on safely; once set, no offset
  // is committed again (the records after it are re-read on restart).
  absl::Status fatal_;

  std::atomic<uint64_t> events_{0};
  std::atomic<uint64_t> dead_letters_{0};
  std::atomic<int64_t> lag_{0};
  std::atomic<bool> assigned_{false};
  uint64_t failures_seen_ = 0;  // producer delivery failures already acted on
  bool closed_ = false;

  // Declared last so it is destroyed first: closing a consumer may call
  // back into Rebalance, which uses the members above.
  KafkaHandle consumer_;
};

}  // namespace cxpulse
