// Reads a whole topic from the beginning to its current end, with headers:
// how a test sees what cxpulse wrote to Kafka. It reads as a downstream
// consumer of findings should, committed transactions only (read_committed).
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "kafka/client.h"

namespace cxpulse::testing {

struct Record {
  int32_t partition = 0;
  std::string key;
  std::string value;
  std::map<std::string, std::string> headers;
};

inline std::vector<Record> ReadTopic(const std::string& bootstrap, const std::string& topic, int partitions,
                                     std::chrono::seconds timeout = std::chrono::seconds(20)) {
  std::vector<Record> out;
  auto conf = NewKafkaConf({{"bootstrap.servers", bootstrap}, {"group.id", "test-reader"},
                            {"enable.partition.eof", "true"}, {"enable.auto.commit", "false"},
                            {"isolation.level", "read_committed"}});
  if (!conf.ok()) return out;
  auto rk = NewKafkaClient(RD_KAFKA_CONSUMER, *conf);
  if (!rk.ok()) return out;
  PartitionList list(rd_kafka_topic_partition_list_new(partitions));
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_assign(rk->get(), list.get());
  int at_end = 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (at_end < partitions && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk->get(), 200);
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      ++at_end;
    } else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      Record r;
      r.partition = m->partition;
      if (m->key != nullptr) r.key.assign(static_cast<const char*>(m->key), m->key_len);
      if (m->payload != nullptr) r.value.assign(static_cast<const char*>(m->payload), m->len);
      rd_kafka_headers_t* hdrs = nullptr;
      if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name;
        const void* value;
        size_t size;
        for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
          r.headers[name] = std::string(static_cast<const char*>(value), size);
        }
      }
      out.push_back(std::move(r));
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk->get());
  return out;
}

// The offsets `group` has committed for partitions 0..partitions-1 of
// `topic` (negative: none), or an empty vector if the broker did not answer.
inline std::vector<int64_t> CommittedOffsets(const std::string& bootstrap, const std::string& group,
                                             const std::string& topic, int partitions) {
  auto conf = NewKafkaConf({{"bootstrap.servers", bootstrap}, {"group.id", group}});
  if (!conf.ok()) return {};
  auto probe = NewKafkaClient(RD_KAFKA_CONSUMER, *conf);
  if (!probe.ok()) return {};
  PartitionList list(rd_kafka_topic_partition_list_new(partitions));
  for (int p = 0; p < partitions; ++p) rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p);
  if (rd_kafka_committed(probe->get(), list.get(), 10'000) != RD_KAFKA_RESP_ERR_NO_ERROR) return {};
  std::vector<int64_t> out;
  for (int p = 0; p < partitions; ++p) out.push_back(list->elems[p].offset);
  return out;
}

// Each partition's low and high watermark offsets, from the broker; empty if
// it did not answer. The mock cluster drops a partition's oldest messages
// beyond its limits: a low watermark above 0 says it did.
struct OffsetRange {
  int64_t low = 0;
  int64_t high = 0;
};
inline std::vector<OffsetRange> OffsetRanges(const std::string& bootstrap, const std::string& topic, int partitions) {
  auto conf = NewKafkaConf({{"bootstrap.servers", bootstrap}});
  if (!conf.ok()) return {};
  auto probe = NewKafkaClient(RD_KAFKA_CONSUMER, *conf);
  if (!probe.ok()) return {};
  std::vector<OffsetRange> out(static_cast<size_t>(partitions));
  for (int p = 0; p < partitions; ++p) {
    OffsetRange& r = out[static_cast<size_t>(p)];
    if (rd_kafka_query_watermark_offsets(probe->get(), topic.c_str(), p, &r.low, &r.high, 10'000) !=
        RD_KAFKA_RESP_ERR_NO_ERROR) {
      return {};
    }
  }
  return out;
}

}  // namespace cxpulse::testing
