// Latency from event produce to finding produce (issue 4 (d)), measured
// against the real daemon binary on an in-process mock Kafka cluster.
//
// One rule, a `match` on every `sentiment` event with no cooldown, so each
// event sent makes exactly one finding (its event id is the evidence). The
// bench process hosts librdkafka's mock cluster (cx.interactions x8,
// cx.findings x8, cx.deadletter x1), starts `cxpulse run` as a child process
// with a config pointing at it, and:
//   1. backlog: for reference, preloads --backlog events and runs the daemon
//               with --exit-when-idle; its rate is taken from the findings'
//               Kafka timestamps (first to last), start-up excluded;
//   2. max:     the highest paced rate the whole rig keeps up with (the
//               generator and the mock cluster share the 2 cores with the
//               daemon): doubling from --probe-from until a probe falls
//               behind (a finding missing, or the median latency of the last
//               quarter of the probe above 1.5x that of the second quarter
//               + 20 ms), then bisecting three times;
//   3. latency: for each daemon variant (kafka.properties passed through), a
//               fresh cluster and daemon; events paced on a steady clock at
//               half that maximum (or --rate) for --seconds after --warmup.
// Per event, from the system clock at the bench's produce() call (the load
// generator's linger.ms is --gen-linger-ms, default 1):
//   ack:    the broker acknowledged the input event (librdkafka's
//           rd_kafka_message_latency): the rig's own share;
//   create: the finding's Kafka CreateTime, stamped by the daemon's producer
//           when it queues the finding: produce -> finding produce, what the
//           issue asks. CreateTime is whole milliseconds (truncated), so this
//           reads up to 1 ms low;
//   recv:   this process's consumer received the finding (microseconds; adds
//           the daemon producer's batching, the broker and our fetch).
// Both ends read the same host's wall clock.
//
// Run: build/tests/latency_bench [--binary PATH] [--rate N] [--seconds S]
//        [--warmup S] [--backlog N] [--shards N] [--gen-linger-ms MS]
//        [--probe-from N] [--probe-seconds S] [--variant NAME[:k=v,k=v]]...
//        [--engine k=v]... [--dump PREFIX]
// --engine sets a key of the daemon's `engine:` section (e.g. commit_interval=10s);
// --dump writes every measured event of each variant to PREFIX.NAME.tsv (event id,
// sent, ack, finding CreateTime, received; for finding where a tail comes from).
// Without --variant: default, linger.ms=0, fetch.wait.max.ms=1, and both; the
// first variant is the one the maximum is found with.
#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/strings.h"
#include "common/time.h"
#include "cx/v1/event.pb.h"
#include "cx/v1/finding.pb.h"
#include "kafka/client.h"
#include "support/child_process.h"
#include "support/temp_dir.h"

namespace cxpulse {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

constexpr int kInputPartitions = 8;
constexpr int kFindingPartitions = 8;
constexpr int kCustomers = 100'000;

int64_t WallMicros() { return ToMicros(std::chrono::system_clock::now()); }

struct Options {
  std::string binary = CXPULSE_BINARY;
  double rate = 0;  // 0: half the measured maximum
  double seconds = 20;
  double warmup = 3;
  int64_t backlog = 200'000;
  double probe_from = 5000;  // first rate tried when finding the maximum
  double probe_seconds = 6;
  int shards = 0;  // 0: the daemon's default (one per core)
  // The load generator's linger.ms: 1 adds at most 1 ms to every figure and,
  // at higher rates, puts more than one message in each of the mock broker's
  // message sets (every fetch walks them all; BENCHMARKS.md (d)).
  std::string gen_linger_ms = "1";
  std::vector<std::pair<std::string, KafkaProperties>> variants;
  KafkaProperties engine;  // the daemon config's `engine:` keys
  std::string dump;        // per-event rows to DUMP.<variant>.tsv
};

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "latency_bench: %s\n", why.c_str());
  std::exit(1);
}

