#include "cli/gen_command.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/time/time.h"
#include "cli/validators.h"
#include "common/strings.h"
#include "common/time.h"
#include "cx/v1/event.pb.h"
#include "gen/traffic_generator.h"
#include "kafka/client.h"

namespace cxpulse {
namespace {

using WallClock = std::chrono::system_clock;

// Set from the signal handler: stop generating, deliver what is queued, report.
std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free);

void OnStopSignal(int) { g_stop.store(true, std::memory_order_relaxed); }

void InstallStopHandler() {
  struct sigaction action = {};
  action.sa_handler = &OnStopSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND;  // a second Ctrl-C stops at once
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

std::vector<std::string_view> Split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  for (size_t from = 0;;) {
    const size_t at = text.find(sep, from);
    parts.push_back(text.substr(from, at == std::string_view::npos ? std::string_view::npos : at - from));
    if (at == std::string_view::npos) return parts;
    from = at + 1;
  }
}

// "now", "now-2h", or RFC 3339 ("2026-03-01T09:00:00Z", "2026-03-01T10:00:00+01:00").
absl::StatusOr<WallClock::time_point> ParseStart(std::string_view text, WallClock::time_point now) {
  if (text == "now") return now;
  if (text.starts_with("now-")) {
    absl::StatusOr<Micros> back = ParseDuration(text.substr(4));
    if (!back.ok()) return back.status();
    return now - std::chrono::microseconds(*back);
  }
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, ToAbsl(text), &t, &err)) {
    return absl::InvalidArgumentError(
        Cat("want RFC 3339 (2026-03-01T09:00:00Z), now or now-DURATION, got \"", text, "\""));
  }
  return absl::ToChronoTime(t);
}

absl::StatusOr<std::chrono::seconds> ParseSeconds(std::string_view text, std::string_view what) {
  absl::StatusOr<Micros> d = ParseDuration(text);
  if (!d.ok()) return absl::InvalidArgumentError(Cat(what, ": ", Message(d.status())));
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::microseconds(*d));
}

absl::StatusOr<double> ParseNumber(std::string_view text, std::string_view what) {
  double v = 0;
  if (absl::SimpleAtod(ToAbsl(text), &v) && std::isfinite(v)) return v;
  return absl::InvalidArgumentError(Cat(what, ": not a number: \"", text, "\""));
}

absl::Status CheckQueue(std::string_view queue, const TrafficOptions& traffic) {
  if (std::find(traffic.queues.begin(), traffic.queues.end(), queue) != traffic.queues.end()) {
    return absl::OkStatus();
  }
  std::string known;
  for (const auto& q : traffic.queues) Append(&known, known.empty() ? "" : ", ", q);
  return absl::InvalidArgumentError(Cat("unknown queue \"", queue, "\" (queues: ", known, ")"));
}

// surge:REASON[@QUEUE]:AFTER:DURATION:EXTRA_PER_SEC
// agents-lost:QUEUE:AFTER:DURATION[:AGENTS_LEFT]
absl::Status ParseIncident(std::string_view text, TrafficOptions* traffic) {
  const std::vector<std::string_view> f = Split(text, ':');
  const auto bad = [&](std::string_view why) { return absl::InvalidArgumentError(Cat(text, ": ", why)); };
  if (f[0] == "surge") {
    if (f.size() != 5) return bad("want surge:REASON[@QUEUE]:AFTER:DURATION:EXTRA_PER_SEC");
    TrafficSurge s;
    const std::vector<std::string_view> reason = Split(f[1], '@');
    if (reason[0].empty() || reason.size() > 2) return bad("want REASON or REASON@QUEUE");
    s.reason = std::string(reason[0]);
    if (reason.size() == 2) {
      if (absl::Status q = CheckQueue(reason[1], *traffic); !q.ok()) return bad(Message(q));
      s.queue = std::string(reason[1]);
    }
    absl::StatusOr<std::chrono::seconds> after = ParseSeconds(f[2], "AFTER");
    absl::StatusOr<std::chrono::seconds> duration = ParseSeconds(f[3], "DURATION");
    absl::StatusOr<double> extra = ParseNumber(f[4], "EXTRA_PER_SEC");
    for (const absl::Status& st : {after.status(), duration.status(), extra.status()}) {
      if (!st.ok()) return bad(Message(st));
    }
    if (duration->count() <= 0) return bad("DURATION must be at least 1s");
    if (*extra <= 0) return bad("EXTRA_PER_SEC must be positive");
    s.after = *after;
    s.duration = *duration;
    s.extra_contacts_per_second = *extra;
    traffic->surges.push_back(std::move(s));
    return absl::OkStatus();
  }
  if (f[0] == "agents-lost") {
    if (f.size() != 4 && f.size() != 5) return bad("want agents-lost:QUEUE:AFTER:DURATION[:AGENTS_LEFT]");
    StaffingDrop d;
    if (absl::Status q = CheckQueue(f[1], *traffic); !q.ok()) return bad(Message(q));
    d.queue = std::string(f[1]);
    absl::StatusOr<std::chrono::seconds> after = ParseSeconds(f[2], "AFTER");
    absl::StatusOr<std::chrono::seconds> duration = ParseSeconds(f[3], "DURATION");
    absl::StatusOr<double> left = f.size() == 5 ? ParseNumber(f[4], "AGENTS_LEFT") : d.agents_left;
    for (const absl::Status& st : {after.status(), duration.status(), left.status()}) {
      if (!st.ok()) return bad(Message(st));
    }
    if (duration->count() <= 0) return bad("DURATION must be at least 1s");
    if (!(*left > 0 && *left <= 1)) return bad("AGENTS_LEFT is the fraction still answering, in (0, 1]");
    d.after = *after;
    d.duration = *duration;
    d.agents_left = *left;
    traffic->staffing_drops.push_back(std::move(d));
    return absl::OkStatus();
  }
  return bad("unknown kind (surge, agents-lost)");
}

