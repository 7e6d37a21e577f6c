// Engine throughput on one core: the shipped rule pack over generated
// contact-centre traffic from over 1M distinct customers (8M events).
//   BM_Engine:           pre-decoded events (the engine alone); /1: tracking changes and
//                        checkpointing every partition each kCheckpointEvery events, as a
//                        daemon with a changelog does (/0: neither)
//   BM_DecodeAndEngine:  serialized protobuf, decoded as a shard does (EventDecoder), then the engine
//   BM_EventDecoder:     the shard's decoding alone
//   BM_DecodeOnly:       plain protobuf decoding into one reused message, the reference for the others
//   BM_JsonDecoder:      a JSON line to an event as `cxpulse replay` reads it (codec/proto_json.h, then
//                        EventDecoder); BM_ProtobufJson, protobuf's JsonStringToMessage, its reference
// CXPULSE_BENCH_EVENTS sets the corpus size (default 3M events).
// Run: CXPULSE_BENCH_EVENTS=8000000 build/tests/engine_bench --benchmark_min_time=5
#include <benchmark/benchmark.h>
#include <google/protobuf/util/json_util.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <unordered_set>

#include "codec/event_decoder.h"
#include "codec/proto_json.h"
#include "engine/engine.h"
#include "engine/rule_compiler.h"
#include "gen/traffic_generator.h"

