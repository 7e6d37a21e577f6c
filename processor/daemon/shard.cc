#include "daemon/shard.h"

#include <chrono>

#include "common/strings.h"
#include "spdlog/spdlog.h"

namespace cxpulse {
namespace {

constexpr size_t kMaxBatch = 1024;
constexpr int kPollTimeoutMs = 100;
constexpr int kFlushTimeoutMs = 30'000;
// Checkpoints noted while earlier ones are still in flight; beyond this the
// newest is replaced (it only commits later). Deliveries time out first
// (message.timeout.ms), which stops the shard.
constexpr size_t kMaxPendingCheckpoints = 64;
// Transactions and their parts: how long one call may wait for the brokers.
constexpr int kTxnTimeoutMs = 30'000;
constexpr int kInitTimeoutMs = 5'000;
// Back-pressure: past this many messages waiting in the producer (the
// brokers are not taking findings, dead letters or state), the shard pauses
// its partitions instead of reading on into memory; below the second, it
// resumes. librdkafka's own queue holds 100,000 by default.
constexpr int kPauseAbove = 50'000;
constexpr int kResumeBelow = 10'000;
// Reading one partition's changelog back.
constexpr Micros kRestoreTimeout = 120 * kMicrosPerSecond;
// What is kept of a record too large to dead-letter whole (its key and its
// value each): enough to recognise it, far under any broker's limit.
constexpr size_t kDeadLetterPrefixBytes = 64 * 1024;

}  // namespace

std::string_view DeadLetterReasonName(DeadLetterReason r) {
  switch (r) {
    case DeadLetterReason::kDecode: return "decode";
    case DeadLetterReason::kInvalid: return "invalid";
    case DeadLetterReason::kLate: return "late";
    case DeadLetterReason::kCount: break;
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<Shard>> Shard::Create(int index, const Config& config, const std::string& bootstrap,
                                                     std::shared_ptr<const RuleSet> rules,
                                                     std::vector<RuleStats*> stats, QueueLabels* queues,
                                                     rd_kafka_t* consumer, Offsets* offsets, const Clock* clock,
                                                     const std::string& transactional_id) {
  std::unique_ptr<Shard> s(new Shard());
  s->index_ = index;
  s->config_ = config;
  s->config_.kafka.changelog_topic = config.kafka.changelog();  // its name from here on
  s->clock_ = clock;
  s->offsets_ = offsets;
  s->consumer_ = consumer;
  s->exactly_once_ = config.engine.delivery == Delivery::kExactlyOnce;
  KafkaProperties props = {{"bootstrap.servers", bootstrap}, {"client.id", Cat("cxpulse-shard-", index)}};
  if (s->exactly_once_) {
    props["transactional.id"] = transactional_id;
    // An instance that dies leaves its transaction open; read_committed
    // readers wait for the broker to abort it, after this long (Kafka
    // Streams' exactly-once default).
    props["transaction.timeout.ms"] = "10000";
  }
  KafkaProperties reader_props = {{"bootstrap.servers", bootstrap},
                                  {"client.id", Cat("cxpulse-restore-", index)},
                                  {"group.id", Cat(config.kafka.group_id, ".restore")}};  // never joined
  for (const auto& [k, v] : config.kafka.properties) props[k] = reader_props[k] = v;
  absl::StatusOr<std::unique_ptr<Producer>> producer = Producer::Create(props);
  if (!producer.ok()) return producer.status();
  s->producer_ = *std::move(producer);
  absl::StatusOr<std::unique_ptr<ChangelogReader>> restorer =
      ChangelogReader::Create(reader_props, s->config_.kafka.changelog_topic, s->exactly_once_);
  if (!restorer.ok()) return restorer.status();
  s->restorer_ = *std::move(restorer);
  Shard* shard = s.get();
  s->sink_ = std::make_unique<KafkaFindingSink>(s->producer_.get(), config.kafka.findings_topic,
                                                [shard](absl::Status failure) { shard->Fail(std::move(failure)); });
  s->engine_ = std::make_unique<Engine>(
      std::move(rules),
      // The centre-wide rules run in the centre stage, over every partition.
      EngineOptions{config.engine.allowed_lateness, config.engine.idle_partition_timeout,
                    static_cast<size_t>(config.engine.max_keys_per_rule), ScopeSelector::kCustomer,
                    /*track_changes=*/true},
      s->sink_.get(), std::move(stats));
  s->kpi_ = std::make_unique<KpiAggregator>(config.kpi, queues, config.engine.allowed_lateness,
                                           config.engine.idle_partition_timeout, /*track_changes=*/true);
  s->queue_.reset(rd_kafka_queue_new(consumer));
  s->next_.assign(kMaxPartitions, -1);
  s->read_to_.assign(kMaxPartitions, -1);
  s->restored_through_.assign(kMaxPartitions, -1);
  s->positions_.assign(kMaxPartitions, -1);
  return s;
}

Shard::~Shard() { Stop(); }

void Shard::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Shard::Stop() {
  stop_.store(true, std::memory_order_relaxed);
  if (thread_.joinable()) thread_.join();
}

void Shard::Fail(absl::Status s) {
  if (!fatal_.ok()) return;
  fatal_ = std::move(s);
  failed_.store(true, std::memory_order_release);
}

void Shard::Run() {
  // On the shard's thread, not at start, so the admin endpoint answers while
  // the brokers do not: the shard owns nothing before the group assigns it
  // partitions, and that needs the brokers too.
  if (exactly_once_) {
    // A stop before the first try (a SIGTERM while the group is joined) is
    // a stop while waiting: no transaction to begin (the ASan run of
    // PipelineTest.ASigtermWhileJoiningTheGroupExitsPromptly: "begin
    // transaction: Operation not valid in state Init", exit 3).
    absl::Status st = absl::UnavailableError("stopped before transactions were initialised");
    // A cluster not reachable yet is waited for (a timeout may be retried);
    // one that refuses transactions stops the daemon.
    for (bool first = true; !stop_.load(std::memory_order_relaxed); first = false) {
      st = producer_->InitTransactions(kInitTimeoutMs);
      if (!absl::IsUnavailable(st)) break;
      if (first) spdlog::warn("shard {}: {}; waiting for the cluster", index_, Message(st));
    }
    if (!st.ok() && !absl::IsUnavailable(st)) {
      return Fail(absl::FailedPreconditionError(Cat(Message(st), " (engine.delivery: exactly_once needs a cluster "
                                                                 "with transactions; at_least_once works without)")));
    }
    // Still waiting at a stop: there is nothing to commit.
    if (st.ok()) st = producer_->BeginTransaction();
    if (!st.ok() && !absl::IsUnavailable(st)) return Fail(st);
  }
  std::vector<rd_kafka_message_t*> batch(kMaxBatch);
  Micros last_checkpoint = clock_->Now();
  while (!stop_.load(std::memory_order_relaxed) && fatal_.ok()) {
    // Wait for the first record only, then take what is already queued: a
    // batch call asked for 1024 would hold a lone record until the batch
    // filled or the timeout passed, adding up to 100 ms of latency.
    ssize_t n = rd_kafka_consume_batch_queue(queue_.get(), kPollTimeoutMs, batch.data(), 1);
    if (n > 0) {
      const ssize_t more = rd_kafka_consume_batch_queue(queue_.get(), 0, batch.data() + 1, kMaxBatch - 1);
      if (more > 0) n += more;
    }
    // Commands first: an assignment is posted before its partition is
    // forwarded here, so every message below belongs to a known partition.
    DrainCommands();
    RestoreAssigned();
    const auto started = std::chrono::steady_clock::now();
    const Micros now = clock_->Now();
    ApplyHeard(now);
    for (ssize_t i = 0; i < n; ++i) {
      Handle(*batch[static_cast<size_t>(i)], now);
      rd_kafka_message_destroy(batch[static_cast<size_t>(i)]);
    }
    engine_->Tick(now);
    for (int32_t p : owned_) offsets_->watermark[p].store(engine_->WatermarkOf(p, now), std::memory_order_relaxed);
    kpi_->Tick(now);
    producer_->Poll();  // serves delivery reports
    PauseWhileBacklogged();
    if (now - last_checkpoint >= config_.engine.commit_interval) {
      Commit();
      last_checkpoint = now;
    }
    if (!exactly_once_) PublishDelivered();
    if (n > 0) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      size_t b = 0;
      while (b < kBatchBuckets.size() && seconds > kBatchBuckets[b]) ++b;
      ShardCounters::Add(counters_.batch_buckets[b]);
      ShardCounters::Add(counters_.batch_count);
      counters_.batch_seconds.store(counters_.batch_seconds.load(std::memory_order_relaxed) + seconds,
                                    std::memory_order_relaxed);
    }
  }
  DrainCommands();
  RestoreAssigned();  // an assignment that came with the stop still writes what it restored
  if (fatal_.ok()) Checkpoint();
}

void Shard::DrainCommands() {
  while (std::optional<ShardCommand> c = commands_.TryPop()) {
    const int32_t p = c->partition;
    if (c->kind == ShardCommand::Kind::kAssign) {
      // Acknowledged before its state is read back, so the control thread
      // never waits on the changelog; its records wait in this shard's
      // queue meanwhile (RestoreAssigned runs before the next batch).
      owned_.push_back(p);
      next_[static_cast<size_t>(p)] = -1;
      read_to_[static_cast<size_t>(p)] = -1;
      restored_through_[static_cast<size_t>(p)] = -1;
      restoring_.push_back(p);
      restoring_count_.store(static_cast<int>(restoring_.size()), std::memory_order_release);
    } else if (c->kind == ShardCommand::Kind::kRevoke) {
      // Commit (or publish what is delivered) with the partition's state
      // written, then let the state go: its next owner reads it back.
      std::erase(restoring_, p);
      restoring_count_.store(static_cast<int>(restoring_.size()), std::memory_order_release);
      Checkpoint();
      engine_->DropPartition(p);
      kpi_->DropPartition(p);
      std::erase(owned_, p);
    } else if (c->kind == ShardCommand::Kind::kRules) {
      // Between batches: no event is half-way through the old rules.
      engine_->SwapRules(std::move(c->rules), std::move(c->stats));
    }
    acked_.store(c->seq, std::memory_order_release);
  }
}

void Shard::ApplyHeard(Micros now) {
  for (int32_t p : owned_) {
    Micros heard = offsets_->heard_until[p].load(std::memory_order_acquire);
    // Records fetched before that answer may still be in the queue: until
    // they are read, the answer says nothing about them (0 keeps the last).
    if (read_to_[static_cast<size_t>(p)] < offsets_->heard_through[p].load(std::memory_order_acquire)) heard = 0;
    engine_->HeardUntil(p, heard, now);
    kpi_->HeardUntil(p, heard, now);
  }
}

void Shard::Handle(const rd_kafka_message_t& msg, Micros now) {
  const int32_t p = msg.partition;
  if (msg.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (msg.err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (p >= 0 && p < kMaxPartitions && std::find(owned_.begin(), owned_.end(), p) != owned_.end()) {
        read_to_[static_cast<size_t>(p)] = std::max(read_to_[static_cast<size_t>(p)], msg.offset);
        offsets_->at_end[p].store(true, std::memory_order_relaxed);
        // Caught up: from now on a quiet partition's watermark may idle forward.
        engine_->SetAtEnd(p, true, now);
        kpi_->SetAtEnd(p, true, now);
      }
    } else {
      spdlog::warn("shard {}: consumer: {}", index_, rd_kafka_message_errstr(&msg));
    }
    return;
  }
  // A message of a partition this shard no longer owns (revoked while in
  // flight) is left uncommitted for its next owner.
  if (p < 0 || p >= kMaxPartitions || std::find(owned_.begin(), owned_.end(), p) == owned_.end()) return;
  next_[static_cast<size_t>(p)] = msg.offset + 1;
  read_to_[static_cast<size_t>(p)] = msg.offset + 1;
  offsets_->processed[p].store(msg.offset + 1, std::memory_order_relaxed);
  // A record: the partition is no longer at its end (told once, not per record).
  if (offsets_->at_end[p].load(std::memory_order_relaxed)) {
    offsets_->at_end[p].store(false, std::memory_order_relaxed);
    engine_->SetAtEnd(p, false, now);
    kpi_->SetAtEnd(p, false, now);
  }
  if (msg.offset < restored_through_[static_cast<size_t>(p)]) {
    // Read again after a restart whose state already holds it (at least
    // once, or a cluster that does not keep transactional offsets).
    ShardCounters::Add(counters_.restore_skipped);
    return;
  }

  const cx::v1::InteractionEvent* decoded = decoder_.Decode(msg.payload, msg.len);
  if (decoded == nullptr) {
    ShardCounters::Add(counters_.decode_errors);
    DeadLetter(msg, DeadLetterReason::kDecode, "payload does not decode as cx.v1.InteractionEvent");
    return;
  }
  const cx::v1::InteractionEvent& event_ = *decoded;
  std::string_view invalid = IncompleteEvent(event_);
  // One event stamped far in the future would drag the partition's
  // watermark along and make every later event late.
  if (invalid.empty() && ToMicros(event_.occurred_at()) > now + config_.engine.max_future_skew) {
    invalid = "occurred_at is in the future";
  }
  if (!invalid.empty()) {
    DeadLetter(msg, DeadLetterReason::kInvalid, invalid);
    return;
  }
  const auto body = static_cast<size_t>(event_.body_case());
  const auto channel = static_cast<size_t>(event_.channel());
  ShardCounters::Add(counters_.events[body < kMaxBodyCase ? body : 0][channel < kChannels ? channel : 0]);
  if (engine_->Process(p, event_, now) == Engine::Outcome::kLate) {
    ShardCounters::Add(counters_.late);
    // How late, for whoever reads the dead letter (a rare path: it may format).
    const Micros at = ToMicros(event_.occurred_at()), watermark = engine_->WatermarkOf(p, now);
    DeadLetter(msg, DeadLetterReason::kLate,
               Cat("event time ", FormatTime(at), " is ", FormatDuration(watermark - at),
                   " behind the partition watermark ", FormatTime(watermark)));
    return;
  }
  kpi_->Record(event_, p, now);
}

void Shard::DeadLetter(const rd_kafka_message_t& msg, DeadLetterReason reason, std::string_view detail) {
  ShardCounters::Add(counters_.dead_letters[static_cast<size_t>(reason)]);
  const std::string source = Cat(config_.kafka.input_topic, "/", msg.partition, "@", msg.offset);
  const std::string_view key(static_cast<const char*>(msg.key), msg.key_len);
  const std::string_view value(static_cast<const char*>(msg.payload), msg.len);
  absl::Status s = producer_->Produce(config_.kafka.dead_letter_topic, RD_KAFKA_PARTITION_UA, key, value,
                                      {{"cxpulse.reason", DeadLetterReasonName(reason)},
                                       {"cxpulse.error", detail},
                                       {"cxpulse.source", source}});
  if (absl::IsOutOfRange(s)) s = DeadLetterTruncated(msg, reason, detail, source);
  if (!s.ok()) Fail(s);
}

absl::Status Shard::DeadLetterTruncated(const rd_kafka_message_t& msg, DeadLetterReason reason,
                                        std::string_view detail, std::string_view source) {
  const std::string_view key(static_cast<const char*>(msg.key), std::min(msg.key_len, kDeadLetterPrefixBytes));
  const std::string_view value(static_cast<const char*>(msg.payload), std::min(msg.len, kDeadLetterPrefixBytes));
  const std::string original_size = Cat(msg.len), original_key_size = Cat(msg.key_len);
  std::vector<Producer::Header> headers = {{"cxpulse.reason", DeadLetterReasonName(reason)},
                                           {"cxpulse.error", detail},
                                           {"cxpulse.source", source},
                                           {"cxpulse.truncated", "true"},
                                           {"cxpulse.original_size", original_size}};
  if (key.size() < msg.key_len) headers.emplace_back("cxpulse.original_key_size", original_key_size);
  ShardCounters::Add(counters_.dead_letters_truncated);
  spdlog::warn("shard {}: {} ({} bytes) is too large to dead-letter whole; dead-lettered its first {} bytes", index_,
               source, msg.len, value.size());
  return producer_->Produce(config_.kafka.dead_letter_topic, RD_KAFKA_PARTITION_UA, key, value, headers);
}

void Shard::PauseWhileBacklogged() {
  const int waiting = rd_kafka_outq_len(producer_->handle());
  if (paused_ == (waiting > (paused_ ? kResumeBelow : kPauseAbove))) return;
  paused_ = !paused_;
  PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(owned_.size())));
  for (int32_t p : owned_) rd_kafka_topic_partition_list_add(list.get(), config_.kafka.input_topic.c_str(), p);
  const rd_kafka_resp_err_t err =
      paused_ ? rd_kafka_pause_partitions(consumer_, list.get()) : rd_kafka_resume_partitions(consumer_, list.get());
  ShardCounters::Add(counters_.pauses, paused_ ? 1 : 0);
  counters_.paused.store(paused_, std::memory_order_relaxed);
  if (paused_) {
    spdlog::warn("shard {}: {} messages wait for the brokers; its {} partition(s) paused until fewer than {} do{}", index_,
                 waiting, owned_.size(), kResumeBelow, err ? Cat(" (", rd_kafka_err2str(err), ")") : "");
  } else {
    spdlog::info("shard {}: the brokers take its output again; its partitions resumed", index_);
  }
}

