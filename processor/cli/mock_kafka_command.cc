#include "cli/mock_kafka_command.h"

#include <pthread.h>
#include <signal.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <utility>

#include "absl/status/statusor.h"
#include "common/strings.h"
#include "common/time.h"
#include "kafka/client.h"
#include "spdlog/spdlog.h"

namespace cxpulse {
namespace {

// The default config's topics, its changelog included (the input's partitions).
const std::vector<std::string> kDefaultTopics = {"cx.interactions:8", "cx.findings:1", "cx.deadletter:1",
                                                 "cxpulse-changelog:8"};

// NAME:PARTITIONS
absl::StatusOr<std::pair<std::string, int>> ParseTopic(const std::string& text) {
  const size_t colon = text.rfind(':');
  int partitions = 0;
  if (colon != std::string::npos && colon > 0) {
    const char* first = text.data() + colon + 1;
    const char* last = text.data() + text.size();
    auto [end, ec] = std::from_chars(first, last, partitions);
    if (ec == std::errc() && end == last && first != last && partitions >= 1 && partitions <= 10000) {
      return std::pair{text.substr(0, colon), partitions};
    }
  }
  return absl::InvalidArgumentError(Cat("want NAME:PARTITIONS (1..10000), got \"", text, "\""));
}

}  // namespace

MockKafkaCommand::MockKafkaCommand(CLI::App& app) {
  command_ = app.add_subcommand(
      "mock-kafka", "Run librdkafka's mock Kafka cluster in this process; print its bootstrap servers, then wait");
  command_
      ->add_option("--topic", topics_,
                   "Topic to create, NAME:PARTITIONS (repeatable; default cx.interactions:8 cx.findings:1 "
                   "cx.deadletter:1 cxpulse-changelog:8)")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            absl::StatusOr<std::pair<std::string, int>> t = ParseTopic(text);
            return t.ok() ? std::string() : std::string(Message(t.status()));
          },
          "NAME:PARTITIONS"));
  command_->add_option("--brokers", brokers_, "Number of brokers")->capture_default_str()->check(CLI::Range(1, 16));
  command_->add_option("--duration", duration_, "Stop after this long, e.g. 10m (default: until SIGINT/SIGTERM)")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            absl::StatusOr<Micros> d = ParseDuration(text);
            return d.ok() ? std::string() : std::string(Message(d.status()));
          },
          "DURATION"));
}

int MockKafkaCommand::Run() const {
  // Block the stop signals before librdkafka starts its threads, which inherit the mask:
  // then only sigtimedwait below receives them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  absl::StatusOr<std::unique_ptr<EmbeddedCluster>> cluster = EmbeddedCluster::Start(brokers_);
  if (!cluster.ok()) {
    spdlog::error("{}", Message(cluster.status()));
    return 1;
  }
  std::string created;
  for (const std::string& text : topics_.empty() ? kDefaultTopics : topics_) {
    const auto [name, partitions] = *ParseTopic(text);  // validated while parsing the command line
    if (absl::Status s = (*cluster)->CreateTopic(name, partitions); !s.ok()) {
      spdlog::error("{}", Message(s));
      return 1;
    }
    Append(&created, created.empty() ? "" : ", ", name, " x", partitions);
  }
  std::fprintf(stdout, "%s\n", (*cluster)->bootstrap_servers().c_str());
  std::fflush(stdout);
  spdlog::info("mock Kafka ({} broker{}) on {}: {}", brokers_, brokers_ == 1 ? "" : "s",
               (*cluster)->bootstrap_servers(), created);

  const Micros duration = duration_.empty() ? 0 : *ParseDuration(duration_);
  timespec timeout = {static_cast<time_t>(duration / kMicrosPerSecond),
                      static_cast<long>(duration % kMicrosPerSecond * 1000)};
  for (;;) {
    const int signo = duration > 0 ? sigtimedwait(&stop, nullptr, &timeout) : sigwaitinfo(&stop, nullptr);
    if (signo > 0) {
      spdlog::info("mock Kafka: {}, stopping", signo == SIGINT ? "SIGINT" : "SIGTERM");
      break;
    }
    if (errno == EAGAIN) {
      spdlog::info("mock Kafka: --duration {} reached, stopping", duration_);
      break;
    }
    // EINTR (another signal's handler ran): wait again. A restarted timed wait may run
    // longer than asked; acceptable for a test helper.
  }
  return 0;
}

}  // namespace cxpulse