namespace cxpulse {
namespace {

constexpr int kPartitions = 8;

class CountingSink final : public FindingSink {
 public:
  void Emit(int, const cx::v1::Finding&) override { ++findings; }
  uint64_t findings = 0;
};

struct Corpus {
  std::vector<cx::v1::InteractionEvent> events;
  std::vector<std::string> wire;
  std::vector<int32_t> partitions;
  size_t customers = 0;
};

const Corpus& TheCorpus() {
  static const Corpus corpus = [] {
    Corpus c;
    TrafficOptions options;
    options.seed = 7;
    // A 3M pool: 8M events (about 1.5M contacts) then come from over 1M distinct customers.
    options.customers = 3'000'000;
    options.contacts_per_second = 500;
    const size_t want = std::getenv("CXPULSE_BENCH_EVENTS") ? std::strtoul(std::getenv("CXPULSE_BENCH_EVENTS"), nullptr, 10)
                                                             : 3'000'000;
    const auto start = std::chrono::system_clock::time_point(std::chrono::seconds(1'767'603'600));
    TrafficGenerator gen(options, start);
    for (auto t = start; c.events.size() < want; t += std::chrono::seconds(60)) gen.Poll(t, &c.events);
    c.events.resize(want);
    std::unordered_set<std::string> customers;
    for (const auto& e : c.events) {
      customers.insert(e.customer_id());
      c.wire.push_back(e.SerializeAsString());
      c.partitions.push_back(static_cast<int32_t>(std::hash<std::string>()(e.customer_id()) % kPartitions));
    }
    c.customers = customers.size();
    return c;
  }();
  return corpus;
}

std::shared_ptr<const RuleSet> Pack() {
  auto rules = LoadRuleSet({CXPULSE_RULES_DIR});
  if (!rules.ok()) std::abort();
  return *rules;
}

void Report(benchmark::State& state, const Corpus& c, const CountingSink& sink, size_t processed) {
  state.SetItemsProcessed(static_cast<int64_t>(processed));
  state.counters["customers"] = static_cast<double>(c.customers);
  state.counters["findings"] = static_cast<double>(sink.findings);
}

// Counts a checkpoint's records; a producer would copy them.
class CountingWriter final : public StateWriter {
 public:
  void Put(std::string_view, std::string_view value) override {
    ++records;
    bytes += value.size();
  }
  void Erase(std::string_view) override { ++records; }
  uint64_t records = 0, bytes = 0;
};

// About a commit interval's worth of events at this engine's speed (100 ms).
constexpr size_t kCheckpointEvery = 100'000;

void BM_Engine(benchmark::State& state) {
  const Corpus& c = TheCorpus();
  CountingSink sink;
  CountingWriter changelog;
  EngineOptions options{30 * kMicrosPerSecond, 3600 * kMicrosPerSecond};
  options.track_changes = state.range(0) != 0;
  // Event time drives the watermark; the wall clock is pinned at the first
  // event so no partition ever looks idle.
  std::optional<Engine> engine;
  engine.emplace(Pack(), options, &sink);
  const Micros wall = ToMicros(c.events.front().occurred_at());
  size_t i = 0, processed = 0;
  for (auto _ : state) {
    if (i == c.events.size()) {
      state.PauseTiming();  // the next lap starts with fresh state, as event time cannot go back
      engine.emplace(Pack(), options, &sink);
      i = 0;
      state.ResumeTiming();
    }
    benchmark::DoNotOptimize(engine->Process(c.partitions[i], c.events[i], wall));
    ++i;
    ++processed;
    if (options.track_changes && processed % kCheckpointEvery == 0) {
      for (int32_t p = 0; p < kPartitions; ++p) engine->Checkpoint(p, changelog);
    }
  }
  Report(state, c, sink, processed);
  state.counters["changelog_records"] = static_cast<double>(changelog.records);
}
BENCHMARK(BM_Engine)->Arg(0)->Arg(1)->Unit(benchmark::kNanosecond);

void BM_DecodeAndEngine(benchmark::State& state) {
  const Corpus& c = TheCorpus();
  CountingSink sink;
  std::optional<Engine> engine;
  engine.emplace(Pack(), EngineOptions{30 * kMicrosPerSecond, 3600 * kMicrosPerSecond}, &sink);
  const Micros wall = ToMicros(c.events.front().occurred_at());
  EventDecoder decoder;
  size_t i = 0, processed = 0;
  for (auto _ : state) {
    if (i == c.wire.size()) {
      state.PauseTiming();
      engine.emplace(Pack(), EngineOptions{30 * kMicrosPerSecond, 3600 * kMicrosPerSecond}, &sink);
      i = 0;
      state.ResumeTiming();
    }
    const cx::v1::InteractionEvent* event = decoder.Decode(c.wire[i].data(), c.wire[i].size());
    if (event == nullptr) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(engine->Process(c.partitions[i], *event, wall));
    ++i;
    ++processed;
  }
  Report(state, c, sink, processed);
}
BENCHMARK(BM_DecodeAndEngine)->Unit(benchmark::kNanosecond);

void BM_EventDecoder(benchmark::State& state) {
  const Corpus& c = TheCorpus();
  EventDecoder decoder;
  size_t i = 0, processed = 0;
  for (auto _ : state) {
    if (i == c.wire.size()) i = 0;
    const cx::v1::InteractionEvent* event = decoder.Decode(c.wire[i].data(), c.wire[i].size());
    if (event == nullptr) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(event);
    ++i;
    ++processed;
  }
  state.SetItemsProcessed(static_cast<int64_t>(processed));
}
BENCHMARK(BM_EventDecoder)->Unit(benchmark::kNanosecond);

// The reference the others are read against, measured in the same run:
// protobuf decoding alone, the least any consumer of this topic must do.
void BM_DecodeOnly(benchmark::State& state) {
  const Corpus& c = TheCorpus();
  cx::v1::InteractionEvent event;
  size_t i = 0, processed = 0;
  for (auto _ : state) {
    if (i == c.wire.size()) i = 0;
    if (!event.ParseFromString(c.wire[i])) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(event);
    ++i;
    ++processed;
  }
  state.SetItemsProcessed(static_cast<int64_t>(processed));
}
BENCHMARK(BM_DecodeOnly)->Unit(benchmark::kNanosecond);

// JSON lines, as `cxpulse replay` reads them: the first 200k events of the
// corpus in protobuf's own JSON form.
const std::vector<std::string>& JsonLines() {
  static const std::vector<std::string> lines = [] {
    const Corpus& c = TheCorpus();
    std::vector<std::string> out(std::min<size_t>(c.events.size(), 200'000));
    for (size_t i = 0; i < out.size(); ++i) {
      if (!google::protobuf::util::MessageToJsonString(c.events[i], &out[i]).ok()) std::abort();
    }
    return out;
  }();
  return lines;
}

// A JSON line to an event as replay reads it: codec/proto_json.h's encoding,
// then the shard's decoder.
void BM_JsonDecoder(benchmark::State& state) {
  const std::vector<std::string>& lines = JsonLines();
  ProtoJsonParser parser;
  EventDecoder decoder;
  std::string wire;
  size_t i = 0, processed = 0;
  for (auto _ : state) {
    if (i == lines.size()) i = 0;
    if (!parser.ToWire(lines[i], cx::v1::InteractionEvent::descriptor(), &wire).ok()) state.SkipWithError("bad JSON");
    const cx::v1::InteractionEvent* event = decoder.Decode(wire.data(), wire.size());
    if (event == nullptr) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(event);
    ++i;
    ++processed;
  }
  if (parser.fallbacks() != 0) state.SkipWithError("lines left to protobuf's parser");
  state.SetItemsProcessed(static_cast<int64_t>(processed));
}
BENCHMARK(BM_JsonDecoder)->Unit(benchmark::kNanosecond);

// BM_JsonDecoder's reference, the parser it replaces: protobuf's own
// JsonStringToMessage into one reused message.
void BM_ProtobufJson(benchmark::State& state) {
  const std::vector<std::string>& lines = JsonLines();
  cx::v1::InteractionEvent event;
  size_t i = 0, processed = 0;
  for (auto _ : state) {
    if (i == lines.size()) i = 0;
    event.Clear();
    if (!google::protobuf::util::JsonStringToMessage(lines[i], &event).ok()) state.SkipWithError("bad JSON");
    benchmark::DoNotOptimize(event);
    ++i;
    ++processed;
  }
  state.SetItemsProcessed(static_cast<int64_t>(processed));
}
BENCHMARK(BM_ProtobufJson)->Unit(benchmark::kNanosecond);

}  // namespace
}  // namespace cxpulse

BENCHMARK_MAIN();
