// Differential test: generated contact-centre traffic through the real
// `cxpulse run` (1 and 8 partitions, 1 and 2 shards, against a mock Kafka
// cluster this process hosts) and through `cxpulse replay`, compared with the
// oracle (oracle.h): findings by (rule, key, fired_at, count) and every KPI
// component. The streams have incidents (a reason surge, a staffing drop),
// events out of order within the allowed lateness, a few truly late events, a
// sparse partition and an idle one.
//
// The daemon is stopped only once its metrics say it is done: every event
// consumed and the KPI window end at E, the one every partition has passed.
// To look into a difference, CXPULSE_DIFFERENTIAL_DUMP=DIR keeps each seed's
// stream there as JSON lines (replayable with `cxpulse replay`).
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iomanip>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cx/v1/event.pb.h"
#include "cx/v1/finding.pb.h"
#include "gen/traffic_generator.h"
#include "kafka/client.h"
#include "oracle/oracle.h"
#include "support/child_process.h"
#include "support/daemon_process.h"
#include "support/command.h"
#include "support/http_get.h"
#include "support/kafka_reader.h"
#include "support/metrics_text.h"
#include "support/temp_dir.h"

namespace cxpulse {
namespace {

using namespace std::chrono_literals;
using cx::v1::InteractionEvent;
using oracle::Finding;
using oracle::kHour;
using oracle::kMinute;
using oracle::KpiCell;
using oracle::KpiValues;
using oracle::kSecond;
using oracle::Micros;
using Kpis = std::map<KpiCell, KpiValues>;
using testing::ParseExposition;
using testing::SampleLine;
using testing::SumOf;
using testing::ValueOf;

// Seeds per run: each costs three daemon runs (in parallel) and a replay.
// Lower it for slow (sanitizer) builds.
constexpr int kSeeds = 3;

constexpr Micros kLateness = 30 * kSecond;
constexpr Micros kStart = 1'772'431'200 * kSecond;  // 2026-03-02T06:00:00Z
constexpr Micros kSpan = 7 * kHour;
// The sentinels' time; every partition's final watermark is kEnd - L, not on
// a bucket boundary, so E = floor((kEnd - L) / 1m) * 1m = kStart + 7h.
constexpr Micros kEnd = kStart + kSpan + 45 * kSecond;
constexpr Micros kFinalWatermark = kEnd - kLateness;
constexpr Micros kWindowEnd = kFinalWatermark / kMinute * kMinute;
constexpr int kSentinels = 7;  // one per non-idle partition of the 8-partition layout

struct Layout {
  int partitions;
  int shards;
  std::string Name() const {
    return std::to_string(partitions) + (partitions == 1 ? " partition, " : " partitions, ") + std::to_string(shards) +
           (shards == 1 ? " shard" : " shards");
  }
};
const Layout kLayouts[] = {{1, 1}, {8, 1}, {8, 2}};

// ---- the stream ----------------------------------------------------------------

Micros TimeOf(const google::protobuf::Timestamp& t) { return t.seconds() * kSecond + t.nanos() / 1000; }
void Stamp(Micros t, google::protobuf::Timestamp* out) {
  out->set_seconds(t / kSecond);
  out->set_nanos(static_cast<int32_t>(t % kSecond * 1000));
}

uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

struct Stream {
  std::vector<InteractionEvent> events;  // global arrival order
  std::set<std::string> late_ids;        // must be dead-lettered
  std::set<std::string> sparse;          // customers of the sparse partition
  size_t moved = 0;                      // events delivered out of order
};

// The test's partitioner. On 8 partitions: 0..5 by hash of customer_id, 6 is
// sparse (a few customers), 7 idle (nothing at all); sentinel-pK goes to K.
int PartitionOf(const InteractionEvent& e, int partitions, const Stream& s) {
  if (partitions == 1) return 0;
  const std::string& c = e.customer_id();
  if (c.starts_with("sentinel-p")) return std::stoi(c.substr(10));
  if (s.sparse.count(c) > 0) return partitions - 2;
  return static_cast<int>(Fnv1a(c) % static_cast<uint64_t>(partitions - 2));
}

// A hand-made prologue two days before the traffic, for the rules whose
// deadlines are longer than the generated span: detractors (48 h, on_repeat
// keep), cases (on_repeat keep) and an overdue callback request.
std::vector<InteractionEvent> Prologue() {
  const Micros p0 = kStart - 50 * kHour;
  std::vector<InteractionEvent> out;
  auto add = [&](const std::string& customer, Micros at) -> InteractionEvent& {
    InteractionEvent& e = out.emplace_back();
    e.set_event_id("pro-" + std::to_string(out.size()));
    Stamp(at, e.mutable_occurred_at());
    e.set_customer_id(customer);
    e.set_contact_id("pro-ct-" + customer);
    e.set_channel(cx::v1::CHANNEL_VOICE);
    e.set_queue("billing");
    e.set_reason("prologue");
    e.set_segment("standard");
    return e;
  };
  auto nps = [&](const std::string& c, Micros at, int score) {
    auto* s = add(c, at).mutable_survey();
    s->set_metric(cx::v1::SURVEY_METRIC_NPS);
    s->set_score(score);
  };
  auto contact = [&](const std::string& c, Micros at, cx::v1::Direction d) {
    add(c, at).mutable_contact_started()->set_direction(d);
  };
  nps("pro1", p0, 3);
  nps("pro2", p0 + 1 * kHour, 5);
  nps("pro3", p0 + 1 * kHour, 6);
  nps("pro4", p0 + 1 * kHour, 4);
  add("pro7", p0 + 2 * kHour).mutable_callback_requested();
  Stamp(p0 + 3 * kHour, out.back().mutable_callback_requested()->mutable_due_at());
  auto* opened = add("pro5", p0 + 3 * kHour).mutable_case_opened();
  opened->set_case_id("pro-case-5");
  Stamp(p0 + 20 * kHour, opened->mutable_sla_due_at());
  opened = add("pro6", p0 + 3 * kHour).mutable_case_opened();
  opened->set_case_id("pro-case-6");
  Stamp(p0 + 30 * kHour, opened->mutable_sla_due_at());
  add("pro7", p0 + 3 * kHour + 6 * kMinute).mutable_callback_requested();  // the first is overdue
  Stamp(p0 + 5 * kHour, out.back().mutable_callback_requested()->mutable_due_at());
  opened = add("pro5", p0 + 4 * kHour).mutable_case_opened();  // the same case again: keeps its SLA
  opened->set_case_id("pro-case-5");
  Stamp(p0 + 45 * kHour, opened->mutable_sla_due_at());
  add("pro7", p0 + 4 * kHour).mutable_callback_attempted()->set_connected(true);
  contact("pro4", p0 + 5 * kHour, cx::v1::DIRECTION_INBOUND);  // not a follow-up
  contact("pro2", p0 + 10 * kHour, cx::v1::DIRECTION_OUTBOUND);
  add("pro6", p0 + 29 * kHour).mutable_case_closed()->set_case_id("pro-case-6");
  nps("pro1", p0 + 40 * kHour, 2);                               // ignored: keeps the first deadline
  contact("pro3", p0 + 49 * kHour, cx::v1::DIRECTION_OUTBOUND);  // exactly at the deadline
  return out;
}

Stream MakeStream(uint64_t seed) {
  TrafficOptions o;
  o.seed = seed;
  o.customers = 3000;
  o.contacts_per_second = 0.15;
  o.time_compression = 3;  // callbacks due in 10 min, cases breach within hours, repeats sooner
  // reason_surge needs 6 h of baseline per reason before it can fire.
  o.surges.push_back(TrafficSurge{"outage", "", 6h + 20min, 25min, 0.06});
  o.staffing_drops.push_back(StaffingDrop{"billing", 3h, 1h, 0.2});
  const auto start = std::chrono::system_clock::time_point(std::chrono::microseconds(kStart));
  TrafficGenerator generator(o, start);
  std::vector<InteractionEvent> generated;
  generator.Poll(start + std::chrono::microseconds(kSpan), &generated);

  Stream s;
  // The sparse partition's customers: three of the generated ones.
  for (size_t i : {generated.size() / 5, generated.size() / 2, generated.size() * 4 / 5}) {
    s.sparse.insert(generated[i].customer_id());
  }

  std::vector<InteractionEvent> in_time = Prologue();
  for (auto& e : generated) in_time.push_back(std::move(e));
  std::stable_sort(in_time.begin(), in_time.end(), [](const InteractionEvent& a, const InteractionEvent& b) {
    return TimeOf(a.occurred_at()) < TimeOf(b.occurred_at());
  });

  // Out of order within the allowed lateness: one event in 40 arrives as if
  // it had occurred up to L/3 later. Everything before it in arrival order is
  // stamped at most that, so it is never late on any partition.
  std::mt19937_64 rng(seed * 7919 + 17);
  struct Arrival {
    Micros at;
    size_t index;
  };
  std::vector<Arrival> arrivals;
  for (size_t i = 0; i < in_time.size(); ++i) {
    Micros at = TimeOf(in_time[i].occurred_at());
    if (rng() % 40 == 0) {
      at += 1 + static_cast<Micros>(rng() % static_cast<uint64_t>(kLateness / 3));
      ++s.moved;
    }
    arrivals.push_back({at, i});
  }
  std::stable_sort(arrivals.begin(), arrivals.end(), [](const Arrival& a, const Arrival& b) { return a.at < b.at; });

  // Truly late: stamped 3 h before their neighbour, on the neighbour's
  // (busy) partition; each would count somewhere if it were applied.
  std::set<size_t> late_after;
  for (int k = 0; k < 6; ++k) late_after.insert(arrivals.size() * static_cast<size_t>(3 + k) / 10);
  int late_made = 0;
  for (size_t a = 0; a < arrivals.size(); ++a) {
    const InteractionEvent& e = in_time[arrivals[a].index];
    s.events.push_back(e);
    if (late_after.count(a) == 0 || s.sparse.count(e.customer_id()) > 0 || e.customer_id().starts_with("pro")) {
      continue;
    }
    InteractionEvent late = e;
    late.set_event_id("late-" + std::to_string(seed) + "-" + std::to_string(late_made));
    const Micros at = TimeOf(e.occurred_at()) - 3 * kHour;
    Stamp(at, late.mutable_occurred_at());
    switch (late_made++ % 6) {
      case 0: late.mutable_complaint()->set_category("wait_time"); break;
      case 1: late.mutable_queued(); break;
      case 2: late.mutable_answered()->mutable_wait()->set_seconds(200); break;
      case 3: Stamp(at + 10 * kMinute, late.mutable_callback_requested()->mutable_due_at()); break;
      case 4: late.mutable_ended()->mutable_handle_time()->set_seconds(100); break;
      default: late.mutable_contact_started()->set_direction(cx::v1::DIRECTION_INBOUND); break;
    }
    s.late_ids.insert(late.event_id());
    s.events.push_back(std::move(late));
  }

  for (int p = 0; p < kSentinels; ++p) {
    InteractionEvent& e = s.events.emplace_back();
    e.set_event_id("sentinel-p" + std::to_string(p));
    e.set_customer_id("sentinel-p" + std::to_string(p));
    Stamp(kEnd, e.mutable_occurred_at());
    e.set_segment("standard");
    e.mutable_sentiment()->set_score(0);
  }
  return s;
}

oracle::Params OracleParams() {
  oracle::Params p;
  p.allowed_lateness = kLateness;
  p.kpi_bucket = kMinute;
  p.windows = {{"15m", 15 * kMinute}, {"1h", kHour}};
  p.repeat_window = 24 * kHour;
  p.callback_grace = 5 * kMinute;
  p.default_sl_threshold = 20 * kSecond;
  p.sl_threshold = {{"billing", 30 * kSecond}, {"retention", 45 * kSecond}};
  p.queues = {"billing", "tech_support", "sales", "retention"};
  return p;
}

// The daemon's configuration matching OracleParams(). max_queues 0: every
// queue the generator uses is configured, anything else is "other".
std::string DaemonConfig(const std::string& brokers) {
  return "kafka:\n  brokers: " + brokers +
         "\n  group_id: differential\n"
         "rules: " CXPULSE_RULES_DIR
         "\nadmin: {address: 127.0.0.1:0}\n"
         // A partition idles forward only once read to its end: the stream is
         // produced before the daemon starts, so while it is read event time
         // alone moves every clock. After the end, 2 s on, the idle partition
         // stops holding the centre stage back and the others' watermarks
         // drift on; the final watermark is 15 s past a minute, so the KPI
         // windows' end (E) stays put for the 45 s the test needs, and
         // findings are compared below the final watermark only.
         "engine: {allowed_lateness: 30s, idle_partition_timeout: 2s, commit_interval: 200ms}\n"
         "kpi:\n"
         "  windows: [15m, 1h]\n"
         "  bucket: 1m\n"
         "  repeat_window: 24h\n"
         "  callback_grace: 5m\n"
         "  max_queues: 0\n"
         "  service_level: {threshold: 20s}\n"
         "  queues:\n"
         "    billing: {service_level: {threshold: 30s}}\n"
         "    retention: {service_level: {threshold: 45s}}\n"
         "    tech_support:\n"
         "    sales:\n";
}

// ---- reading what cxpulse said ---------------------------------------------------

Finding FromProto(const cx::v1::Finding& f) {
  Finding out{f.rule(), {}, TimeOf(f.fired_at()), f.count()};
  for (const auto& k : f.key()) out.key.push_back(k.value());
  return out;
}

std::vector<Finding> Before(std::vector<Finding> findings, Micros t) {
  std::erase_if(findings, [t](const Finding& f) { return f.fired_at >= t; });
  std::sort(findings.begin(), findings.end());
  return findings;
}

Kpis KpisOf(const std::vector<SampleLine>& samples) {
  const std::set<std::string> names(oracle::KpiNames().begin(), oracle::KpiNames().end());
  Kpis out;
  for (const SampleLine& s : samples) {
    if (!s.name.starts_with("cxpulse_kpi_")) continue;
    const std::string component = s.name.substr(12);
    if (names.count(component) == 0) continue;
    KpiCell cell{s.labels.count("queue") ? s.labels.at("queue") : "",
                 s.labels.count("channel") ? s.labels.at("channel") : "",
                 s.labels.count("window") ? s.labels.at("window") : ""};
    out[cell][component] = s.value;
  }
  return out;
}

// ---- comparing ---------------------------------------------------------------------

// (rule, key, fired_at) without the count.
std::string Key3(const Finding& f) {
  std::string out = f.rule + "[";
  for (size_t i = 0; i < f.key.size(); ++i) out += (i > 0 ? "," : "") + f.key[i];
  return out + "] at " + oracle::FormatTime(f.fired_at);
}

// Empty when `got` and `want` are equal as multisets; otherwise per-rule
// counts, then the first 20 findings one side has and the other has not
// (ignoring count), then the first 20 that both have but with another count.
std::string CompareFindings(const std::vector<Finding>& got_in, const std::vector<Finding>& want_in,
                            const std::string& got_name, const std::string& want_name) {
  std::vector<Finding> got = got_in, want = want_in;
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  if (got == want) return "";
  std::vector<Finding> only_got, only_want;
  std::set_difference(got.begin(), got.end(), want.begin(), want.end(), std::back_inserter(only_got));
  std::set_difference(want.begin(), want.end(), got.begin(), got.end(), std::back_inserter(only_want));
  // Pair up the differences that agree but for the count.
  std::multimap<std::string, Finding> unpaired_want;
  for (const Finding& f : only_want) unpaired_want.emplace(Key3(f), f);
  std::vector<std::pair<Finding, char>> missing_or_extra;  // '+': got only, '-': want only
  std::vector<std::pair<Finding, int64_t>> count_differs;  // got's finding, want's count
  for (const Finding& f : only_got) {
    auto it = unpaired_want.find(Key3(f));
    if (it == unpaired_want.end()) {
      missing_or_extra.push_back({f, '+'});
    } else {
      count_differs.push_back({f, it->second.count});
      unpaired_want.erase(it);
    }
  }
  for (const auto& [k, f] : unpaired_want) missing_or_extra.push_back({f, '-'});
  std::sort(missing_or_extra.begin(), missing_or_extra.end());

  struct PerRule {
    int got = 0, want = 0, only_got = 0, only_want = 0, count_differs = 0;
  };
  std::map<std::string, PerRule> rules;
  for (const std::string& r : oracle::RuleNames()) rules[r];
  for (const Finding& f : got) ++rules[f.rule].got;
  for (const Finding& f : want) ++rules[f.rule].want;
  for (const auto& [f, side] : missing_or_extra) ++(side == '+' ? rules[f.rule].only_got : rules[f.rule].only_want);
  for (const auto& [f, c] : count_differs) ++rules[f.rule].count_differs;

  std::ostringstream out;
  out << "findings differ: " << got_name << " " << got.size() << ", " << want_name << " " << want.size() << "\n";
  char line[200];
  std::snprintf(line, sizeof line, "  %-26s %8s %8s %8s %8s %11s\n", "rule", got_name.substr(0, 8).c_str(),
                want_name.substr(0, 8).c_str(), "+only", "-only", "count-diff");
  out << line;
  for (const auto& [rule, n] : rules) {
    std::snprintf(line, sizeof line, "  %-26s %8d %8d %8d %8d %11d%s\n", rule.c_str(), n.got, n.want, n.only_got,
                  n.only_want, n.count_differs, n.only_got + n.only_want + n.count_differs > 0 ? "  <-" : "");
    out << line;
  }
  if (!missing_or_extra.empty()) {
    out << "  only on one side, ignoring count (+ " << got_name << ", - " << want_name << "), first 20 of "
        << missing_or_extra.size() << ":\n";
    for (size_t i = 0; i < missing_or_extra.size() && i < 20; ++i) {
      out << "    " << missing_or_extra[i].second << " " << missing_or_extra[i].first << "\n";
    }
  }
  if (!count_differs.empty()) {
    out << "  same finding, another count, first 20 of " << count_differs.size() << ":\n";
    for (size_t i = 0; i < count_differs.size() && i < 20; ++i) {
      out << "    ~ " << Key3(count_differs[i].first) << ": " << got_name << " count " << count_differs[i].first.count
          << ", " << want_name << " count " << count_differs[i].second << "\n";
    }
  }
  return out.str();
}

bool IsSeconds(const std::string& component) { return component.ends_with("_seconds"); }

double Get(const Kpis& kpis, const KpiCell& cell, const std::string& name) {
  auto c = kpis.find(cell);
  if (c == kpis.end()) return 0;
  auto v = c->second.find(name);
  return v == c->second.end() ? 0 : v->second;
}

// Empty when every component of every cell agrees (a missing one is 0):
// exactly for counts, within 1e-6 relative for second sums.
std::string CompareKpis(const Kpis& got, const Kpis& want, const std::string& got_name, const std::string& want_name) {
  std::set<KpiCell> cells;
  for (const auto& [c, v] : got) cells.insert(c);
  for (const auto& [c, v] : want) cells.insert(c);
  struct PerComponent {
    int cells = 0;
    double got = 0, want = 0;
  };
  std::map<std::string, PerComponent> differing;
  std::vector<std::string> lines;
  for (const KpiCell& cell : cells) {
    for (const std::string& name : oracle::KpiNames()) {
      const double g = Get(got, cell, name), w = Get(want, cell, name);
      const bool same = IsSeconds(name) ? std::abs(g - w) <= 1e-6 * std::max(std::abs(g), std::abs(w)) : g == w;
      if (same) continue;
      PerComponent& d = differing[name + " (" + cell.window + ")"];
      ++d.cells;
      d.got += g;
      d.want += w;
      std::ostringstream l;
      l << std::setprecision(12) << "    " << cell.queue << "/" << cell.channel << "/" << cell.window << " " << name
        << ": " << got_name << " " << g << ", " << want_name << " " << w;
      lines.push_back(l.str());
    }
  }
  if (differing.empty()) return "";
  std::ostringstream out;
  out << std::setprecision(12) << "KPIs differ (" << got_name << " vs " << want_name
      << "), per component: cells differing, sum over them\n";
  for (const auto& [name, d] : differing) {
    out << "  " << name << ": " << d.cells << " cells, " << got_name << " " << d.got << ", " << want_name << " "
        << d.want << "\n";
  }
  out << "  first differences:\n";
  for (size_t i = 0; i < lines.size() && i < 20; ++i) out << lines[i] << "\n";
  return out.str();
}

// ---- running the daemon --------------------------------------------------------------

struct RunResult {
  std::string name;
  std::vector<Finding> findings;     // every finding written, sorted
  Kpis kpis;                         // the last scrape
  std::optional<double> window_end;  // cxpulse_kpi_window_end_timestamp_seconds
  double consumed = 0;
  double late = 0;
  std::set<std::string> dead_letters;  // event ids
  int exit_code = -1;
  std::string problems;  // what went wrong running it, not comparing it
};

// One `cxpulse run` over the stream: its own mock cluster, the stream
// produced with explicit partitions before the daemon starts.
class DaemonRun {
 public:
  DaemonRun(const Stream& stream, Layout layout) : stream_(stream), layout_(layout) {}

