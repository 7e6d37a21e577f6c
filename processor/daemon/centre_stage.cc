#include "daemon/centre_stage.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <optional>
#include <utility>

#include "common/strings.h"
#include "daemon/changelog.h"
#include "daemon/shard.h"  // kMaxPartitions
#include "engine/state_codec.h"
#include "spdlog/spdlog.h"

namespace cxpulse {
namespace {

constexpr size_t kMaxBatch = 1024;
constexpr int kPollTimeoutMs = 100;  // also how soon a stop is noticed
constexpr int kMetadataTimeoutMs = 1000;
constexpr int kCommittedTimeoutMs = 5000;
constexpr int kFlushTimeoutMs = 30'000;
constexpr int kTxnTimeoutMs = 30'000;
constexpr int kInitTimeoutMs = 5'000;
constexpr size_t kMaxPendingCheckpoints = 64;
constexpr Micros kForcedLogInterval = 60 * kMicrosPerSecond;
constexpr Micros kRestoreTimeout = 120 * kMicrosPerSecond;
constexpr std::string_view kSnapshotKey{&kCentreRecord, 1};
constexpr uint8_t kSnapshotVersion = 1;

// Applies a checkpoint's records to the map that mirrors the engine's state.
class MapWriter final : public StateWriter {
 public:
  explicit MapWriter(absl::flat_hash_map<std::string, std::string>* map) : map_(map) {}
  void Put(std::string_view key, std::string_view value) override { (*map_)[std::string(key)] = value; }
  void Erase(std::string_view key) override { map_->erase(std::string(key)); }

