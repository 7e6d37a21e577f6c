#include "cli/replay_command.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "cli/validators.h"
#include "codec/proto_json.h"
#include "common/strings.h"
#include "common/time.h"
#include "cx/v1/event.pb.h"
#include "cx/v1/finding.pb.h"
#include "codec/event_decoder.h"
#include "engine/offline_run.h"
#include "engine/rule_compiler.h"
#include "engine/rule_set.h"
#include "fmt/format.h"

namespace cxpulse {
namespace {

// Reads events one at a time, in file order, from JSON lines (the canonical
// proto3 JSON mapping, one event a line; codec/proto_json.h turns each into
// its protobuf encoding) or length-delimited protobuf, and decodes them with
// the shard's own EventDecoder, so a record's sub-messages are reused, not
// allocated again.
class EventReader {
 public:
  enum class Result { kEvent, kBad, kEnd };

  EventReader(std::istream& in, bool proto) : in_(in), proto_(proto) {
    if (proto_) stream_.emplace(&in_);
  }

  // kEvent: event() is the next event, wire() its protobuf encoding (a JSON
  // line's, as codec/proto_json.h writes it), both valid until the next call. kBad: `why` says what
  // is wrong with the line (JSON) or record (protobuf) at position();
  // reading goes on after it where it can.
  Result Next(std::string* why) {
    const Result read = proto_ ? NextRecord(why) : NextLine(why);
    if (read != Result::kEvent) return read;
    if (std::string_view missing = IncompleteEvent(*event_); !missing.empty()) {
      *why = std::string(missing);
      return Result::kBad;
    }
    return Result::kEvent;
  }
  const cx::v1::InteractionEvent& event() const { return *event_; }
  std::string_view wire() const { return record_; }

  // The line (JSON) or record (protobuf) number of the last Next, from 1.
  uint64_t position() const { return position_; }

 private:
  Result NextLine(std::string* why) {
    for (;;) {
      if (!std::getline(in_, line_)) return Result::kEnd;
      ++position_;
      if (!line_.empty() && line_.back() == '\r') line_.pop_back();
      if (line_.find_first_not_of(" \t") != std::string::npos) break;  // blank lines are skipped
    }
    if (auto s = json_.ToWire(line_, cx::v1::InteractionEvent::descriptor(), &record_); !s.ok()) {
      // protobuf appends the offending text and a caret on lines of their
      // own; the position is the line number already, so keep the first line.
      std::string message(s.message());
      message.erase(std::min(message.find('\n'), message.size()));
      *why = Cat("not a cx.v1.InteractionEvent: ", message);
      return Result::kBad;
    }
    return Decode(why);
  }

  Result NextRecord(std::string* why) {
    if (done_) return Result::kEnd;
    // A fresh CodedInputStream per record: it gives back what it buffered
    // beyond the record, and its 2 GB limit applies to one record, not the file.
    google::protobuf::io::CodedInputStream coded(&*stream_);
    uint32_t size = 0;
    if (!coded.ReadVarint32(&size)) {
      done_ = true;
      if (coded.CurrentPosition() == 0) return Result::kEnd;  // a clean end between records
      ++position_;
      *why = "truncated: the file ends inside a record's length";
      return Result::kBad;
    }
    ++position_;
    if (!coded.ReadString(&record_, static_cast<int>(size))) {
      done_ = true;
      *why = Cat("truncated: the record announces ", size, " bytes, the file ends first");
      return Result::kBad;
    }
    return Decode(why);
  }

  Result Decode(std::string* why) {
    event_ = decoder_.Decode(record_.data(), record_.size());
    if (event_ == nullptr) {
      *why = Cat("does not decode as cx.v1.InteractionEvent (", record_.size(), " bytes)");
      return Result::kBad;
    }
    return Result::kEvent;
  }

