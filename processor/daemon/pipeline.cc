#include "daemon/pipeline.h"
#include "common/strings.h"

#include <chrono>

#include "spdlog/spdlog.h"

namespace cxpulse {
namespace {

constexpr int kMaxBatch = 1024;
constexpr int kPollTimeoutMs = 100;
constexpr int kFlushTimeoutMs = 30'000;
constexpr Micros kLagInterval = kMicrosPerSecond;

}  // namespace

// Writes findings to the findings topic, keyed by the finding's first key
// value (usually the customer), so one customer's findings stay in order.
class Pipeline::KafkaFindingSink final : public FindingSink {
 public:
  KafkaFindingSink(Producer* producer, std::string topic, PipelineMetrics* metrics, absl::Status* fatal)
      : producer_(producer), topic_(std::move(topic)), metrics_(metrics), fatal_(fatal) {}

  void Emit(int rule_index, const cx::v1::Finding& finding) override {
    finding.SerializeToString(&buffer_);
    const std::string_view key = finding.key_size() > 0 ? std::string_view(finding.key(0).value()) : "";
    if (absl::Status s = producer_->Produce(topic_, RD_KAFKA_PARTITION_UA, key, buffer_); !s.ok()) {
      if (fatal_->ok()) *fatal_ = s;
      return;
    }
    metrics_->FindingOf(rule_index).Increment();
  }

 private:
  Producer* producer_;
  std::string topic_;
  PipelineMetrics* metrics_;
  absl::Status* fatal_;
  std::string buffer_;
};

absl::StatusOr<std::unique_ptr<Pipeline>> Pipeline::Create(const Config& config, const std::string& bootstrap,
                                                           std::shared_ptr<const RuleSet> rules,
                                                           PipelineMetrics* metrics, const Clock* clock) {
  std::unique_ptr<Pipeline> p(new Pipeline());
  p->config_ = config;
  p->metrics_ = metrics;
  p->clock_ = clock;

  KafkaProperties common = {{"bootstrap.servers", bootstrap}, {"client.id", "cxpulse"}};
  KafkaProperties producer_props = common;
  for (const auto& [k, v] : config.kafka.properties) producer_props[k] = v;
  absl::StatusOr<std::unique_ptr<Producer>> producer = Producer::Create(producer_props);
  if (!producer.ok()) return producer.status();
  p->producer_ = *std::move(producer);

  metrics->BindRules(*rules);
  p->sink_ = std::make_unique<KafkaFindingSink>(p->producer_.get(), config.kafka.findings_topic, metrics, &p->fatal_);
  p->engine_ = std::make_unique<Engine>(
      std::move(rules),
      EngineOptions{config.engine.allowed_lateness, config.engine.idle_partition_timeout,
                    static_cast<size_t>(config.engine.max_keys_per_rule)},
      p->sink_.get());

  KafkaProperties consumer_props = common;
  consumer_props["group.id"] = config.kafka.group_id;
  consumer_props["enable.auto.commit"] = "false";  // we commit after findings are delivered
  consumer_props["auto.offset.reset"] = "earliest";
  for (const auto& [k, v] : config.kafka.properties) consumer_props[k] = v;
  absl::StatusOr<rd_kafka_conf_t*> conf = NewKafkaConf(consumer_props);
  if (!conf.ok()) return conf.status();
  rd_kafka_conf_set_rebalance_cb(*conf, &Pipeline::OnRebalance);
  rd_kafka_conf_set_opaque(*conf, p.get());
  absl::StatusOr<KafkaHandle> consumer = NewKafkaClient(RD_KAFKA_CONSUMER, *conf);
  if (!consumer.ok()) return consumer.status();
  p->consumer_ = *std::move(consumer);
  rd_kafka_poll_set_consumer(p->consumer_.get());

  PartitionList topics(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(topics.get(), config.kafka.input_topic.c_str(), RD_KAFKA_PARTITION_UA);
  if (rd_kafka_resp_err_t err = rd_kafka_subscribe(p->consumer_.get(), topics.get()); err) {
    return absl::UnavailableError(
        Cat("subscribe to ", config.kafka.input_topic, ": ", rd_kafka_err2str(err)));
  }
  return p;
}

Pipeline::~Pipeline() {
  if (consumer_ && !closed_) rd_kafka_consumer_close(consumer_.get());
}

absl::Status Pipeline::Run(const std::atomic<bool>& stop) {
  Micros last_commit = clock_->Now();
  Micros last_lag = 0;
  while (!stop.load(std::memory_order_relaxed) && fatal_.ok()) {
    const auto batch_start = std::chrono::steady_clock::now();
    int n = 0;
    // First poll waits; the rest of the batch takes only what is ready.
    for (int timeout = kPollTimeoutMs; n < kMaxBatch; timeout = 0) {
      rd_kafka_message_t* msg = rd_kafka_consumer_poll(consumer_.get(), timeout);
      if (msg == nullptr) break;
      HandleMessage(*msg, clock_->Now());
      rd_kafka_message_destroy(msg);
      ++n;
    }
    const Micros now = clock_->Now();
    engine_->Tick(now);
    producer_->Poll();
    if (n > 0) {
      metrics_->batch_duration().Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - batch_start).count());
    }
    if (now - last_lag >= kLagInterval) {
      UpdateLag();
      last_lag = now;
    }
    if (now - last_commit >= config_.engine.commit_interval) {
      if (absl::Status s = Commit(); !s.ok()) return s;
      last_commit = now;
    }
  }
  // Drain: what was processed is flushed and committed before leaving
  // (Commit refuses once anything failed).
  absl::Status s = Commit();
  rd_kafka_consumer_close(consumer_.get());
  closed_ = true;
  return fatal_.ok() ? s : fatal_;
}