// Where generated events go. Write and Finish report the first failure.
class EventSink {
 public:
  virtual ~EventSink() = default;
  [[nodiscard]] virtual absl::Status Write(const cx::v1::InteractionEvent& e) = 0;
  // Called between batches.
  virtual void Tick() {}
  // Everything written is durable (flushed, delivered) or the status says what is not.
  [[nodiscard]] virtual absl::Status Finish() = 0;
  virtual std::string Describe() const = 0;
};

class FileSink final : public EventSink {
 public:
  enum class Format { kJsonLines, kDelimitedProto };

  static absl::StatusOr<std::unique_ptr<FileSink>> Open(const std::string& path, Format format) {
    std::FILE* f = path == "-" ? stdout : std::fopen(path.c_str(), "wb");
    if (f == nullptr) return absl::UnavailableError(Cat(path, ": ", std::strerror(errno)));
    return std::unique_ptr<FileSink>(new FileSink(path, f, format));
  }
  ~FileSink() override {
    if (file_ != nullptr && file_ != stdout) std::fclose(file_);
  }

  absl::Status Write(const cx::v1::InteractionEvent& e) override {
    line_.clear();
    if (format_ == Format::kJsonLines) {
      // Default options: the canonical proto3 JSON mapping (lowerCamelCase, defaults omitted).
      if (auto s = google::protobuf::util::MessageToJsonString(e, &line_); !s.ok()) {
        return absl::InternalError(Cat("json: ", s.message().as_string()));
      }
      line_.push_back('\n');
    } else {
      // The protobuf delimited format (writeDelimitedTo): a varint length, then the message.
      uint8_t size[10];
      const uint8_t* end =
          google::protobuf::io::CodedOutputStream::WriteVarint32ToArray(static_cast<uint32_t>(e.ByteSizeLong()), size);
      line_.assign(reinterpret_cast<const char*>(size), end - size);
      e.AppendToString(&line_);
    }
    if (std::fwrite(line_.data(), 1, line_.size(), file_) != line_.size()) {
      return absl::UnavailableError(Cat(path_, ": ", std::strerror(errno)));
    }
    return absl::OkStatus();
  }

  // A reader at the other end of a pipe (--realtime) sees each batch when it is made.
  void Tick() override { std::fflush(file_); }

  absl::Status Finish() override {
    std::FILE* f = std::exchange(file_, nullptr);
    bool ok = std::fflush(f) == 0 && std::ferror(f) == 0;
    std::string error = ok ? "" : std::strerror(errno);
    if (f != stdout && std::fclose(f) != 0 && ok) {
      ok = false;
      error = std::strerror(errno);
    }
    return ok ? absl::OkStatus() : absl::UnavailableError(Cat(path_, ": ", error));
  }

  std::string Describe() const override { return path_ == "-" ? "stdout" : path_; }