void Shard::RestoreAssigned() {
  if (restoring_.empty() || !fatal_.ok()) return;
  const auto started = std::chrono::steady_clock::now();
  absl::StatusOr<std::map<int32_t, RestoredState>> states = restorer_->Read(restoring_, kRestoreTimeout);
  if (!states.ok()) {
    return Fail(absl::UnavailableError(Cat("state of ", restoring_.size(), " partition(s) of ",
                                           config_.kafka.input_topic, " not restored: ", Message(states.status()))));
  }
  std::vector<std::pair<int32_t, std::string>> restored;  // partition, what its log line says
  std::string empty;                                      // the partitions with no saved state (a first start)
  for (auto& [p, state] : *states) {
    if (state.records_read == 0) Append(&empty, empty.empty() ? "" : ", ", p);
    else restored.emplace_back(p, std::string());
    Restore(p, state, state.records_read == 0 ? nullptr : &restored.back().second);
    state = RestoredState();  // its copy of the records, freed as soon as taken
    // Not known to be at its end until the consumer says so (its EOF).
    engine_->SetAtEnd(p, false, clock_->Now());
    kpi_->SetAtEnd(p, false, clock_->Now());
    if (paused_) {  // held back with the others until the brokers catch up
      PartitionList list(rd_kafka_topic_partition_list_new(1));
      rd_kafka_topic_partition_list_add(list.get(), config_.kafka.input_topic.c_str(), p);
      rd_kafka_pause_partitions(consumer_, list.get());
    }
  }
  // From the assignment to the state taken, read and rebuilt.
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  counters_.restore_seconds.store(counters_.restore_seconds.load(std::memory_order_relaxed) + seconds,
                                  std::memory_order_relaxed);
  for (const auto& [p, line] : restored) {
    spdlog::info("shard {}: restored {} [{}] ({:.3f}s with the shard's other assigned partitions): {}", index_,
                 config_.kafka.input_topic, p, seconds, line);
  }
  if (!empty.empty()) {
    spdlog::info("shard {}: no saved state for {} [{}] ({:.3f}s): they start empty", index_,
                 config_.kafka.input_topic, empty, seconds);
  }
  restoring_.clear();
  restoring_count_.store(0, std::memory_order_release);
}

