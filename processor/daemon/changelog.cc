#include "daemon/changelog.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <utility>
#include <vector>

#include "common/strings.h"

namespace cxpulse {
namespace {

// Position value: format version, then the offset as 8 little-endian bytes.
constexpr char kPositionVersion = 1;
constexpr int kPollMs = 100;
constexpr size_t kBatch = 4096;
// Keys a partition's table is sized for before reading (about 32 MB).
constexpr size_t kMostReserved = size_t{1} << 20;

}  // namespace

std::string EncodePosition(int64_t next_offset) {
  std::string out(1 + sizeof(int64_t), '\0');
  out[0] = kPositionVersion;
  const auto v = static_cast<uint64_t>(next_offset);
  for (size_t i = 0; i < sizeof v; ++i) out[1 + i] = static_cast<char>(v >> (8 * i));
  return out;
}

std::optional<int64_t> DecodePosition(std::string_view value) {
  if (value.size() != 1 + sizeof(int64_t) || value[0] != kPositionVersion) return std::nullopt;
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof v; ++i) v |= uint64_t{static_cast<unsigned char>(value[1 + i])} << (8 * i);
  return static_cast<int64_t>(v);
}

void ChangelogWriter::Write(std::string_view key, std::string_view value) {
  if (!status_.ok()) return;
  status_ = producer_->Produce(topic_, partition_, key, value);
  ++records_;
  bytes_ += key.size() + value.size();
}

StateWriter& ChangelogBatch::For(int32_t partition) { return writer_.emplace(this, partition); }

void ChangelogBatch::Append(ChangelogBatch&& later) {
  records_.insert(records_.end(), std::make_move_iterator(later.records_.begin()),
                  std::make_move_iterator(later.records_.end()));
  bytes_ += later.bytes_;
  later.records_.clear();
  later.bytes_ = 0;
}

