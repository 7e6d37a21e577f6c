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
  topics: {input: in, findings: out, dead_letter: dlq}
  properties:
    security.protocol: SASL_SSL
    sasl.mechanism: PLAIN
rules: my-rules
admin: {address: 0.0.0.0:9000}
engine: {allowed_lateness: 1m, idle_partition_timeout: 20s, commit_interval: 500ms}
)");
  auto c = LoadConfig(path);
  ASSERT_TRUE(c.ok()) << Message(c.status());
  EXPECT_EQ(c->kafka.brokers, "k1:9092,k2:9092");
  EXPECT_EQ(c->kafka.group_id, "cx-prod");
  EXPECT_EQ(c->kafka.input_topic, "in");
  EXPECT_EQ(c->kafka.findings_topic, "out");
  EXPECT_EQ(c->kafka.dead_letter_topic, "dlq");
  EXPECT_EQ(c->kafka.properties.at("security.protocol"), "SASL_SSL");
  EXPECT_EQ(c->kafka.properties.at("sasl.mechanism"), "PLAIN");
  EXPECT_EQ(c->rules_path, dir.path() + "/my-rules");  // relative to the config file
  EXPECT_EQ(c->admin_address, "0.0.0.0:9000");
  EXPECT_EQ(c->engine.allowed_lateness, 60 * kMicrosPerSecond);
  EXPECT_EQ(c->engine.idle_partition_timeout, 20 * kMicrosPerSecond);
  EXPECT_EQ(c->engine.commit_interval, 500'000);
}

TEST(ConfigTest, DefaultsAreTheEmbeddedCluster) {
  auto c = ParseConfig("", "x.yaml", "");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->kafka.brokers, "embedded");
  EXPECT_EQ(c->kafka.input_topic, "cx.interactions");
  EXPECT_EQ(c->admin_address, "127.0.0.1:9464");
}

TEST(ConfigTest, MistakesArePositioned) {
  EXPECT_EQ(std::string(Message(ParseConfig("kafka:\n  brokerz: x\n", "c.yaml", "").status())),
            "c.yaml:2:3: unknown key \"brokerz\"");
  EXPECT_EQ(std::string(Message(ParseConfig("engine:\n  allowed_lateness: soon\n", "c.yaml", "").status())),
            "c.yaml:2:21: bad duration \"soon\": expected a number followed by ms, s, m, h, d or w");
  EXPECT_EQ(std::string(Message(ParseConfig("kafka: [1\n", "c.yaml", "").status())).substr(0, 9), "c.yaml:2:");
  EXPECT_FALSE(LoadConfig("/nonexistent/cxpulse.yaml").ok());
}

}  // namespace
}  // namespace cxpulse