 private:
  absl::flat_hash_map<std::string, std::string>* map_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<CentreStage>> CentreStage::Create(const Config& config, const std::string& bootstrap,
                                                                 const Clock* clock) {
  std::unique_ptr<CentreStage> c(new CentreStage());
  c->config_ = config;
  c->bootstrap_ = bootstrap;
  c->clock_ = clock;
  c->exactly_once_ = config.engine.delivery == Delivery::kExactlyOnce;
  if (absl::Status s = c->NewProducer(); !s.ok()) return s;
  return c;
}

absl::Status CentreStage::NewProducer() {
  KafkaProperties props = {{"bootstrap.servers", bootstrap_}, {"client.id", "cxpulse-centre"}};
  if (exactly_once_) {
    // One id for the group's centre stage, not one per process: whichever
    // member holds partition 0 next fences the one before it (its open
    // transaction is aborted, its later commits refused), so a stage that
    // lost its lease can never commit behind the new one's back.
    props["transactional.id"] = Cat(config_.kafka.group_id, "-centre");
    props["transaction.timeout.ms"] = "10000";  // as the shards'
  }
  for (const auto& [k, v] : config_.kafka.properties) props[k] = v;
  sink_.reset();
  absl::StatusOr<std::unique_ptr<Producer>> producer = Producer::Create(props);
  if (!producer.ok()) return producer.status();
  producer_ = *std::move(producer);
  sink_ = std::make_unique<KafkaFindingSink>(producer_.get(), config_.kafka.findings_topic,
                                             [this](absl::Status s) { Fail(std::move(s)); });
  transactions_ready_ = false;
  return absl::OkStatus();
}

CentreStage::~CentreStage() {
  RequestStop();
  Join();
}

void CentreStage::Start(std::shared_ptr<const RuleSet> rules, std::vector<RuleStats*> stats) {
  if (running()) return;
  // Rules posted to a run that ended before it read them: the rules given
  // here are at least as new. The ring's reader is gone (joined), so this
  // thread may drain it; the new thread starts after.
  while (commands_.TryPop()) {
  }
  stop_.store(false, std::memory_order_relaxed);
  finished_.store(false, std::memory_order_relaxed);
  thread_ = std::thread([this, rules = std::move(rules), stats = std::move(stats)]() mutable {
    Run(std::move(rules), std::move(stats));
  });
}

void CentreStage::RequestStop() { stop_.store(true, std::memory_order_relaxed); }

void CentreStage::Join() {
  if (thread_.joinable()) thread_.join();
}

void CentreStage::Fail(absl::Status s) {
  if (!fatal_.ok()) return;
  fatal_ = std::move(s);
  failed_.store(true, std::memory_order_release);
}

void CentreStage::Run(std::shared_ptr<const RuleSet> rules, std::vector<RuleStats*> stats) {
  if (absl::Status s = Consume(std::move(rules), std::move(stats)); !s.ok()) Fail(std::move(s));
  // This run's state goes with it; its rules' key counts go back to zero.
  if (engine_) engine_->DropPartition(0);
  engine_.reset();
  merge_.reset();
  state_.clear();
  restored_starts_.clear();
  released_ = restored_ = ReleasePoint{};
  skipping_ = false;
  pending_.clear();
  if (consumer_) rd_kafka_consumer_close(consumer_.get());
  consumer_.reset();
  active_.store(false, std::memory_order_relaxed);
  at_end_.store(false, std::memory_order_relaxed);
  held_.store(0, std::memory_order_relaxed);
  watermark_.store(Watermark::kNone, std::memory_order_relaxed);
  finished_.store(true, std::memory_order_release);
}

absl::StatusOr<KafkaHandle> CentreStage::NewConsumer() const {
  KafkaProperties props = {{"bootstrap.servers", bootstrap_},
                           {"client.id", "cxpulse-centre"},
                           {"enable.auto.commit", "false"},  // committed once the findings are delivered
                           {"enable.auto.offset.store", "false"},
                           {"auto.offset.reset", "earliest"},
                           {"enable.partition.eof", "true"},  // which partitions are empty or at their end
                           // It reads every partition at once into one queue: past
                           // queued.min.messages (100k) librdkafka 2.0 stops fetching
                           // for a fixed second, which made this stage read 2M
                           // events in 10 s instead of 2 (BENCHMARKS.md, issue 9).
                           // Memory stays bounded by queued.max.messages.kbytes.
                           {"queued.min.messages", "1000000"}};
  for (const auto& [k, v] : config_.kafka.properties) props[k] = v;
  // Only to store offsets: it never subscribes, so it joins no group and
  // takes no partition from the shards' group.
  props["group.id"] = Cat(config_.kafka.group_id, ".centre");
  absl::StatusOr<rd_kafka_conf_t*> conf = NewKafkaConf(props);
  if (!conf.ok()) return conf.status();
  return NewKafkaClient(RD_KAFKA_CONSUMER, *conf);
}

absl::StatusOr<int32_t> CentreStage::PartitionCount(rd_kafka_t* consumer) const {
  const std::string& topic = config_.kafka.input_topic;
  std::unique_ptr<rd_kafka_topic_t, void (*)(rd_kafka_topic_t*)> handle(
      rd_kafka_topic_new(consumer, topic.c_str(), nullptr), &rd_kafka_topic_destroy);
  if (!handle) return absl::InternalError(Cat("topic ", topic, ": ", rd_kafka_err2str(rd_kafka_last_error())));
  rd_kafka_resp_err_t last = RD_KAFKA_RESP_ERR_NO_ERROR;
  int attempts = 0;
  while (!stop_.load(std::memory_order_relaxed)) {
    const rd_kafka_metadata_t* md = nullptr;
    last = rd_kafka_metadata(consumer, 0, handle.get(), &md, kMetadataTimeoutMs);
    int32_t n = 0;
    if (last == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      n = md->topics[0].partition_cnt;
    } else if (last == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1) {
      last = md->topics[0].err;
    }
    if (md != nullptr) rd_kafka_metadata_destroy(md);
    if (n > kMaxPartitions) {
      return absl::OutOfRangeError(Cat(topic, " has ", n, " partitions; at most ", kMaxPartitions));
    }
    if (n > 0) return n;
    if (++attempts == 5) {
      spdlog::warn("centre stage: no partitions of {} yet ({}); still asking", topic, rd_kafka_err2str(last));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // an unknown topic answers at once
  }
  return absl::CancelledError(Cat("stopped while waiting for the partitions of ", topic, ": ", rd_kafka_err2str(last)));
}

PartitionList CentreStage::StartOffsets(int32_t partitions) const {
  const std::string& topic = config_.kafka.input_topic;
  PartitionList all(rd_kafka_topic_partition_list_new(partitions));
  for (int32_t p = 0; p < partitions; ++p) rd_kafka_topic_partition_list_add(all.get(), topic.c_str(), p);
  if (!restored_starts_.empty()) {
    // The snapshot says where its state ends, partition by partition.
    bool all_known = true;
    for (int32_t p = 0; p < partitions; ++p) {
      all->elems[p].offset = restored_starts_[static_cast<size_t>(p)];
      all_known = all_known && all->elems[p].offset >= 0;
    }
    if (all_known) return all;
  }
  if (rd_kafka_resp_err_t err = rd_kafka_committed(consumer_.get(), all.get(), kCommittedTimeoutMs); err) {
    spdlog::warn("centre stage: its committed offsets: {}; starting from them as the broker knows them",
                 rd_kafka_err2str(err));
    for (int i = 0; i < all->cnt; ++i) all->elems[i].offset = RD_KAFKA_OFFSET_STORED;
    return all;
  }
  // A partition this stage never committed (the first start of a version
  // with a centre stage, a new partition) starts where the group's shards
  // are, not at the beginning: a topic's whole retention would fire its
  // centre findings again. Nothing committed by either: the beginning, as
  // the shards start too.
  std::vector<int> missing;
  for (int i = 0; i < all->cnt; ++i) {
    if (static_cast<size_t>(i) < restored_starts_.size() && restored_starts_[static_cast<size_t>(i)] >= 0) {
      all->elems[i].offset = restored_starts_[static_cast<size_t>(i)];
    }
    if (all->elems[i].offset < 0) missing.push_back(i);
  }
  size_t from_group = 0;
  if (!missing.empty()) {
    KafkaProperties props = {{"bootstrap.servers", bootstrap_}, {"client.id", "cxpulse-centre-probe"}};
    for (const auto& [k, v] : config_.kafka.properties) props[k] = v;
    props["group.id"] = config_.kafka.group_id;  // only to read its offsets: it joins nothing
    absl::StatusOr<rd_kafka_conf_t*> conf = NewKafkaConf(props);
    absl::StatusOr<KafkaHandle> probe = conf.ok() ? NewKafkaClient(RD_KAFKA_CONSUMER, *conf) : conf.status();
    PartitionList group(rd_kafka_topic_partition_list_new(static_cast<int>(missing.size())));
    for (int i : missing) rd_kafka_topic_partition_list_add(group.get(), topic.c_str(), all->elems[i].partition);
    if (probe.ok() &&
        rd_kafka_committed(probe->get(), group.get(), kCommittedTimeoutMs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      for (size_t k = 0; k < missing.size(); ++k) {
        if (group->elems[k].offset >= 0) {
          all->elems[missing[k]].offset = group->elems[k].offset;
          ++from_group;
        }
      }
    }
  }
  size_t from_beginning = 0;
  for (int i = 0; i < all->cnt; ++i) {
    if (all->elems[i].offset < 0) {
      all->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
      ++from_beginning;
    }
  }
  spdlog::info("centre stage: {} partition(s) from its own offsets, {} from group {}'s, {} from the beginning",
               partitions - static_cast<int32_t>(missing.size()), from_group, config_.kafka.group_id, from_beginning);
  return all;
}

absl::Status CentreStage::Consume(std::shared_ptr<const RuleSet> rules, std::vector<RuleStats*> stats) {
  absl::StatusOr<KafkaHandle> consumer = NewConsumer();
  if (!consumer.ok()) return consumer.status();
  consumer_ = *std::move(consumer);
  absl::StatusOr<int32_t> partitions = PartitionCount(consumer_.get());
  if (!partitions.ok()) return stop_.load(std::memory_order_relaxed) ? absl::OkStatus() : partitions.status();
  const std::string& topic = config_.kafka.input_topic;

  // The merged stream is in order, so the engine takes no lateness of its
  // own and never idles forward: its clock is the merged watermark. An
  // event it still found late would be a merge bug, and is counted late.
  EngineOptions options;
  options.allowed_lateness = 0;
  options.idle_partition_timeout = std::numeric_limits<Micros>::max() / 4;
  options.max_keys_per_rule = static_cast<size_t>(config_.engine.max_keys_per_rule);
  options.scope = ScopeSelector::kCentre;
  options.track_changes = true;  // for its snapshots
  // Exactly once: the lease is taken (the stage before fenced) before its
  // last committed snapshot is read, so nothing commits after the read.
  if (exactly_once_) {
    if (absl::Status s = BeginTransactions(); !s.ok() || stop_.load(std::memory_order_relaxed)) return s;
  }
  engine_ = std::make_unique<Engine>(std::move(rules), options, sink_.get(), std::move(stats));
  if (absl::Status s = RestoreState(*partitions, clock_->Now()); !s.ok()) return s;
  merge_ = std::make_unique<EventTimeMerge>(
      EventTimeMerge::Options{.allowed_lateness = config_.engine.allowed_lateness,
                              .idle_timeout = config_.engine.idle_partition_timeout,
                              .capacity = static_cast<size_t>(config_.engine.centre_max_held_events)},
      *partitions);
  next_.assign(static_cast<size_t>(*partitions), -1);
  ends_.assign(static_cast<size_t>(*partitions), false);
  committed_.assign(static_cast<size_t>(*partitions), -1);
  late_base_ = late_.load(std::memory_order_relaxed);
  forced_base_ = forced_.load(std::memory_order_relaxed);
  engine_late_ = 0;
  forced_logged_ = 0;
  PartitionList all = StartOffsets(*partitions);
  if (rd_kafka_resp_err_t err = rd_kafka_assign(consumer_.get(), all.get()); err) {
    return absl::InternalError(Cat("centre stage: assign ", topic, ": ", rd_kafka_err2str(err)));
  }
  QueueHandle queue(rd_kafka_queue_get_consumer(consumer_.get()));
  active_.store(true, std::memory_order_relaxed);
  spdlog::info("centre stage: reading all {} partition(s) of {} for {} centre-wide rule(s)", *partitions, topic,
               std::count_if(engine_->rules().rules().begin(), engine_->rules().rules().end(),
                             [](const Rule& r) { return r.scope == RuleScope::kCentre; }));

  std::vector<rd_kafka_message_t*> batch(kMaxBatch);
  Micros last_checkpoint = clock_->Now();
  while (!stop_.load(std::memory_order_relaxed) && fatal_.ok()) {
    ssize_t n = rd_kafka_consume_batch_queue(queue.get(), kPollTimeoutMs, batch.data(), 1);
    if (n > 0) {
      const ssize_t more = rd_kafka_consume_batch_queue(queue.get(), 0, batch.data() + 1, kMaxBatch - 1);
      if (more > 0) n += more;
    }
    // New rules between two batches: no event is half-way through the old ones.
    while (std::optional<CentreCommand> c = commands_.TryPop()) {
      engine_->SwapRules(std::move(c->rules), std::move(c->stats));
    }
    const Micros now = clock_->Now();
    for (ssize_t i = 0; i < n; ++i) {
      Handle(*batch[static_cast<size_t>(i)], now);
      rd_kafka_message_destroy(batch[static_cast<size_t>(i)]);
    }
    Release(now);
    engine_->Tick(now);
    producer_->Poll();
    if (now - last_checkpoint >= config_.engine.commit_interval) {
      if (exactly_once_) CommitTransaction();
      else MarkCheckpoint();
      last_checkpoint = now;
    }
    if (!exactly_once_) CommitDelivered(/*wait=*/false);
    PublishGauges();
    if (merge_->forced() > forced_logged_ && now - last_forced_log_ >= kForcedLogInterval) {
      spdlog::warn("centre stage: {} event(s) released before their turn so far: more than {} held "
                   "(engine.centre_max_held_events); a partition far behind the others?",
                   merge_->forced(), config_.engine.centre_max_held_events);
      forced_logged_ = merge_->forced();
      last_forced_log_ = now;
    }
  }
  if (!fatal_.ok()) {
    // Its findings, offsets and snapshot since the last commit go together.
    if (in_transaction_) (void)producer_->AbortTransaction(kTxnTimeoutMs);
    in_transaction_ = false;
    return absl::OkStatus();  // Run reports it
  }
  if (exactly_once_) {
    CommitTransaction(/*last=*/true);
    return fatal_.ok() ? absl::OkStatus() : fatal_;
  }
  // The drain: everything produced is delivered, then what it covers is committed.
  MarkCheckpoint();
  // Twice: the findings, then the snapshot sent once they are delivered.
  for (int round = 0; round < 2 && fatal_.ok(); ++round) {
    if (absl::Status s = producer_->Flush(kFlushTimeoutMs); !s.ok()) {
      return absl::DataLossError(Cat("centre stage: ", Message(s), "; its input offsets not committed"));
    }
    CommitDelivered(/*wait=*/true);
  }
  return fatal_.ok() ? absl::OkStatus() : fatal_;
}

void CentreStage::Handle(const rd_kafka_message_t& msg, Micros now) {
  const int32_t p = msg.partition;
  if (p < 0 || p >= merge_->partitions()) return;
  const auto i = static_cast<size_t>(p);
  if (msg.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (msg.err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      merge_->MarkAtEnd(p, now);  // before its first event: empty, it holds nothing back for long
      ends_[i] = true;
    } else {
      spdlog::warn("centre stage: consumer: {}", rd_kafka_message_errstr(&msg));
    }
    return;
  }
  next_[i] = msg.offset + 1;
  ends_[i] = false;
  // What a shard dead-letters (undecodable, incomplete, from the future)
  // reaches no rule here either.
  const cx::v1::InteractionEvent* event = decoder_.Decode(msg.payload, msg.len);
  if (event == nullptr || !IncompleteEvent(*event).empty() ||
      ToMicros(event->occurred_at()) > now + config_.engine.max_future_skew) {
    return;
  }
  if (skipping_ && restored_.Covers(ToMicros(event->occurred_at()), event->event_id(), p, msg.offset)) {
    ++skipped_;  // let go before the restart: the restored state holds it
    return;
  }
  const bool keep = !engine_->rules().RulesFor(event->body_case(), ScopeSelector::kCentre).empty();
  if (keep) {
    while (const EventTimeMerge::Released* r = merge_->NextToMakeRoom()) Apply(*r, now);
  }
  const std::string_view encoded(static_cast<const char*>(msg.payload), msg.len);
  (void)merge_->Push(p, msg.offset, *event, encoded, keep, now);  // a late one is counted by the merge
}

void CentreStage::Apply(const EventTimeMerge::Released& released, Micros now) {
  const cx::v1::InteractionEvent* event = release_decoder_.Decode(released.encoded.data(), released.encoded.size());
  if (event == nullptr) return;  // decoded once already: cannot happen
  released_.time = released.time;
  released_.event_id.assign(event->event_id());
  released_.partition = released.partition;
  released_.offset = released.offset;
  if (engine_->Process(0, *event, now) == Engine::Outcome::kLate) ++engine_late_;
}

void CentreStage::Release(Micros now) {
  while (const EventTimeMerge::Released* r = merge_->Next(now)) Apply(*r, now);
  if (merge_->watermark() != Watermark::kNone) engine_->AdvanceWatermark(0, merge_->watermark(), now);
}

std::vector<int64_t> CentreStage::CheckpointOffsets() {
  // A partition's events below its lowest held offset are all released, so
  // their findings are produced. Nothing held: everything read.
  merge_->LowestHeldOffsets(&lowest_);
  std::vector<int64_t> offsets(next_.size(), -1);
  for (size_t p = 0; p < next_.size(); ++p) {
    if (next_[p] >= 0) offsets[p] = std::min(next_[p], lowest_[p]);
    // Not read yet this run: where a restored snapshot said to read on from.
    else if (p < restored_starts_.size()) offsets[p] = restored_starts_[p];
  }
  return offsets;
}

absl::Status CentreStage::BeginTransactions() {
  if (fenced_) {
    if (absl::Status s = NewProducer(); !s.ok()) return s;
    fenced_ = false;
  }
  absl::Status st = absl::UnavailableError("stopped first");  // as Shard::Run
  if (!transactions_ready_) {
    // A cluster not reachable yet is waited for, as the shards do.
    for (bool first = true; !stop_.load(std::memory_order_relaxed); first = false) {
      st = producer_->InitTransactions(kInitTimeoutMs);
      if (!absl::IsUnavailable(st)) break;
      if (first) spdlog::warn("centre stage: {}; waiting for the cluster", Message(st));
    }
    if (absl::IsUnavailable(st)) return absl::OkStatus();  // stopped while waiting: nothing to commit
    if (!st.ok()) return st;
    transactions_ready_ = true;
  }
  st = producer_->BeginTransaction();
  in_transaction_ = st.ok();
  produced_at_begin_ = producer_->produced();
  return st;
}

void CentreStage::CommitTransaction(bool last) {
  if (!fatal_.ok() || !in_transaction_) return;
  const std::vector<int64_t> offsets = CheckpointOffsets();
  MapWriter map(&state_);
  CountingWriter changes(map);
  engine_->Checkpoint(0, changes);
  PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size())));
  for (size_t p = 0; p < offsets.size(); ++p) {
    if (offsets[p] < 0 || offsets[p] <= committed_[p]) continue;
    rd_kafka_topic_partition_list_add(list.get(), config_.kafka.input_topic.c_str(), static_cast<int32_t>(p))
        ->offset = offsets[p];
  }
  // Nothing found, read or changed since the last commit: the transaction
  // stays open (the run's last ends it all the same).
  if (!last && changes.count() == 0 && list->cnt == 0 && producer_->produced() == produced_at_begin_) return;
  // The findings produced since the last commit, the snapshot that follows
  // from them and the offsets they cover: one transaction.
  absl::Status st = producer_->Produce(config_.kafka.changelog(), 0, kSnapshotKey, Snapshot(offsets));
  for (int tries = 0; st.ok() && list->cnt > 0 && tries < 10; ++tries) {
    st = producer_->SendOffsets(consumer_.get(), list.get(), kTxnTimeoutMs);
    if (!absl::IsUnavailable(st)) break;
    spdlog::warn("centre stage: {}; trying again", Message(st));
  }
  for (int tries = 0; st.ok() && tries < 10; ++tries) {
    st = producer_->CommitTransaction(kTxnTimeoutMs);
    if (!absl::IsUnavailable(st)) break;
    spdlog::warn("centre stage: {}; trying again", Message(st));
  }
  if (absl::IsFailedPrecondition(st)) {
    // Fenced: another member holds partition 0 now and runs the stage from
    // the last snapshot committed. Not a failure of this process.
    spdlog::info("centre stage: {}; the new holder of partition 0 carries on from the last commit", Message(st));
    fenced_ = true;  // the producer is done: a later lease makes a new one
    in_transaction_ = false;
    stop_.store(true, std::memory_order_relaxed);
    return;
  }
  if (!st.ok()) {
    if (absl::IsAborted(st)) (void)producer_->AbortTransaction(kTxnTimeoutMs);
    in_transaction_ = false;
    return Fail(absl::DataLossError(Cat("centre stage: ", Message(st), "; nothing of this transaction is committed "
                                        "(its input offsets not committed): a restart resumes from the last one")));
  }
  transactions_.fetch_add(1, std::memory_order_relaxed);
  for (int k = 0; k < list->cnt; ++k) committed_[static_cast<size_t>(list->elems[k].partition)] = list->elems[k].offset;
  // The consumer commits them too (asynchronously, but for the last): a cluster that keeps a
  // transaction's offsets has them already; librdkafka 2.0.2's mock does not.
  if (list->cnt > 0) (void)rd_kafka_commit(consumer_.get(), list.get(), last ? 0 : 1);
  in_transaction_ = false;
  if (last) return;
  if (st = producer_->BeginTransaction(); !st.ok()) return Fail(st);
  in_transaction_ = true;
  produced_at_begin_ = producer_->produced();
}

void CentreStage::MarkCheckpoint() {
  // The offsets are committable once the findings before them are delivered.
  PendingCheckpoint c{producer_->Mark(), CheckpointOffsets(), {}};
  MapWriter changes(&state_);
  engine_->Checkpoint(0, changes);
  c.snapshot = Snapshot(c.offsets);
  if (pending_.size() < kMaxPendingCheckpoints) pending_.push_back(std::move(c));
  else pending_.back() = std::move(c);  // its snapshot covers the replaced one's
}

void CentreStage::CommitDelivered(bool wait) {
  if (!fatal_.ok()) return;
  if (producer_->delivery_failures() != failures_seen_) {
    failures_seen_ = producer_->delivery_failures();
    return Fail(absl::DataLossError("centre stage: findings could not be delivered; input offsets not committed"));
  }
  // The newest checkpoint whose findings are all delivered covers the older ones.
  std::optional<PendingCheckpoint> ready;
  while (!pending_.empty() && producer_->DeliveredThrough(pending_.front().mark)) {
    ready = std::move(pending_.front());
    pending_.pop_front();
  }
  if (!ready) return;
  // Its findings are delivered: now the state that follows from them.
  if (absl::Status s = producer_->Produce(config_.kafka.changelog(), 0, kSnapshotKey, ready->snapshot); !s.ok()) {
    return Fail(s);
  }
  PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(ready->offsets.size())));
  for (size_t p = 0; p < ready->offsets.size(); ++p) {
    const int64_t off = ready->offsets[p];
    if (off < 0 || off <= committed_[p]) continue;
    const auto partition = static_cast<int32_t>(p);
    rd_kafka_topic_partition_list_add(list.get(), config_.kafka.input_topic.c_str(), partition)->offset = off;
    committed_[p] = off;
  }
  if (list->cnt == 0) return;
  if (rd_kafka_resp_err_t err = rd_kafka_commit(consumer_.get(), list.get(), wait ? 0 : 1); err) {
    // Nothing is lost: the events are read again after a restart, their
    // findings made again with the same ids.
    spdlog::warn("centre stage: offset commit failed: {}", rd_kafka_err2str(err));
    for (int k = 0; k < list->cnt; ++k) committed_[static_cast<size_t>(list->elems[k].partition)] = -1;
  }
}