absl::Status ChangelogBatch::Send(Producer* producer, const std::string& topic) {
  for (const Record& r : records_) {
    ChangelogWriter writer(producer, topic, r.partition);
    if (r.value) writer.Put(r.key, *r.value);
    else writer.Erase(r.key);
    if (!writer.status().ok()) return writer.status();
  }
  records_.clear();
  bytes_ = 0;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ChangelogReader>> ChangelogReader::Create(const KafkaProperties& properties,
                                                                         std::string topic, bool read_committed) {
  KafkaProperties props = {{"enable.auto.commit", "false"},
                           {"enable.partition.eof", "true"},  // the end of what there is to read
                           {"auto.offset.reset", "earliest"},
                           // The end is known from an empty fetch: do not wait long for one.
                           {"fetch.wait.max.ms", "10"},
                           // librdkafka stops fetching a partition once this many of its
                           // messages wait to be taken, then backs off: at the default
                           // (100000) a restore spends half its time in that back-off
                           // (restore_bench: 1M customers in 2.3 s against 4.5 s for kcat).
                           {"queued.min.messages", "1000000"}};
  for (const auto& [k, v] : properties) props[k] = v;
  props["isolation.level"] = read_committed ? "read_committed" : "read_uncommitted";
  absl::StatusOr<rd_kafka_conf_t*> conf = NewKafkaConf(props);
  if (!conf.ok()) return conf.status();
  absl::StatusOr<KafkaHandle> consumer = NewKafkaClient(RD_KAFKA_CONSUMER, *conf);
  if (!consumer.ok()) return consumer.status();
  std::unique_ptr<ChangelogReader> r(new ChangelogReader());
  r->consumer_ = *std::move(consumer);
  r->topic_ = std::move(topic);
  rd_kafka_poll_set_consumer(r->consumer_.get());
  return r;
}

absl::StatusOr<std::map<int32_t, RestoredState>> ChangelogReader::Read(const std::vector<int32_t>& partitions,
                                                                      Micros timeout) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(timeout);
  const auto ms_left = [&] {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    return static_cast<int>(std::max<int64_t>(1, left.count()));
  };
  // Per partition: what was read, the records since its last position
  // record (taken when the next one comes), and where its log ends.
  struct Reading {
    RestoredState state;
    std::vector<Pending> tail;
    int64_t high = 0;
    bool done = false;
  };
  std::map<int32_t, Reading> reading;
  PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
  for (int32_t p : partitions) {
    int64_t low = 0, high = 0;
    if (rd_kafka_resp_err_t err =
            rd_kafka_query_watermark_offsets(consumer_.get(), topic_.c_str(), p, &low, &high, ms_left());
        err) {
      return absl::UnavailableError(Cat("changelog ", topic_, " [", p, "]: ", rd_kafka_err2str(err)));
    }
    Reading& r = reading[p];
    r.high = high;
    r.done = high <= low;  // nothing was ever checkpointed (or all of it compacted away)
    if (r.done) continue;
    // At most one key a record, so a compacted log's keys fit without the
    // table growing as it is read; capped, as a log not yet compacted (an
    // active segment, the mock cluster's) may hold many records a key.
    r.state.records.reserve(std::min<size_t>(static_cast<size_t>(high - low), kMostReserved));
    rd_kafka_topic_partition_list_add(list.get(), topic_.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  size_t open = static_cast<size_t>(list->cnt);
  if (open > 0) {
    if (rd_kafka_resp_err_t err = rd_kafka_assign(consumer_.get(), list.get()); err) {
      return absl::InternalError(Cat("changelog assign: ", rd_kafka_err2str(err)));
    }
  }
  // Messages are taken in batches: a restore reads millions of them.
  const QueueHandle queue(rd_kafka_queue_get_consumer(consumer_.get()));
  std::vector<rd_kafka_message_t*> batch(kBatch);
  absl::Status failure;
  while (open > 0 && failure.ok()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      failure = absl::DeadlineExceededError(Cat("changelog ", topic_, ": ", open, " partition(s) not read within ",
                                                FormatDuration(timeout)));
      break;
    }
    const ssize_t n = rd_kafka_consume_batch_queue(queue.get(), std::min(kPollMs, ms_left()), batch.data(), kBatch);
    for (ssize_t i = 0; i < n; ++i) {
      rd_kafka_message_t* msg = batch[static_cast<size_t>(i)];
      auto it = reading.find(msg->partition);
      if (it == reading.end() || it->second.done || !failure.ok()) {
        // Not asked for, already complete, or after a failure.
      } else if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        it->second.done = true;
        --open;
      } else if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        failure = absl::UnavailableError(Cat("changelog ", topic_, " [", msg->partition, "]: ",
                                             rd_kafka_message_errstr(msg)));
      } else {
        Take(*msg, &it->second.state, &it->second.tail);
        if (msg->offset >= it->second.high - 1) {
          it->second.done = true;
          --open;
        }
      }
      rd_kafka_message_destroy(msg);
    }
  }
  rd_kafka_assign(consumer_.get(), nullptr);
  if (!failure.ok()) return failure;
  std::map<int32_t, RestoredState> out;
  for (auto& [p, r] : reading) {
    r.state.incomplete = r.tail.size();
    out.emplace(p, std::move(r.state));
  }
  return out;
}

void ChangelogReader::Take(const rd_kafka_message_t& msg, RestoredState* state, std::vector<Pending>* tail) {
  ++state->records_read;
  state->bytes_read += msg.key_len + msg.len;
  const auto copy = [&](const void* data, size_t n) {
    if (n == 0) return std::string_view("", 0);
    char* to = static_cast<char*>(state->bytes->allocate(n, 1));
    std::memcpy(to, data, n);
    return std::string_view(to, n);
  };
  const std::string_view key = copy(msg.key, msg.key_len);
  const bool tombstone = msg.payload == nullptr;
  const std::string_view value = tombstone ? std::string_view() : copy(msg.payload, msg.len);
  if (!key.empty() && key[0] == kCentreRecord) {  // whole in itself: taken as it comes
    if (tombstone) state->records.erase(key);
    else state->records.insert_or_assign(key, value);
    return;
  }
  tail->push_back({key, value, tombstone});
  if (key != kPositionKey) return;
  for (const Pending& r : *tail) {
    if (r.tombstone) state->records.erase(r.key);
    else state->records.insert_or_assign(r.key, r.value);
  }
  tail->clear();
}

}  // namespace cxpulse
