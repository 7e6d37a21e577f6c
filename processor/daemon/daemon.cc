#include "daemon/daemon.h"

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <thread>

#include "admin/http_server.h"
#include "common/strings.h"
#include "common/time.h"
#include "daemon/pipeline.h"
#include "daemon/rule_reloader.h"
#include "engine/rule_compiler.h"
#include "engine/rule_set.h"
#include "metrics/pipeline_metrics.h"
#include "metrics/shard_metrics.h"
#include "spdlog/spdlog.h"

namespace cxpulse {

absl::StatusOr<std::unique_ptr<EmbeddedCluster>> StartEmbeddedCluster(const KafkaConfig& kafka) {
  absl::StatusOr<std::unique_ptr<EmbeddedCluster>> cluster = EmbeddedCluster::Start(1);
  if (!cluster.ok()) return cluster.status();
  for (const auto& [topic, partitions] :
       {std::pair{kafka.input_topic, kafka.embedded_partitions}, std::pair{kafka.findings_topic, 1},
        std::pair{kafka.dead_letter_topic, 1},
        // Co-partitioned with the input: partition p's state is in partition p.
        std::pair{kafka.changelog(), kafka.embedded_partitions}}) {
    if (absl::Status s = (*cluster)->CreateTopic(topic, partitions); !s.ok()) return s;
  }
  return cluster;
}

namespace {

// How often the Kafka control thread serves the consumer (rebalances),
// commits and checks the shards.
constexpr auto kPollInterval = std::chrono::milliseconds(20);
constexpr auto kRuleFilePollInterval = std::chrono::seconds(2);

// The control thread's periodic live line.
class StatusLine {
 public:
  explicit StatusLine(const Pipeline& pipeline)
      : pipeline_(pipeline), started_(std::chrono::steady_clock::now()) {}

  std::string Next() {
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - last_).count();
    const uint64_t events = pipeline_.events();
    const double rate = static_cast<double>(events - last_events_) / std::max(elapsed, 1e-3);
    last_ = now;
    last_events_ = events;
    std::string findings;
    const std::shared_ptr<const RuleSet> rules = pipeline_.rules();  // held: a reload may replace them
    for (const Rule& rule : rules->rules()) {
      Append(&findings, findings.empty() ? "" : " ", rule.name, "=", pipeline_.Totals(rule.name).findings);
    }
    return Cat("[", static_cast<int>(std::chrono::duration<double>(now - started_).count()), "s] ",
               static_cast<uint64_t>(rate), " events/s | consumed ", events, " | findings ",
               findings.empty() ? "none" : findings, " | dead letters ", pipeline_.dead_letters(), " | lag ",
               pipeline_.lag());
  }

 private:
  const Pipeline& pipeline_;
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
  const int shards = options.shards > 0 ? options.shards
                                        : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  spdlog::info("loaded {} rule(s) from {}; {} shard(s)", (*rules)->rules().size(), config.rules_path, shards);

  auto registry = std::make_shared<prometheus::Registry>();
  PipelineMetrics metrics(*registry);
  SystemClock clock;
  absl::StatusOr<std::unique_ptr<Pipeline>> created =
      Pipeline::Create(config, bootstrap, *rules, shards, &metrics, &clock);
  if (!created.ok()) {
    spdlog::error("{}", Message(created.status()));
    return 1;
  }
  Pipeline& pipeline = **created;
  // Per-event series are summed from the shards' counters at scrape time.
  // (prometheus-cpp 1.0's Registry takes no custom Collectable, so /metrics
  // serialises both.)
  ShardMetrics shard_metrics(&pipeline);

  RuleReloader reloader(config.rules_path, &pipeline, *registry, &clock);