void Pipeline::HandleMessage(const rd_kafka_message_t& msg, Micros now) {
  if (msg.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (msg.err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      spdlog::warn("consumer: {}", rd_kafka_message_errstr(&msg));
    }
    return;
  }
  const auto partition = msg.partition;
  if (static_cast<size_t>(partition) < next_offset_.size()) next_offset_[static_cast<size_t>(partition)] = msg.offset + 1;

  if (!event_.ParseFromArray(msg.payload, static_cast<int>(msg.len))) {
    metrics_->decode_errors().Increment();
    DeadLetter(msg, DeadLetterReason::kDecode, "payload does not decode as cx.v1.InteractionEvent");
    return;
  }
  std::string_view invalid;
  if (event_.body_case() == cx::v1::InteractionEvent::BODY_NOT_SET) invalid = "event has no body";
  else if (!event_.has_occurred_at()) invalid = "event has no occurred_at";
  else if (event_.customer_id().empty()) invalid = "event has no customer_id";
  // One event stamped far in the future would drag the partition's
  // watermark along and make every later event late.
  else if (ToMicros(event_.occurred_at()) > now + config_.engine.max_future_skew) invalid = "occurred_at is in the future";
  if (!invalid.empty()) {
    DeadLetter(msg, DeadLetterReason::kInvalid, invalid);
    return;
  }
  metrics_->EventConsumed(event_.body_case(), event_.channel()).Increment();
  events_.fetch_add(1, std::memory_order_relaxed);
  if (engine_->Process(partition, event_, now) == Engine::Outcome::kLate) {
    metrics_->late_events().Increment();
    DeadLetter(msg, DeadLetterReason::kLate, "event time is behind the partition watermark");
  }
}

void Pipeline::DeadLetter(const rd_kafka_message_t& msg, DeadLetterReason reason, std::string_view detail) {
  metrics_->DeadLetter(reason).Increment();
  dead_letters_.fetch_add(1, std::memory_order_relaxed);
  const std::string source = Cat(config_.kafka.input_topic, "/", msg.partition, "@", msg.offset);
  const std::string_view key(static_cast<const char*>(msg.key), msg.key_len);
  const std::string_view value(static_cast<const char*>(msg.payload), msg.len);
  absl::Status s = producer_->Produce(config_.kafka.dead_letter_topic, RD_KAFKA_PARTITION_UA, key, value,
                                      {{"cxpulse.reason", DeadLetterReasonName(reason)},
                                       {"cxpulse.error", detail},
                                       {"cxpulse.source", source}});
  if (!s.ok() && fatal_.ok()) fatal_ = s;
}

