#include "daemon/pipeline.h"

#include <chrono>
#include <cstdlib>
#include <random>
#include <thread>

#include "common/strings.h"
#include "daemon/consumer_stats.h"
#include "spdlog/spdlog.h"

namespace cxpulse {
namespace {

constexpr Micros kLagInterval = kMicrosPerSecond;
constexpr Micros kChangelogCheckInterval = 5 * kMicrosPerSecond;

std::string RandomHex64() {
  std::random_device device;
  const uint64_t v = uint64_t{device()} << 32 | device();
  return fmt::format("{:016x}", v);
}
constexpr auto kAckTimeout = std::chrono::seconds(60);

}  // namespace

absl::StatusOr<std::unique_ptr<Pipeline>> Pipeline::Create(const Config& config, const std::string& bootstrap,
                                                           std::shared_ptr<const RuleSet> rules, int shards,
                                                           PipelineMetrics* metrics, const Clock* clock) {
  std::unique_ptr<Pipeline> p(new Pipeline());
  p->config_ = config;
  p->config_.kafka.changelog_topic = config.kafka.changelog();  // its name from here on
  p->metrics_ = metrics;
  p->clock_ = clock;
  p->committed_.assign(kMaxPartitions, -1);
  for (int32_t i = 0; i < kMaxPartitions; ++i) {
    p->offsets_.committable[i].store(-1, std::memory_order_relaxed);
    p->offsets_.processed[i].store(-1, std::memory_order_relaxed);
    p->offsets_.at_end[i].store(false, std::memory_order_relaxed);
    p->offsets_.watermark[i].store(Watermark::kNone, std::memory_order_relaxed);
    p->offsets_.heard_until[i].store(0, std::memory_order_relaxed);
    p->offsets_.heard_through[i].store(0, std::memory_order_relaxed);
  }

  KafkaProperties props = {{"bootstrap.servers", bootstrap},
                           {"client.id", "cxpulse"},
                           {"group.id", config.kafka.group_id},
                           {"enable.auto.commit", "false"},  // committed after findings are delivered
                           {"auto.offset.reset", "earliest"},
                           {"enable.partition.eof", "true"}};  // for --exit-when-idle and at_end
  for (const auto& [k, v] : config.kafka.properties) props[k] = v;
  // Not overridable: the watermarks need to know the brokers are answering (OnStats).
  props["statistics.interval.ms"] = "1000";
  if (auto it = props.find("fetch.wait.max.ms"); it != props.end()) {
    p->fetch_wait_ = std::atoll(it->second.c_str()) * 1000;
  }
  absl::StatusOr<rd_kafka_conf_t*> conf = NewKafkaConf(props);
  if (!conf.ok()) return conf.status();
  rd_kafka_conf_set_stats_cb(*conf, &Pipeline::OnStats);
  rd_kafka_conf_set_rebalance_cb(*conf, &Pipeline::OnRebalance);
  rd_kafka_conf_set_offset_commit_cb(*conf, &Pipeline::OnCommit);
  rd_kafka_conf_set_opaque(*conf, p.get());
  absl::StatusOr<KafkaHandle> consumer = NewKafkaClient(RD_KAFKA_CONSUMER, *conf);
  if (!consumer.ok()) return consumer.status();
  p->consumer_ = *std::move(consumer);
  rd_kafka_poll_set_consumer(p->consumer_.get());

  p->rules_ = rules;
  p->stats_.resize(static_cast<size_t>(shards));
  // Exactly once: one transactional producer per shard, named as Kafka
  // Streams' exactly-once v2 names its threads' producers: fencing a member
  // that lost its partitions is the group generation's job (KIP-447), so the
  // id need not follow the partitions, only be unique to this process.
  const std::string instance = RandomHex64();
  p->queue_labels_ = std::make_unique<QueueLabels>(config.kpi);
  for (int i = 0; i < shards; ++i) {
    // Each shard evaluates its own copy: an Expression's scratch is single-threaded.
    auto copy = std::make_shared<const RuleSet>(*rules);
    absl::StatusOr<std::unique_ptr<Shard>> shard = Shard::Create(
        i, config, bootstrap, copy, p->stats_[static_cast<size_t>(i)].For(*copy), p->queue_labels_.get(),
        p->consumer_.get(), &p->offsets_, clock, Cat(config.kafka.group_id, "-", instance, "-", i));
    if (!shard.ok()) return shard.status();
    p->shards_.push_back(*std::move(shard));
  }
  absl::StatusOr<std::unique_ptr<CentreStage>> centre = CentreStage::Create(config, bootstrap, clock);
  if (!centre.ok()) return centre.status();
  p->centre_ = *std::move(centre);

  PartitionList topics(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(topics.get(), config.kafka.input_topic.c_str(), RD_KAFKA_PARTITION_UA);
  if (rd_kafka_resp_err_t err = rd_kafka_subscribe(p->consumer_.get(), topics.get()); err) {
    return absl::UnavailableError(Cat("subscribe to ", config.kafka.input_topic, ": ", rd_kafka_err2str(err)));
  }
  return p;
}

Pipeline::~Pipeline() {
  (void)Stop();
  shards_.clear();  // their queues go before the consumer that made them
  centre_.reset();
}

void Pipeline::Start() {
  for (auto& s : shards_) s->Start();
}

absl::Status Pipeline::Poll(Micros now) {
  if (!changelog_checked_ && now - last_changelog_check_ >= kChangelogCheckInterval) {
    // Here, not at start: the admin endpoint answers while the brokers do
    // not. No answer yet is asked again; a wrong topic stops the daemon.
    last_changelog_check_ = now;
    absl::Status s = CheckChangelog();
    if (!s.ok() && !absl::IsUnavailable(s)) return failure_ = s;
    changelog_checked_ = s.ok();
  }
  // Partition messages go to the shards' queues; what reaches the consumer's
  // own queue is rebalances (served inside this call) and errors.
  while (rd_kafka_message_t* msg = rd_kafka_consumer_poll(consumer_.get(), 0)) {
    if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR && msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      spdlog::warn("consumer: {}", rd_kafka_message_errstr(msg));
    } else if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      // Cannot happen while every assigned partition is forwarded; if it
      // does, the record stays uncommitted and is read again after a restart.
      spdlog::error("record of {} [{}] reached the group queue; not processed", rd_kafka_topic_name(msg->rkt),
                    msg->partition);
    }
    rd_kafka_message_destroy(msg);
  }
  for (const auto& s : shards_) {
    if (s->failed() && failure_.ok()) failure_ = s->status();
  }
  {
    std::lock_guard lock(control_);
    ServeCentre();
  }
  if (!failure_.ok()) return failure_;
  if (now - last_commit_ >= config_.engine.commit_interval) {
    Commit(/*handover=*/false);
    last_commit_ = now;
  }
  if (now - last_lag_ >= kLagInterval) {
    UpdateLag();
    last_lag_ = now;
  }
  return absl::OkStatus();
}

