// Resident memory per tracked customer for the default rule pack: feeds N
// distinct customers through one Engine and one KpiAggregator (everything a
// shard keeps per customer) and reads the process's resident set
// (/proc/self/statm) before and after. Each event is built on the fly into one
// reused message, so the only thing that grows is that state.
//   ended:    one `ended` per customer: state in repeat_contact ([customer_id, reason])
//   journey:  contact_started (inbound), queued, answered, ended per customer:
//             also third_contact_in_a_day ([customer_id]) and the KPIs' last
//             contact start (repeat contacts); the queue- and reason-keyed
//             rules add a handful of keys in all
// Each scenario runs in a child process of its own, so one does not inherit
// the other's freed heap. Target (issue acceptance e): <= 200 bytes a customer.
// Run: build/tests/memory_bench [customers, default 1000000] [partitions, default 1]
#include <sys/wait.h>
#include <unistd.h>

#include <charconv>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>

#include "common/strings.h"
#include "engine/engine.h"
#include "engine/rule_compiler.h"
#include "kpi/kpi.h"

namespace cxpulse {
namespace {

constexpr double kTargetBytes = 200;

// The generator's reason codes and the queue that takes each.
constexpr std::pair<std::string_view, std::string_view> kReasons[] = {
    {"password_reset", "tech_support"}, {"billing_dispute", "billing"}, {"payment_failed", "billing"},
    {"plan_change", "sales"},           {"delivery_late", "sales"},     {"refund_status", "billing"},
    {"outage", "tech_support"},         {"cancel_request", "retention"},
};

class CountingSink final : public FindingSink {
 public:
  void Emit(int, const cx::v1::Finding&) override { ++findings; }
  uint64_t findings = 0;
};

size_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  size_t pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return pages_resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// Ids in the generator's forms: "c000123" (at least six digits), "e1-42".
void SetNumbered(std::string* out, std::string_view prefix, uint64_t n, int min_digits) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
  out->assign(prefix);
  for (auto d = end - digits; d < min_digits; ++d) out->push_back('0');
  out->append(digits, end);
}

enum class Scenario { kEnded, kJourney };

struct Result {
  size_t events = 0;
  size_t rss_before = 0;
  size_t rss_after = 0;
  uint64_t findings = 0;
};

Result Run(Scenario scenario, uint64_t customers, int partitions, Engine& engine, KpiAggregator& kpi,
           const CountingSink& sink) {
  cx::v1::InteractionEvent event;
  Result result;
  // One hour of event time for the whole run: nothing leaves any window, and
  // the wall clock stays at the start so no partition ever looks idle.
  constexpr Micros kT0 = 1'790'000'000LL * kMicrosPerSecond;
  const uint64_t per_customer = scenario == Scenario::kEnded ? 1 : 4;
  const Micros step = std::max<Micros>(1, 3600 * kMicrosPerSecond / static_cast<Micros>(customers * per_customer));
  uint64_t n = 0;
  auto feed = [&](uint64_t customer) {
    SetNumbered(event.mutable_event_id(), "e1-", ++n, 1);
    SetTimestamp(kT0 + static_cast<Micros>(n) * step, event.mutable_occurred_at());
    const auto partition = static_cast<int32_t>(customer % static_cast<uint64_t>(partitions));
    if (engine.Process(partition, event, kT0) != Engine::Outcome::kProcessed) std::abort();
    kpi.Record(event, partition, kT0);
  };
  auto start_customer = [&](uint64_t customer) {
    const auto& [reason, queue] = kReasons[customer % std::size(kReasons)];
    SetNumbered(event.mutable_customer_id(), "c", customer, 6);
    SetNumbered(event.mutable_contact_id(), "ct1-", customer, 1);
    event.set_reason(std::string(reason));
    event.set_queue(std::string(queue));
    event.set_channel(cx::v1::CHANNEL_VOICE);
    event.set_segment("standard");
  };
  // Warm: the scratch buffers, the message's own fields and every body type used.
  start_customer(0);
  event.mutable_contact_started()->set_direction(cx::v1::DIRECTION_OUTBOUND);
  feed(0);

  result.rss_before = ResidentBytes();
  for (uint64_t c = 1; c <= customers; ++c) {
    start_customer(c);
    if (scenario == Scenario::kJourney) {
      event.mutable_contact_started()->set_direction(cx::v1::DIRECTION_INBOUND);
      feed(c);
      event.mutable_queued();
      feed(c);
      event.mutable_answered()->mutable_wait()->set_seconds(20);
      feed(c);
    }
    auto* ended = event.mutable_ended();
    ended->set_resolved(false);
    ended->mutable_handle_time()->set_seconds(300);
    feed(c);
  }
  result.rss_after = ResidentBytes();
  result.events = n;
  result.findings = sink.findings;
  return result;
}

void RunInChild(Scenario scenario, std::string_view name, uint64_t customers, int partitions) {
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid < 0) std::abort();
  if (pid > 0) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "memory_bench: scenario %.*s failed\n", static_cast<int>(name.size()), name.data());
      std::exit(1);
    }
    return;
  }
  auto rules = LoadRuleSet({CXPULSE_RULES_DIR});
  if (!rules.ok()) {
    std::fprintf(stderr, "memory_bench: %s\n", std::string(Message(rules.status())).c_str());
    std::_Exit(1);
  }
  CountingSink sink;
  EngineOptions options{30 * kMicrosPerSecond, 3600 * kMicrosPerSecond};
  // Every customer tracked, however many (issue 11 (h): max_keys_per_rule
  // raised to fit), rather than the default 2M keys a rule.
  options.max_keys_per_rule = std::max(options.max_keys_per_rule, static_cast<size_t>(customers));
  Engine engine(*rules, options, &sink);
  const KpiConfig kpi_config;  // the defaults: windows 15m and 1h, repeat window 24h
  QueueLabels queues(kpi_config);
  KpiAggregator kpi(kpi_config, &queues, EngineOptions().allowed_lateness, 3600 * kMicrosPerSecond);
  const Result r = Run(scenario, customers, partitions, engine, kpi, sink);
  const double delta = static_cast<double>(r.rss_after) - static_cast<double>(r.rss_before);
  const double per_customer = delta / static_cast<double>(customers);
  std::printf("%-8.*s %10zu %12.1f %12.1f %12.1f %16.1f  %s\n", static_cast<int>(name.size()), name.data(), r.events,
              static_cast<double>(r.rss_before) / (1 << 20), static_cast<double>(r.rss_after) / (1 << 20),
              delta / (1 << 20), per_customer, per_customer <= kTargetBytes ? "within target" : "OVER TARGET");
  std::printf("         keys held:");
  size_t keys = 0;
  for (int i = 0; i < static_cast<int>(engine.rules().rules().size()); ++i) {
    if (engine.KeysHeld(i) == 0) continue;
    std::printf(" %s=%zu", engine.rules().rules()[static_cast<size_t>(i)].name.c_str(), engine.KeysHeld(i));
    keys += engine.KeysHeld(i);
  }
  std::printf("\n         %zu keys in all, %.1f bytes a key; %llu findings\n", keys,
              delta / static_cast<double>(keys), static_cast<unsigned long long>(r.findings));
  std::fflush(stdout);
  std::_Exit(0);
}

}  // namespace
}  // namespace cxpulse

int main(int argc, char** argv) {
  const uint64_t customers = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1'000'000;
  const int partitions = argc > 2 ? std::atoi(argv[2]) : 1;
  if (customers == 0 || partitions <= 0) {
    std::fprintf(stderr, "usage: memory_bench [customers > 0] [partitions > 0]\n");
    return 2;
  }
  std::printf("memory_bench: default pack (%s), %llu customers, %d partition(s); target <= %.0f bytes a customer\n",
              CXPULSE_RULES_DIR, static_cast<unsigned long long>(customers), partitions, cxpulse::kTargetBytes);
  std::printf("%-8s %10s %12s %12s %12s %16s\n", "scenario", "events", "RSS MiB", "after MiB", "delta MiB",
              "bytes/customer");
  cxpulse::RunInChild(cxpulse::Scenario::kEnded, "ended", customers, partitions);
  cxpulse::RunInChild(cxpulse::Scenario::kJourney, "journey", customers, partitions);
  return 0;
}