 private:
  FileSink(std::string path, std::FILE* file, Format format) : path_(std::move(path)), file_(file), format_(format) {
    std::setvbuf(file_, nullptr, _IOFBF, 1 << 20);
  }
  std::string path_;
  std::FILE* file_;
  Format format_;
  std::string line_;
};

class KafkaSink final : public EventSink {
 public:
  static absl::StatusOr<std::unique_ptr<KafkaSink>> Create(const std::string& brokers, const std::string& topic,
                                                           const KafkaProperties& properties) {
    KafkaProperties props = properties;
    props["bootstrap.servers"] = brokers;
    absl::StatusOr<std::unique_ptr<Producer>> producer = Producer::Create(props);
    if (!producer.ok()) return producer.status();
    return std::unique_ptr<KafkaSink>(new KafkaSink(brokers, topic, *std::move(producer)));
  }

  absl::Status Write(const cx::v1::InteractionEvent& e) override {
    e.SerializeToString(&value_);
    ++written_;
    // The key keeps each customer's events on one partition, in order.
    return producer_->Produce(topic_, RD_KAFKA_PARTITION_UA, e.customer_id(), value_);
  }

  void Tick() override { producer_->Poll(); }

  absl::Status Finish() override {
    // librdkafka reports every message within message.timeout.ms, so this ends.
    absl::Status flushed = producer_->Flush(-1);
    if (const uint64_t failed = producer_->delivery_failures(); failed > 0) {
      return absl::UnavailableError(Cat(failed, " of ", written_, " events were not delivered to ", topic_, " at ",
                                        brokers_, " (librdkafka's messages above say why)"));
    }
    return flushed;
  }

  std::string Describe() const override { return Cat(topic_, " at ", brokers_); }

 private:
  KafkaSink(std::string brokers, std::string topic, std::unique_ptr<Producer> producer)
      : brokers_(std::move(brokers)), topic_(std::move(topic)), producer_(std::move(producer)) {}
  std::string brokers_;
  std::string topic_;
  std::unique_ptr<Producer> producer_;
  std::string value_;
  uint64_t written_ = 0;
};

}  // namespace

GenCommand::GenCommand(CLI::App& app) {
  command_ = app.add_subcommand(
      "gen", "Generate realistic contact-centre traffic to a Kafka topic or a file, with incidents injected");
  CLI::Option_group* to = command_->add_option_group("destination", "Where the events go");
  CLI::Option* brokers =
      to->add_option("--brokers", brokers_, "Produce to Kafka at HOST:PORT[,...] (protobuf, key = customer_id)");
  CLI::Option* output = to->add_option("--output", output_, "Write to this file ('-': stdout)");
  to->require_option(1);
  command_->add_option("--topic", topic_, "Topic to produce to")->capture_default_str()->needs(brokers);
  command_->add_option("--kafka-property", kafka_properties_, "librdkafka property K=V (repeatable)")
      ->needs(brokers)
      ->check(StatusValidator("K=V", [](const std::string& kv) {
        return kv.find('=') == 0 || kv.find('=') == std::string::npos
                   ? absl::InvalidArgumentError(Cat("want K=V, got \"", kv, "\""))
                   : absl::OkStatus();
      }));
  command_
      ->add_option("--format", format_,
                   "File format: jsonl (proto3 JSON, one event a line) or proto "
                   "(length-delimited protobuf)")
      ->capture_default_str()
      ->check(CLI::IsMember({"jsonl", "proto"}))
      ->needs(output);
  command_->add_option("--events", events_, "Stop after this many events")->check(CLI::PositiveNumber);
  command_->add_option("--duration", duration_, "Stop at this much simulated time after --start, e.g. 30m")
      ->check(StatusValidator("DURATION", [](const std::string& text) -> absl::Status {
        absl::StatusOr<Micros> d = ParseDuration(text);
        if (!d.ok()) return d.status();
        return *d > 0 ? absl::OkStatus() : absl::InvalidArgumentError("must be positive");
      }));
  command_->add_option("--rate", rate_, "New contacts per simulated second (each makes ~6 events)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  command_->add_option("--customers", customers_, "Distinct customers")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000000));
  command_->add_option("--seed", seed_, "Generator seed: same seed and --start, same events")->capture_default_str();
  command_->add_option("--start", start_, "Simulated start: RFC 3339, now, or now-DURATION")
      ->capture_default_str()
      ->check(
          StatusValidator("TIME", [](const std::string& text) { return ParseStart(text, WallClock::now()).status(); }));
  command_->add_flag("--realtime", realtime_,
                     "Write each event when the wall clock reaches its time (default: as fast as possible)");
  command_
      ->add_option("--time-compression", time_compression_,
                   "Journeys (handle times, repeat contacts, callbacks) run this much faster")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 100000.0));
  command_
      ->add_option("--incident", incidents_,
                   "surge:REASON[@QUEUE]:AFTER:DURATION:EXTRA_PER_SEC or "
                   "agents-lost:QUEUE:AFTER:DURATION[:AGENTS_LEFT] (repeatable)")
      ->check(StatusValidator("INCIDENT", [](const std::string& text) {
        TrafficOptions scratch;
        return ParseIncident(text, &scratch);
      }));
}