  std::istream& in_;
  bool proto_;
  std::optional<google::protobuf::io::IstreamInputStream> stream_;
  ProtoJsonParser json_;
  EventDecoder decoder_;
  const cx::v1::InteractionEvent* event_ = nullptr;
  std::string line_;
  std::string record_;
  uint64_t position_ = 0;
  bool done_ = false;
};

// Findings as JSON lines (the canonical proto3 JSON mapping), each behind an
// optional prefix ("+ ", "- ").
class FindingWriter {
 public:
  static absl::StatusOr<std::unique_ptr<FindingWriter>> Open(const std::string& path) {
    std::FILE* f = path == "-" ? stdout : std::fopen(path.c_str(), "wb");
    if (f == nullptr) return absl::UnavailableError(Cat(path, ": ", std::strerror(errno)));
    return std::unique_ptr<FindingWriter>(new FindingWriter(path, f));
  }
  ~FindingWriter() {
    if (file_ != nullptr && file_ != stdout) std::fclose(file_);
  }

  void Write(const cx::v1::Finding& f, std::string_view prefix = "") {
    line_.assign(prefix.data(), prefix.size());
    std::string json;
    (void)google::protobuf::util::MessageToJsonString(f, &json);  // fails only on invalid UTF-8 in bytes fields
    line_ += json;
    line_.push_back('\n');
    std::fwrite(line_.data(), 1, line_.size(), file_);
  }

  absl::Status Finish() {
    std::FILE* f = std::exchange(file_, nullptr);
    bool ok = std::fflush(f) == 0 && std::ferror(f) == 0;
    if (f != stdout) ok = std::fclose(f) == 0 && ok;
    return ok ? absl::OkStatus() : absl::UnavailableError(Cat(path_, ": ", std::strerror(errno)));
  }

  std::string Describe() const { return path_ == "-" ? "stdout" : path_; }

 private:
  FindingWriter(std::string path, std::FILE* file) : path_(std::move(path)), file_(file) {}
  std::string path_;
  std::FILE* file_;
  std::string line_;
};

// One rule set's run over the events: its findings per rule, each written
// as it fires (to `out`, if given), and kept for --diff if `keep`.
struct Side {
  std::shared_ptr<const RuleSet> rules;
  std::vector<uint64_t> per_rule;
  std::vector<cx::v1::Finding> kept;
  std::unique_ptr<OfflineRun> run;

  Side(std::shared_ptr<const RuleSet> r, Micros lateness, FindingWriter* out, bool keep)
      : rules(std::move(r)), per_rule(rules->rules().size(), 0) {
    run = std::make_unique<OfflineRun>(rules, lateness, [this, out, keep](int rule, const cx::v1::Finding& f) {
      ++per_rule[static_cast<size_t>(rule)];
      if (out != nullptr) out->Write(f);
      if (keep) kept.push_back(f);
    });
  }
  Side(const Side&) = delete;  // the run's callback holds `this`
  Side& operator=(const Side&) = delete;

