#include "kafka/client.h"
#include "common/strings.h"


#include <thread>


namespace cxpulse {

absl::StatusOr<rd_kafka_conf_t*> NewKafkaConf(const KafkaProperties& properties) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  for (const auto& [name, value] : properties) {
    if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InvalidArgumentError(Cat("kafka property ", name, "=", value, ": ", err));
    }
  }
  return conf;
}

absl::StatusOr<KafkaHandle> NewKafkaClient(rd_kafka_type_t type, rd_kafka_conf_t* conf) {
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);  // takes conf on success
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return absl::InvalidArgumentError(Cat("kafka client: ", err));
  }
  return KafkaHandle(rk);
}

absl::StatusOr<std::unique_ptr<Producer>> Producer::Create(const KafkaProperties& properties) {
  KafkaProperties props = {
      {"enable.idempotence", "true"},  // retries never duplicate or reorder
      {"linger.ms", "5"},
      {"compression.codec", "lz4"},
  };
  for (const auto& [k, v] : properties) props[k] = v;
  absl::StatusOr<rd_kafka_conf_t*> conf = NewKafkaConf(props);
  if (!conf.ok()) return conf.status();
  std::unique_ptr<Producer> p(new Producer());
  rd_kafka_conf_set_dr_msg_cb(*conf, &Producer::OnDelivery);
  rd_kafka_conf_set_opaque(*conf, p.get());
  absl::StatusOr<KafkaHandle> rk = NewKafkaClient(RD_KAFKA_PRODUCER, *conf);
  if (!rk.ok()) return rk.status();
  p->rk_ = *std::move(rk);
  return p;
}

void Producer::OnDelivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
  auto* self = static_cast<Producer*>(opaque);
  if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) self->failures_.fetch_add(1, std::memory_order_relaxed);
  // The message's opaque is the mark it was produced under.
  const auto mark = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(msg->_private));
  if (mark >= self->first_open_ && mark - self->first_open_ < self->in_flight_.size()) {
    --self->in_flight_[mark - self->first_open_];
    self->ReleaseDelivered();
  }
}

uint64_t Producer::Mark() {
  const uint64_t mark = first_open_ + in_flight_.size() - 1;
  in_flight_.push_back(0);
  ReleaseDelivered();
  return mark;
}

void Producer::ReleaseDelivered() {
  while (in_flight_.size() > 1 && in_flight_.front() == 0) {
    in_flight_.pop_front();
    ++first_open_;
  }
}

absl::Status Producer::Produce(std::string_view topic, int32_t partition, std::string_view key,
                               std::string_view value, const std::vector<Header>& headers) {
  rd_kafka_headers_t* hdrs = nullptr;
  if (!headers.empty()) {
    hdrs = rd_kafka_headers_new(headers.size());
    for (const auto& [name, v] : headers) {
      rd_kafka_header_add(hdrs, name.data(), static_cast<ssize_t>(name.size()), v.data(),
                          static_cast<ssize_t>(v.size()));
    }
  }
  // librdkafka takes the name NUL-terminated: copied into a buffer kept for
  // the next call, as a name longer than std::string's inline buffer would
  // otherwise allocate on every message (tests/engine/engine_alloc_test.cc).
  topic_name_.assign(topic.data(), topic.size());
  // A full local queue means the brokers are not keeping up or are down:
  // wait for it to drain, but not for ever.
  constexpr int kQueueFullRetries = 3000;  // x 10 ms
  for (int attempt = 0;; ++attempt) {
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rk_.get(), RD_KAFKA_V_TOPIC(topic_name_.c_str()), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
        RD_KAFKA_V_HEADERS(hdrs),  // null means none
        RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<uintptr_t>(first_open_ + in_flight_.size() - 1))),
        RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {  // headers now owned by librdkafka
      ++in_flight_.back();
      ++produced_;
      return absl::OkStatus();
    }
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && attempt < kQueueFullRetries) {
      rd_kafka_poll(rk_.get(), 10);  // back-pressure: let deliveries drain
      continue;
    }
    if (hdrs != nullptr) rd_kafka_headers_destroy(hdrs);
    if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
      return absl::OutOfRangeError(Cat("produce to ", topic, ": ", rd_kafka_err2str(err)));
    }
    return absl::UnavailableError(Cat("produce to ", topic, ": ", rd_kafka_err2str(err)));
  }
}