absl::Status Pipeline::Commit() {
  if (!fatal_.ok()) return fatal_;
  std::vector<std::pair<int32_t, int64_t>> offsets;
  for (int32_t p : assigned_partitions_) {
    const int64_t next = next_offset_[static_cast<size_t>(p)];
    if (next >= 0) offsets.emplace_back(p, next);
  }
  if (absl::Status s = producer_->Flush(kFlushTimeoutMs); !s.ok()) {
    fatal_ = absl::DataLossError(Cat(Message(s), "; input offsets not committed"));
    return fatal_;
  }
  // Any failure since the last commit, including those served by Poll()
  // between commits, means a finding or dead letter was lost: stop before
  // committing past it.
  if (producer_->delivery_failures() != failures_seen_) {
    failures_seen_ = producer_->delivery_failures();
    fatal_ = absl::DataLossError("findings or dead letters could not be delivered; input offsets not committed");
    return fatal_;
  }
  if (offsets.empty()) return absl::OkStatus();
  PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size())));
  for (const auto& [p, off] : offsets) {
    rd_kafka_topic_partition_list_add(list.get(), config_.kafka.input_topic.c_str(), p)->offset = off;
  }
  if (rd_kafka_resp_err_t err = rd_kafka_commit(consumer_.get(), list.get(), /*async=*/0); err) {
    // A failed commit loses nothing: the records are re-read and the
    // findings re-made with the same ids. Worth a warning, not a stop.
    spdlog::warn("offset commit failed: {}", rd_kafka_err2str(err));
  }
  return absl::OkStatus();
}

void Pipeline::UpdateLag() {
  int64_t total = 0;
  for (int32_t p : assigned_partitions_) {
    int64_t low = 0, high = 0;
    // Cached from fetch responses: no network round trip.
    if (rd_kafka_get_watermark_offsets(consumer_.get(), config_.kafka.input_topic.c_str(), p, &low, &high) != 0 ||
        high < 0) {
      continue;
    }
    const int64_t next = next_offset_[static_cast<size_t>(p)];
    const int64_t lag = std::max<int64_t>(0, high - (next >= 0 ? next : low));
    metrics_->ConsumerLag(p).Set(static_cast<double>(lag));
    total += lag;
  }
  lag_.store(total, std::memory_order_relaxed);
}

void Pipeline::OnRebalance(rd_kafka_t*, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                           void* opaque) {
  static_cast<Pipeline*>(opaque)->Rebalance(err, parts);
}

void Pipeline::Rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts) {
  const bool cooperative = std::string_view(rd_kafka_rebalance_protocol(consumer_.get())) == "COOPERATIVE";
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    for (int i = 0; i < parts->cnt; ++i) {
      const int32_t p = parts->elems[i].partition;
      if (static_cast<size_t>(p) >= next_offset_.size()) next_offset_.resize(static_cast<size_t>(p) + 1, -1);
      next_offset_[static_cast<size_t>(p)] = -1;
      assigned_partitions_.push_back(p);
      metrics_->ConsumerLag(p).Set(0);
    }
    spdlog::info("assigned {} partition(s) of {}", parts->cnt, config_.kafka.input_topic);
    if (cooperative) {
      if (rd_kafka_error_t* error = rd_kafka_incremental_assign(consumer_.get(), parts)) {
        fatal_ = absl::InternalError(Cat("incremental assign: ", rd_kafka_error_string(error)));
        rd_kafka_error_destroy(error);
      }
    } else if (rd_kafka_resp_err_t e = rd_kafka_assign(consumer_.get(), parts); e) {
      fatal_ = absl::InternalError(Cat("assign: ", rd_kafka_err2str(e)));
    }
    assigned_.store(true, std::memory_order_relaxed);
    return;
  }
  // Revoked: commit what was processed (unless something failed), then let
  // the state go with the partitions. Until the changelog topic exists the
  // next owner starts that state empty.
  (void)Commit();
  for (int i = 0; i < parts->cnt; ++i) {
    const int32_t p = parts->elems[i].partition;
    engine_->DropPartition(p);
    std::erase(assigned_partitions_, p);
    metrics_->RemoveConsumerLag(p);
  }
  spdlog::info("revoked {} partition(s) of {}", parts->cnt, config_.kafka.input_topic);
  if (cooperative) {
    if (rd_kafka_error_t* error = rd_kafka_incremental_unassign(consumer_.get(), parts)) {
      rd_kafka_error_destroy(error);
    }
  } else {
    rd_kafka_assign(consumer_.get(), nullptr);
  }
  assigned_.store(!assigned_partitions_.empty(), std::memory_order_relaxed);
}

}  // namespace cxpulse