  uint64_t total() const {
    uint64_t n = 0;
    for (uint64_t c : per_rule) n += c;
    return n;
  }
};

std::string Signed(int64_t n) { return n > 0 ? Cat("+", n) : Cat(n); }

// rule, findings; total.
std::string Table(const Side& side) {
  size_t width = 5;
  for (const Rule& r : side.rules->rules()) width = std::max(width, r.name.size());
  std::string out = fmt::format("{:<{}}  {:>8}\n", "rule", width, "findings");
  for (size_t i = 0; i < side.per_rule.size(); ++i) {
    out += fmt::format("{:<{}}  {:>8}\n", side.rules->rules()[i].name, width, side.per_rule[i]);
  }
  out += fmt::format("{:<{}}  {:>8}\n", "total", width, side.total());
  return out;
}

// rule, baseline findings, new findings, difference, and whether the rule
// was changed, added or removed; the new rules in their order, then the
// removed ones; total.
std::string Table(const Side& baseline, const Side& current) {
  size_t width = 5;
  for (const Side* s : {&baseline, &current}) {
    for (const Rule& r : s->rules->rules()) width = std::max(width, r.name.size());
  }
  const auto row = [&](std::string_view name, std::string b, std::string n, int64_t diff, std::string_view note) {
    std::string line = fmt::format("{:<{}}  {:>8}  {:>8}  {:>10}", name, width, b, n, Signed(diff));
    if (!note.empty()) Append(&line, "  ", note);
    return line + "\n";
  };
  std::string out = fmt::format("{:<{}}  {:>8}  {:>8}  {:>10}\n", "rule", width, "baseline", "new", "difference");
  for (size_t i = 0; i < current.per_rule.size(); ++i) {
    const Rule& rule = current.rules->rules()[i];
    const auto n = static_cast<int64_t>(current.per_rule[i]);
    const int b = baseline.rules->IndexOf(rule.name);
    if (b < 0) {
      out += row(rule.name, "-", Cat(n), n, "added");
      continue;
    }
    const auto bn = static_cast<int64_t>(baseline.per_rule[static_cast<size_t>(b)]);
    const bool changed = baseline.rules->rules()[static_cast<size_t>(b)].version != rule.version;
    out += row(rule.name, Cat(bn), Cat(n), n - bn, changed ? "changed" : "");
  }
  for (size_t i = 0; i < baseline.per_rule.size(); ++i) {
    const Rule& rule = baseline.rules->rules()[i];
    if (current.rules->IndexOf(rule.name) >= 0) continue;
    const auto bn = static_cast<int64_t>(baseline.per_rule[i]);
    out += row(rule.name, Cat(bn), "-", -bn, "removed");
  }
  const auto bt = static_cast<int64_t>(baseline.total());
  const auto nt = static_cast<int64_t>(current.total());
  out += row("total", Cat(bt), Cat(nt), nt - bt, "");
  return out;
}

// The findings of one run that the other did not give (by finding_id).
void WriteOnlyIn(const Side& side, const Side& other, std::string_view prefix, FindingWriter* out) {
  absl::flat_hash_set<std::string> ids;
  for (const cx::v1::Finding& f : other.kept) ids.insert(f.finding_id());
  for (const cx::v1::Finding& f : side.kept) {
    if (!ids.contains(f.finding_id())) out->Write(f, prefix);
  }
}

absl::StatusOr<std::shared_ptr<const RuleSet>> Load(const std::string& path) { return LoadRuleSet({path}); }

}  // namespace

ReplayCommand::ReplayCommand(CLI::App& app) {
  command_ = app.add_subcommand(
      "replay", "Run rules over recorded events; print findings and, with --baseline, what fires more or less");
  command_->footer(
      "Events are replayed on one partition, per-customer rules in file order, centre-wide rules in event-time\n"
      "order as the daemon's centre stage runs them; time moves only by their occurred_at. At the end of\n"
      "the input the watermark moves past the last event plus the longest rule horizon (and past every deadline\n"
      "an event named, such as a callback's due time), so pending absence timers fire, as a test's `advance`\n"
      "does. A line that does not parse is reported on stderr as FILE:LINE: reason (FILE:RECORD: with --format\n"
      "proto) and skipped. Findings go to --output as JSON lines; a summary (events, bad lines, findings per\n"
      "rule, or with --baseline: rule, baseline, new, difference) to stderr.\n"
      "Exit codes: 0 every event replayed; 1 a bad input line (the rest is still replayed), rules that do not\n"
      "load (every error as file:line:col: message), or output that cannot be written; 2 usage.\n");
  command_->add_option("--rules", rules_, "Rule file or directory (the rules to try)")->required();
  command_
      ->add_option("--input", input_,
                   "Recorded events ('-': stdin), as `cxpulse gen --output` writes them")
      ->required()
      ->check(CLI::ExistingFile | CLI::IsMember({"-"}));
  command_
      ->add_option("--format", format_,
                   "Input format: jsonl (proto3 JSON, one event a line) or proto (length-delimited protobuf; "
                   "errors give the record number)")
      ->capture_default_str()
      ->check(CLI::IsMember({"jsonl", "proto"}));
  CLI::Option* baseline = command_->add_option(
      "--baseline", baseline_,
      "Rule file or directory to compare with (the rules live now): the same events run through both, and the "
      "summary is a per-rule table of baseline findings, new findings and the difference");
  command_->add_option("--output", output_, "Write findings here ('-': stdout)")->capture_default_str();
  command_->add_flag("--diff", diff_,
                     "With --baseline: print only the findings one run gave and the other did not (by "
                     "finding_id), '+ ' before the new rules' and '- ' before the baseline's")
      ->needs(baseline);
  command_
      ->add_option("--allowed-lateness", allowed_lateness_,
                   "An event older than the newest event time minus this is late and not applied (counted), "
                   "as in the daemon")
      ->capture_default_str()
      ->check(DurationValidator());
}

int ReplayCommand::Run() const {
  absl::StatusOr<std::shared_ptr<const RuleSet>> rules = Load(rules_);
  absl::StatusOr<std::shared_ptr<const RuleSet>> baseline_rules =
      baseline_.empty() ? absl::StatusOr<std::shared_ptr<const RuleSet>>(nullptr) : Load(baseline_);
  bool rules_ok = true;
  for (const auto* r : {&rules, &baseline_rules}) {
    if (!r->ok()) {
      std::cerr << Message(r->status()) << "\n";
      rules_ok = false;
    }
  }
  if (!rules_ok) return 1;

  std::ifstream file;
  if (input_ != "-") {
    file.open(input_, std::ios::binary);
    if (!file) {
      std::cerr << "replay: " << input_ << ": " << std::strerror(errno) << "\n";
      return 1;
    }
  }
  std::istream& in = input_ == "-" ? std::cin : file;
  const std::string input_name = input_ == "-" ? "stdin" : input_;

  absl::StatusOr<std::unique_ptr<FindingWriter>> out = FindingWriter::Open(output_);
  if (!out.ok()) {
    std::cerr << "replay: " << Message(out.status()) << "\n";
    return 1;
  }
  const Micros lateness = *ParseDuration(allowed_lateness_);  // validated while parsing the command line
  // Without --diff the new rules' findings are written as they fire; with it
  // both runs keep theirs until the end, to be compared.
  Side current(*rules, lateness, diff_ ? nullptr : out->get(), diff_);
  std::optional<Side> baseline;
  if (*baseline_rules != nullptr) baseline.emplace(*baseline_rules, lateness, nullptr, diff_);

  EventReader reader(in, format_ == "proto");
  std::string why;
  uint64_t events = 0, bad = 0, late = 0;
  for (;;) {
    const EventReader::Result r = reader.Next(&why);
    if (r == EventReader::Result::kEnd) break;
    if (r == EventReader::Result::kBad) {
      ++bad;
      std::cerr << input_name << ":" << reader.position() << ": " << why << "\n";
      continue;
    }
    ++events;
    // Both runs have the same lateness and see the same events: late in one is late in the other.
    if (current.run->Process(reader.event(), reader.wire()) == Engine::Outcome::kLate) ++late;
    if (baseline) (void)baseline->run->Process(reader.event(), reader.wire());
  }
  if (in.bad()) {
    std::cerr << "replay: " << input_name << ": read error\n";
    ++bad;
  }
  current.run->AdvancePastEnd();
  if (baseline) baseline->run->AdvancePastEnd();
  if (diff_) {
    WriteOnlyIn(current, *baseline, "+ ", out->get());
    WriteOnlyIn(*baseline, current, "- ", out->get());
  }
  const absl::Status written = (*out)->Finish();

  const std::string_view unit = format_ == "proto" ? " bad record" : " bad line";
  std::string summary = Cat("replay: ", events, " events read from ", input_name, ", ", bad, unit, bad == 1 ? "" : "s",
                            ", ", late, " late (not applied); findings to ", (*out)->Describe(), "\n");
  summary += baseline ? Table(*baseline, current) : Table(current);
  std::cerr << summary;
  if (!written.ok()) {
    std::cerr << "replay: " << Message(written) << "\n";
    return 1;
  }
  return bad == 0 ? 0 : 1;
}

}  // namespace cxpulse