absl::Status Producer::Flush(int timeout_ms) {
  rd_kafka_resp_err_t err = rd_kafka_flush(rk_.get(), timeout_ms);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::DeadlineExceededError(Cat("flush: ", rd_kafka_err2str(err), ", ",
                                                    rd_kafka_outq_len(rk_.get()), " messages undelivered"));
  }
  return absl::OkStatus();
}

namespace {

// Takes `error` (null: success) into a status whose code says what to do next.
absl::Status TxnStatus(std::string_view what, rd_kafka_error_t* error) {
  if (error == nullptr) return absl::OkStatus();
  const std::string text = Cat(what, ": ", rd_kafka_error_string(error));
  absl::Status s;
  if (rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR__TIMED_OUT && !rd_kafka_error_is_fatal(error) &&
      !rd_kafka_error_txn_requires_abort(error)) {
    s = absl::UnavailableError(text);  // "retry call to resume"
  } else if (rd_kafka_error_is_fatal(error)) {
    s = rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR__FENCED ||
                rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
                rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH
            ? absl::FailedPreconditionError(Cat(text, " (fenced: another instance has this producer's id)"))
            : absl::InternalError(text);
  } else if (rd_kafka_error_txn_requires_abort(error)) {
    s = absl::AbortedError(text);
  } else if (rd_kafka_error_is_retriable(error)) {
    s = absl::UnavailableError(text);
  } else {
    s = absl::InternalError(text);
  }
  rd_kafka_error_destroy(error);
  return s;
}

}  // namespace

absl::Status Producer::InitTransactions(int timeout_ms) {
  return TxnStatus("init transactions", rd_kafka_init_transactions(rk_.get(), timeout_ms));
}

absl::Status Producer::BeginTransaction() {
  return TxnStatus("begin transaction", rd_kafka_begin_transaction(rk_.get()));
}

absl::Status Producer::SendOffsets(rd_kafka_t* consumer, const rd_kafka_topic_partition_list_t* offsets,
                                   int timeout_ms) {
  rd_kafka_consumer_group_metadata_t* group = rd_kafka_consumer_group_metadata(consumer);
  absl::Status s = TxnStatus("send offsets to transaction",
                             rd_kafka_send_offsets_to_transaction(rk_.get(), offsets, group, timeout_ms));
  rd_kafka_consumer_group_metadata_destroy(group);
  return s;
}

absl::Status Producer::CommitTransaction(int timeout_ms) {
  return TxnStatus("commit transaction", rd_kafka_commit_transaction(rk_.get(), timeout_ms));
}

absl::Status Producer::AbortTransaction(int timeout_ms) {
  return TxnStatus("abort transaction", rd_kafka_abort_transaction(rk_.get(), timeout_ms));
}

absl::StatusOr<std::unique_ptr<EmbeddedCluster>> EmbeddedCluster::Start(int brokers) {
  absl::StatusOr<rd_kafka_conf_t*> conf = NewKafkaConf({{"log_level", "3"}});
  if (!conf.ok()) return conf.status();
  absl::StatusOr<KafkaHandle> rk = NewKafkaClient(RD_KAFKA_PRODUCER, *conf);
  if (!rk.ok()) return rk.status();
  std::unique_ptr<EmbeddedCluster> c(new EmbeddedCluster());
  c->owner_ = *std::move(rk);
  c->mock_ = rd_kafka_mock_cluster_new(c->owner_.get(), brokers);
  if (c->mock_ == nullptr) return absl::InternalError("could not start the embedded Kafka cluster");
  c->bootstraps_ = rd_kafka_mock_cluster_bootstraps(c->mock_);
  return c;
}

EmbeddedCluster::~EmbeddedCluster() {
  if (mock_ != nullptr) rd_kafka_mock_cluster_destroy(mock_);
}

absl::Status EmbeddedCluster::CreateTopic(const std::string& name, int partitions) {
  rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mock_, name.c_str(), partitions, 1);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::InternalError(Cat("create topic ", name, ": ", rd_kafka_err2str(err)));
  }
  return absl::OkStatus();
}

}  // namespace cxpulse