constexpr std::string_view kRules = R"(rules:
  - name: latency_probe
    family: escalation
    kind: match
    on: sentiment
    key: [customer_id]
    severity: info
    summary: "probe for {customer_id}"
)";

// A fresh mock cluster with the three topics, a rule file and a config.
struct Setup {
  std::unique_ptr<EmbeddedCluster> cluster;
  testing::TempDir dir;
  std::string config;

  Setup(const KafkaProperties& daemon_properties, const KafkaProperties& engine) {
    auto c = EmbeddedCluster::Start(1);
    if (!c.ok()) Die(std::string(Message(c.status())));
    cluster = *std::move(c);
    for (const auto& [topic, n] : {std::pair{"cx.interactions", kInputPartitions},
                                   std::pair{"cx.findings", kFindingPartitions}, std::pair{"cx.deadletter", 1},
                                   std::pair{"latency-bench-changelog", kInputPartitions}}) {
      if (absl::Status s = cluster->CreateTopic(topic, n); !s.ok()) Die(std::string(Message(s)));
    }
    const std::string rules = dir.Write("latency.yaml", std::string(kRules));
    std::string props = "{";
    for (const auto& [k, v] : daemon_properties) Append(&props, props.size() > 1 ? ", " : "", k, ": \"", v, "\"");
    props += "}";
    std::string engine_keys = "{";
    for (const auto& [k, v] : engine) Append(&engine_keys, engine_keys.size() > 1 ? ", " : "", k, ": ", v);
    engine_keys += "}";
    config = dir.Write("cxpulse.yaml", Cat("kafka:\n  brokers: ", cluster->bootstrap_servers(),
                                           "\n  group_id: latency-bench\n  properties: ", props, "\nrules: ", rules,
                                           "\nadmin: {address: 127.0.0.1:0}\nengine: ", engine_keys, "\n"));
  }
};

// Builds event `id` (a sentiment sample, so it fires the probe rule once).
class EventMaker {
 public:
  EventMaker() {
    event_.set_channel(cx::v1::CHANNEL_VOICE);
    event_.set_queue("billing");
    event_.set_reason("billing_dispute");
    event_.set_segment("standard");
    event_.set_agent_id("a0042");
    event_.mutable_sentiment()->set_score(-0.3);
  }
  // Sets key_ and value_ for event `id` stamped `occurred_us`.
  void Make(int64_t id, int64_t occurred_us) {
    char digits[24];
    auto end = std::to_chars(digits, digits + sizeof digits, id).ptr;
    event_.set_event_id(std::string(digits, end));
    key_.assign("c");
    end = std::to_chars(digits, digits + sizeof digits, 100'000 + id % kCustomers).ptr;
    key_.append(digits, end);
    event_.set_customer_id(key_);
    event_.set_contact_id(Cat("ct", id));
    SetTimestamp(occurred_us, event_.mutable_occurred_at());
    event_.SerializeToString(&value_);
  }
  const std::string& key() const { return key_; }
  const std::string& value() const { return value_; }

 private:
  cx::v1::InteractionEvent event_;
  std::string key_, value_;
};

// The load generator: one producer, no batching delay. Each message's opaque
// is its event id; the delivery report records how long the broker took to
// acknowledge it (librdkafka's own measure from the produce() call).
class Generator {
 public:
  Generator(const std::string& bootstrap, const std::string& linger_ms, int64_t events) : ack_us_(events, -1) {
    auto conf = NewKafkaConf({{"bootstrap.servers", bootstrap},
                              {"linger.ms", linger_ms},
                              {"queue.buffering.max.messages", "2000000"},
                              {"queue.buffering.max.kbytes", "1048576"}});
    if (!conf.ok()) Die(std::string(Message(conf.status())));
    rd_kafka_conf_set_dr_msg_cb(*conf, &Generator::OnDelivery);
    rd_kafka_conf_set_opaque(*conf, this);
    auto rk = NewKafkaClient(RD_KAFKA_PRODUCER, *conf);
    if (!rk.ok()) Die(std::string(Message(rk.status())));
    rk_ = *std::move(rk);
  }
  void Send(int64_t id, const std::string& key, const std::string& value) {
    for (;;) {
      const rd_kafka_resp_err_t err = rd_kafka_producev(
          rk_.get(), RD_KAFKA_V_TOPIC("cx.interactions"), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
          RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<intptr_t>(id))), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return;
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) Die(Cat("produce: ", rd_kafka_err2str(err)));
      rd_kafka_poll(rk_.get(), 1);
    }
  }
  void Poll() { rd_kafka_poll(rk_.get(), 0); }
  void Flush() {
    if (rd_kafka_flush(rk_.get(), 60'000) != RD_KAFKA_RESP_ERR_NO_ERROR) Die("generator flush timed out");
  }
  // By event id: produce() to the broker's acknowledgement, microseconds (-1: none).
  const std::vector<int64_t>& ack_us() const { return ack_us_; }

 private:
  static void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* self = static_cast<Generator*>(opaque);
    const auto id = static_cast<int64_t>(reinterpret_cast<intptr_t>(m->_private));
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && id >= 0 && id < static_cast<int64_t>(self->ack_us_.size())) {
      self->ack_us_[static_cast<size_t>(id)] = rd_kafka_message_latency(m);
    }
  }
  std::vector<int64_t> ack_us_;
  KafkaHandle rk_;
};