  boost::asio::io_context io;
  // Signals are taken over before the daemon says it is up, so a SIGHUP or
  // SIGTERM sent right after never meets the default action.
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  boost::asio::signal_set hup(io, SIGHUP);
  std::function<void()> wait_hup = [&] {
    hup.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      (void)reloader.Reload("SIGHUP");
      wait_hup();
    });
  };
  wait_hup();
  HttpServer admin(io);
  admin.Handle("GET", "/rules", [&reloader] {
    return HttpResponse{200, "application/json", reloader.RulesJson()};
  });
  admin.Handle("POST", "/-/reload", [&reloader] {
    absl::Status s = reloader.Reload("POST /-/reload");
    return s.ok() ? HttpResponse{200, "text/plain; charset=utf-8", "reloaded\n"}
                  : HttpResponse{422, "text/plain; charset=utf-8", Cat(Message(s), "\n")};
  });
  admin.Handle("GET", "/metrics", [&registry, &shard_metrics] {
    std::vector<prometheus::MetricFamily> families = registry->Collect();
    for (auto& f : shard_metrics.Collect()) families.push_back(std::move(f));
    return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8",
                        prometheus::TextSerializer().Serialize(families)};
  });
  admin.Handle("GET", "/healthz", [] { return HttpResponse{200, "text/plain; charset=utf-8", "ok\n"}; });
  admin.Handle("GET", "/readyz", [&pipeline] {
    const absl::Status ready = pipeline.Readiness();
    return ready.ok() ? HttpResponse{200, "text/plain; charset=utf-8", "ready\n"}
                      : HttpResponse{503, "text/plain; charset=utf-8", Cat("not ready: ", Message(ready), "\n")};
  });
  if (absl::Status s = admin.Listen(config.admin_address); !s.ok()) {
    spdlog::error("{}", Message(s));
    return 1;
  }
  spdlog::info("metrics on http://{}:{}/metrics", config.admin_address.substr(0, config.admin_address.rfind(':')),
               admin.port());

  // The Kafka control thread: serves the consumer (rebalances), commits and
  // watches the shards, apart from this thread's admin endpoint, signals and
  // timers, which so keep answering while a rebalance or a commit waits on
  // the brokers.
  absl::Status failure;  // the control thread's, read once it has stopped
  std::atomic<bool> stopping{false};
  auto stop = [&](std::string_view why) {
    if (stopping.exchange(true)) return;
    spdlog::info("{}: draining (finish batch, flush findings, commit, leave group)", why);
    admin.Close();
    io.stop();
  };

  signals.async_wait([&](const boost::system::error_code& ec, int signo) {
    if (!ec) stop(strsignal(signo));
  });
  pipeline.Start();
  std::thread control([&] {
    while (!stopping.load()) {
      if (absl::Status s = pipeline.Poll(clock.Now()); !s.ok()) {
        failure = s;
        return boost::asio::post(io, [&] { stop("a shard failed"); });
      }
      if (options.exit_when_idle && pipeline.AllAtEnd()) {
        return boost::asio::post(io, [&] { stop("every assigned partition is at its end"); });
      }
      std::this_thread::sleep_for(kPollInterval);  // the pace of its chores, not a wait for another thread
    }
  });

  // A change to the rule files reloads them too (polled: works on every
  // filesystem, including config maps mounted by Kubernetes).
  boost::asio::steady_timer watcher(io);
  std::function<void()> watch = [&] {
    watcher.expires_after(kRuleFilePollInterval);
    watcher.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      reloader.ReloadIfChanged();
      watch();
    });
  };
  watch();

  boost::asio::steady_timer deadline(io);
  if (options.duration > 0) {
    deadline.expires_after(std::chrono::microseconds(options.duration));
    deadline.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) stop("duration reached");
    });
  }
  StatusLine status(pipeline);
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
  stopping.store(true);
  control.join();

  // A second signal during the drain: the operator does not want to wait.
  boost::asio::io_context drain_io;
  boost::asio::signal_set again(drain_io, SIGINT, SIGTERM);
  again.async_wait([](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    spdlog::warn("{} again: exiting without draining", strsignal(signo));
    std::_Exit(130);
  });
  // Every step of the drain can wait on the broker (the shards' flushes, the
  // handover commit, leaving the group, the centre stage's own), and
  // librdkafka's close waits until the broker answers. One deadline over
  // the whole drain bounds them all; stopping short loses nothing, since
  // offsets are committed only past delivered output: a restart reads the
  // rest again.
  boost::asio::steady_timer drain_deadline(drain_io, std::chrono::microseconds(config.engine.drain_timeout));
  drain_deadline.async_wait([&config](const boost::system::error_code& ec) {
    if (ec) return;
    spdlog::error("stopped: the drain did not finish within engine.drain_timeout ({}); exiting without it "
                  "(input not committed is read again after a restart)",
                  FormatDuration(config.engine.drain_timeout));
    spdlog::default_logger()->flush();
    std::_Exit(3);
  });
  std::thread drain_signals([&] { drain_io.run(); });
  absl::Status drained = pipeline.Stop();
  drain_io.stop();
  drain_signals.join();
  if (failure.ok()) failure = drained;
  if (options.status_interval > 0) spdlog::info("{}", status.Next());
  if (!failure.ok()) {
    spdlog::error("stopped: {}", Message(failure));
    return 3;
  }
  spdlog::info("stopped cleanly");
  return 0;
}

}  // namespace cxpulse
