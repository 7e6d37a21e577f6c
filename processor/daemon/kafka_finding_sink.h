// KafkaFindingSink: the daemon's FindingSink. Writes each finding to the
// findings topic keyed by its first key value (the customer, for a
// per-customer rule), so one key's findings stay in order. Used by the
// thread that owns `producer` (a shard, the centre stage); a finding it
// could not queue is handed to `on_failure`, which stops that thread.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "engine/finding_sink.h"
#include "kafka/client.h"

namespace cxpulse {

class KafkaFindingSink final : public FindingSink {
 public:
  KafkaFindingSink(Producer* producer, std::string topic, std::function<void(absl::Status)> on_failure)
      : producer_(producer), topic_(std::move(topic)), on_failure_(std::move(on_failure)) {}

  void Emit(int, const cx::v1::Finding& finding) override {
    finding.SerializeToString(&buffer_);  // reuses the buffer: no allocation once warm
    const std::string_view key = finding.key_size() > 0 ? std::string_view(finding.key(0).value()) : "";
    if (absl::Status s = producer_->Produce(topic_, RD_KAFKA_PARTITION_UA, key, buffer_); !s.ok()) on_failure_(s);
  }

 private:
  Producer* producer_;
  std::string topic_;
  std::function<void(absl::Status)> on_failure_;
  std::string buffer_;
};

}  // namespace cxpulse
