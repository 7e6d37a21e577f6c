#include "daemon/daemon.h"
#include "common/strings.h"

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <thread>

#include "admin/http_server.h"
#include "daemon/pipeline.h"
#include "engine/rule_set.h"
#include "metrics/pipeline_metrics.h"
#include "metrics/rule_metrics.h"
#include "spdlog/spdlog.h"

namespace cxpulse {

absl::StatusOr<std::unique_ptr<EmbeddedCluster>> StartEmbeddedCluster(const KafkaConfig& kafka) {
  absl::StatusOr<std::unique_ptr<EmbeddedCluster>> cluster = EmbeddedCluster::Start(1);
  if (!cluster.ok()) return cluster.status();
  for (const auto& [topic, partitions] :
       {std::pair{kafka.input_topic, kafka.embedded_partitions}, std::pair{kafka.findings_topic, 1},
        std::pair{kafka.dead_letter_topic, 1}}) {
    if (absl::Status s = (*cluster)->CreateTopic(topic, partitions); !s.ok()) return s;
  }
  return cluster;
}

namespace {

// The control thread's periodic live line.
class StatusLine {
 public:
  StatusLine(const Pipeline& pipeline, PipelineMetrics& metrics, const RuleSet& rules)
      : pipeline_(pipeline), metrics_(metrics), rules_(rules), started_(std::chrono::steady_clock::now()) {}

  std::string Next() {
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - last_).count();
    const uint64_t events = pipeline_.events();
    const double rate = static_cast<double>(events - last_events_) / std::max(elapsed, 1e-3);
    last_ = now;
    last_events_ = events;
    std::string findings;
    for (size_t i = 0; i < rules_.rules().size(); ++i) {
      Append(&findings, findings.empty() ? "" : " ", rules_.rules()[i].name, "=",
                      static_cast<uint64_t>(metrics_.FindingOf(static_cast<int>(i)).Value()));
    }
    return Cat(
        "[", static_cast<int>(std::chrono::duration<double>(now - started_).count()), "s] ",
        static_cast<uint64_t>(rate), " events/s | consumed ", events, " | findings ",
        findings.empty() ? "none" : findings, " | dead letters ", pipeline_.dead_letters(), " | lag ",
        pipeline_.lag());
  }

 private:
  const Pipeline& pipeline_;
  PipelineMetrics& metrics_;
  const RuleSet& rules_;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point last_ = started_;
  uint64_t last_events_ = 0;
};

}  // namespace

int RunDaemon(const DaemonOptions& options, const std::string& bootstrap) {
  const Config& config = options.config;
  absl::StatusOr<std::shared_ptr<const RuleSet>> rules = LoadRuleSet({config.rules_path});
  if (!rules.ok()) {
    spdlog::error("rules not loaded:\n{}", Message(rules.status()));
    return 1;
  }
  spdlog::info("loaded {} rule(s) from {}", (*rules)->rules().size(), config.rules_path);

  auto registry = std::make_shared<prometheus::Registry>();
  PipelineMetrics metrics(*registry);
  SystemClock clock;
  absl::StatusOr<std::unique_ptr<Pipeline>> pipeline = Pipeline::Create(config, bootstrap, *rules, &metrics, &clock);
  if (!pipeline.ok()) {
    spdlog::error("{}", Message(pipeline.status()));
    return 1;
  }

  // Per-rule series, read from the engine's atomics at scrape time. (The
  // Registry of prometheus-cpp 1.0 takes no custom Collectable, so /metrics
  // serialises both.)
  RuleMetrics rule_metrics(&(*pipeline)->engine());

  boost::asio::io_context io;
  HttpServer admin(io);
  admin.Handle("GET", "/metrics", [&registry, &rule_metrics] {
    std::vector<prometheus::MetricFamily> families = registry->Collect();
    for (auto& f : rule_metrics.Collect()) families.push_back(std::move(f));
    return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8",
                        prometheus::TextSerializer().Serialize(families)};
  });
  admin.Handle("GET", "/healthz", [] { return HttpResponse{200, "text/plain; charset=utf-8", "ok\n"}; });
  const Pipeline& pipe = **pipeline;
  admin.Handle("GET", "/readyz", [&pipe] {
    return pipe.assigned() ? HttpResponse{200, "text/plain; charset=utf-8", "ready\n"}
                           : HttpResponse{503, "text/plain; charset=utf-8", "waiting for partition assignment\n"};
  });
  if (absl::Status s = admin.Listen(config.admin_address); !s.ok()) {
    spdlog::error("{}", Message(s));
    return 1;
  }
  spdlog::info("metrics on http://{}:{}/metrics", config.admin_address.substr(0, config.admin_address.rfind(':')),
               admin.port());

  std::atomic<bool> stop{false};
  absl::Status result;
  std::thread worker([&] {
    result = (*pipeline)->Run(stop);
    // Wake the control thread whether the pipeline was asked to stop or failed.
    boost::asio::post(io, [&] {
      admin.Close();
      io.stop();
    });
  });

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  std::function<void()> wait_signal = [&] {
    signals.async_wait([&](const boost::system::error_code& ec, int signo) {
      if (ec) return;
      if (stop.exchange(true)) {
        // A second signal: the operator does not want to wait for the drain.
        spdlog::warn("{} again: exiting without draining", strsignal(signo));
        std::_Exit(130);
      }
      spdlog::info("{}: draining (finish batch, flush findings, commit, leave group); again to force", strsignal(signo));
      wait_signal();
    });
  };
  wait_signal();
  boost::asio::steady_timer deadline(io);
  if (options.duration > 0) {
    deadline.expires_after(std::chrono::microseconds(options.duration));
    deadline.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      spdlog::info("duration reached: draining");
      stop = true;
    });
  }
  StatusLine status(pipe, metrics, **rules);
  boost::asio::steady_timer ticker(io);
  std::function<void()> schedule = [&] {
    ticker.expires_after(std::chrono::microseconds(options.status_interval));
    ticker.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      spdlog::info("{}", status.Next());
      schedule();
    });
  };
  if (options.status_interval > 0) schedule();

  io.run();
  worker.join();
  if (options.status_interval > 0) spdlog::info("{}", status.Next());
  if (!result.ok()) {
    spdlog::error("stopped: {}", Message(result));
    return 3;
  }
  spdlog::info("stopped cleanly");
  return 0;
}

}  // namespace cxpulse