  void Start() {
    auto cluster = EmbeddedCluster::Start(1);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
    ASSERT_TRUE(cluster_->CreateTopic("cx.interactions", layout_.partitions).ok());
    ASSERT_TRUE(cluster_->CreateTopic("cx.findings", 1).ok());
    ASSERT_TRUE(cluster_->CreateTopic("cx.deadletter", 1).ok());
    ASSERT_TRUE(cluster_->CreateTopic("differential-changelog", layout_.partitions).ok());
    auto producer = Producer::Create({{"bootstrap.servers", cluster_->bootstrap_servers()}});
    ASSERT_TRUE(producer.ok()) << producer.status();
    for (const InteractionEvent& e : stream_.events) {
      ASSERT_TRUE((*producer)
                      ->Produce("cx.interactions", PartitionOf(e, layout_.partitions, stream_), e.customer_id(),
                                e.SerializeAsString())
                      .ok());
      (*producer)->Poll();
    }
    ASSERT_TRUE((*producer)->Flush(30'000).ok());
    ASSERT_EQ((*producer)->delivery_failures(), 0u);
    const std::string config = dir_.Write("cxpulse.yaml", DaemonConfig(cluster_->bootstrap_servers()));
    daemon_ = std::make_unique<testing::ChildProcess>(
        std::vector<std::string>{CXPULSE_BINARY, "run", "--config", config, "--shards", std::to_string(layout_.shards)},
        dir_.path() + "/daemon.log");
    ASSERT_TRUE(daemon_->started());
  }

  // Waits until the daemon's metrics say it has consumed every event and
  // published the window end E, scrapes, stops it, and reads its topics.
  RunResult Finish() {
    RunResult r;
    r.name = layout_.Name();
    if (daemon_ == nullptr) {
      r.problems = "did not start";
      return r;
    }
    const int port = testing::AdminPort(*daemon_);
    if (port == 0) {
      r.problems = "no admin port in its log:\n" + daemon_->Output();
      return r;
    }
    const double produced = static_cast<double>(stream_.events.size());
    const double expected_end = static_cast<double>(kWindowEnd) / kSecond;
    std::vector<SampleLine> samples;
    // Polled, not slept on: done once all three are observed. The window end
    // comes once every partition's watermark is at kFinalWatermark, the
    // centre stage's 2 s (the idle timeout) after the end; if everything is
    // consumed and they have not come 5 s later, they never will.
    std::optional<std::chrono::steady_clock::time_point> all_consumed;
    for (const auto deadline = std::chrono::steady_clock::now() + 60s; std::chrono::steady_clock::now() < deadline;) {
      samples = ParseExposition(testing::HttpGet(port, "/metrics").body);
      r.consumed = SumOf(samples, "cxpulse_events_consumed_total");
      r.window_end = ValueOf(samples, "cxpulse_kpi_window_end_timestamp_seconds");
      // The centre stage has released (and its rules seen) everything below
      // the final watermark: once the idle partition stops holding it back.
      const std::optional<double> centre = ValueOf(samples, "cxpulse_centre_watermark_timestamp_seconds");
      const bool centre_done = centre && *centre >= static_cast<double>(kFinalWatermark) / kSecond;
      if (r.consumed == produced && r.window_end == expected_end && centre_done) break;
      if (r.consumed == produced && !all_consumed) all_consumed = std::chrono::steady_clock::now();
      if (all_consumed && std::chrono::steady_clock::now() - *all_consumed > 5s) break;
      std::this_thread::sleep_for(100ms);
    }
    r.kpis = KpisOf(samples);
    r.late = SumOf(samples, "cxpulse_late_events_total");
    daemon_->Signal(SIGTERM);
    r.exit_code = daemon_->Wait(30s);
    if (r.exit_code != 0) r.problems += "exit code " + std::to_string(r.exit_code) + "; log:\n" + daemon_->Output();

    for (const testing::Record& rec : testing::ReadTopic(cluster_->bootstrap_servers(), "cx.findings", 1)) {
      cx::v1::Finding f;
      if (!f.ParseFromString(rec.value)) {
        r.problems += "a finding that does not parse\n";
        continue;
      }
      r.findings.push_back(FromProto(f));
    }
    std::sort(r.findings.begin(), r.findings.end());
    for (const testing::Record& rec : testing::ReadTopic(cluster_->bootstrap_servers(), "cx.deadletter", 1)) {
      InteractionEvent e;
      r.dead_letters.insert(e.ParseFromString(rec.value) ? e.event_id() : "(undecodable)");
    }
    return r;
  }

 private:
  const Stream& stream_;
  Layout layout_;
  testing::TempDir dir_;
  std::unique_ptr<EmbeddedCluster> cluster_;
  std::unique_ptr<testing::ChildProcess> daemon_;
};

std::map<std::string, int> PerRule(const std::vector<Finding>& findings) {
  std::map<std::string, int> n;
  for (const std::string& r : oracle::RuleNames()) n[r] = 0;
  for (const Finding& f : findings) ++n[f.rule];
  return n;
}

class DifferentialTest : public ::testing::TestWithParam<int> {};

TEST_P(DifferentialTest, DaemonAndReplayAgreeWithTheOracle) {
  const uint64_t seed = static_cast<uint64_t>(GetParam());
  const Stream stream = MakeStream(seed);
  const oracle::Params params = OracleParams();
  size_t bytes = 0;
  for (const auto& e : stream.events) bytes += e.ByteSizeLong();
  // librdkafka's mock cluster keeps about 5 MB per partition.
  ASSERT_LT(stream.events.size(), 30'000u);
  ASSERT_LT(bytes, 4'000'000u);

  // The stream is what it is meant to be, on every layout: the late events
  // (and only they) are late, every non-idle partition ends at the same
  // watermark, and E is where the test expects it.
  for (const Layout& layout : kLayouts) {
    const auto partition_of = [&](const InteractionEvent& e) { return PartitionOf(e, layout.partitions, stream); };
    const oracle::Admission a = oracle::Admit(stream.events, partition_of, kLateness);
    std::set<std::string> late;
    for (const auto* e : a.late) late.insert(e->event_id());
    ASSERT_EQ(late, stream.late_ids) << layout.Name();
    ASSERT_EQ(a.watermark.size(), layout.partitions == 1 ? 1u : 7u) << layout.Name();
    for (const auto& [p, w] : a.watermark) ASSERT_EQ(w, kFinalWatermark) << "partition " << p;
    ASSERT_EQ(oracle::KpiWindowEnd(a, kMinute), kWindowEnd);
  }
  ASSERT_GE(stream.late_ids.size(), 5u);

  // What the oracle expects. Per-customer rules and the KPIs do not depend
  // on the layout by construction; centre-wide rules must not either.
  const auto one_partition = [&](const InteractionEvent& e) { return PartitionOf(e, 1, stream); };
  const auto eight_partitions = [&](const InteractionEvent& e) { return PartitionOf(e, 8, stream); };
  const auto oracle_started = std::chrono::steady_clock::now();
  const std::vector<Finding> expected =
      Before(oracle::Findings(stream.events, one_partition, params, false), kFinalWatermark);
  const std::string oracle_findings = CompareFindings(
      Before(oracle::Findings(stream.events, eight_partitions, params, false), kFinalWatermark), expected, "8", "1");
  ASSERT_TRUE(oracle_findings.empty()) << oracle_findings;
  const Kpis expected_kpis = oracle::Kpis(stream.events, one_partition, params, kWindowEnd);
  const std::string oracle_layouts =
      CompareKpis(oracle::Kpis(stream.events, eight_partitions, params, kWindowEnd), expected_kpis, "8", "1");
  ASSERT_TRUE(oracle_layouts.empty()) << oracle_layouts;
  const std::vector<Finding> expected_replay = oracle::Findings(stream.events, one_partition, params, true);
  // Five full oracle passes (findings three times, KPIs twice).
  const double oracle_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - oracle_started).count();
  std::map<int, int> partition_sizes;
  for (const auto& e : stream.events) ++partition_sizes[PartitionOf(e, 8, stream)];

  std::ostringstream summary;
  summary << "seed " << seed << ": " << stream.events.size() << " events (" << bytes << " bytes), " << stream.moved
          << " out of order, " << stream.late_ids.size() << " late; on 8 partitions:";
  for (int p = 0; p < 8; ++p) summary << " " << partition_sizes[p];
  summary << "; oracle " << oracle_seconds << " s for 5 passes; its findings before the final watermark:";
  for (const auto& [rule, n] : PerRule(expected)) summary << " " << rule << "=" << n;
  std::printf("%s\n", summary.str().c_str());
  // The stream exercises the centre-wide rules it was sized for.
  EXPECT_GT(PerRule(expected)["reason_surge"], 0) << summary.str();
  EXPECT_GT(PerRule(expected)["queue_abandonment_spike"], 0) << summary.str();
  for (const auto& [rule, n] : PerRule(expected_replay)) EXPECT_GT(n, 0) << rule << " never fires in the replay";

  // The replay input: the same stream, unpartitioned, as `cxpulse gen --format jsonl` writes it.
  testing::TempDir replay_dir;
  const std::string input = replay_dir.path() + "/events.jsonl";
  {
    std::ofstream out(input);
    for (const InteractionEvent& e : stream.events) {
      std::string json;
      ASSERT_TRUE(google::protobuf::util::MessageToJsonString(e, &json).ok());
      out << json << "\n";
    }
  }
  const std::string replay_output = replay_dir.path() + "/findings.jsonl";
  // To look into a difference: CXPULSE_DIFFERENTIAL_DUMP=DIR keeps each seed's stream there.
  if (const char* dump = std::getenv("CXPULSE_DIFFERENTIAL_DUMP")) {
    std::filesystem::copy_file(input, std::string(dump) + "/seed-" + std::to_string(seed) + ".jsonl",
                               std::filesystem::copy_options::overwrite_existing);
  }

  // Every layout at once (they spend most of their time joining the group), and the replay.
  std::vector<std::unique_ptr<DaemonRun>> runs;
  for (const Layout& layout : kLayouts) {
    runs.push_back(std::make_unique<DaemonRun>(stream, layout));
    runs.back()->Start();
    if (::testing::Test::HasFatalFailure()) return;
  }
  testing::ChildProcess replay(
      {CXPULSE_BINARY, "replay", "--rules", CXPULSE_RULES_DIR, "--input", input, "--output", replay_output},
      replay_dir.path() + "/replay.log");
  const auto started = std::chrono::steady_clock::now();
  // Finish() records problems instead of asserting, so it can run on its own thread.
  std::vector<std::future<RunResult>> finishing;
  for (auto& run : runs) finishing.push_back(std::async(std::launch::async, [&run] { return run->Finish(); }));
  std::vector<RunResult> results;
  for (auto& f : finishing) results.push_back(f.get());
  std::printf("seed %d: daemons finished %.1f s after starting\n", static_cast<int>(seed),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());

  const std::string oracle_name = "oracle";
  for (const RunResult& r : results) {
    SCOPED_TRACE("seed " + std::to_string(seed) + ", " + r.name);
    EXPECT_TRUE(r.problems.empty()) << r.problems;
    EXPECT_EQ(r.consumed, static_cast<double>(stream.events.size())) << "cxpulse_events_consumed_total";
    EXPECT_EQ(r.window_end, std::optional<double>(static_cast<double>(kWindowEnd) / kSecond))
        << "cxpulse_kpi_window_end_timestamp_seconds: want E = " << oracle::FormatTime(kWindowEnd)
        << (r.window_end ? ", got " + oracle::FormatTime(static_cast<Micros>(*r.window_end * kSecond)) : ", absent");
    EXPECT_EQ(r.late, static_cast<double>(stream.late_ids.size())) << "cxpulse_late_events_total";
    EXPECT_EQ(r.dead_letters, stream.late_ids) << "the dead-letter topic holds the late events, and only them";
    const std::string findings = CompareFindings(Before(r.findings, kFinalWatermark), expected, "cxpulse", oracle_name);
    EXPECT_TRUE(findings.empty()) << findings;
    const std::string kpis = CompareKpis(r.kpis, expected_kpis, "cxpulse", oracle_name);
    EXPECT_TRUE(kpis.empty()) << kpis;
  }
  // The layout changes nothing a user sees.
  for (size_t i = 1; i < results.size(); ++i) {
    SCOPED_TRACE("seed " + std::to_string(seed) + ": " + results[i].name + " against " + results[0].name);
    const std::string findings = CompareFindings(Before(results[i].findings, kFinalWatermark),
                                                 Before(results[0].findings, kFinalWatermark), "this", "first");
    EXPECT_TRUE(findings.empty()) << findings;
    const std::string kpis = CompareKpis(results[i].kpis, results[0].kpis, "this", "first");
    EXPECT_TRUE(kpis.empty()) << kpis;
  }

  // Replay: every finding, pending promises fired at the end.
  SCOPED_TRACE("seed " + std::to_string(seed) + ", cxpulse replay");
  ASSERT_EQ(replay.Wait(60s), 0) << replay.Output();
  EXPECT_NE(replay.Output().find(", 0 bad lines, " + std::to_string(stream.late_ids.size()) + " late"),
            std::string::npos)
      << replay.Output();
  std::vector<Finding> replayed;
  for (const cx::v1::Finding& f : testing::ReadJsonLines<cx::v1::Finding>(replay_output)) {
    replayed.push_back(FromProto(f));
  }
  const std::string findings = CompareFindings(replayed, expected_replay, "replay", oracle_name);
  EXPECT_TRUE(findings.empty()) << findings;
}

INSTANTIATE_TEST_SUITE_P(Seeds, DifferentialTest, ::testing::Range(1, kSeeds + 1));

}  // namespace
}  // namespace cxpulse
