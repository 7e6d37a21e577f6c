// Hot reload as on-call staff use it: POST /-/reload, SIGHUP, or just saving
// the rule file, while the daemon runs under load.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "common/strings.h"
#include "cx/v1/finding.pb.h"
#include "kafka/client.h"
#include "support/child_process.h"
#include "support/daemon_process.h"
#include "support/events.h"
#include "support/http_get.h"
#include "support/kafka_reader.h"
#include "support/metrics_text.h"
#include "support/temp_dir.h"

namespace cxpulse {
namespace {

using namespace std::chrono_literals;
using testing::kMinute;
using testing::kT0;

constexpr int kCustomers = 300;
constexpr int kContacts = 5;

constexpr char kRepeat[] = R"(rules:
  - name: repeat_contact
    family: prevention
    kind: count
    on: ended
    key: [customer_id, reason]
    window: 7d
    threshold: 3
    cooldown: 1d
    severity: warning
)";

constexpr char kExtra[] = R"(rules:
  - name: complaint
    family: escalation
    kind: match
    on: complaint
    key: [customer_id]
    severity: critical
)";

class ReloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = EmbeddedCluster::Start(1);
    ASSERT_TRUE(cluster.ok());
    cluster_ = *std::move(cluster);
    ASSERT_TRUE(cluster_->CreateTopic("cx.interactions", 8).ok());
    ASSERT_TRUE(cluster_->CreateTopic("cx.findings", 1).ok());
    ASSERT_TRUE(cluster_->CreateTopic("cx.deadletter", 1).ok());
    ASSERT_TRUE(cluster_->CreateTopic("reload-changelog", 8).ok());
    auto producer = Producer::Create({{"bootstrap.servers", cluster_->bootstrap_servers()}});
    ASSERT_TRUE(producer.ok());
    producer_ = *std::move(producer);
    std::filesystem::create_directory(rules_dir_);
    WriteRule("repeat.yaml", kRepeat);
    const std::string config = dir_.Write(
        "cxpulse.yaml", Cat("kafka:\n  brokers: ", cluster_->bootstrap_servers(), "\n  group_id: reload\nrules: ",
                            rules_dir_, "\nadmin: {address: 127.0.0.1:0}\n"
                            "engine: {allowed_lateness: 1h, idle_partition_timeout: 1h, commit_interval: 200ms}\n"));
    daemon_ = std::make_unique<testing::ChildProcess>(
        std::vector<std::string>{CXPULSE_BINARY, "run", "--config", config, "--shards", "2"}, dir_.path() + "/d.log");
    port_ = testing::AdminPort(*daemon_);
    ASSERT_NE(port_, 0) << daemon_->Output();
  }
  void TearDown() override {
    if (daemon_) {
      daemon_->Signal(SIGTERM);
      EXPECT_EQ(daemon_->Wait(30s), 0) << daemon_->Output();
    }
  }

  void WriteRule(const std::string& name, const std::string& text) {
    // Write then rename, as editors and config-map updates do, so a reload
    // never sees half a file.
    const std::string tmp = rules_dir_ + "/." + name + ".tmp";
    std::ofstream(tmp) << text;
    std::filesystem::rename(tmp, rules_dir_ + "/" + name);
  }
  double Metric(const std::string& name, const std::map<std::string, std::string>& labels = {}) {
    return testing::Sample(testing::HttpGet(port_, "/metrics").body, name, labels).value_or(-1);
  }
  double Consumed() {
    double total = 0;
    std::istringstream in(testing::HttpGet(port_, "/metrics").body);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("cxpulse_events_consumed_total{", 0) == 0) total += std::stod(line.substr(line.rfind(' ') + 1));
    }
    return total;
  }
  bool WaitFor(const std::function<bool()>& done) {
    for (auto deadline = std::chrono::steady_clock::now() + 60s; std::chrono::steady_clock::now() < deadline;) {
      if (done()) return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

  testing::TempDir dir_;
  std::string rules_dir_ = dir_.path() + "/rules";
  std::unique_ptr<EmbeddedCluster> cluster_;
  std::unique_ptr<Producer> producer_;
  std::unique_ptr<testing::ChildProcess> daemon_;
  int port_ = 0;
};

TEST_F(ReloadTest, AHundredReloadsUnderLoadLoseNothingAndKeepUnchangedRuleState) {
  // Contacts arrive round by round while the rule set is reloaded 100 times,
  // alternately with and without a second rule file; repeat_contact itself
  // never changes, so its windows and cooldowns must survive every swap.
  std::thread load([&] {
    for (int round = 0; round < kContacts; ++round) {
      for (int c = 0; c < kCustomers; ++c) {
        const auto e = testing::Ended(Cat("e", c, "-", round), kT0 + round * kMinute, Cat("c", c));
        ASSERT_TRUE(producer_->Produce("cx.interactions", RD_KAFKA_PARTITION_UA, e.customer_id(),
                                       e.SerializeAsString()).ok());
      }
      ASSERT_TRUE(producer_->Flush(10'000).ok());
      std::this_thread::sleep_for(300ms);
    }
  });
  int ok = 0;
  for (int i = 0; i < 100; ++i) {
    if (i % 2 == 0) WriteRule("extra.yaml", kExtra);
    else std::filesystem::remove(rules_dir_ + "/extra.yaml");
    ok += testing::HttpRequest("POST", port_, "/-/reload").status == 200;
    std::this_thread::sleep_for(10ms);
  }
  load.join();
  EXPECT_EQ(ok, 100);
  EXPECT_GE(Metric("cxpulse_rule_reloads_total", {{"result", "success"}}), 100);

  // Every event processed exactly once ...
  ASSERT_TRUE(WaitFor([&] { return Consumed() >= kCustomers * kContacts; }));
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(Consumed(), kCustomers * kContacts);
  EXPECT_EQ(Metric("cxpulse_rule_evaluations_total", {{"rule", "repeat_contact"}}), kCustomers * kContacts);
  // ... and one finding per customer, on its third contact: state survived.
  EXPECT_EQ(Metric("cxpulse_findings_total", {{"rule", "repeat_contact"}}), kCustomers);
  daemon_->Signal(SIGTERM);
  ASSERT_EQ(daemon_->Wait(30s), 0) << daemon_->Output();
  daemon_.reset();
  std::map<std::string, int> per_customer;
  for (const auto& r : testing::ReadTopic(cluster_->bootstrap_servers(), "cx.findings", 1)) {
    cx::v1::Finding f;
    ASSERT_TRUE(f.ParseFromString(r.value));
    ++per_customer[f.key(0).value()];
    const std::string n = f.key(0).value().substr(1);
    EXPECT_EQ(f.evidence_event_ids(2), "e" + n + "-2");
  }
  EXPECT_EQ(per_customer.size(), static_cast<size_t>(kCustomers));
  for (const auto& [customer, n] : per_customer) EXPECT_EQ(n, 1) << customer;
}

TEST_F(ReloadTest, AFailingReloadKeepsTheRunningRulesAndSaysWhy) {
  std::string broken = kRepeat;
  broken.replace(broken.find("window: 7d"), 10, "window: 7 days");
  WriteRule("repeat.yaml", broken);
  const auto response = testing::HttpRequest("POST", port_, "/-/reload");
  EXPECT_EQ(response.status, 422);
  EXPECT_NE(response.body.find(rules_dir_ + "/repeat.yaml:7:13: bad duration"), std::string::npos) << response.body;
  EXPECT_EQ(Metric("cxpulse_rule_reloads_total", {{"result", "failure"}}), 1);
  EXPECT_EQ(Metric("cxpulse_rule_reload_last_success"), 0);
  const std::string rules = testing::HttpGet(port_, "/rules").body;
  EXPECT_NE(rules.find("\"name\":\"repeat_contact\""), std::string::npos) << rules;
  EXPECT_NE(rules.find("\"result\":\"failure\""), std::string::npos) << rules;
  EXPECT_NE(rules.find("bad duration"), std::string::npos) << rules;

  // The old rules still run.
  for (int i = 0; i < 3; ++i) {
    const auto e = testing::Ended(Cat("x", i), kT0 + i * kMinute, "cX");
    ASSERT_TRUE(producer_->Produce("cx.interactions", RD_KAFKA_PARTITION_UA, "cX", e.SerializeAsString()).ok());
  }
  ASSERT_TRUE(producer_->Flush(10'000).ok());
  EXPECT_TRUE(WaitFor([&] { return Metric("cxpulse_findings_total", {{"rule", "repeat_contact"}}) == 1; }));
}

TEST_F(ReloadTest, SighupAndSavingTheFileReload) {
  WriteRule("extra.yaml", kExtra);
  daemon_->Signal(SIGHUP);
  EXPECT_TRUE(WaitFor([&] { return testing::HttpGet(port_, "/rules").body.find("\"name\":\"complaint\"") != std::string::npos; }))
      << daemon_->Output();
  EXPECT_NE(daemon_->Output().find("reload (SIGHUP): 2 rule(s) running"), std::string::npos) << daemon_->Output();

  // No signal: the file watch notices the change.
  std::filesystem::remove(rules_dir_ + "/extra.yaml");
  EXPECT_TRUE(WaitFor([&] { return testing::HttpGet(port_, "/rules").body.find("\"name\":\"complaint\"") == std::string::npos; }));
  EXPECT_NE(daemon_->Output().find("reload (file change): 1 rule(s) running"), std::string::npos) << daemon_->Output();
}

}  // namespace
}  // namespace cxpulse
