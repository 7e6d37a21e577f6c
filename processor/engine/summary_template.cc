#include "engine/summary_template.h"

#include <algorithm>
#include <chrono>
#include <iterator>
#include <utility>

#include "fmt/format.h"

namespace cxpulse {
namespace {

// FormatTime's text (protobuf's TimeUtil::ToString: RFC 3339 in UTC, the
// fraction in 3 or 6 digits only when non-zero), appended without a
// temporary string: a finding's summary must not allocate.
void AppendTime(Micros t, std::string* out) {
  using namespace std::chrono;
  const sys_time<microseconds> at{microseconds{t}};
  const sys_days day = floor<days>(at);
  const year_month_day date{day};
  const hh_mm_ss<microseconds> time{at - day};
  fmt::format_to(std::back_inserter(*out), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", static_cast<int>(date.year()),
                 static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()), time.hours().count(),
                 time.minutes().count(), time.seconds().count());
  const int64_t fraction = time.subseconds().count();
  if (fraction % 1000 != 0) fmt::format_to(std::back_inserter(*out), ".{:06}", fraction);
  else if (fraction != 0) fmt::format_to(std::back_inserter(*out), ".{:03}", fraction / 1000);
  out->push_back('Z');
}

SummaryTemplate::Part Builtin(std::string_view name) {
  using P = SummaryTemplate::Part;
  static constexpr std::pair<std::string_view, P> kBuiltins[] = {
      {"rule", P::kRule},         {"count", P::kCount},   {"value", P::kValue},
      {"ratio", P::kRatio},       {"baseline", P::kBaseline}, {"window", P::kWindow},
      {"due_at", P::kDueAt},      {"since", P::kSince},   {"severity", P::kSeverity}};
  for (const auto& [n, p] : kBuiltins) {
    if (n == name) return p;
  }
  return P::kUnknown;
}

}  // namespace

SummaryTemplate::SummaryTemplate(std::string_view text, const std::vector<std::string>& key_names) {
  auto literal = [this](std::string_view s) {
    if (s.empty()) return;
    if (!pieces_.empty() && pieces_.back().part == Part::kText) pieces_.back().text.append(s);
    else pieces_.push_back({Part::kText, std::string(s)});
  };
  for (size_t i = 0; i < text.size();) {
    const size_t open = text.find('{', i);
    const size_t close = open == std::string_view::npos ? open : text.find('}', open);
    if (close == std::string_view::npos) {
      literal(text.substr(i));
      break;
    }
    literal(text.substr(i, open - i));
    const std::string_view name = text.substr(open + 1, close - open - 1);
    // A key field first: a key may be named like a built-in.
    const auto k = std::find(key_names.begin(), key_names.end(), name);
    if (k != key_names.end()) pieces_.push_back({Part::kKey, {}, static_cast<size_t>(k - key_names.begin())});
    else pieces_.push_back({Builtin(name), {}});
    i = close + 1;
  }
}

void SummaryTemplate::Render(const Values& v, std::string* out) const {
  out->clear();
  auto it = std::back_inserter(*out);
  for (const Piece& p : pieces_) {
    switch (p.part) {
      case Part::kText: out->append(p.text); break;
      case Part::kKey:
        if (v.keys != nullptr && p.key < v.keys->size()) out->append((*v.keys)[p.key]);
        break;
      case Part::kRule: out->append(v.rule); break;
      case Part::kCount: fmt::format_to(it, "{}{}", v.count_is_lower_bound ? "at least " : "", v.count); break;
      case Part::kValue: fmt::format_to(it, "{}", v.value); break;
      case Part::kRatio: fmt::format_to(it, "{:.1f}%", v.ratio * 100); break;
      case Part::kBaseline: fmt::format_to(it, "{:.1f}", v.baseline); break;
      // A span (sequence, absence) is short enough for std::string's in-place buffer.
      case Part::kWindow:
        if (!v.window.empty()) out->append(v.window);
        else out->append(FormatDuration(v.window_end - v.window_start));
        break;
      case Part::kDueAt: AppendTime(v.window_end, out); break;
      case Part::kSince: AppendTime(v.window_start, out); break;
      case Part::kSeverity: out->append(v.severity); break;
      case Part::kUnknown: break;
    }
  }
}

}  // namespace cxpulse