void Shard::Restore(int32_t p, const RestoredState& state, std::string* line) {
  const Micros now = clock_->Now();
  std::array<uint64_t, static_cast<size_t>(RestoreDrop::kCount)> dropped{};
  for (const auto& [key, value] : state.records) {
    RestoreDrop d = RestoreDrop::kMalformed;
    if (!key.empty() && key[0] == kCentreRecord) continue;  // the centre stage's, in partition 0
    if (key == kPositionKey) {
      const std::optional<int64_t> next = DecodePosition(value);
      d = next ? RestoreDrop::kNone : RestoreDrop::kUnknownVersion;
      if (next) restored_through_[static_cast<size_t>(p)] = *next;
    } else if (!key.empty() && key[0] == kEngineRecord) {
      d = engine_->Restore(p, key, value, now);
    } else if (!key.empty() && key[0] == kKpiRecord) {
      d = kpi_->Restore(p, key, value, now);
    }
    ++dropped[static_cast<size_t>(d)];
  }
  positions_[static_cast<size_t>(p)] = restored_through_[static_cast<size_t>(p)];
  ShardCounters::Add(counters_.restored_partitions);
  ShardCounters::Add(counters_.restored_records, state.records_read);
  ShardCounters::Add(counters_.restored_bytes, state.bytes_read);
  std::string drops;
  for (size_t d = 1; d < dropped.size(); ++d) {
    if (dropped[d] == 0) continue;
    ShardCounters::Add(counters_.restore_dropped[d], dropped[d]);
    Append(&drops, drops.empty() ? "; dropped " : ", ", dropped[d], " ", RestoreDropName(static_cast<RestoreDrop>(d)));
  }
  if (state.incomplete > 0) Append(&drops, drops.empty() ? "; " : ", ", state.incomplete, " of an unfinished checkpoint");
  if (line == nullptr) return;
  const int64_t through = restored_through_[static_cast<size_t>(p)];
  *line = Cat(dropped[0], " records taken of ", state.records_read, " read (", state.bytes_read, " bytes), ",
              through >= 0 ? Cat("resuming at offset ", through)
                           : std::string("no whole checkpoint in it: reading on from the group's offset"),
              drops);
}