// Reads cx.findings from the beginning on its own thread; per finding, by the
// event id in its evidence: the Kafka CreateTime (ms) and when it arrived (us).
class FindingReader {
 public:
  FindingReader(const std::string& bootstrap, int64_t events) : create_ms_(events, -1), recv_us_(events, -1) {
    auto conf = NewKafkaConf({{"bootstrap.servers", bootstrap},
                              {"group.id", "latency-bench-reader"},
                              {"enable.auto.commit", "false"},
                              // The mock broker holds an empty fetch for the whole
                              // wait, even when data arrives: keep it short.
                              {"fetch.wait.max.ms", "1"}});
    if (!conf.ok()) Die(std::string(Message(conf.status())));
    auto rk = NewKafkaClient(RD_KAFKA_CONSUMER, *conf);
    if (!rk.ok()) Die(std::string(Message(rk.status())));
    rk_ = *std::move(rk);
    PartitionList list(rd_kafka_topic_partition_list_new(kFindingPartitions));
    for (int p = 0; p < kFindingPartitions; ++p) {
      rd_kafka_topic_partition_list_add(list.get(), "cx.findings", p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_assign(rk_.get(), list.get());
    thread_ = std::thread([this] { Run(); });
  }
  ~FindingReader() {
    Stop();
    rd_kafka_consumer_close(rk_.get());
  }
  // Joins the reader thread; the vectors below are then stable.
  void Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  int64_t received() const { return received_.load(std::memory_order_acquire); }
  int64_t duplicates() const { return duplicates_.load(std::memory_order_relaxed); }
  // Read only after Stop().
  const std::vector<int64_t>& create_ms() const { return create_ms_; }
  const std::vector<int64_t>& recv_us() const { return recv_us_; }
  int64_t first_create_ms() const { return first_ms_.load(); }
  int64_t last_create_ms() const { return last_ms_.load(); }

 private:
  void Run() {
    cx::v1::Finding finding;
    while (!stop_.load(std::memory_order_relaxed)) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_.get(), 50);
      if (m == nullptr) continue;
      const int64_t now = WallMicros();
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && finding.ParseFromArray(m->payload, static_cast<int>(m->len)) &&
          finding.evidence_event_ids_size() == 1) {
        const std::string& id_text = finding.evidence_event_ids(0);
        int64_t id = -1;
        std::from_chars(id_text.data(), id_text.data() + id_text.size(), id);
        rd_kafka_timestamp_type_t type;
        const int64_t ts = rd_kafka_message_timestamp(m, &type);
        if (id >= 0 && id < static_cast<int64_t>(create_ms_.size())) {
          if (create_ms_[static_cast<size_t>(id)] >= 0) {
            duplicates_.fetch_add(1, std::memory_order_relaxed);
          } else {
            create_ms_[static_cast<size_t>(id)] = type == RD_KAFKA_TIMESTAMP_CREATE_TIME ? ts : -2;
            recv_us_[static_cast<size_t>(id)] = now;
            if (first_ms_.load() < 0 || ts < first_ms_.load()) first_ms_.store(ts);
            if (ts > last_ms_.load()) last_ms_.store(ts);
            received_.fetch_add(1, std::memory_order_release);
          }
        }
      } else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        std::fprintf(stderr, "latency_bench: findings consumer: %s\n", rd_kafka_message_errstr(m));
      }
      rd_kafka_message_destroy(m);
    }
  }

  KafkaHandle rk_;
  std::vector<int64_t> create_ms_, recv_us_;
  std::atomic<int64_t> received_{0}, duplicates_{0}, first_ms_{-1}, last_ms_{-1};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::vector<std::string> DaemonArgs(const Options& o, const std::string& config, bool exit_when_idle) {
  std::vector<std::string> argv = {o.binary, "run", "--config", config};
  if (o.shards > 0) {
    argv.push_back("--shards");
    argv.push_back(std::to_string(o.shards));
  }
  if (exit_when_idle) argv.push_back("--exit-when-idle");
  return argv;
}