absl::Status Pipeline::Stop() {
  if (stopped_) return failure_;
  stopped_ = true;
  if (centre_ == nullptr) return failure_;  // Create failed part-way
  centre_->RequestStop();             // it drains meanwhile
  for (auto& s : shards_) s->Stop();  // each finishes its batch and checkpoints
  centre_->Join();
  metrics_->centre_active.Set(0);
  for (const auto& s : shards_) {
    if (!s->status().ok() && failure_.ok()) failure_ = s->status();
  }
  if (centre_->failed() && failure_.ok()) failure_ = centre_->status();
  if (failure_.ok()) Commit(/*handover=*/true);
  // Leaving the group revokes: with the shards stopped, nothing more is
  // processed and nothing uncommitted is committed.
  rd_kafka_consumer_close(consumer_.get());
  return failure_;
}

bool Pipeline::AllAtEnd() const {
  if (assigned_.empty()) return false;
  for (int32_t p : assigned_) {
    if (!offsets_.at_end[p].load(std::memory_order_relaxed)) return false;
  }
  return !centre_wanted_ || (centre_->active() && centre_->at_end());
}

void Pipeline::ServeCentre() {
  if (centre_->running() && centre_->finished()) {
    centre_->Join();  // finished: does not wait
    metrics_->centre_active.Set(0);
    if (centre_->failed() && failure_.ok()) failure_ = centre_->status();
    if (centre_wanted_) spdlog::info("centre stage: stopped; starting again (partition 0 is still here)");
    else spdlog::info("centre stage: stopped (partition 0 went to another member)");
  }
  if (centre_wanted_ && !centre_->running() && !stopped_ && failure_.ok()) {
    centre_rules_ = rules_;
    auto copy = std::make_shared<const RuleSet>(*rules_);
    centre_->Start(copy, centre_stats_.For(*copy));
  }
  if (centre_->running() && centre_rules_ != rules_) {
    auto copy = std::make_shared<const RuleSet>(*rules_);
    if (centre_->PostRules(CentreCommand{copy, centre_stats_.For(*copy)})) centre_rules_ = rules_;
  }
  metrics_->centre_active.Set(centre_->active() ? 1 : 0);
  const Micros wm = centre_->watermark();
  metrics_->centre_watermark.Set(wm == Watermark::kNone ? 0 : static_cast<double>(wm) / kMicrosPerSecond);
  metrics_->centre_held.Set(static_cast<double>(centre_->held()));
  const uint64_t late = centre_->late(), forced = centre_->forced();
  metrics_->centre_late.Increment(static_cast<double>(late - centre_late_seen_));
  metrics_->centre_forced.Increment(static_cast<double>(forced - centre_forced_seen_));
  centre_late_seen_ = late;
  centre_forced_seen_ = forced;
  const uint64_t transactions = centre_->transactions();
  metrics_->centre_transactions.Increment(static_cast<double>(transactions - centre_transactions_seen_));
  centre_transactions_seen_ = transactions;
}

