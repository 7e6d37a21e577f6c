#include "config/config.h"

#include <gtest/gtest.h>

#include "common/strings.h"

#include "support/temp_dir.h"

namespace cxpulse {
namespace {

TEST(ConfigTest, ReadsEverySectionAndPassesKafkaPropertiesThrough) {
  testing::TempDir dir;
  const std::string path = dir.Write("cxpulse.yaml", R"(
kafka:
  brokers: k1:9092,k2:9092
  group_id: cx-prod
  topics: {input: in, findings: out, dead_letter: dlq, changelog: state}
  properties:
    security.protocol: SASL_SSL
    sasl.mechanism: PLAIN
rules: my-rules
admin: {address: 0.0.0.0:9000}
engine: {allowed_lateness: 1m, idle_partition_timeout: 20s, commit_interval: 500ms, centre_max_held_events: 1000,
         delivery: at_least_once, drain_timeout: 5s}
)");
  auto c = LoadConfig(path);
  ASSERT_TRUE(c.ok()) << Message(c.status());
  EXPECT_EQ(c->kafka.brokers, "k1:9092,k2:9092");
  EXPECT_EQ(c->kafka.group_id, "cx-prod");
  EXPECT_EQ(c->kafka.input_topic, "in");
  EXPECT_EQ(c->kafka.findings_topic, "out");
  EXPECT_EQ(c->kafka.dead_letter_topic, "dlq");
  EXPECT_EQ(c->kafka.changelog(), "state");
  EXPECT_EQ(c->kafka.properties.at("security.protocol"), "SASL_SSL");
  EXPECT_EQ(c->kafka.properties.at("sasl.mechanism"), "PLAIN");
  EXPECT_EQ(c->kafka.properties.at("reconnect.backoff.max.ms"), "1000") << "cxpulse's default, not set in the file";
  EXPECT_EQ(c->rules_path, dir.path() + "/my-rules");  // relative to the config file
  EXPECT_EQ(c->admin_address, "0.0.0.0:9000");
  EXPECT_EQ(c->engine.allowed_lateness, 60 * kMicrosPerSecond);
  EXPECT_EQ(c->engine.idle_partition_timeout, 20 * kMicrosPerSecond);
  EXPECT_EQ(c->engine.commit_interval, 500'000);
  EXPECT_EQ(c->engine.centre_max_held_events, 1000);
  EXPECT_EQ(c->engine.delivery, Delivery::kAtLeastOnce);
  EXPECT_EQ(c->engine.drain_timeout, 5 * kMicrosPerSecond);
}

TEST(ConfigTest, DefaultsAreTheEmbeddedCluster) {
  auto c = ParseConfig("", "x.yaml", "");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->kafka.brokers, "embedded");
  EXPECT_EQ(c->kafka.input_topic, "cx.interactions");
  EXPECT_EQ(c->admin_address, "127.0.0.1:9464");
  EXPECT_EQ(c->engine.delivery, Delivery::kExactlyOnce);
  // Named after the consumer group, as Kafka Streams names its changelogs.
  EXPECT_EQ(c->kafka.changelog(), "cxpulse-changelog");
  EXPECT_EQ(ParseConfig("kafka: {group_id: billing}\n", "x.yaml", "")->kafka.changelog(), "billing-changelog");
  EXPECT_EQ(c->engine.drain_timeout, 30 * kMicrosPerSecond);
}

TEST(ConfigTest, MistakesArePositioned) {
  EXPECT_EQ(std::string(Message(ParseConfig("kafka:\n  brokerz: x\n", "c.yaml", "").status())),
            "c.yaml:2:3: unknown key \"brokerz\"");
  EXPECT_EQ(std::string(Message(ParseConfig("engine:\n  allowed_lateness: soon\n", "c.yaml", "").status())),
            "c.yaml:2:21: bad duration \"soon\": expected a number followed by ms, s, m, h, d or w");
  EXPECT_EQ(std::string(Message(ParseConfig("engine: {centre_max_held_events: 0}\n", "c.yaml", "").status())),
            "c.yaml:1:34: must be at least 1");
  EXPECT_EQ(std::string(Message(ParseConfig("engine: {drain_timeout: 0s}\n", "c.yaml", "").status())),
            "c.yaml:1:25: must be positive");
  EXPECT_EQ(std::string(Message(ParseConfig("kafka: [1\n", "c.yaml", "").status())).substr(0, 9), "c.yaml:2:");
  EXPECT_EQ(std::string(Message(ParseConfig("engine: {delivery: twice}\n", "c.yaml", "").status())),
            "c.yaml:1:20: unknown delivery \"twice\" (exactly_once or at_least_once)");
  EXPECT_EQ(std::string(Message(ParseConfig("kafka: {properties: {transactional.id: x}}\n", "c.yaml", "").status())),
            "c.yaml:1:22: \"transactional.id\" is set by cxpulse (see engine.delivery)");
  EXPECT_FALSE(LoadConfig("/nonexistent/cxpulse.yaml").ok());
}

TEST(ConfigTest, ReadsTheKpiSection) {
  auto c = ParseConfig(R"(
kpi:
  windows: [5m, 90m]
  bucket: 30s
  repeat_window: 48h
  callback_grace: 2m
  max_queues: 3
  service_level: {threshold: 15s, objective: 0.9}
  queues:
    billing: {service_level: {threshold: 30s, objective: 0.85}}
    sales: {service_level: {objective: 0.7}}
    tech:
)", "c.yaml", "");
  ASSERT_TRUE(c.ok()) << Message(c.status());
  const KpiConfig& k = c->kpi;
  ASSERT_EQ(k.windows.size(), 2u);
  EXPECT_EQ(k.windows[0].label, "5m");
  EXPECT_EQ(k.windows[0].length, 5 * 60 * kMicrosPerSecond);
  EXPECT_EQ(k.windows[1].label, "90m");
  EXPECT_EQ(k.windows[1].length, 90 * 60 * kMicrosPerSecond);
  EXPECT_EQ(k.bucket, 30 * kMicrosPerSecond);
  EXPECT_EQ(k.repeat_window, 48 * 3600 * kMicrosPerSecond);
  EXPECT_EQ(k.callback_grace, 120 * kMicrosPerSecond);
  EXPECT_EQ(k.max_queues, 3);
  EXPECT_EQ(k.service_level.threshold, 15 * kMicrosPerSecond);
  EXPECT_EQ(k.service_level.objective, 0.9);
  ASSERT_EQ(k.queues.size(), 3u);
  EXPECT_EQ(k.queues.at("billing").threshold, 30 * kMicrosPerSecond);
  EXPECT_EQ(k.queues.at("billing").objective, 0.85);
  EXPECT_EQ(k.queues.at("sales").threshold, 15 * kMicrosPerSecond);  // the default's, where left out
  EXPECT_EQ(k.queues.at("sales").objective, 0.7);
  EXPECT_EQ(k.queues.at("tech").objective, 0.9);
}

TEST(ConfigTest, KpiDefaultsKeepOldConfigsWorking) {
  auto c = ParseConfig("engine: {allowed_lateness: 1m}\n", "c.yaml", "");
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(c->kpi.windows.size(), 2u);
  EXPECT_EQ(c->kpi.windows[0].label, "15m");
  EXPECT_EQ(c->kpi.windows[1].label, "1h");
  EXPECT_EQ(c->kpi.bucket, 60 * kMicrosPerSecond);
  EXPECT_EQ(c->kpi.repeat_window, 24 * 3600 * kMicrosPerSecond);
  EXPECT_EQ(c->kpi.callback_grace, 5 * 60 * kMicrosPerSecond);
  EXPECT_EQ(c->kpi.max_queues, 20);
  EXPECT_EQ(c->kpi.service_level.threshold, 20 * kMicrosPerSecond);
  EXPECT_EQ(c->kpi.service_level.objective, 0.8);
  EXPECT_TRUE(c->kpi.queues.empty());
}

TEST(ConfigTest, KpiMistakesArePositioned) {
  auto error = [](const std::string& text) { return std::string(Message(ParseConfig(text, "c.yaml", "").status())); };
  EXPECT_EQ(error("kpi:\n  windowz: [1h]\n"), "c.yaml:2:3: unknown key \"windowz\"");
  EXPECT_EQ(error("kpi:\n  windows: [15m, 90s]\n"), "c.yaml:2:18: must be a positive multiple of the bucket (1m)");
  EXPECT_EQ(error("kpi:\n  windows: [15m, 15m]\n"), "c.yaml:2:18: duplicate window");
  EXPECT_EQ(error("kpi:\n  windows: []\n"), "c.yaml:2:12: expected a list of durations");
  EXPECT_EQ(error("kpi:\n  windows: [7d]\n"), "c.yaml:2:13: more than 1440 buckets: make the bucket longer");
  EXPECT_EQ(error("kpi:\n  bucket: 7m\n"), "c.yaml:2:11: the default window 15m must be a multiple of it");
  EXPECT_EQ(error("kpi:\n  repeat_window: soon\n"),
            "c.yaml:2:18: bad duration \"soon\": expected a number followed by ms, s, m, h, d or w");
  EXPECT_EQ(error("kpi:\n  max_queues: -1\n"), "c.yaml:2:15: must not be negative");
  EXPECT_EQ(error("kpi:\n  service_level: {threshold: 20s, objective: 1.5}\n"),
            "c.yaml:2:46: must be between 0 and 1");
  EXPECT_EQ(error("kpi:\n  queues:\n    billing: {service_level: {treshold: 30s}}\n"),
            "c.yaml:3:31: unknown key \"treshold\"");
  EXPECT_EQ(error("kpi:\n  queues:\n    billing: {sl: 1}\n"), "c.yaml:3:15: unknown key \"sl\"");
  EXPECT_EQ(error("kpi:\n  queues:\n    other: {}\n"), "c.yaml:3:5: \"other\" is not a queue name");
  EXPECT_EQ(error("kpi:\n  queues: [billing]\n"), "c.yaml:2:11: expected a mapping of queue names");
}

}  // namespace
}  // namespace cxpulse