int GenCommand::Run() const {
  const auto wall_start = std::chrono::steady_clock::now();
  TrafficOptions traffic;
  traffic.seed = seed_;
  traffic.customers = customers_;
  traffic.contacts_per_second = rate_;
  traffic.time_compression = time_compression_;
  for (const std::string& incident : incidents_) {
    (void)ParseIncident(incident, &traffic);  // validated while parsing the command line
  }
  const WallClock::time_point start = *ParseStart(start_, WallClock::now());
  const WallClock::time_point end =
      duration_.empty() ? WallClock::time_point::max() : start + std::chrono::microseconds(*ParseDuration(duration_));

  std::unique_ptr<EventSink> sink;
  if (!brokers_.empty()) {
    KafkaProperties properties;
    for (const std::string& kv : kafka_properties_) {
      const size_t eq = kv.find('=');
      properties[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    absl::StatusOr<std::unique_ptr<KafkaSink>> kafka = KafkaSink::Create(brokers_, topic_, properties);
    if (!kafka.ok()) {
      std::fprintf(stderr, "gen: %s\n", std::string(Message(kafka.status())).c_str());
      return 1;
    }
    sink = *std::move(kafka);
  } else {
    absl::StatusOr<std::unique_ptr<FileSink>> file =
        FileSink::Open(output_, format_ == "proto" ? FileSink::Format::kDelimitedProto : FileSink::Format::kJsonLines);
    if (!file.ok()) {
      std::fprintf(stderr, "gen: %s\n", std::string(Message(file.status())).c_str());
      return 1;
    }
    sink = *std::move(file);
  }
  InstallStopHandler();

  // As fast as possible, simulated time advances in steps of about 6000 events.
  const auto step = std::chrono::duration_cast<WallClock::duration>(
      std::chrono::duration<double>(std::clamp(1000.0 / std::max(rate_, 1e-3), 0.01, 10.0)));
  TrafficGenerator generator(traffic, start);
  std::vector<cx::v1::InteractionEvent> batch;
  absl::flat_hash_set<std::string> customers;
  uint64_t written = 0;
  Micros first = 0, last = 0;
  absl::Status status;
  WallClock::time_point simulated = start;
  bool done = false;
  while (!done) {
    WallClock::time_point target;
    if (realtime_) {
      target = std::min(WallClock::now(), end);
    } else {
      target = end - simulated > step ? simulated + step : end;
    }
    batch.clear();
    generator.Poll(target, &batch);
    for (const cx::v1::InteractionEvent& e : batch) {
      if (events_ > 0 && written == events_) break;
      status = sink->Write(e);
      if (!status.ok()) break;
      if (written++ == 0) first = ToMicros(e.occurred_at());
      last = ToMicros(e.occurred_at());
      customers.insert(e.customer_id());
    }
    sink->Tick();
    simulated = std::max(simulated, target);
    done = !status.ok() || (events_ > 0 && written == events_) || simulated >= end ||
           g_stop.load(std::memory_order_relaxed);
    if (realtime_ && !done) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // Deliver (or flush) what was written even after a failure, then report the first error.
  if (absl::Status finished = sink->Finish(); status.ok()) status = finished;

  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  std::string summary = Cat("gen: ", written, " events, ", customers.size(), " distinct customers");
  if (written > 0) Append(&summary, ", simulated ", FormatTime(first), " to ", FormatTime(last));
  Append(&summary, ", to ", sink->Describe(),
         fmt::format(" in {:.2f}s ({:.0f} events/s)", elapsed, static_cast<double>(written) / std::max(elapsed, 1e-9)));
  std::fprintf(stderr, "%s\n", summary.c_str());
  if (!status.ok()) {
    std::fprintf(stderr, "gen: %s\n", std::string(Message(status)).c_str());
    return 1;
  }
  return 0;
}

}  // namespace cxpulse