uint64_t Pipeline::events() const {
  uint64_t n = 0;
  for (const auto& s : shards_) {
    for (const auto& row : s->counters().events) {
      for (const auto& c : row) n += c.load(std::memory_order_relaxed);
    }
  }
  return n;
}

uint64_t Pipeline::dead_letters() const {
  uint64_t n = 0;
  for (const auto& s : shards_) {
    for (const auto& c : s->counters().dead_letters) n += c.load(std::memory_order_relaxed);
  }
  return n;
}

std::vector<RuleStats*> Pipeline::StatsTable::For(const RuleSet& rules) {
  std::vector<RuleStats*> out;
  for (const Rule& r : rules.rules()) {
    auto [it, inserted] = by_name.try_emplace(r.name, nullptr);
    if (inserted) it->second = &stats.emplace_back();
    out.push_back(it->second);
  }
  return out;
}

void Pipeline::Reload(std::shared_ptr<const RuleSet> rules) {
  std::lock_guard lock(control_);
  std::vector<uint64_t> seqs(shards_.size());
  for (size_t i = 0; i < shards_.size(); ++i) {
    auto copy = std::make_shared<const RuleSet>(*rules);
    ShardCommand c{ShardCommand::Kind::kRules, -1, ++next_seq_, copy, stats_[i].For(*copy)};
    seqs[i] = c.seq;
    while (!shards_[i]->Post(std::move(c))) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    rd_kafka_queue_yield(shards_[i]->queue());
  }
  for (size_t i = 0; i < shards_.size(); ++i) {
    const auto deadline = std::chrono::steady_clock::now() + kAckTimeout;
    while (shards_[i]->acked() < seqs[i] && !shards_[i]->failed() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  // A running centre stage gets them from the Kafka control thread's next
  // Poll (ServeCentre); a later start takes them anyway.
  rules_ = std::move(rules);
}

Pipeline::RuleTotals Pipeline::Totals(const std::string& rule) const {
  std::lock_guard lock(control_);
  RuleTotals t;
  auto add = [&](const StatsTable& table) {
    auto it = table.by_name.find(rule);
    if (it == table.by_name.end()) return;
    t.evaluations += it->second->evaluations.load(std::memory_order_relaxed);
    t.evaluation_seconds += static_cast<double>(it->second->evaluation_nanos.load(std::memory_order_relaxed)) / 1e9;
    t.findings += it->second->findings.load(std::memory_order_relaxed);
    t.key_limit_hits += it->second->key_limit_hits.load(std::memory_order_relaxed);
    t.keys += it->second->keys.load(std::memory_order_relaxed);
  };
  for (const StatsTable& table : stats_) add(table);
  add(centre_stats_);  // a rule runs in the shards or in the centre stage, by its scope
  return t;
}

void Pipeline::PostAndWait(ShardCommand::Kind kind, const std::vector<int32_t>& partitions) {
  std::vector<uint64_t> last(shards_.size(), 0);
  std::unique_lock lock(control_);  // posting only: the acknowledgements are awaited without it
  for (int32_t p : partitions) {
    const uint64_t seq = ++next_seq_;
    ShardCommand c{kind, p, seq, nullptr, {}};
    while (!Owner(p).Post(std::move(c))) {
      rd_kafka_queue_yield(Owner(p).queue());
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    last[OwnerIndex(p)] = seq;
  }
  lock.unlock();
  // A shard blocked in its poll returns at once and reads its commands.
  for (size_t i = 0; i < shards_.size(); ++i) {
    if (last[i] > 0) rd_kafka_queue_yield(shards_[i]->queue());
  }
  const auto deadline = std::chrono::steady_clock::now() + kAckTimeout;
  for (size_t i = 0; i < shards_.size(); ++i) {
    while (shards_[i]->acked() < last[i] && !shards_[i]->failed() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
}

absl::Status Pipeline::CheckChangelog() {
  const rd_kafka_metadata_t* metadata = nullptr;
  constexpr int kMetadataTimeoutMs = 1'000;
  if (rd_kafka_resp_err_t err = rd_kafka_metadata(consumer_.get(), 1, nullptr, &metadata, kMetadataTimeoutMs); err) {
    return absl::UnavailableError(Cat("cluster metadata: ", rd_kafka_err2str(err)));
  }
  int input = -1, changelog = -1;
  for (int i = 0; i < metadata->topic_cnt; ++i) {
    const rd_kafka_metadata_topic_t& t = metadata->topics[i];
    if (t.err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    if (config_.kafka.input_topic == t.topic) input = t.partition_cnt;
    if (config_.kafka.changelog_topic == t.topic) changelog = t.partition_cnt;
  }
  rd_kafka_metadata_destroy(metadata);
  // Partition p's state lives in changelog partition p: the counts must match.
  if (input > 0 && changelog != input) {
    return absl::FailedPreconditionError(
        Cat("changelog topic ", config_.kafka.changelog_topic,
            changelog < 0 ? " does not exist" : Cat(" has ", changelog, " partitions"), "; it must have the ", input,
            " partitions of ", config_.kafka.input_topic, " and cleanup.policy=compact (README.md, \"Delivery\")"));
  }
  return absl::OkStatus();
}

// Exactly once, the offsets go with each shard's transaction; once it has
// committed, the consumer commits them too. That adds nothing on a cluster
// that keeps transactional offsets, and it keeps the group's offsets (lag
// tools, a cluster or mock that does not keep them) moving. A commit that
// lands after a newer transactional one cannot make a record count twice:
// the changelog's position record skips what the state already holds.
void Pipeline::Commit(bool handover) {  std::vector<std::pair<int32_t, int64_t>> offsets;
  for (int32_t p : assigned_) {
    const int64_t next = offsets_.committable[p].load(std::memory_order_acquire);
    if (next >= 0 && (handover || next > committed_[static_cast<size_t>(p)])) offsets.emplace_back(p, next);
  }
  if (offsets.empty()) return;
  PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size())));
  for (const auto& [p, off] : offsets) {
    rd_kafka_topic_partition_list_add(list.get(), config_.kafka.input_topic.c_str(), p)->offset = off;
  }
  // The broker's answer arrives in OnCommit (served by Poll, or before a
  // synchronous commit returns); only a confirmed offset counts as committed,
  // so a commit refused during a rebalance is sent again.
  if (rd_kafka_resp_err_t err = rd_kafka_commit(consumer_.get(), list.get(), handover ? 0 : 1); err) {
    // Nothing is lost: records are re-read and findings re-made with the
    // same ids. Worth a warning, not a stop.
    spdlog::warn("offset commit failed: {}", rd_kafka_err2str(err));
  }
}

void Pipeline::OnCommit(rd_kafka_t*, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* offsets, void* opaque) {
  auto* self = static_cast<Pipeline*>(opaque);
  if (offsets == nullptr) return;
  for (int i = 0; i < offsets->cnt; ++i) {
    const auto& tp = offsets->elems[i];
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && tp.err == RD_KAFKA_RESP_ERR_NO_ERROR && tp.partition >= 0 &&
        tp.partition < kMaxPartitions) {
      self->committed_[static_cast<size_t>(tp.partition)] =
          std::max(self->committed_[static_cast<size_t>(tp.partition)], tp.offset);
    }
  }
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
    spdlog::warn("offset commit: {}", rd_kafka_err2str(err));
  }
}

absl::Status Pipeline::Readiness() const {
  if (stopped_) return absl::UnavailableError("draining");
  for (const auto& s : shards_) {
    if (s->failed()) return absl::UnavailableError(Cat("a shard failed: ", Message(s->status())));
  }
  if (awaiting_assignment_) return absl::UnavailableError("waiting for partition assignment");
  int restoring = 0;
  for (const auto& s : shards_) restoring += s->restoring();
  if (restoring > 0) {
    const int total = assigned_count_.load(std::memory_order_acquire);
    return absl::UnavailableError(Cat("restoring state (", total - restoring, " of ", total, " partitions)"));
  }
  return absl::OkStatus();
}

void Pipeline::UpdateLag() {
  int64_t total = 0;
  for (int32_t p : assigned_) {
    int64_t low = 0, high = 0;
    // Cached from fetch responses: no network round trip.
    if (rd_kafka_get_watermark_offsets(consumer_.get(), config_.kafka.input_topic.c_str(), p, &low, &high) != 0 ||
        high < 0) {
      continue;
    }
    int64_t next = offsets_.processed[p].load(std::memory_order_relaxed);
    if (next < 0) {
      // Nothing read since assignment: where the consumer will start (local, no round trip).
      PartitionList position(rd_kafka_topic_partition_list_new(1));
      rd_kafka_topic_partition_list_add(position.get(), config_.kafka.input_topic.c_str(), p);
      if (rd_kafka_position(consumer_.get(), position.get()) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        next = position->elems[0].offset;
      }
    }
    const int64_t lag = std::max<int64_t>(0, high - (next >= 0 ? next : low));
    metrics_->consumer_lag.Get(p).Set(static_cast<double>(lag));
    total += lag;
    if (const Micros wm = offsets_.watermark[p].load(std::memory_order_relaxed); wm != Watermark::kNone) {
      metrics_->watermark_delay.Get(p).Set(static_cast<double>(clock_->Now() - wm) / kMicrosPerSecond);
    }
  }
  lag_.store(total, std::memory_order_relaxed);
}

int Pipeline::OnStats(rd_kafka_t*, char* json, size_t json_len, void* opaque) {
  auto* self = static_cast<Pipeline*>(opaque);
  const Micros steady = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::steady_clock::now().time_since_epoch()).count();
  for (const Heard& h : HeardFromStats(std::string_view(json, json_len), self->config_.kafka.input_topic,
                                       {self->clock_->Now(), steady}, self->fetch_wait_)) {
    if (h.partition >= kMaxPartitions) continue;
    auto& slot = self->offsets_.heard_until[h.partition];
    if (h.at <= slot.load(std::memory_order_relaxed)) continue;
    // The offset first: a shard that sees the new time sees an offset at
    // least as new, so it never takes a time for records it has not read.
    self->offsets_.heard_through[h.partition].store(h.through, std::memory_order_release);
    slot.store(h.at, std::memory_order_release);
  }
  return 0;  // librdkafka frees `json`
}