bool CentreStage::ReleasePoint::Covers(Micros t, std::string_view id, int32_t p, int64_t o) const {
  if (t != time) return t < time;
  if (id != event_id) return id < event_id;
  if (p != partition) return p < partition;
  return o <= offset;
}

std::string CentreStage::Snapshot(const std::vector<int64_t>& starts) {
  std::string out;
  RecordWriter w(&out);
  w.Byte(kSnapshotVersion);
  w.Signed(released_.time);
  w.Bytes(released_.event_id);
  w.Signed(released_.partition);
  w.Signed(released_.offset);
  w.Varint(starts.size());
  for (int64_t s : starts) w.Signed(s);
  w.Varint(state_.size());
  for (const auto& [k, v] : state_) {
    w.Bytes(k);
    w.Bytes(v);
  }
  return out;
}

absl::Status CentreStage::RestoreState(int32_t partitions, Micros now) {
  KafkaProperties props = {{"bootstrap.servers", bootstrap_}, {"client.id", "cxpulse-centre-restore"},
                           {"group.id", Cat(config_.kafka.group_id, ".centre")}};  // never joined
  for (const auto& [k, v] : config_.kafka.properties) props[k] = v;
  absl::StatusOr<std::unique_ptr<ChangelogReader>> reader = ChangelogReader::Create(
      props, config_.kafka.changelog(), config_.engine.delivery == Delivery::kExactlyOnce);
  if (!reader.ok()) return reader.status();
  absl::StatusOr<std::map<int32_t, RestoredState>> read = (*reader)->Read({0}, kRestoreTimeout);
  if (!read.ok()) return absl::UnavailableError(Cat("centre stage: state not restored: ", Message(read.status())));
  const auto& records = (*read)[0].records;
  const auto it = records.find(std::string(kSnapshotKey));
  if (it == records.end()) return absl::OkStatus();  // never checkpointed: it starts empty
  RecordReader r(it->second);
  ReleasePoint point;
  std::vector<int64_t> starts;
  std::vector<std::pair<std::string_view, std::string_view>> entries;
  if (r.Byte() == kSnapshotVersion) {
    point.time = r.Signed();
    point.event_id = std::string(r.Bytes());
    point.partition = static_cast<int32_t>(r.Signed());
    point.offset = r.Signed();
    starts.resize(r.Varint(kMaxPartitions));
    for (int64_t& s : starts) s = r.Signed();
    entries.resize(r.Varint(it->second.size()));
    for (auto& [k, v] : entries) {
      k = r.Bytes();
      v = r.Bytes();
    }
  }
  if (!r.Done()) {
    spdlog::warn("centre stage: its snapshot does not decode (version {}); starting empty", int{it->second[0]});
    return absl::OkStatus();
  }
  if (starts.size() != static_cast<size_t>(partitions)) {
    spdlog::warn("centre stage: its snapshot covers {} partition(s), the topic has {}; starting empty", starts.size(),
                 partitions);
    return absl::OkStatus();
  }
  size_t taken = 0;
  for (const auto& [k, v] : entries) {
    if (engine_->Restore(0, k, v, now) != RestoreDrop::kNone) continue;
    state_.emplace(std::string(k), std::string(v));
    ++taken;
  }
  restored_ = std::move(point);
  released_ = restored_;
  skipping_ = true;
  restored_starts_ = std::move(starts);
  spdlog::info("centre stage: restored {} of {} state record(s); events up to {} are in them", taken, entries.size(),
               FormatTime(restored_.time));
  return absl::OkStatus();
}

void CentreStage::PublishGauges() {
  bool all_at_end = true;
  for (bool e : ends_) all_at_end = all_at_end && e;
  at_end_.store(all_at_end, std::memory_order_relaxed);
  watermark_.store(merge_->watermark(), std::memory_order_relaxed);
  held_.store(static_cast<int64_t>(merge_->held()), std::memory_order_relaxed);
  late_.store(late_base_ + merge_->late() + engine_late_, std::memory_order_relaxed);
  forced_.store(forced_base_ + merge_->forced(), std::memory_order_relaxed);
}

}  // namespace cxpulse
