// The daemon's configuration file (YAML), loaded once at start-up on the main thread.
// Plain data after loading: copy it freely, read it from any thread.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/time.h"

namespace cxpulse {

struct KafkaConfig {
  // "host:port,host:port", or "embedded" for an in-process librdkafka mock
  // cluster (real Kafka protocol on loopback) that the daemon starts itself.
  std::string brokers = "embedded";
  int embedded_partitions = 8;  // partitions of the input topic when embedded
  std::string group_id = "cxpulse";
  std::string input_topic = "cx.interactions";
  std::string findings_topic = "cx.findings";
  std::string dead_letter_topic = "cx.deadletter";
  // The compacted topic that holds the rules' and KPIs' state, co-partitioned
  // with the input (daemon/changelog.h); empty: changelog() names it.
  std::string changelog_topic;
  // Its name: "<group_id>-changelog" unless set, as Kafka Streams names its
  // changelogs after the application.
  std::string changelog() const { return changelog_topic.empty() ? group_id + "-changelog" : changelog_topic; }
  // Passed to librdkafka as they are (security.protocol, sasl.*, ssl.*, ...),
  // applied last so they override cxpulse's own defaults. One default of
  // librdkafka's is changed here (a user's value replaces it): a broker that
  // is back is tried again within 1 s, as the Java client does, not after a
  // backoff doubling up to 10 s, which outlasted a 10 s transaction
  // (BrokerFaultsTest.BrokerDownThenUpExactlyOnce: "messages timed out").
  std::map<std::string, std::string> properties = {{"reconnect.backoff.max.ms", "1000"}};
};

// What a finding's delivery promises (README.md, "Delivery").
enum class Delivery {
  // Findings, dead letters, state and input offsets commit in one Kafka
  // transaction per commit interval: read_committed readers see each once.
  kExactlyOnce,
  // Offsets are committed after what they produced is delivered; a crash
  // may repeat findings, with the same finding_id.
  kAtLeastOnce,
};

struct EngineConfig {
  Delivery delivery = Delivery::kExactlyOnce;
  Micros allowed_lateness = 30 * kMicrosPerSecond;
  // A partition with no events for this long lets its watermark follow the
  // wall clock, so absence rules still fire on a quiet partition.
  Micros idle_partition_timeout = 10 * kMicrosPerSecond;
  // Transactions commit (exactly once), or findings are flushed and input
  // offsets committed (at least once), this often; state is checkpointed as often.
  Micros commit_interval = 1 * kMicrosPerSecond;
  // Events stamped further than this ahead of the wall clock are invalid.
  Micros max_future_skew = 5 * 60 * kMicrosPerSecond;
  // Keys one rule may hold; beyond it new keys are not tracked and
  // cxpulse_rule_key_limit_hits_total counts them.
  int64_t max_keys_per_rule = 2'000'000;
  // Events the centre stage holds at most while it merges the partitions in
  // event time (about 300 bytes each); beyond it the oldest goes early.
  int64_t centre_max_held_events = 262'144;
  // SIGTERM's drain (flush findings, commit, leave the group) gives up after
  // this long, with exit 3: a broker that does not answer must not hold the
  // process for ever. What was not committed is read again after a restart.
  Micros drain_timeout = 30 * kMicrosPerSecond;
};

// A queue's answer-time target: `objective` of contacts answered within `threshold`.
struct ServiceLevel {
  Micros threshold = 20 * kMicrosPerSecond;
  double objective = 0.8;
};

// A sliding KPI window; `label` is its length as written in the config ("15m").
struct KpiWindow {
  std::string label;
  Micros length = 0;
};

// Live contact-centre KPIs (kpi/kpi.h).
struct KpiConfig {
  std::vector<KpiWindow> windows = {{"15m", 15 * 60 * kMicrosPerSecond}, {"1h", 3600 * kMicrosPerSecond}};
  Micros bucket = 60 * kMicrosPerSecond;  // every window is a multiple of it
  // A contact_started is a repeat if its customer started another within this.
  Micros repeat_window = 24 * 3600 * kMicrosPerSecond;
  // A callback not attempted by its due time plus this is missed.
  Micros callback_grace = 5 * 60 * kMicrosPerSecond;
  // Queues not configured below get a label of their own, first come, up to
  // this many; the rest fold into "other".
  int max_queues = 20;
  ServiceLevel service_level;  // for every queue without its own
  std::map<std::string, ServiceLevel> queues;  // always labelled
};

struct Config {
  KafkaConfig kafka;
  EngineConfig engine;
  KpiConfig kpi;
  std::string rules_path = "rules";  // a file or directory; relative to the config file
  std::string admin_address = "127.0.0.1:9464";  // /metrics, /healthz, /readyz
};

// Reads and validates a config file. Errors read "file:line:col: message".
absl::StatusOr<Config> LoadConfig(const std::string& path);

// The same, from text (for tests and the demo); `name` is used in messages and
// `base_dir` anchors a relative rules path.
absl::StatusOr<Config> ParseConfig(const std::string& text, const std::string& name,
                                   const std::string& base_dir);

}  // namespace cxpulse