void Pipeline::OnRebalance(rd_kafka_t*, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                           void* opaque) {
  static_cast<Pipeline*>(opaque)->Rebalance(err, parts);
}

void Pipeline::Rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts) {
  const bool cooperative = std::string_view(rd_kafka_rebalance_protocol(consumer_.get())) == "COOPERATIVE";
  std::vector<int32_t> partitions;
  for (int i = 0; i < parts->cnt; ++i) {
    const int32_t p = parts->elems[i].partition;
    if (p < kMaxPartitions) partitions.push_back(p);
    else failure_ = absl::OutOfRangeError(Cat("partition ", p, " is beyond the supported ", kMaxPartitions));
  }
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS && stopped_) {
    // An assignment that completes while the consumer closes (a join was in
    // flight at SIGTERM): the shards are stopped, so nobody takes it on.
    // librdkafka still expects it acknowledged; the close revokes it next.
    if (cooperative) {
      if (rd_kafka_error_t* error = rd_kafka_incremental_assign(consumer_.get(), parts)) rd_kafka_error_destroy(error);
    } else {
      rd_kafka_assign(consumer_.get(), parts);
    }
    return;
  }
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    for (int32_t p : partitions) {
      offsets_.committable[p].store(-1, std::memory_order_relaxed);
      offsets_.processed[p].store(-1, std::memory_order_relaxed);
      offsets_.at_end[p].store(false, std::memory_order_relaxed);
      offsets_.watermark[p].store(Watermark::kNone, std::memory_order_relaxed);
      offsets_.heard_until[p].store(0, std::memory_order_relaxed);
      offsets_.heard_through[p].store(0, std::memory_order_relaxed);
      committed_[static_cast<size_t>(p)] = -1;
    }
    // The shards learn of their partitions before the first message can arrive.
    PostAndWait(ShardCommand::Kind::kAssign, partitions);
    // Partition 0 is the centre stage's lease: whoever holds it runs it.
    if (std::find(partitions.begin(), partitions.end(), 0) != partitions.end()) {
      centre_wanted_ = true;
      std::lock_guard lock(control_);
      ServeCentre();
    }
    for (int32_t p : partitions) {
      QueueHandle pq(
          rd_kafka_queue_get_partition(consumer_.get(), config_.kafka.input_topic.c_str(), p));
      rd_kafka_queue_forward(pq.get(), Owner(p).queue());
      assigned_.push_back(p);
      assigned_count_.store(static_cast<int>(assigned_.size()), std::memory_order_release);
      metrics_->consumer_lag.Get(p).Set(0);
    }
    awaiting_assignment_ = false;
    spdlog::info("assigned {} partition(s) of {} to {} shard(s)", parts->cnt, config_.kafka.input_topic,
                 shards_.size());
    if (cooperative) {
      if (rd_kafka_error_t* error = rd_kafka_incremental_assign(consumer_.get(), parts)) {
        failure_ = absl::InternalError(Cat("incremental assign: ", rd_kafka_error_string(error)));
        rd_kafka_error_destroy(error);
      }
    } else if (rd_kafka_resp_err_t e = rd_kafka_assign(consumer_.get(), parts); e) {
      failure_ = absl::InternalError(Cat("assign: ", rd_kafka_err2str(e)));
    }
    return;
  }
  // Revoked: each owning shard checkpoints and drops the partition's state,
  // then what is delivered is committed before the partition moves on.
  // Without partition 0 the centre stage stops (not waited for: it
  // commits what it has delivered and Poll joins it once it has finished).
  if (std::find(partitions.begin(), partitions.end(), 0) != partitions.end()) {
    centre_wanted_ = false;
    centre_->RequestStop();
  }
  if (!stopped_) PostAndWait(ShardCommand::Kind::kRevoke, partitions);
  if (failure_.ok()) Commit(/*handover=*/true);
  for (int32_t p : partitions) {
    QueueHandle pq(
        rd_kafka_queue_get_partition(consumer_.get(), config_.kafka.input_topic.c_str(), p));
    rd_kafka_queue_forward(pq.get(), nullptr);
    std::erase(assigned_, p);
    assigned_count_.store(static_cast<int>(assigned_.size()), std::memory_order_release);
    metrics_->consumer_lag.Remove(p);
    metrics_->watermark_delay.Remove(p);
  }
  // Eager rebalancing revokes everything before the new assignment comes.
  if (assigned_.empty()) awaiting_assignment_ = true;
  spdlog::info("revoked {} partition(s) of {}", parts->cnt, config_.kafka.input_topic);
  if (cooperative) {
    if (rd_kafka_error_t* error = rd_kafka_incremental_unassign(consumer_.get(), parts)) rd_kafka_error_destroy(error);
  } else {
    rd_kafka_assign(consumer_.get(), nullptr);
  }
}

}  // namespace cxpulse
