// Changelog codec throughput for the default pack: the state of N customers
// (default 1M) written by one Checkpoint, and read back by Restore into a
// fresh engine, both into and out of memory (no Kafka). The daemon's target
// is 1M customers restored within 5 s, Kafka included.
//   BM_Checkpoint: encode, every record new (one run: a second writes nothing)
//   BM_Restore:    decode and rebuild, into an empty engine each time
// Each customer: customer_journeys.h.
// Run: build/tests/state_bench [--benchmark_min_time=...]; CXPULSE_BENCH_CUSTOMERS sets N.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "customer_journeys.h"
#include "engine/engine.h"
#include "engine/rule_compiler.h"

namespace cxpulse {
namespace {

constexpr Micros kT0 = 1'790'000'000LL * kMicrosPerSecond;

class CountingSink final : public FindingSink {
 public:
  void Emit(int, const cx::v1::Finding&) override {}
};

// Every record back to back in one buffer, as a producer would copy them.
class ArenaLog final : public StateWriter {
 public:
  void Put(std::string_view key, std::string_view value) override {
    records.push_back({bytes.size(), key.size(), value.size()});
    bytes.append(key).append(value);
  }
  void Erase(std::string_view) override { ++tombstones; }
  struct Record {
    size_t at, key, value;
  };
  std::string_view Key(const Record& r) const { return std::string_view(bytes).substr(r.at, r.key); }
  std::string_view Value(const Record& r) const { return std::string_view(bytes).substr(r.at + r.key, r.value); }
  std::string bytes;
  std::vector<Record> records;
  size_t tombstones = 0;
};

size_t Customers() {
  const char* n = std::getenv("CXPULSE_BENCH_CUSTOMERS");
  return n ? std::strtoul(n, nullptr, 10) : 1'000'000;
}

std::shared_ptr<const RuleSet> Pack() {
  auto rules = LoadRuleSet({CXPULSE_RULES_DIR});
  if (!rules.ok()) std::abort();
  return *rules;
}

EngineOptions Tracked() {
  EngineOptions options{30 * kMicrosPerSecond, 3600 * kMicrosPerSecond};
  options.track_changes = true;
  return options;
}

// The customers' journeys within one hour of event time, on partition 0.
void Fill(Engine& engine, size_t customers) {
  bench::ForEachJourneyEvent(customers, kT0, [&](size_t, const cx::v1::InteractionEvent& e) {
    if (engine.Process(0, e, kT0) != Engine::Outcome::kProcessed) std::abort();
  });
}

// The log BM_Checkpoint wrote, for BM_Restore.
ArenaLog& TheLog() {
  static ArenaLog log;
  return log;
}

void Report(benchmark::State& state, const ArenaLog& log, size_t customers, size_t per_iteration) {
  state.SetItemsProcessed(static_cast<int64_t>(per_iteration * state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(log.bytes.size() * state.iterations()));
  state.counters["customers"] = static_cast<double>(customers);
  state.counters["records"] = static_cast<double>(log.records.size());
  state.counters["bytes_per_customer"] = static_cast<double>(log.bytes.size()) / static_cast<double>(customers);
}

void BM_Checkpoint(benchmark::State& state) {
  const size_t customers = Customers();
  CountingSink sink;
  Engine engine(Pack(), Tracked(), &sink);
  Fill(engine, customers);
  ArenaLog& log = TheLog();
  log = ArenaLog();
  log.bytes.reserve(customers * 256);
  log.records.reserve(customers * 4);
  for (auto _ : state) engine.Checkpoint(0, log);
  Report(state, log, customers, log.records.size());
}
BENCHMARK(BM_Checkpoint)->Iterations(1)->Unit(benchmark::kMillisecond);

void BM_Restore(benchmark::State& state) {
  const ArenaLog& log = TheLog();
  if (log.records.empty()) return state.SkipWithError("BM_Checkpoint runs first");
  CountingSink sink;
  const std::shared_ptr<const RuleSet> rules = Pack();
  std::optional<Engine> engine;
  size_t dropped = 0;
  for (auto _ : state) {
    state.PauseTiming();
    engine.emplace(rules, Tracked(), &sink);
    state.ResumeTiming();
    for (const ArenaLog::Record& r : log.records) {
      dropped += engine->Restore(0, log.Key(r), log.Value(r), kT0) != RestoreDrop::kNone;
    }
    state.PauseTiming();
    engine.reset();  // freeing a million keys is not restoring them
    state.ResumeTiming();
  }
  if (dropped > 0) state.SkipWithError("a record was dropped");
  Report(state, log, Customers(), log.records.size());
}
BENCHMARK(BM_Restore)->Iterations(3)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace cxpulse

BENCHMARK_MAIN();