std::string Tail(const std::string& text, size_t lines) {
  size_t at = text.size();
  for (size_t n = 0; n <= lines && at > 0; ++n) at = text.rfind('\n', at - 1);
  return at == std::string::npos ? text : text.substr(at + 1);
}

// For reference: the daemon alone draining a preloaded backlog, its rate
// from the findings' CreateTimes (first to last), start-up excluded.
double MeasureMax(const Options& o) {
  Setup setup({}, o.engine);
  {
    Generator gen(setup.cluster->bootstrap_servers(), "5", 0);
    EventMaker maker;
    // Event time: the last minute, in order, so nothing is late or in the future.
    const int64_t t0 = WallMicros() - 60 * kMicrosPerSecond;
    const int64_t step = std::max<int64_t>(1, 50 * kMicrosPerSecond / o.backlog);
    for (int64_t i = 0; i < o.backlog; ++i) {
      maker.Make(i, t0 + i * step);
      gen.Send(-1, maker.key(), maker.value());
      if (i % 1024 == 0) gen.Poll();
    }
    gen.Flush();
  }
  FindingReader reader(setup.cluster->bootstrap_servers(), o.backlog);
  const auto started = Steady::now();
  testing::ChildProcess daemon(DaemonArgs(o, setup.config, true), setup.dir.path() + "/max.log");
  if (!daemon.started()) Die("could not start " + o.binary);
  const int code = daemon.Wait(600s);
  const double wall = std::chrono::duration<double>(Steady::now() - started).count();
  if (code != 0) Die(Cat("daemon (max) exited ", code, ":\n", Tail(daemon.Output(), 20)));
  for (auto deadline = Steady::now() + 60s; reader.received() < o.backlog && Steady::now() < deadline;) {
    std::this_thread::sleep_for(50ms);
  }
  if (reader.received() < o.backlog) {
    Die(Cat("max: ", reader.received(), " findings of ", o.backlog, " expected\n", Tail(daemon.Output(), 20)));
  }
  const double span_s = static_cast<double>(reader.last_create_ms() - reader.first_create_ms()) / 1000.0;
  const double rate = static_cast<double>(o.backlog - 1) / span_s;
  std::printf("backlog: %" PRId64 " events preloaded, no generator running; daemon (--exit-when-idle) ran %.2f s "
              "wall including start-up and group join (%.0f events/s);\n         first to last finding produced %.3f s: "
              "%.0f events/s\n",
              o.backlog, wall, static_cast<double>(o.backlog) / wall, span_s, rate);
  std::fflush(stdout);
  return rate;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

void PrintRow(const char* what, const std::vector<double>& v) {
  std::printf("  %-7s ms: p50 %8.2f  p90 %8.2f  p99 %8.2f  p99.9 %8.2f  max %8.2f\n", what, Percentile(v, 50),
              Percentile(v, 90), Percentile(v, 99), Percentile(v, 99.9), Percentile(v, 100));
}

struct LatencyResult {
  bool keeps_up = false;
  double sent_rate = 0;
};

// Paced events at `rate` against a fresh daemon with `properties`. Prints
// the distributions unless `quiet` (a probe of the maximum).
LatencyResult MeasureLatency(const Options& o, double rate, double seconds, const std::string& name,
                             const KafkaProperties& properties, bool quiet) {
  Setup setup(properties, o.engine);
  const auto warm = static_cast<int64_t>(rate * o.warmup);
  const auto total = warm + static_cast<int64_t>(rate * seconds);
  FindingReader reader(setup.cluster->bootstrap_servers(), total);
  testing::ChildProcess daemon(DaemonArgs(o, setup.config, false), setup.dir.path() + "/daemon.log");
  if (!daemon.started()) Die("could not start " + o.binary);
  if (!daemon.WaitFor(R"(assigned (\d+) partition)", 60s)) Die("daemon not assigned:\n" + Tail(daemon.Output(), 20));

  Generator gen(setup.cluster->bootstrap_servers(), o.gen_linger_ms, total);
  EventMaker maker;
  std::vector<int64_t> sent_us(static_cast<size_t>(total));
  // Send what is due, then sleep until the next is: one sleep per tick, not
  // per event (at 100k events/s a sleep per event costs more than the event).
  const auto start = Steady::now();
  const auto due = [&](int64_t i) {
    return start + std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(static_cast<double>(i) / rate));
  };
  for (int64_t i = 0; i < total;) {
    const double elapsed = std::chrono::duration<double>(Steady::now() - start).count();
    const int64_t upto = std::min(total, static_cast<int64_t>(elapsed * rate) + 1);
    for (; i < upto; ++i) {
      const int64_t now = WallMicros();
      maker.Make(i, now);
      sent_us[static_cast<size_t>(i)] = now;
      gen.Send(i, maker.key(), maker.value());
    }
    gen.Poll();
    if (i < total) std::this_thread::sleep_until(due(i));
  }
  const double send_s = std::chrono::duration<double>(Steady::now() - start).count();
  gen.Flush();
  for (auto deadline = Steady::now() + 30s; reader.received() < total && Steady::now() < deadline;) {
    std::this_thread::sleep_for(20ms);
  }
  const int64_t received = reader.received();
  reader.Stop();
  daemon.Signal(SIGTERM);
  const int code = daemon.Wait(60s);

  std::vector<double> ack, create, recv, q2, q4;
  int64_t missing = 0, no_create_time = 0;
  const int64_t n = total - warm;
  for (int64_t i = warm; i < total; ++i) {
    const auto k = static_cast<size_t>(i);
    if (gen.ack_us()[k] >= 0) ack.push_back(static_cast<double>(gen.ack_us()[k]) / 1000.0);
    if (reader.recv_us()[k] < 0) {
      ++missing;
      continue;
    }
    const double r = static_cast<double>(reader.recv_us()[k] - sent_us[k]) / 1000.0;
    recv.push_back(r);
    const int64_t quarter = (i - warm) * 4 / n;
    if (quarter == 1) q2.push_back(r);
    if (quarter == 3) q4.push_back(r);
    if (reader.create_ms()[k] < 0) ++no_create_time;
    else create.push_back(static_cast<double>(reader.create_ms()[k]) - static_cast<double>(sent_us[k]) / 1000.0);
  }
  if (!quiet && !o.dump.empty()) {
    const std::string path = Cat(o.dump, ".", name, ".tsv");
    std::FILE* f = std::fopen(path.c_str(), "w");
    if (f == nullptr) Die("cannot write " + path);
    std::fprintf(f, "id\tsent_us\tack_us\tcreate_ms\trecv_us\n");
    for (int64_t i = warm; i < total; ++i) {
      const auto k = static_cast<size_t>(i);
      std::fprintf(f, "%" PRId64 "\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\n", i, sent_us[k],
                   gen.ack_us()[k], reader.create_ms()[k], reader.recv_us()[k]);
    }
    std::fclose(f);
  }
  LatencyResult result;
  result.sent_rate = static_cast<double>(total) / send_s;
  // Keeping up: every finding came, the generator held the rate, and the
  // latency did not grow from the second quarter of the run to the last.
  const double q2_p50 = Percentile(q2, 50), q4_p50 = Percentile(q4, 50);
  result.keeps_up = missing == 0 && code == 0 && result.sent_rate >= 0.97 * rate && q4_p50 <= 1.5 * q2_p50 + 20;
  std::string props;
  for (const auto& [k, v] : properties) Append(&props, props.empty() ? "" : ", ", k, "=", v);
  if (quiet) {
    std::printf("  probe %7.0f events/s: sent %7.0f/s, %" PRId64 " missing, recv p50 %.1f ms (2nd quarter) -> %.1f ms "
                "(last quarter), p99 %.1f ms: %s\n",
                rate, result.sent_rate, missing, q2_p50, q4_p50, Percentile(recv, 99),
                result.keeps_up ? "keeps up" : "falls behind");
  } else {
    std::printf("latency [%s] kafka.properties {%s}: %.0f events/s asked, %.0f sent (%" PRId64
                " events in %.2f s, first %" PRId64 " = %.1f s warm-up not counted)\n",
                name.c_str(), props.c_str(), rate, result.sent_rate, total, send_s, warm, o.warmup);
    std::printf("  %zu findings measured, %" PRId64 " missing, %" PRId64 " duplicates, %" PRId64
                " without CreateTime; daemon exit %d; %s (recv p50 %.1f ms in the 2nd quarter, %.1f in the last)\n",
                recv.size(), missing, reader.duplicates(), no_create_time, code,
                result.keeps_up ? "kept up" : "FELL BEHIND", q2_p50, q4_p50);
    PrintRow("ack", ack);
    PrintRow("create", create);
    PrintRow("recv", recv);
  }
  std::fflush(stdout);
  if (received < total || code != 0) std::fprintf(stderr, "%s\n", Tail(daemon.Output(), 15).c_str());
  return result;
}

