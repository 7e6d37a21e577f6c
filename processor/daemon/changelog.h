// The changelog: a compacted topic, co-partitioned with the input, that holds
// what the rules and KPIs of each input partition remember (engine/state_log.h
// names the records). As Kafka Streams does: a checkpoint writes the records
// that changed since the previous one, ending with the partition's position
// record (the next input offset the state reflects); on assignment the new
// owner reads the partition's log back before its first event.
//
// A restore takes records only through the partition's last position record:
// a checkpoint cut short (a crash between its records) leaves records after
// it, and those are dropped whole, so restored state is always that of one
// checkpoint. With exactly-once delivery the reader is read_committed, so an
// aborted transaction's records are never seen (on a real broker; the Debian
// librdkafka 2.0.2 mock cluster shows aborted records too, README "Delivery").
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <memory_resource>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/time.h"
#include "engine/state_log.h"
#include "kafka/client.h"

namespace cxpulse {

// The position record: its key, and the next input offset in its value.
inline constexpr std::string_view kPositionKey{&kPositionRecord, 1};
std::string EncodePosition(int64_t next_offset);
// Nullopt for a value this build does not read.
std::optional<int64_t> DecodePosition(std::string_view value);

// Writes one input partition's records to the same partition of the changelog
// through the shard's producer (in its transaction, with exactly-once
// delivery). The first failure is kept and ends the checkpoint.
class ChangelogWriter final : public StateWriter {
 public:
  ChangelogWriter(Producer* producer, const std::string& topic, int32_t partition)
      : producer_(producer), topic_(topic), partition_(partition) {}

  void Put(std::string_view key, std::string_view value) override { Write(key, value); }
  // A null value: Kafka's tombstone.
  void Erase(std::string_view key) override { Write(key, std::string_view()); }

  const absl::Status& status() const { return status_; }
  uint64_t records() const { return records_; }
  uint64_t bytes() const { return bytes_; }

 private:
  void Write(std::string_view key, std::string_view value);

  Producer* producer_;
  const std::string& topic_;
  int32_t partition_;
  absl::Status status_;
  uint64_t records_ = 0;
  uint64_t bytes_ = 0;
};

// A checkpoint's records held back until what came before them is delivered
// (at-least-once delivery: state must never be ahead of its findings).
class ChangelogBatch {
 public:
  // What writes partition `partition`'s records into the batch.
  StateWriter& For(int32_t partition);
  bool empty() const { return records_.empty(); }
  size_t size() const { return records_.size(); }
  uint64_t bytes() const { return bytes_; }
  // Adds `later`'s records after this batch's.
  void Append(ChangelogBatch&& later);
  // Produces every record to `topic` through `producer`, in order.
  [[nodiscard]] absl::Status Send(Producer* producer, const std::string& topic);

 private:
  struct Record {
    int32_t partition;
    std::string key;
    std::optional<std::string> value;  // none: a tombstone
  };
  class Writer final : public StateWriter {
   public:
    Writer(ChangelogBatch* batch, int32_t partition) : batch_(batch), partition_(partition) {}
    void Put(std::string_view key, std::string_view value) override {
      batch_->records_.push_back({partition_, std::string(key), std::string(value)});
      batch_->bytes_ += key.size() + value.size();
    }
    void Erase(std::string_view key) override {
      batch_->records_.push_back({partition_, std::string(key), std::nullopt});
      batch_->bytes_ += key.size();
    }

   private:
    ChangelogBatch* batch_;
    int32_t partition_;
  };
  std::vector<Record> records_;
  uint64_t bytes_ = 0;
  std::optional<Writer> writer_;
};

// One partition's state as read back: the latest value of each key, through
// its last position record. Keys and values are views into `bytes`, which
// holds every record read (copied once, in blocks: no allocation per record).
struct RestoredState {
  std::unique_ptr<std::pmr::monotonic_buffer_resource> bytes = std::make_unique<std::pmr::monotonic_buffer_resource>();
  absl::flat_hash_map<std::string_view, std::string_view> records;
  uint64_t records_read = 0;
  uint64_t bytes_read = 0;
  uint64_t incomplete = 0;  // read after the last position record, and dropped
};

// Reads changelog partitions back, one at a time, on the thread of the shard
// that restores them. Its own consumer: assigned, never in a group.
class ChangelogReader {
 public:
  // `properties`: the daemon's (bootstrap, security); `read_committed` with
  // exactly-once delivery.
  static absl::StatusOr<std::unique_ptr<ChangelogReader>> Create(const KafkaProperties& properties,
                                                                 std::string topic, bool read_committed);

  // Reads the whole of each of `partitions`, side by side, giving up after `timeout`.
  absl::StatusOr<std::map<int32_t, RestoredState>> Read(const std::vector<int32_t>& partitions, Micros timeout);

 private:
  // A record read since its partition's last position record.
  struct Pending {
    std::string_view key, value;
    bool tombstone;
  };
  ChangelogReader() = default;
  // Adds one record to `state`'s log as read so far: to `tail`, and with it
  // into `state` when it is a position record.
  static void Take(const rd_kafka_message_t& msg, RestoredState* state, std::vector<Pending>* tail);
  KafkaHandle consumer_;
  std::string topic_;
};

}  // namespace cxpulse