void Shard::WriteState(const std::function<StateWriter&(int32_t)>& out) {
  // Counts what a partition's engine and KPIs wrote: a partition with no
  // change and no new offset writes nothing, so an idle shard commits nothing.
  for (int32_t p : owned_) {
    const int64_t next = next_[static_cast<size_t>(p)];
    if (next < 0) continue;  // nothing read since assignment: its state is what was restored
    CountingWriter w(out(p));
    engine_->Checkpoint(p, w);
    kpi_->Checkpoint(p, w);
    if (w.count() == 0 && next == positions_[static_cast<size_t>(p)]) continue;
    w.Put(kPositionKey, EncodePosition(next));  // last: a restore takes the records up to here
    positions_[static_cast<size_t>(p)] = next;
  }
}

void Shard::Commit() {
  if (!exactly_once_) return MarkCheckpoint();
  if (!fatal_.ok()) return;
  uint64_t records = 0, bytes = 0;
  absl::Status written;
  std::optional<ChangelogWriter> writer;
  WriteState([&](int32_t p) -> StateWriter& {
    if (writer) {
      records += writer->records();
      bytes += writer->bytes();
      if (written.ok()) written = writer->status();
    }
    return writer.emplace(producer_.get(), config_.kafka.changelog_topic, p);
  });
  if (writer) {
    records += writer->records();
    bytes += writer->bytes();
    if (written.ok()) written = writer->status();
  }
  if (!written.ok()) return Fail(written);
  ShardCounters::Add(counters_.state_records, records);
  ShardCounters::Add(counters_.state_bytes, bytes);
  // Nothing produced, no offset moved (every position is unchanged): the
  // transaction stays open for the next interval. What the positions say is
  // committed already (records read again after a restore and skipped move
  // the offsets up to them): the consumer may commit that.
  if (producer_->produced() == produced_at_begin_) {
    for (int32_t p : owned_) {
      const int64_t at = positions_[static_cast<size_t>(p)];
      if (at >= 0) offsets_->committable[p].store(at, std::memory_order_release);
    }
    return;
  }

  PartitionList offsets(rd_kafka_topic_partition_list_new(static_cast<int>(owned_.size())));
  std::vector<std::pair<int32_t, int64_t>> committed;
  for (int32_t p : owned_) {
    const int64_t next = next_[static_cast<size_t>(p)];
    if (next < 0) continue;
    rd_kafka_topic_partition_list_add(offsets.get(), config_.kafka.input_topic.c_str(), p)->offset = next;
    committed.emplace_back(p, next);
  }
  // A retriable failure is tried again, a failure that needs an abort (or
  // any other) stops the shard: its state is ahead of what is committed, and
  // a restart reads back the state of the last committed transaction.
  auto attempt = [&](auto call) {
    absl::Status st;
    for (int tries = 0; tries < 10; ++tries) {
      st = call();
      if (!absl::IsUnavailable(st)) break;
      spdlog::warn("shard {}: {}; trying again", index_, Message(st));
    }
    return st;
  };
  absl::Status st;
  if (!committed.empty()) st = attempt([&] { return producer_->SendOffsets(consumer_, offsets.get(), kTxnTimeoutMs); });
  if (st.ok()) st = attempt([&] { return producer_->CommitTransaction(kTxnTimeoutMs); });
  if (!st.ok()) {
    if (absl::IsAborted(st)) (void)producer_->AbortTransaction(kTxnTimeoutMs);
    return Fail(absl::DataLossError(Cat(Message(st), "; nothing of this transaction is committed (input offsets "
                                                     "not committed): a restart resumes from the last one that was")));
  }
  ShardCounters::Add(counters_.transactions);
  for (const auto& [p, next] : committed) offsets_->committable[p].store(next, std::memory_order_release);
  produced_at_begin_ = producer_->produced();
  if (absl::Status b = producer_->BeginTransaction(); !b.ok()) Fail(b);
}