// The highest paced rate the whole rig keeps up with (generator, mock
// cluster and daemon share the machine): doubling from --probe-from until a
// probe falls behind, then bisecting.
double FindMax(const Options& o) {
  const auto& [name, props] = o.variants.front();
  std::printf("max: stepping the paced rate, daemon variant [%s], %.0f s a probe\n", name.c_str(), o.probe_seconds);
  double ok = 0, bad = 0;
  for (double rate = o.probe_from; bad == 0 && rate <= 2e6; rate *= 2) {
    if (MeasureLatency(o, rate, o.probe_seconds, name, props, true).keeps_up) ok = rate;
    else bad = rate;
  }
  for (int step = 0; step < 3 && ok > 0 && bad > 0; ++step) {
    const double mid = (ok + bad) / 2;
    if (MeasureLatency(o, mid, o.probe_seconds, name, props, true).keeps_up) ok = mid;
    else bad = mid;
  }
  if (ok == 0) Die("not even the first probe kept up; lower --probe-from");
  std::printf("max: %.0f events/s kept up%s\n", ok, bad > 0 ? Cat(", ", static_cast<int64_t>(bad), " did not").c_str() : "");
  return ok;
}

Options Parse(int argc, char** argv) {
  Options o;
  auto need = [&](int& i) -> std::string {
    if (i + 1 >= argc) Die(Cat(argv[i], " needs a value"));
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--binary") o.binary = need(i);
    else if (a == "--rate") o.rate = std::atof(need(i).c_str());
    else if (a == "--seconds") o.seconds = std::atof(need(i).c_str());
    else if (a == "--warmup") o.warmup = std::atof(need(i).c_str());
    else if (a == "--backlog") o.backlog = std::atoll(need(i).c_str());
    else if (a == "--shards") o.shards = std::atoi(need(i).c_str());
    else if (a == "--gen-linger-ms") o.gen_linger_ms = need(i);
    else if (a == "--probe-from") o.probe_from = std::atof(need(i).c_str());
    else if (a == "--probe-seconds") o.probe_seconds = std::atof(need(i).c_str());
    else if (a == "--dump") o.dump = need(i);
    else if (a == "--engine") {
      const std::string kv = need(i);
      const size_t eq = kv.find('=');
      if (eq == std::string::npos) Die("--engine wants k=v, got " + kv);
      o.engine[kv.substr(0, eq)] = kv.substr(eq + 1);
    } else if (a == "--variant") {
      // NAME[:k=v,k=v]
      const std::string text = need(i);
      const size_t colon = text.find(':');
      std::pair<std::string, KafkaProperties> v{text.substr(0, colon), {}};
      for (size_t from = colon == std::string::npos ? text.size() : colon + 1; from < text.size();) {
        size_t comma = text.find(',', from);
        if (comma == std::string::npos) comma = text.size();
        const std::string kv = text.substr(from, comma - from);
        const size_t eq = kv.find('=');
        if (eq == std::string::npos) Die("--variant wants NAME:k=v,k=v, got " + text);
        v.second[kv.substr(0, eq)] = kv.substr(eq + 1);
        from = comma + 1;
      }
      o.variants.push_back(std::move(v));
    } else {
      Die(Cat("unknown argument ", a,
              "\nusage: latency_bench [--binary PATH] [--rate N] [--seconds S] [--warmup S] [--backlog N] "
              "[--shards N] [--gen-linger-ms MS] [--probe-from N] [--probe-seconds S] [--variant NAME:k=v,k=v]... "
              "[--engine k=v]... [--dump PREFIX]"));
    }
  }
  if (o.variants.empty()) {
    o.variants = {{"default", {}},
                  {"linger0", {{"linger.ms", "0"}}},
                  {"fetchwait1", {{"fetch.wait.max.ms", "1"}}},
                  {"fetchwait1+linger0", {{"fetch.wait.max.ms", "1"}, {"linger.ms", "0"}}}};
  }
  if (o.seconds <= 0 || o.warmup < 0 || o.backlog < 2 || o.rate < 0) Die("bad --seconds, --warmup, --backlog or --rate");
  if (access(o.binary.c_str(), X_OK) != 0) Die("no cxpulse binary at " + o.binary);
  return o;
}

}  // namespace
}  // namespace cxpulse

int main(int argc, char** argv) {
  const cxpulse::Options o = cxpulse::Parse(argc, argv);
  std::printf("latency_bench: %s, shards %s, %u cores, load generator linger.ms=%s\n", o.binary.c_str(),
              o.shards > 0 ? std::to_string(o.shards).c_str() : "default", std::thread::hardware_concurrency(),
              o.gen_linger_ms.c_str());
  double rate = o.rate;
  if (rate <= 0) {
    // For reference: the daemon alone draining a backlog (no generator running).
    cxpulse::MeasureMax(o);
    rate = cxpulse::FindMax(o) / 2;
    std::printf("half the maximum: %.0f events/s\n", rate);
  }
  for (const auto& [name, props] : o.variants) cxpulse::MeasureLatency(o, rate, o.seconds, name, props, false);
  return 0;
}
