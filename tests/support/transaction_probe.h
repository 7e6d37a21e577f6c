// Asks a cluster what its transactions really do, as a read_committed
// consumer and a group's offsets see them. librdkafka 2.0.2's mock cluster
// shows the messages of aborted (and open) transactions to read_committed
// readers and does not store offsets sent in a transaction; a test whose
// assertion depends on either asks first. Main thread; takes a second or two.
#pragma once

#include <string>

#include "common/strings.h"
#include "kafka/client.h"
#include "support/kafka_reader.h"

namespace cxpulse::testing {

struct TransactionSupport {
  bool hides_aborted = false;   // an aborted transaction's messages stay unseen
  bool stores_offsets = false;  // offsets sent in a committed transaction become the group's
  std::string problem;          // why the probe could not finish, if it could not
};

// `topic`: an empty topic of one partition, for the probe alone.
inline TransactionSupport ProbeTransactions(const std::string& bootstrap, const std::string& topic) {
  TransactionSupport t;
  const std::string group = topic + "-group";
  auto conf = NewKafkaConf({{"bootstrap.servers", bootstrap}, {"transactional.id", topic + "-producer"}});
  if (!conf.ok()) return {false, false, std::string(conf.status().message())};
  auto producer = NewKafkaClient(RD_KAFKA_PRODUCER, *conf);
  if (!producer.ok()) return {false, false, std::string(producer.status().message())};
  rd_kafka_t* rk = producer->get();
  const auto ok = [&t](rd_kafka_error_t* e, const char* what) {
    if (e == nullptr) return true;
    t.problem = Cat(what, ": ", rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    return false;
  };
  const auto produce = [&](const std::string& value) {
    return rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(0),
                             RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR_NO_ERROR;
  };
  constexpr int kTimeoutMs = 30'000;
  if (!ok(rd_kafka_init_transactions(rk, kTimeoutMs), "init_transactions") ||
      !ok(rd_kafka_begin_transaction(rk), "begin_transaction")) {
    return t;
  }
  if (!produce("aborted")) return {false, false, "produce failed"};
  rd_kafka_flush(rk, kTimeoutMs);
  if (!ok(rd_kafka_abort_transaction(rk, kTimeoutMs), "abort_transaction") ||
      !ok(rd_kafka_begin_transaction(rk), "begin_transaction")) {
    return t;
  }
  if (!produce("committed")) return {false, false, "produce failed"};
  PartitionList offsets(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(offsets.get(), topic.c_str(), 0)->offset = 1;
  rd_kafka_consumer_group_metadata_t* meta = rd_kafka_consumer_group_metadata_new(group.c_str());
  const bool sent = ok(rd_kafka_send_offsets_to_transaction(rk, offsets.get(), meta, kTimeoutMs),
                       "send_offsets_to_transaction");
  rd_kafka_consumer_group_metadata_destroy(meta);
  if (!sent || !ok(rd_kafka_commit_transaction(rk, kTimeoutMs), "commit_transaction")) return t;

  bool saw_aborted = false, saw_committed = false;
  for (const Record& r : ReadTopic(bootstrap, topic, 1)) {
    saw_aborted = saw_aborted || r.value == "aborted";
    saw_committed = saw_committed || r.value == "committed";
  }
  if (!saw_committed) t.problem = "the committed transaction's message was not read back";
  t.hides_aborted = saw_committed && !saw_aborted;
  const std::vector<int64_t> committed = CommittedOffsets(bootstrap, group, topic, 1);
  t.stores_offsets = committed.size() == 1 && committed[0] == 1;
  return t;
}

}  // namespace cxpulse::testing