// At least once, the shard does not wait for its findings here: waiting (a
// flush) held every record arriving meanwhile for a produce round trip, once
// a commit_interval (BENCHMARKS.md (d)). An offset still becomes committable
// only once every finding and dead letter produced before it, and then the
// state that reflects it, are delivered: state is never ahead of findings.
void Shard::MarkCheckpoint() {
  PendingCheckpoint c{producer_->Mark(), {}, std::make_unique<ChangelogBatch>()};
  for (int32_t p : owned_) {
    const int64_t next = next_[static_cast<size_t>(p)];
    if (next >= 0) c.next.emplace_back(p, next);
  }
  WriteState([&](int32_t p) -> StateWriter& { return c.state->For(p); });
  if (pending_.size() < kMaxPendingCheckpoints) {
    pending_.push_back(std::move(c));
  } else {
    // The newest takes the place of the one before it, whose state records
    // go first, after the findings of both.
    PendingCheckpoint& last = pending_.back();
    if (last.state) last.state->Append(std::move(*c.state));
    else last.state = std::move(c.state);  // its own already went; the later mark covers them
    last.mark = c.mark;
    last.next = std::move(c.next);
  }
}

void Shard::PublishDelivered() {
  if (!fatal_.ok()) return;
  // Any delivery failure means a finding, dead letter or state record was
  // lost: stop before anything past it is committed.
  if (producer_->delivery_failures() != failures_seen_) {
    failures_seen_ = producer_->delivery_failures();
    return Fail(absl::DataLossError(
        "findings, dead letters or state could not be delivered; input offsets not committed"));
  }
  while (!pending_.empty() && producer_->DeliveredThrough(pending_.front().mark)) {
    PendingCheckpoint& c = pending_.front();
    if (c.state) {
      // Its findings are delivered: now its state, under a mark of its own.
      const size_t records = c.state->size();
      const uint64_t bytes = c.state->bytes();
      if (absl::Status s = c.state->Send(producer_.get(), config_.kafka.changelog_topic); !s.ok()) return Fail(s);
      ShardCounters::Add(counters_.state_records, records);
      ShardCounters::Add(counters_.state_bytes, bytes);
      c.state.reset();
      c.mark = producer_->Mark();
      continue;
    }
    for (const auto& [p, next] : c.next) offsets_->committable[p].store(next, std::memory_order_release);
    pending_.pop_front();
  }
}

void Shard::Checkpoint() {
  if (!fatal_.ok()) return;
  if (exactly_once_) return Commit();
  MarkCheckpoint();
  // Twice: the findings, then the state sent once they are delivered.
  for (int round = 0; round < 2 && fatal_.ok(); ++round) {
    if (absl::Status s = producer_->Flush(kFlushTimeoutMs); !s.ok()) {
      return Fail(absl::DataLossError(Cat(Message(s), "; input offsets not committed")));
    }
    PublishDelivered();  // everything flushed is delivered or failed now
  }
}

}  // namespace cxpulse
